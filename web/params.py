"""Request parameter types the pages and the API share."""

from typing import Annotated

from fastapi import Path

MAX_ID = 2**31 - 1

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A task or instance id")]
"""A task or instance id: a positive 32-bit integer (larger ones are refused with 422, never looked up)."""

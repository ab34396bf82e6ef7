"""Request parameter types the pages and the API share."""

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**31 - 1

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A task or instance id")]
"""A task or instance id: a positive 32-bit integer (larger ones are refused with 422, never looked up)."""

TEXT = r"^[^\x00]*$"
"""A text parameter: any characters but NUL (which no database column can hold; refused with 422)."""

ProcessKey = Annotated[str, Path(max_length=200, pattern=TEXT, description="A process id")]
"""A process id in a path."""

DepartmentFilter = Annotated[str | None, Query(max_length=100, pattern=TEXT, description="Only this department")]
"""An optional department filter in a query string."""

ProcessFilter = Annotated[str | None, Query(max_length=200, pattern=TEXT, description="Only this process")]
"""An optional process filter in a query string."""

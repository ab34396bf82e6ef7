"""YAML text qproc reads (organisation, calendar, forms, settings): parsed safely, failures named with file and line."""

from typing import Any

import yaml

from .errors import DefinitionError


def parse(text: str, file_name: str) -> Any:
    """The data in ``text``; raises DefinitionError naming ``file_name`` and the line of a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DefinitionError(f"invalid YAML: {getattr(err, 'problem', err)}", file_name,
                              mark.line + 1 if mark else None) from err

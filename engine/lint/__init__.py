"""Lint: the checks a BPMN or DMN file must pass before it is deployed, collected rather than raised.

Each sub-module checks one thing on the parsed XML (lxml, so every element knows its source line)
and returns :class:`Problem` objects; none of them raises on a malformed or foreign file.
:func:`engine.definitions.check` runs them all, together with the checks that need Spiff's parsed
specs, the organisation and the forms; ``qproc lint`` prints the result and ``qproc deploy`` refuses
a file with an error.

- :mod:`.bpmn` the namespaces and element kinds the checks share
- :mod:`.diagram` diagram interchange: a shape per node, lane and participant, an edge per flow
- :mod:`.flow` gateways' conditions and defaults, broken flows, unreachable nodes and dead ends
- :mod:`.expressions` conditions, scripts and timers compile in the sandbox; timer values are ISO 8601
- :mod:`.references` call activities and business rule tasks name a process or decision in the set
- :mod:`.dmn` decision tables: cells compile, inputs are covered (gaps), UNIQUE rules do not overlap
"""

from dataclasses import dataclass

ERROR = "error"      # the engine cannot run the file as meant: deploy refuses it
WARNING = "warning"  # the file runs, but is incomplete (diagram, dead branches): lint reports it, deploy allows it


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one file, at a line (0 when the file as a whole is meant)."""

    file: str
    line: int
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {'warning: ' if self.severity == WARNING else ''}{self.message}"

    def to_dict(self) -> dict:
        """The problem as JSON-ready data (``qproc lint --json``)."""
        return {"file": self.file, "line": self.line or None, "severity": self.severity, "message": self.message}

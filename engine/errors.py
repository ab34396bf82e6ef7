"""The one exception family the engine raises.

Every failure a user can cause is an :class:`EngineError` subclass carrying a message that names
the ids and the state involved, so the CLI (and later the web service) can show it as it is.
"""


class EngineError(Exception):
    """Base of every error the engine raises on purpose; ``str(err)`` is the user-facing message."""


class NotFound(EngineError):
    """An instance, task, process, user or department that does not exist."""


class InvalidTransition(EngineError):
    """An action the current state does not allow (completing a done task, acting on a cancelled instance)."""


class Forbidden(EngineError):
    """The acting user may not do this: wrong department, missing role."""


class DefinitionError(EngineError):
    """A BPMN, DMN, form or organisation file that cannot be used; names the file and, when known, the line."""

    def __init__(self, message: str, file_name: str | None = None, line: int | None = None):
        self.file_name = file_name
        self.line = line
        where = file_name or ""
        if file_name and line:
            where = f"{file_name}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class FormError(EngineError):
    """Submitted data that fails its form; ``problems`` maps each bad field to what is wrong with it."""

    def __init__(self, form_key: str, problems: dict[str, str]):
        self.form_key = form_key
        self.problems = problems
        listing = "; ".join(f"{field}: {why}" for field, why in problems.items())
        super().__init__(f"form '{form_key}' is invalid: {listing}")


class ExpressionError(EngineError):
    """A gateway condition, script or other expression failed or was refused by the sandbox."""


class ConcurrentUpdate(EngineError):
    """The instance was changed by someone else between reading and writing it; reload and retry."""


class Refusal(Forbidden):
    """A refusal the history must keep (separation of duties, a failed signature).

    The refused command's transaction is rolled back like any other, so the command changes
    nothing; ``audit.run`` then appends one ``action_refused`` event to the instance's chain in a
    transaction of its own. ``details`` is that event's data.
    """

    def __init__(self, message: str, instance_id: int, task_id: int | None, actor: str, at, details: dict):
        self.instance_id = instance_id
        self.task_id = task_id
        self.actor = actor
        self.at = at
        self.details = {**details, "reason": message}
        super().__init__(message)


class SchemaVersionError(EngineError):
    """The database's schema is not the one this qproc needs (missing, behind or ahead); says what to run."""


class DatabaseUnavailable(EngineError):
    """The database refused the connection or went away mid-command; says whether anything may have changed."""

"""Schema versions: the Alembic migrations in ``engine/migrations`` applied to a database connection.

The first migration is the schema qproc first shipped with; every later change to the tables in
``store.py`` is a new migration, and ``store.SCHEMA_REVISION`` names the newest one (a test keeps the
two in step). Callers pass a connection inside a transaction they own, so an upgrade is all or nothing.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest migration's revision id."""
    return _scripts().get_current_head()


def is_known(revision: str) -> bool:
    """Whether this qproc has a migration with this revision id (a database migrated by a newer qproc has not)."""
    return revision in {script.revision for script in _scripts().walk_revisions()}


def title(revision: str) -> str:
    """The one-line description of a migration."""
    return _scripts().get_revision(revision).doc


def upgrade(connection, target: str = "head") -> None:
    """Apply the migrations the connection's database lacks up to ``target``, inside its open transaction."""
    command.upgrade(_config(connection), target)

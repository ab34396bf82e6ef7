"""The database handle: SQLite's durability setting, and work done after a command commits."""

import pytest

from engine import store
from engine.store import Database


def _synchronous(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("PRAGMA synchronous").scalar()


def test_sqlite_synchronous_mode_is_chosen_per_database(tmp_path):
    normal = Database(f"sqlite:///{tmp_path / 'normal.db'}")
    full = Database(f"sqlite:///{tmp_path / 'full.db'}", sqlite_synchronous="full")
    assert (_synchronous(normal), _synchronous(full)) == (1, 2)
    normal.dispose()
    full.dispose()


def test_unknown_sqlite_synchronous_mode_is_refused_naming_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="'SOMETIMES' is not one of OFF, NORMAL, FULL, EXTRA"):
        Database(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="sometimes")


def test_after_commit_runs_once_the_command_commits(db):
    ran = []
    db.run(lambda s: store.after_commit(s, lambda: ran.append("done")))
    assert ran == ["done"]


def test_after_commit_does_not_run_when_the_command_fails(db):
    ran = []

    def work(session):
        store.after_commit(session, lambda: ran.append("done"))
        raise RuntimeError("refused")
    with pytest.raises(RuntimeError):
        db.run(work)
    assert ran == []

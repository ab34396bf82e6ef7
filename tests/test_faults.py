"""Faults: a worker killed with kill -9 mid-transaction, a database that goes away or was never there.

A command is one transaction: whatever kills it, the database holds the state before it or after it, never
half of it, and the next process carries on. A lost database is a one-line error and exit code 1.
"""

import pytest
from click.testing import CliRunner
from sqlalchemy import event, text

from cli import main
from conftest import T0, at, deploy_fixture, fingerprint, postgresql_only
from engine import audit, runtime, store
from engine.errors import DatabaseUnavailable
from worker_process import TIMER_BATCH, Worker, fire_timers


@pytest.fixture
def waiting_db(checks_db):
    """Four parallel_checks instances waiting for their quality checks."""
    checks_db.run(lambda s: [runtime.start(s, "parallel_checks", "li.zhou", T0) for _ in range(4)])
    return checks_db


def test_worker_killed_mid_transaction_leaves_the_old_state_and_a_restarted_worker_finishes(waiting_db):
    worker = Worker(waiting_db, 0, pause_at=3)
    assert worker.read() == {"ready": 0}
    worker.go()
    committed = [worker.read(), worker.read()]
    inside = worker.read()
    worker.kill()
    killed_task = inside["inside"]
    instance_id = waiting_db.run(lambda s: store.get_task(s, killed_task).instance_id)
    after_last_commit = max((c for c in committed if c["instance"] == instance_id), key=lambda c: c["revision"])
    state = waiting_db.run(lambda s: (store.get_task(s, killed_task).status,
                                      store.get_instance(s, instance_id).revision, len(store.events_of(s, instance_id))))
    assert state == ("open", after_last_commit["revision"], after_last_commit["events"])
    assert waiting_db.run(audit.verify).problems == []

    restarted = Worker(waiting_db, 1)
    assert restarted.read() == {"ready": 1}
    restarted.go()
    finished = [r["completed"] for r in restarted.finish() if "completed" in r]
    assert killed_task in finished and len(finished) == 12 - len(committed)
    assert set(waiting_db.run(lambda s: [i.status for i in store.list_instances(s)])) == {"completed"}
    verified = CliRunner().invoke(main, ["--db", waiting_db.url, "audit", "verify"], catch_exceptions=False)
    assert verified.exit_code == 0, verified.output


def test_timer_worker_killed_mid_batch_fires_nothing_and_after_a_restart_each_timer_fires_once(org_db):
    deploy_fixture(org_db, "boundary_timer")
    instance_ids = org_db.run(lambda s: [runtime.start(s, "boundary_timer", "mei.wang", T0).id for _ in range(15)])
    before = fingerprint(org_db)
    worker = Worker(org_db, 0, fire_timers, pause_at=1)
    assert worker.read() == {"ready": 0}
    worker.go()
    unfinished = worker.read()["inside"]
    worker.kill()
    assert len(unfinished) == TIMER_BATCH
    assert fingerprint(org_db) == before

    restarted = Worker(org_db, 1, fire_timers)
    assert restarted.read() == {"ready": 1}
    restarted.go()
    [report] = restarted.finish()
    assert sorted(report["fired"]) == instance_ids
    kinds = org_db.run(lambda s: [e.kind for i in instance_ids for e in store.events_of(s, i)])
    assert kinds.count("timer_fired") == len(instance_ids)
    verified = CliRunner().invoke(main, ["--db", org_db.url, "audit", "verify"], catch_exceptions=False)
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-folder/qproc.db",
                                 "postgresql+psycopg://postgres@127.0.0.1:1/test"], ids=["sqlite", "postgresql"])
def test_unreachable_database_is_a_one_line_error_and_exit_1(url):
    result = CliRunner().invoke(main, ["--db", url, "instances"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: database {url} is unavailable (")
    assert result.output.rstrip().endswith("; nothing was changed") and result.output.count("\n") == 1


def _open_check(db):
    return db.run(lambda s: store.inbox(s, ["quality"], runtime.ACTIVE_TASK, limit=1)[0].id)


def _backend(session) -> int:
    return session.execute(text("SELECT pg_backend_pid()")).scalar()


def _cut_connection(backend: int, server) -> None:
    """What a database restart or a network failure does to a session's connection."""
    with server.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})


@postgresql_only
def test_connection_lost_mid_command_changes_nothing_and_the_next_command_reconnects(waiting_db, postgresql_server):
    task_id = _open_check(waiting_db)
    before = fingerprint(waiting_db)

    def complete_then_lose_the_database(session):
        runtime.complete(session, task_id, "mei.wang", at(1), {"a": 1})
        session.flush()
        _cut_connection(_backend(session), postgresql_server)
        return store.get_task(session, task_id)

    with pytest.raises(DatabaseUnavailable, match="is unavailable .*; nothing was changed"):
        waiting_db.run(complete_then_lose_the_database)
    assert fingerprint(waiting_db) == before
    waiting_db.run(lambda s: runtime.complete(s, task_id, "mei.wang", at(2), {"a": 1}))
    assert waiting_db.run(lambda s: store.get_task(s, task_id).status) == "completed"


@postgresql_only
def test_connection_lost_while_committing_says_to_check_the_outcome(waiting_db, postgresql_server):
    task_id = _open_check(waiting_db)
    backends = []

    def complete(session):
        backends.append(_backend(session))
        return runtime.complete(session, task_id, "mei.wang", at(1), {"a": 1})

    def lose_the_database_at_commit(conn):
        _cut_connection(backends[-1], postgresql_server)

    event.listen(waiting_db.engine, "commit", lose_the_database_at_commit)
    with pytest.raises(DatabaseUnavailable, match="lost while committing: check whether the command took effect"):
        waiting_db.run(complete)
    event.remove(waiting_db.engine, "commit", lose_the_database_at_commit)
    assert waiting_db.run(lambda s: store.get_task(s, task_id).status) == "open"

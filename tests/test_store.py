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


def test_inbox_lists_earliest_due_first_undated_last_escalated_once_and_stops_at_the_limit(gateway_db):
    from conftest import at, tamper
    from engine import runtime

    started = [gateway_db.run(lambda s, n=n: runtime.start(s, "gateway_condition", "li.zhou", at(n)).id)
               for n in range(8)]
    tasks = gateway_db.run(lambda s: {t.instance_id: t.id for i in started
                                      for t in store.tasks_of_instance(s, i, runtime.ACTIVE_TASK)})
    ids = [tasks[i] for i in started]
    # Mixed due times (two equal, two none), a claimed task, one of another department escalated to the clerk
    # (listed once although it matches twice), one escalated to someone else, one completed.
    layout = [("sales", "open", "2026-11-05 09:00", None), ("sales", "claimed", "2026-11-03 09:00", None),
              ("sales", "open", None, None), ("quality", "open", "2026-11-04 09:00", "li.zhou"),
              ("sales", "open", "2026-11-05 09:00", None), ("quality", "open", "2026-11-02 09:00", "hao.wu"),
              ("sales", "completed", "2026-11-01 09:00", None), ("sales", "open", None, "li.zhou")]
    for task_id, (department, status, due, escalated_to) in zip(ids, layout):
        tamper(gateway_db, "UPDATE tasks SET department = :d, status = :s, due_at = :due, escalated_to = :e "
                           "WHERE id = :id", d=department, s=status, due=due, e=escalated_to, id=task_id)

    def inbox(limit, escalated_to="li.zhou", assignee=None):
        return gateway_db.run(lambda s: [t.id for t in store.inbox(s, ["sales"], runtime.ACTIVE_TASK, limit=limit,
                                                                   escalated_to=escalated_to, assignee=assignee)])

    expected = [ids[1], ids[3], ids[0], ids[4], ids[2], ids[7]]
    assert inbox(500) == expected
    assert inbox(3) == expected[:3]
    assert inbox(500, escalated_to=None) == [ids[1], ids[0], ids[4], ids[2], ids[7]]
    assert inbox(500, assignee="li.zhou") == [ids[3], ids[7]]
    assert gateway_db.run(lambda s: store.inbox(s, [], runtime.ACTIVE_TASK)) == []  # nobody's inbox: empty


def test_a_task_written_in_a_rolled_back_savepoint_leaves_nothing_behind(gateway_db):
    # The worker does each due instance in a savepoint; one that fails must not spoil the next one's new tasks
    # (SQLite hands the rolled-back row's id out again).
    import contextlib

    from conftest import T0
    from engine import runtime

    instance_id = gateway_db.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id)

    def task(name):
        return store.TaskRow(instance_id=instance_id, spiff_id=name, process="gateway_condition", name=name,
                             title=name, department="sales", role=None, form_key="request", status="open",
                             created_at=T0, escalation_level=0)

    held = []  # the rolled-back row still referenced (as a traceback's frames may hold it)

    def work(session):
        with contextlib.suppress(RuntimeError), session.begin_nested():
            held.append(store.add_task(session, task("rolled back")))
            raise RuntimeError("this instance's work failed")
        store.add_task(session, task("kept"))
    gateway_db.run(work)
    names = gateway_db.run(lambda s: [t.name for t in store.tasks_of_instance(s, instance_id)])
    assert names == ["request", "kept"]

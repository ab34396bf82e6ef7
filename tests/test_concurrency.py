"""Several writers at once: optimistic locking on the instance revision, retries on fresh data, clear refusals.

PostgreSQL runs at READ COMMITTED, so two commands can read the same instance and race to write it: the
revision check makes the loser run again on what the winner committed. SQLite queues writers instead
(BEGIN IMMEDIATE). The interleaving tests are PostgreSQL's; the worker-process test runs on both.
"""

import pytest
from sqlalchemy import text

from conftest import T0, at, deploy_fixture, fingerprint, postgresql_only
from engine import audit, runtime, store
from engine.errors import ConcurrentUpdate, InvalidTransition
from engine.store import Database
from worker_process import Worker, fire_timers


def start_checks(db, count=1):
    """Start ``count`` instances of parallel_checks; their ids."""
    return db.run(lambda s: [runtime.start(s, "parallel_checks", "li.zhou", T0).id for _ in range(count)])


def checks(db, instance_id):
    """An instance's open checks by name: {"check_a": task id, ...}."""
    return db.run(lambda s: {t.name: t.id for t in store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK)})


def slip_in_after_first_call(monkeypatch, name, other_command):
    """Run ``other_command`` once, right after the first call of ``store.<name>`` returns: another user's
    command committing between this command's read and its write."""
    original = getattr(store, name)
    pending = [other_command]

    def read_then_let_the_other_in(*args, **kwargs):
        result = original(*args, **kwargs)
        if pending:
            pending.pop()()
        return result

    monkeypatch.setattr(store, name, read_then_let_the_other_in)


@postgresql_only
def test_command_that_lost_the_race_for_its_instance_runs_again_on_fresh_data(checks_db, monkeypatch):
    [instance_id] = start_checks(checks_db)
    tasks = checks(checks_db, instance_id)
    other = Database(checks_db.url)
    slip_in_after_first_call(monkeypatch, "get_task", lambda: other.run(
        lambda s: runtime.complete(s, tasks["check_b"], "lei.liu", at(1), {"b": 2})))
    attempts = []

    def complete_a(session):
        attempts.append(1)
        return runtime.complete(session, tasks["check_a"], "mei.wang", at(2), {"a": 1}).name

    checks_db.run(complete_a)
    other.run(lambda s: runtime.complete(s, tasks["check_c"], "lei.liu", at(3), {"c": 3}))
    other.dispose()
    assert len(attempts) == 2
    instance = checks_db.run(lambda s: store.get_instance(s, instance_id))
    assert instance.status == "completed"
    assert runtime.instance_data(instance) == {"a": 1, "b": 2, "c": 3}
    assert checks_db.run(audit.verify).problems == []


@postgresql_only
def test_completing_a_task_someone_completed_meanwhile_names_who_did(checks_db, monkeypatch):
    [instance_id] = start_checks(checks_db)
    task_id = checks(checks_db, instance_id)["check_a"]
    other = Database(checks_db.url)
    slip_in_after_first_call(monkeypatch, "get_task", lambda: other.run(
        lambda s: runtime.complete(s, task_id, "lei.liu", at(1), {"a": 2})))
    with pytest.raises(InvalidTransition, match=f"task {task_id} .* is already completed by lei.liu"):
        checks_db.run(lambda s: runtime.complete(s, task_id, "mei.wang", at(2), {"a": 1}))
    other.dispose()
    events = checks_db.run(lambda s: [e.kind for e in store.events_of(s, instance_id)])
    assert events.count("task_completed") == 1


@postgresql_only
def test_business_key_taken_meanwhile_is_refused_by_name(gateway_db, monkeypatch):
    other = Database(gateway_db.url)
    slip_in_after_first_call(monkeypatch, "find_instance_by_key", lambda: other.run(
        lambda s: runtime.start(s, "gateway_condition", "hao.wu", T0, business_key="CC-7")))
    with pytest.raises(InvalidTransition, match="already has an instance with key 'CC-7'"):
        gateway_db.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0, business_key="CC-7"))
    other.dispose()
    assert gateway_db.run(lambda s: store.find_instance_by_key(s, "gateway_condition", "CC-7").started_by) == "hao.wu"


@postgresql_only
def test_simultaneous_deploys_keep_one_unforked_system_chain(org_db, monkeypatch):
    other = Database(org_db.url)
    slip_in_after_first_call(monkeypatch, "find_definition_by_hash", lambda: deploy_fixture(other, "parallel_checks"))
    [result] = deploy_fixture(org_db, "parallel_checks")
    other.dispose()
    assert (result.version, result.created) == (1, False)
    system = org_db.run(lambda s: [(e.seq, e.kind) for e in store.events_of(s, None)])
    assert [seq for seq, _ in system] == list(range(1, len(system) + 1))
    assert [kind for _, kind in system].count("definition_deployed") == 1


def test_collisions_without_end_give_up_with_concurrent_update_and_change_nothing(checks_db):
    [instance_id] = start_checks(checks_db)
    task_id = checks(checks_db, instance_id)["check_a"]
    before = fingerprint(checks_db)
    attempts = []

    def always_overtaken(session):
        attempts.append(1)
        task = store.get_task(session, task_id)  # this command reads the task and its instance …
        # … and another writer commits a change to the instance first, every single time.
        session.execute(text("UPDATE instances SET revision = revision + 1 WHERE id = :id"), {"id": instance_id})
        runtime.complete(session, task.id, "mei.wang", at(1), {"a": 1})

    with pytest.raises(ConcurrentUpdate, match="gave up after 3 attempts.*nothing was changed"):
        checks_db.run(always_overtaken, retries=2)
    assert len(attempts) == 3
    assert fingerprint(checks_db) == before


def test_action_on_an_instance_changed_since_the_user_read_it_is_refused(checks_db):
    [instance_id] = start_checks(checks_db)
    tasks = checks(checks_db, instance_id)
    seen = checks_db.run(lambda s: store.get_instance(s, instance_id).revision)
    checks_db.run(lambda s: runtime.complete(s, tasks["check_b"], "lei.liu", at(1), {"b": 2}))
    before = fingerprint(checks_db)
    with pytest.raises(ConcurrentUpdate, match=f"instance {instance_id} was changed by someone else since you read it "
                                               f"\\(revision {seen}, now \\d+; last change: task_completed by lei.liu"):
        checks_db.run(lambda s: runtime.cancel(s, instance_id, "li.zhou", at(2), "withdrawn", expected_revision=seen))
    assert fingerprint(checks_db) == before


def test_four_worker_processes_complete_fifty_instances_without_losing_or_repeating_a_task(checks_db):
    instance_ids = start_checks(checks_db, 50)
    all_tasks = {task_id for i in instance_ids for task_id in checks(checks_db, i).values()}
    workers = [Worker(checks_db, number) for number in range(4)]
    assert [w.read() for w in workers] == [{"ready": n} for n in range(4)]
    for w in workers:
        w.go()
    reports = {w.number: w.finish() for w in workers}
    done_by = [(r["completed"], number) for number, lines in reports.items() for r in lines if "completed" in r]
    assert sorted(task for task, _ in done_by) == sorted(all_tasks)  # each task exactly once, none left
    who = dict(done_by)

    def outcome(session):
        rows = {i: store.get_instance(session, i) for i in instance_ids}
        return ({i: r.status for i, r in rows.items()}, {i: runtime.instance_data(r) for i, r in rows.items()},
                {i: [t.id for t in store.tasks_of_instance(session, i)] for i in instance_ids},
                {i: [e.task_id for e in store.events_of(session, i) if e.kind == "task_completed"]
                 for i in instance_ids})

    statuses, data, tasks, completions = checks_db.run(outcome)
    assert set(statuses.values()) == {"completed"}
    assert any(len({who[t] for t in tasks[i]}) > 1 for i in instance_ids)  # workers shared instances
    for i in instance_ids:  # every worker's answer is in the final data: no update was lost
        names = checks_db.run(lambda s: {t.id: t.name for t in store.tasks_of_instance(s, i)})
        assert data[i] == {names[t][-1]: who[t] for t in tasks[i]}
        assert sorted(completions[i]) == sorted(tasks[i])
    assert checks_db.run(audit.verify).problems == []


def test_three_worker_processes_fire_each_of_two_hundred_due_timers_exactly_once(org_db):
    deploy_fixture(org_db, "boundary_timer")
    instance_ids = org_db.run(lambda s: [runtime.start(s, "boundary_timer", "mei.wang", T0).id for _ in range(200)])
    workers = [Worker(org_db, number, fire_timers) for number in range(3)]
    assert [w.read() for w in workers] == [{"ready": n} for n in range(3)]
    for w in workers:
        w.go()
    fired = [instance for w in workers for line in w.finish() for instance in line.get("fired", [])]
    assert sorted(fired) == instance_ids  # every timer, each by one worker only

    def outcome(session):
        return {i: ([e.kind for e in store.events_of(session, i)].count("timer_fired"),
                    sorted((t.name, t.status) for t in store.tasks_of_instance(session, i))) for i in instance_ids}

    assert set(map(repr, org_db.run(outcome).values())) == {repr((1, [("chase", "open"), ("review", "cancelled")]))}
    assert org_db.run(audit.verify).problems == []

"""Timers: boundary (interrupting and not), intermediate, fired once by worker passes, found by one query."""

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, insert

from conftest import T0, deploy_fixture
from engine import audit, runtime, snapshot, store, timers
from engine.errors import DefinitionError, InvalidTransition
from engine.store import Database, InstanceRow

FRIDAY_BEFORE_QINGMING = datetime(2026, 4, 3, 2, 0, tzinfo=timezone.utc)  # 10:00 in Beijing


@pytest.fixture
def boundary_db(org_db):
    deploy_fixture(org_db, "boundary_timer")
    return org_db


def start(db, process="boundary_timer", actor="mei.wang", now=T0):
    return db.run(lambda s: runtime.start(s, process, actor, now).id)


def tasks(db, instance_id):
    return {t.name: t.status for t in db.run(lambda s: store.tasks_of_instance(s, instance_id))}


def kinds(db, instance_id):
    return [e.kind for e in db.run(lambda s: audit.history(s, instance_id))]


def test_interrupting_boundary_timer_withdraws_the_task_and_takes_its_path(boundary_db):
    instance_id = start(boundary_db)
    timers.fire_due(boundary_db, T0 + timedelta(hours=4, minutes=1))
    assert tasks(boundary_db, instance_id) == {"review": "cancelled", "chase": "open"}
    fired = [e.data for e in boundary_db.run(lambda s: audit.history(s, instance_id)) if e.kind == "timer_fired"]
    assert fired == [{"timer": "review_timeout", "due": (T0 + timedelta(hours=4)).isoformat()}]


def test_non_interrupting_boundary_timer_keeps_the_task_open(org_db, tmp_path):
    deploy_fixture(org_db, "boundary_timer", {'cancelActivity="true"': 'cancelActivity="false"'}, tmp_path)
    instance_id = start(org_db)
    timers.fire_due(org_db, T0 + timedelta(hours=4, minutes=1))
    assert tasks(org_db, instance_id) == {"review": "open", "chase": "open"}


def test_timer_does_not_fire_before_its_due_time(boundary_db):
    instance_id = start(boundary_db)
    assert timers.fire_due(boundary_db, T0 + timedelta(hours=4)) == []
    assert tasks(boundary_db, instance_id) == {"review": "open"}


def test_task_with_a_boundary_timer_is_due_when_the_timer_is(boundary_db):
    instance_id = start(boundary_db)
    [review] = boundary_db.run(lambda s: store.tasks_of_instance(s, instance_id))
    assert review.due_at == T0 + timedelta(hours=4)


def test_intermediate_timer_waits_two_working_days_across_the_holiday(org_db):
    deploy_fixture(org_db, "intermediate_timer")
    instance_id = start(org_db, "intermediate_timer", "li.zhou", FRIDAY_BEFORE_QINGMING)
    [request] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id))
    org_db.run(lambda s: runtime.complete(s, request.id, "li.zhou", FRIDAY_BEFORE_QINGMING, {"amount": "5"}))
    wednesday_10am = datetime(2026, 4, 8, 2, 0, tzinfo=timezone.utc)
    assert timers.fire_due(org_db, wednesday_10am) == []
    timers.fire_due(org_db, wednesday_10am + timedelta(seconds=1))
    assert tasks(org_db, instance_id) == {"request": "completed", "review": "open"}


def test_two_passes_at_the_same_instant_fire_each_timer_once(boundary_db):
    instance_id = start(boundary_db)
    moment = T0 + timedelta(hours=5)
    first, second = timers.fire_due(boundary_db, moment), timers.fire_due(boundary_db, moment)
    assert [f.kind for f in first] == ["timer_fired"] and second == []
    assert kinds(boundary_db, instance_id).count("timer_fired") == 1


def test_two_concurrent_passes_fire_each_timer_once(boundary_db):
    ids = [start(boundary_db) for _ in range(6)]
    moment, barrier, results = T0 + timedelta(hours=5), threading.Barrier(2), []

    def worker():
        own = Database(boundary_db.url)
        barrier.wait()
        results.append(timers.fire_due(own, moment, limit=2))
        own.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(r) for r in results) == 6
    assert [kinds(boundary_db, i).count("timer_fired") for i in ids] == [1] * 6


def test_completing_a_task_whose_interrupting_timer_is_due_is_refused(boundary_db):
    instance_id = start(boundary_db)
    [review] = boundary_db.run(lambda s: store.tasks_of_instance(s, instance_id))
    with pytest.raises(InvalidTransition, match="after its timer 'review_timeout' fired"):
        boundary_db.run(lambda s: runtime.complete(s, review.id, "mei.wang", T0 + timedelta(hours=5),
                                                   {"approved": "yes"}))
    assert tasks(boundary_db, instance_id) == {"review": "open"}


def test_an_instance_that_fails_when_its_timer_fires_is_retried_and_does_not_block_others(org_db, tmp_path):
    broken = '<spiffworkflow:property name="role" value="head" />\n          <spiffworkflow:property name="due" value="&quot;soon&quot;" />'
    deploy_fixture(org_db, "boundary_timer", {'<spiffworkflow:property name="role" value="head" />': broken}, tmp_path)
    bad = start(org_db)
    deploy_fixture(org_db, "intermediate_timer")
    good = start(org_db, "intermediate_timer", "li.zhou")
    [request] = org_db.run(lambda s: store.tasks_of_instance(s, good))
    org_db.run(lambda s: runtime.complete(s, request.id, "li.zhou", T0, {"amount": "5"}))
    moment = T0 + timedelta(days=10)
    firings = timers.fire_due(org_db, moment)
    assert [(f.kind, f.instance_id) for f in firings] == [("failed", bad), ("timer_fired", good)]
    assert "'soon', not an ISO 8601 duration" in firings[0].detail
    assert org_db.run(lambda s: store.get_instance(s, bad).next_due_at) == moment + timers.RETRY_AFTER
    assert tasks(org_db, bad) == {"review": "open"}


def test_unquoted_timer_value_is_refused_at_deploy_with_its_line(org_db, tmp_path):
    with pytest.raises(DefinitionError, match='PT4H is read as a variable name; write "PT4H" with quotes') as caught:
        deploy_fixture(org_db, "boundary_timer", {'"PT4H"': "PT4H"}, tmp_path)
    assert caught.value.line


def test_finding_due_work_among_10000_open_instances_loads_only_the_due_ones(boundary_db, monkeypatch):
    due = [start(boundary_db) for _ in range(10)]
    template = boundary_db.run(lambda s: store.get_instance(s, due[0]))
    later = T0 + timedelta(days=30)
    # 9,990 more open instances, half waiting on a timer a month away, half on people. Their state is
    # left empty: loading one would fail loudly, besides being counted.
    copies = [{"definition_id": template.definition_id, "process_key": template.process_key, "status": "running",
               "state": "", "revision": 1, "started_at": T0, "started_by": "mei.wang",
               "updated_at": T0, "last_seq": 0, "last_hash": "",
               "timer_due_at": later if n % 2 else None, "next_due_at": later if n % 2 else None}
              for n in range(9990)]
    boundary_db.run(lambda s: s.execute(insert(InstanceRow.__table__), copies))
    loaded, snapshots = [], []

    def count_load(row, _context):
        loaded.append(row.id)

    real_load = snapshot.load
    monkeypatch.setattr(snapshot, "load", lambda *args: snapshots.append(1) or real_load(*args))
    event.listen(InstanceRow, "load", count_load)
    try:
        firings = timers.fire_due(boundary_db, T0 + timedelta(hours=5))
    finally:
        event.remove(InstanceRow, "load", count_load)
    assert sorted(f.instance_id for f in firings) == due
    assert sorted(loaded) == due and len(snapshots) == 10

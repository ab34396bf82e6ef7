"""Escalation: an overdue task reminds its owner, then goes to the department head, then the general manager."""

from datetime import timedelta

import pytest

from conftest import T0, deploy_fixture
from engine import audit, runtime, snapshot, store, timers
from engine.errors import Forbidden

DUE = T0 + timedelta(hours=2)  # the 'request' task of task_deadlines is due 2 h after the instance starts


@pytest.fixture
def deadlines_db(org_db):
    deploy_fixture(org_db, "task_deadlines")
    return org_db


def start(db):
    return db.run(lambda s: runtime.start(s, "task_deadlines", "li.zhou", T0).id)


def escalations(db, instance_id):
    return [(e.kind, e.data.get("to") or e.data.get("notified")) for e in db.run(lambda s: audit.history(s, instance_id))
            if e.kind in ("task_overdue_notified", "task_escalated")]


def the_task(db, instance_id):
    [task] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    return task


def test_at_the_due_time_the_owner_is_reminded(deadlines_db):
    instance_id = start(deadlines_db)
    timers.fire_due(deadlines_db, DUE + timedelta(minutes=1))
    assert escalations(deadlines_db, instance_id) == [("task_overdue_notified", "department sales")]
    assert the_task(deadlines_db, instance_id).escalated_to is None


def test_an_hour_late_the_task_goes_to_the_department_head_with_the_reason(deadlines_db):
    instance_id = start(deadlines_db)
    timers.fire_due(deadlines_db, DUE + timedelta(minutes=1))
    timers.fire_due(deadlines_db, DUE + timedelta(hours=1, minutes=1))
    task = the_task(deadlines_db, instance_id)
    assert task.escalated_to == "jun.chen" and task.escalation_level == 2
    assert task.escalation_reason == ("'Record request 登记' was due 2026-11-02T19:00+08:00 and is 1h 01m overdue; "
                                      "escalated to the head of Sales 销售部 (jun.chen)")
    [escalated] = [e for e in deadlines_db.run(lambda s: audit.history(s, instance_id)) if e.kind == "task_escalated"]
    assert escalated.data == {"task": "request", "level": 2, "from": "department sales", "to": "jun.chen",
                              "reason": task.escalation_reason}


def test_steps_missed_while_no_worker_ran_are_taken_together_in_order(deadlines_db):
    instance_id = start(deadlines_db)
    timers.fire_due(deadlines_db, DUE + timedelta(hours=5))
    assert escalations(deadlines_db, instance_id) == [
        ("task_overdue_notified", "department sales"), ("task_escalated", "jun.chen"),
        ("task_escalated", "guoqiang.feng")]
    assert the_task(deadlines_db, instance_id).escalate_at is None


def test_the_general_manager_sees_the_escalated_task_in_his_inbox(deadlines_db):
    instance_id = start(deadlines_db)
    timers.fire_due(deadlines_db, DUE + timedelta(hours=5))
    inbox = deadlines_db.run(lambda s: store.inbox(s, runtime.visible_departments(s, "guoqiang.feng", None),
                                                   runtime.ACTIVE_TASK, escalated_to="guoqiang.feng"))
    assert [(t.instance_id, t.name) for t in inbox] == [(instance_id, "request")]
    assert "escalated to the head of General manager 总经理 (guoqiang.feng)" in inbox[0].escalation_reason


def test_the_escalated_owner_may_complete_a_task_outside_his_department(deadlines_db):
    instance_id = start(deadlines_db)
    timers.fire_due(deadlines_db, DUE + timedelta(hours=5))
    task = the_task(deadlines_db, instance_id)
    done = deadlines_db.run(lambda s: runtime.complete(s, task.id, "guoqiang.feng", DUE + timedelta(hours=6),
                                                       {"amount": "5"}))
    assert done.completed_by == "guoqiang.feng"


def test_another_outsider_still_may_not(deadlines_db):
    instance_id = start(deadlines_db)
    timers.fire_due(deadlines_db, DUE + timedelta(hours=5))
    task = the_task(deadlines_db, instance_id)
    with pytest.raises(Forbidden, match="belongs to department 'sales'"):
        deadlines_db.run(lambda s: runtime.complete(s, task.id, "mei.wang", DUE + timedelta(hours=6), {"amount": "5"}))


def test_the_head_may_complete_a_task_escalated_to_him_though_a_member_claimed_it(deadlines_db):
    instance_id = start(deadlines_db)
    task = the_task(deadlines_db, instance_id)
    deadlines_db.run(lambda s: runtime.claim(s, task.id, "hao.wu", T0))
    timers.fire_due(deadlines_db, DUE + timedelta(hours=1, minutes=1))
    assert escalations(deadlines_db, instance_id) == [("task_overdue_notified", "hao.wu"),
                                                      ("task_escalated", "jun.chen")]
    deadlines_db.run(lambda s: runtime.complete(s, task.id, "jun.chen", DUE + timedelta(hours=2), {"amount": "5"}))


def test_a_task_done_in_time_never_escalates(deadlines_db):
    instance_id = start(deadlines_db)
    task = the_task(deadlines_db, instance_id)
    deadlines_db.run(lambda s: runtime.complete(s, task.id, "li.zhou", T0 + timedelta(hours=1), {"amount": "5"}))
    timers.fire_due(deadlines_db, DUE + timedelta(hours=5))
    assert escalations(deadlines_db, instance_id) == []


def test_a_head_task_skips_the_head_step_and_goes_to_the_general_manager(deadlines_db):
    instance_id = start(deadlines_db)
    deadlines_db.run(lambda s: runtime.complete(s, the_task(deadlines_db, instance_id).id, "li.zhou", T0,
                                                {"amount": "5"}))
    deadlines_db.run(lambda s: runtime.complete(s, the_task(deadlines_db, instance_id).id, "mei.wang", T0,
                                                {"approved": "yes"}))
    timers.fire_due(deadlines_db, T0 + timedelta(hours=29))  # 'approve' (head task) was due after 24 h
    assert escalations(deadlines_db, instance_id) == [("task_overdue_notified", "qiang.li"),
                                                      ("task_escalated", "guoqiang.feng")]


def test_escalating_loads_no_workflow_snapshot(deadlines_db, monkeypatch):
    start(deadlines_db)
    loads = []
    real_load = snapshot.load
    monkeypatch.setattr(snapshot, "load", lambda *args: loads.append(1) or real_load(*args))
    assert len(timers.fire_due(deadlines_db, DUE + timedelta(hours=5))) == 3
    assert loads == []

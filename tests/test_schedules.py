"""Timer start events: the worker starts a new instance of the deployed process at each occurrence."""

from datetime import datetime, timedelta, timezone

import pytest

from conftest import T0, deploy_fixture
from engine import audit, runtime, store, timers
from engine.errors import DefinitionError, InvalidTransition

JAN_5 = datetime(2027, 1, 5, 1, 0, tzinfo=timezone.utc)  # 09:00 in Beijing: the first occurrence after T0
APR_5 = datetime(2027, 4, 5, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def cycle_db(org_db):
    deploy_fixture(org_db, "timer_start_cycle")
    return org_db


def schedule(db):
    return db.run(lambda s: store.find_schedule(s, "timer_start_cycle"))


def instances(db):
    return db.run(lambda s: [(i.business_key, i.started_by) for i in reversed(store.list_instances(s))])


def test_deploying_schedules_the_next_occurrence_after_now(cycle_db):
    assert schedule(cycle_db).next_due_at == JAN_5


def test_the_worker_starts_one_instance_when_the_occurrence_passes(cycle_db):
    assert timers.fire_due(cycle_db, JAN_5) == []
    timers.fire_due(cycle_db, JAN_5 + timedelta(seconds=1))
    assert instances(cycle_db) == [("every_quarter@2027-01-05T01:00Z", "qproc")]
    assert schedule(cycle_db).next_due_at == APR_5


def test_the_started_instance_records_its_timer_and_lands_in_the_service_inbox(cycle_db):
    timers.fire_due(cycle_db, JAN_5 + timedelta(seconds=1))
    [instance] = cycle_db.run(lambda s: store.list_instances(s))
    events = cycle_db.run(lambda s: audit.history(s, instance.id))
    assert [e.kind for e in events][:2] == ["instance_started", "timer_fired"]
    assert events[1].data == {"timer": "every_quarter", "due": JAN_5.isoformat()}
    inbox = cycle_db.run(lambda s: store.inbox(s, ["service"], runtime.ACTIVE_TASK))
    assert [t.name for t in inbox] == ["visit"]


def test_two_passes_at_the_same_instant_start_one_instance(cycle_db):
    moment = JAN_5 + timedelta(hours=1)
    timers.fire_due(cycle_db, moment)
    assert timers.fire_due(cycle_db, moment) == []
    assert len(instances(cycle_db)) == 1


def test_occurrences_missed_while_no_worker_ran_each_start_their_instance(cycle_db):
    timers.fire_due(cycle_db, APR_5 + timedelta(days=1))
    assert [key for key, _ in instances(cycle_db)] == ["every_quarter@2027-01-05T01:00Z",
                                                       "every_quarter@2027-04-05T01:00Z"]


def test_a_timer_started_process_cannot_be_started_by_hand(cycle_db):
    with pytest.raises(InvalidTransition, match="starts by its timer 'Every 3 months 每3个月'"):
        cycle_db.run(lambda s: runtime.start(s, "timer_start_cycle", "gang.zhao", T0))


def test_redeploying_the_same_timer_keeps_the_schedule_on_the_new_version(cycle_db, tmp_path):
    timers.fire_due(cycle_db, JAN_5 + timedelta(seconds=1))
    deploy_fixture(cycle_db, "timer_start_cycle", {'name="Return visit 回访" isExecutable': 'name="Return visit v2" isExecutable'}, tmp_path)
    current = schedule(cycle_db)
    assert current.next_due_at == APR_5 and current.definition.version == 2


def test_a_changed_cycle_replaces_the_sequence(cycle_db, tmp_path):
    deploy_fixture(cycle_db, "timer_start_cycle", {"/P3M": "/P6M"}, tmp_path)  # the out-of-warranty cycle
    timers.fire_due(cycle_db, JAN_5 + timedelta(seconds=1))
    assert schedule(cycle_db).next_due_at == datetime(2027, 7, 5, 1, 0, tzinfo=timezone.utc)


def test_a_timer_start_event_must_be_the_only_start_event(org_db, tmp_path):
    second_start = ('<bpmn:startEvent id="by_hand"><bpmn:outgoing>f_hand</bpmn:outgoing></bpmn:startEvent>'
                    '<bpmn:sequenceFlow id="f_hand" sourceRef="by_hand" targetRef="visit" />'
                    '<bpmn:userTask id="visit"')
    with pytest.raises(DefinitionError, match="must be the process's only start event") as caught:
        deploy_fixture(org_db, "timer_start_cycle", {'<bpmn:userTask id="visit"': second_start}, tmp_path)
    assert caught.value.line

"""History: every command appends events to a per-instance hash chain, in order, never rewriting one."""

from conftest import T0, at
from engine import audit, runtime, store


def _run_small_request(db):
    instance_id = db.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id)
    [task] = db.run(lambda s: store.tasks_of_instance(s, instance_id))
    db.run(lambda s: runtime.claim(s, task.id, "li.zhou", at(1)))
    db.run(lambda s: runtime.complete(s, task.id, "li.zhou", at(2), {"amount": 3}))
    return instance_id


def test_each_command_appends_its_events_in_order(gateway_db):
    instance_id = _run_small_request(gateway_db)
    events = gateway_db.run(lambda s: audit.history(s, instance_id))
    assert [(e.seq, e.kind, e.actor) for e in events] == [
        (1, "instance_started", "li.zhou"), (2, "step_completed", "li.zhou"), (3, "task_created", "li.zhou"),
        (4, "task_claimed", "li.zhou"), (5, "task_completed", "li.zhou"), (6, "step_completed", "li.zhou"),
        (7, "step_completed", "li.zhou"), (8, "instance_completed", "li.zhou")]
    assert events[1].data["step"] == "start"
    assert events[4].data == {"task": "request", "form": "request", "data": {"amount": 3}}
    assert events[5].data["next"] == ["end_small"]


def test_events_chain_each_hash_to_the_previous_one(gateway_db):
    instance_id = _run_small_request(gateway_db)
    rows = gateway_db.run(lambda s: store.events_of(s, instance_id))
    assert rows[0].prev_hash == audit.GENESIS
    for previous, row in zip(rows, rows[1:]):
        assert row.prev_hash == previous.hash
    assert all(audit.event_hash(row) == row.hash for row in rows)


def test_changed_event_data_no_longer_matches_its_hash(gateway_db):
    instance_id = _run_small_request(gateway_db)
    rows = gateway_db.run(lambda s: store.events_of(s, instance_id))
    tampered = rows[3]
    tampered.data = {**tampered.data, "data": {"amount": 300}}
    assert audit.event_hash(tampered) != tampered.hash


def test_deployment_and_organisation_loads_form_the_system_chain(gateway_db):
    events = gateway_db.run(lambda s: audit.history(s, None))
    assert [e.kind for e in events] == ["organisation_loaded", "definition_deployed"]
    assert events[1].data["process"] == "gateway_condition" and events[1].data["version"] == 1

"""History: every command appends events to a per-instance hash chain, in order, never rewriting one."""

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from conftest import T0, at, fingerprint, postgresql_only, run_to_approval, tamper
from engine import audit, credentials, runtime, store
from engine.errors import Refusal
from engine.store import EventRow


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


def test_deployment_organisation_and_calendar_loads_form_the_system_chain(gateway_db):
    events = gateway_db.run(lambda s: audit.history(s, None))
    assert [e.kind for e in events] == ["organisation_loaded", "calendar_loaded", "setting_changed",
                                        "definition_deployed"]
    assert events[3].data["process"] == "gateway_condition" and events[3].data["version"] == 1


def _problems(db, instance_id=None):
    return [str(p) for p in db.run(lambda s: audit.verify(s, instance_id)).problems]


def test_untouched_history_verifies(gateway_db):
    _run_small_request(gateway_db)
    result = gateway_db.run(audit.verify)
    assert result.ok and result.chains == 2 and result.events == 12  # 4 system events, 8 of the instance


def test_verify_names_an_event_whose_value_was_changed(gateway_db):
    instance_id = _run_small_request(gateway_db)
    tamper(gateway_db, update(EventRow).where(EventRow.instance_id == instance_id, EventRow.seq == 5)
           .values(data={"task": "request", "form": "request", "data": {"amount": 300}}))
    assert _problems(gateway_db) == [
        f"instance {instance_id}, event #5: task_completed: its content no longer matches its hash (modified)"]


def test_verify_names_a_changed_actor(gateway_db):
    instance_id = _run_small_request(gateway_db)
    tamper(gateway_db, "UPDATE events SET actor = 'hao.wu' WHERE instance_id = :i AND seq = 4", i=instance_id)
    assert _problems(gateway_db, instance_id) == [
        f"instance {instance_id}, event #4: task_claimed: its content no longer matches its hash (modified)"]


def test_verify_names_a_deleted_event(gateway_db):
    instance_id = _run_small_request(gateway_db)
    tamper(gateway_db, "DELETE FROM events WHERE instance_id = :i AND seq = 4", i=instance_id)
    assert _problems(gateway_db) == [
        f"instance {instance_id}, event #4: missing: the history jumps from #3 to #5 (deleted)"]


def test_verify_names_events_deleted_from_the_end_by_the_instance_head(gateway_db):
    instance_id = _run_small_request(gateway_db)
    tamper(gateway_db, "DELETE FROM events WHERE instance_id = :i AND seq >= 7", i=instance_id)
    assert _problems(gateway_db) == [f"instance {instance_id}, event #7: missing: the instance head records 8 "
                                     f"events, the history ends at #6 (deleted)"]


def test_verify_names_two_swapped_events(gateway_db):
    instance_id = _run_small_request(gateway_db)
    for old, new in ((4, -4), (5, 4), (-4, 5)):
        tamper(gateway_db, "UPDATE events SET seq = :new WHERE instance_id = :i AND seq = :old",
               i=instance_id, old=old, new=new)
    assert _problems(gateway_db) == [
        f"instance {instance_id}, event #4: task_completed: this is event #5 moved here (reordered)"]


def test_verify_names_an_inserted_event_even_with_a_correct_hash(gateway_db):
    instance_id = _run_small_request(gateway_db)

    def forge(session):
        last = store.events_of(session, instance_id)[-1]
        row = EventRow(instance_id=instance_id, seq=last.seq + 1, at=last.at, actor="hao.wu", kind="task_completed",
                       task_id=None, definition_hash=last.definition_hash, data={"forged": True}, prev_hash=last.hash)
        row.hash = audit.event_hash(row)
        return {c.name: getattr(row, c.name) for c in EventRow.__table__.columns if c.name != "id"}

    values = gateway_db.run(forge)
    with gateway_db.engine.begin() as conn:
        conn.execute(EventRow.__table__.insert().values(**values))
    assert _problems(gateway_db) == [
        f"instance {instance_id}, event #9: task_completed: lies beyond the instance head #8 (inserted)"]


def test_verify_names_a_replaced_definition_file(gateway_db):
    _run_small_request(gateway_db)
    tamper(gateway_db, "UPDATE definitions SET name = 'Other' WHERE process_key = 'gateway_condition'")
    assert _problems(gateway_db) == []  # the name is display only; the pinned files and manifest are hashed
    row = gateway_db.run(lambda s: store.latest_definition(s, "gateway_condition"))
    artifacts = {**row.artifacts, "bpmn/gateway_condition.bpmn": row.artifacts["bpmn/gateway_condition.bpmn"]
                 .replace("amount &gt; 10", "amount &gt; 1000")}
    with gateway_db.engine.begin() as conn:
        conn.execute(update(store.DefinitionRow).values(artifacts=artifacts))
    assert _problems(gateway_db) == ["system history: definition gateway_condition v1: its stored files no longer "
                                     f"match its content hash {row.content_hash[:12]} (modified)"]


def test_anchor_changes_when_any_chain_grows(gateway_db):
    before = gateway_db.run(audit.verify).anchor
    _run_small_request(gateway_db)
    assert gateway_db.run(audit.verify).anchor != before


def test_signature_copied_onto_another_record_is_caught_even_with_a_valid_chain(four_eyes_db):
    first, approval = run_to_approval(four_eyes_db)
    four_eyes_db.run(lambda s: _sign_up(s, "qiang.li"))
    four_eyes_db.run(lambda s: runtime.complete(s, approval, "qiang.li", at(5), {"approved": "yes"},
                                                password="four-eyes-secret"))
    second, _ = run_to_approval(four_eyes_db)
    signature = four_eyes_db.run(lambda s: [e for e in store.events_of(s, first) if e.kind == "task_signed"][0])
    # Someone who can append through the engine's own code copies the signature into another instance:
    four_eyes_db.run(lambda s: audit.record(s, audit.EventKind.TASK_SIGNED, "qiang.li", at(9),
                                            instance=store.get_instance(s, second), task_id=signature.task_id,
                                            data=signature.data))
    assert _problems(four_eyes_db) == [
        f"instance {second}, event #{_last_seq(four_eyes_db, second)}: "
        f"task_signed: the signature of Li Qiang 李强 is not bound to task {signature.task_id}'s completion in this "
        f"instance (it claims instance {first}, event #{signature.data['record']['event_seq']})"]


def _last_seq(db, instance_id):
    return db.run(lambda s: store.get_instance(s, instance_id).last_seq)


def _sign_up(session, user):
    credentials.set_password(session, runtime.organisation(session), user, "four-eyes-secret", user, T0)


def test_refusal_is_recorded_in_its_own_transaction_and_nothing_else_changes(four_eyes_db):
    instance_id, approval = run_to_approval(four_eyes_db, reviewer="qiang.li")
    before = fingerprint(four_eyes_db)
    with pytest.raises(Refusal, match="separation of duties"):
        audit.run(four_eyes_db, lambda s: runtime.claim(s, approval, "qiang.li", at(5)))
    after = fingerprint(four_eyes_db)
    assert {t: rows for t, rows in after.items() if t not in ("events", "instances")} == \
        {t: rows for t, rows in before.items() if t not in ("events", "instances")}
    assert len(after["events"]) == len(before["events"]) + 1
    refusal = four_eyes_db.run(lambda s: audit.history(s, instance_id))[-1]
    assert (refusal.kind, refusal.actor, refusal.task_id) == ("action_refused", "qiang.li", approval)
    assert refusal.data["rule"] == "not_same_as" and refusal.data["action"] == "claim"
    assert four_eyes_db.run(audit.verify).ok


def test_verifying_one_instance_checks_its_pinned_definition(gateway_db):
    instance_id = _run_small_request(gateway_db)
    with gateway_db.engine.begin() as conn:
        conn.execute(update(store.DefinitionRow).values(manifest={"tampered": True}))
    [problem] = _problems(gateway_db, instance_id)
    assert problem.startswith("system history: definition gateway_condition v1: its stored files no longer match")


@postgresql_only
@pytest.mark.parametrize("statement", ["UPDATE events SET actor = 'mallory' WHERE seq = 5", "DELETE FROM events",
                                       "TRUNCATE events CASCADE"])
def test_database_refuses_to_rewrite_or_delete_history(gateway_db, statement):
    _run_small_request(gateway_db)
    before = fingerprint(gateway_db)
    with pytest.raises(DBAPIError, match="the history is append-only: (UPDATE|DELETE|TRUNCATE) on table events"):
        with gateway_db.engine.begin() as conn:
            conn.execute(text(statement))
    assert fingerprint(gateway_db) == before

"""Corrections: a new event with reason, old and new values; nothing submitted is overwritten."""

import pytest

from conftest import T0, at, fingerprint
from engine import audit, corrections, replay, runtime, store
from engine.errors import Forbidden, FormError, InvalidTransition


def _reviewed(db):
    """A large request whose review is done; the head's approval is open. Returns (instance, request task id)."""
    instance_id = db.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id)
    [request] = db.run(lambda s: store.tasks_of_instance(s, instance_id))
    db.run(lambda s: runtime.complete(s, request.id, "li.zhou", at(1), {"amount": 50, "note": "rush"}))
    [review] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    db.run(lambda s: runtime.complete(s, review.id, "mei.wang", at(2), {"approved": "yes"}))
    return instance_id, request.id


def _correct(db, task_id, values, actor="li.zhou", reason="typo in the request"):
    return db.run(lambda s: corrections.correct(s, task_id, actor, at(3), values, reason))


def test_correction_records_reason_old_and_new_values(gateway_db):
    instance_id, request = _reviewed(gateway_db)
    _correct(gateway_db, request, {"note": "urgent"})
    event = gateway_db.run(lambda s: audit.history(s, instance_id))[-1]
    assert (event.kind, event.actor, event.task_id) == ("data_corrected", "li.zhou", request)
    assert event.data == {"task": "request", "form": "request", "reason": "typo in the request",
                          "changes": {"note": {"old": "rush", "new": "urgent"}}}


def test_correction_overwrites_nothing_submitted(gateway_db):
    instance_id, request = _reviewed(gateway_db)
    _correct(gateway_db, request, {"note": "urgent"})
    assert gateway_db.run(lambda s: store.get_task(s, request).data) == {"amount": 50, "note": "rush"}
    completion = [e for e in gateway_db.run(lambda s: audit.history(s, instance_id)) if e.kind == "task_completed"][0]
    assert completion.data["data"]["note"] == "rush"
    assert gateway_db.run(lambda s: corrections.submitted_data(s, store.get_task(s, request)))["note"] == "urgent"


def test_corrected_value_reaches_the_live_data_and_replay_still_matches(gateway_db):
    instance_id, request = _reviewed(gateway_db)
    _correct(gateway_db, request, {"note": "urgent"})
    assert gateway_db.run(lambda s: runtime.instance_data(store.get_instance(s, instance_id)))["note"] == "urgent"
    assert gateway_db.run(lambda s: replay.replay(s, instance_id)).match


def test_corrected_values_must_satisfy_the_form(gateway_db):
    _, request = _reviewed(gateway_db)
    with pytest.raises(FormError, match="amount"):
        _correct(gateway_db, request, {"amount": "-4"})


def test_only_the_completer_or_the_department_head_corrects(gateway_db):
    _, request = _reviewed(gateway_db)
    with pytest.raises(Forbidden, match=r"only its completer \(li.zhou\) or the head of 'sales'"):
        _correct(gateway_db, request, {"note": "urgent"}, actor="hao.wu")
    _correct(gateway_db, request, {"note": "urgent"}, actor="jun.chen")


def test_open_task_cannot_be_corrected_and_nothing_changes(gateway_db):
    instance_id, _ = _reviewed(gateway_db)
    [approval] = gateway_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    before = fingerprint(gateway_db)
    with pytest.raises(InvalidTransition, match="it is open; only submitted data can be corrected"):
        _correct(gateway_db, approval.id, {"approved": "no"}, actor="qiang.li")
    assert fingerprint(gateway_db) == before


def test_correcting_to_the_same_value_is_refused(gateway_db):
    _, request = _reviewed(gateway_db)
    with pytest.raises(InvalidTransition, match="the values given are the ones it has"):
        _correct(gateway_db, request, {"note": "rush"})

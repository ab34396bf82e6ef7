"""Electronic signatures: the signer's password re-checked, signatures bound to the completion they sign."""

import pytest

from conftest import T0, at, deploy_fixture, fingerprint, run_to_approval
from engine import audit, credentials, runtime, store
from engine.errors import DefinitionError, Forbidden, Refusal

PASSWORD = "four-eyes-secret"


def _set(db, user, new=PASSWORD, actor=None, current=None):
    db.run(lambda s: credentials.set_password(s, runtime.organisation(s), user, new, actor or user, T0, current))


def _approve(db, task_id, password=PASSWORD, approved="yes"):
    return audit.run(db, lambda s: runtime.complete(s, task_id, "qiang.li", at(5), {"approved": approved},
                                                    password=password))


def test_signed_completion_records_name_time_meaning_and_hash_of_the_data(four_eyes_db):
    instance_id, approval = run_to_approval(four_eyes_db)
    _set(four_eyes_db, "qiang.li")
    _approve(four_eyes_db, approval)
    events = four_eyes_db.run(lambda s: store.events_of(s, instance_id))
    completion, signature = next((e, n) for e, n in zip(events, events[1:]) if e.kind == "task_completed"
                                 and e.task_id == approval)
    assert signature.kind == "task_signed" and signature.at == at(5) and signature.actor == "qiang.li"
    assert signature.data == {
        "task": "approve", "signer": "qiang.li", "printed_name": "Li Qiang 李强", "meaning": "approved",
        "data_sha256": audit.digest({"approved": True}),
        "record": {"instance": instance_id, "task_id": approval, "event_seq": completion.seq,
                   "event_hash": completion.hash}}


def test_meaning_follows_the_named_boolean_field(four_eyes_db):
    instance_id, approval = run_to_approval(four_eyes_db)
    _set(four_eyes_db, "qiang.li")
    _approve(four_eyes_db, approval, approved="no")
    signature = four_eyes_db.run(lambda s: audit.history(s, instance_id))
    assert [e.data["meaning"] for e in signature if e.kind == "task_signed"] == ["rejected"]


def test_signing_without_a_password_is_refused_and_changes_nothing(four_eyes_db):
    _, approval = run_to_approval(four_eyes_db)
    _set(four_eyes_db, "qiang.li")
    before = fingerprint(four_eyes_db)
    with pytest.raises(Forbidden, match="needs your electronic signature"):
        _approve(four_eyes_db, approval, password=None)
    assert fingerprint(four_eyes_db) == before


def test_signer_without_a_password_is_told_to_set_one(four_eyes_db):
    _, approval = run_to_approval(four_eyes_db)
    with pytest.raises(Forbidden, match="qiang.li' has no password yet"):
        _approve(four_eyes_db, approval)


def test_wrong_password_is_refused_and_the_attempt_recorded(four_eyes_db):
    instance_id, approval = run_to_approval(four_eyes_db)
    _set(four_eyes_db, "qiang.li")
    with pytest.raises(Refusal, match="wrong password for 'qiang.li'"):
        _approve(four_eyes_db, approval, password="not-my-password")
    last = four_eyes_db.run(lambda s: audit.history(s, instance_id))[-1]
    assert (last.kind, last.data["rule"], last.data["action"]) == ("action_refused", "signature", "sign")
    assert four_eyes_db.run(lambda s: store.get_task(s, approval).status) == "open"


def test_signature_property_must_name_a_meaning_or_a_boolean_or_choice_field(org_db, tmp_path):
    bad = {'<spiffworkflow:property name="role" value="head" />':
           '<spiffworkflow:property name="role" value="head" /><spiffworkflow:property name="signature" value="okay" />'}
    with pytest.raises(DefinitionError, match=r"gateway_condition.bpmn:\d+: user task 'approve' has signature 'okay'"):
        deploy_fixture(org_db, "gateway_condition", bad, tmp_path)

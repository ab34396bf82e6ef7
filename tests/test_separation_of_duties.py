"""Separation of duties declared in the BPMN: refused at claim and complete, and every refusal recorded."""

import pytest

from conftest import CALENDAR_FILE, ORG_FILE, ROOT, T0, at, deploy_fixture, run_to_approval
from engine import audit, demo, runtime, store
from engine.errors import DefinitionError, Refusal


def _refusals(db, instance_id):
    return [e for e in db.run(lambda s: audit.history(s, instance_id)) if e.kind == "action_refused"]


def test_reviewer_cannot_claim_the_approval_and_the_refusal_is_recorded(four_eyes_db):
    instance_id, approval = run_to_approval(four_eyes_db, reviewer="qiang.li")
    with pytest.raises(Refusal, match=r"cannot claim task \d+ 'Approve request 批准' .*: 'qiang.li' did "
                                      r"'Review request 评审' \(task \d+\) in this instance"):
        audit.run(four_eyes_db, lambda s: runtime.claim(s, approval, "qiang.li", at(5)))
    [refusal] = _refusals(four_eyes_db, instance_id)
    assert refusal.data["conflicts_with"]["task"] == "review" and refusal.data["action"] == "claim"


def test_reviewer_cannot_complete_the_approval_and_the_refusal_is_recorded(four_eyes_db):
    instance_id, approval = run_to_approval(four_eyes_db, reviewer="qiang.li")
    with pytest.raises(Refusal, match="separation of duties"):
        audit.run(four_eyes_db, lambda s: runtime.complete(s, approval, "qiang.li", at(5), {"approved": "yes"},
                                                           password="irrelevant"))
    assert [e.data["action"] for e in _refusals(four_eyes_db, instance_id)] == ["complete"]
    assert four_eyes_db.run(lambda s: store.get_task(s, approval).status) == "open"


def test_another_reviewer_leaves_the_head_free_to_approve(four_eyes_db):
    instance_id, approval = run_to_approval(four_eyes_db, reviewer="mei.wang")
    four_eyes_db.run(lambda s: runtime.claim(s, approval, "qiang.li", at(5)))
    assert _refusals(four_eyes_db, instance_id) == []


def test_not_same_as_must_name_another_user_task(org_db, tmp_path):
    bad = {'<spiffworkflow:property name="role" value="head" />':
           '<spiffworkflow:property name="role" value="head" /><spiffworkflow:property name="not_same_as" value="audit" />'}
    with pytest.raises(DefinitionError, match="user task 'approve' has not_same_as 'audit', which is no other user "
                                              "task of this process"):
        deploy_fixture(org_db, "gateway_condition", bad, tmp_path)


@pytest.fixture
def complaint_two_hats_db(db, tmp_path):
    """The shipped complaint procedure with mei.wang in both quality and engineering."""
    org = tmp_path / "org.yaml"
    org.write_text(ORG_FILE.read_text(encoding="utf-8").replace(
        "members: [wei.zhang, bin.huang, jie.zhu, xin.lin]", "members: [wei.zhang, bin.huang, jie.zhu, xin.lin, mei.wang]"),
        encoding="utf-8")
    demo.prepare(db, org, CALENDAR_FILE, ROOT / "processes", T0)
    return db


def test_implementer_of_the_capa_may_not_verify_its_effectiveness(complaint_two_hats_db):
    db = complaint_two_hats_db
    scenario = demo.SCENARIOS[1]
    actors = {"implement_capa": "mei.wang"}
    instance_id = db.run(lambda s: runtime.start(s, "customer_complaint", "li.zhou", T0).id)
    for minutes in range(1, 40):
        [task] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
        if task.name == "verify_effectiveness":
            break
        org = db.run(runtime.organisation)
        actor = actors.get(task.name) or (org.departments[task.department].head if task.role else
                                          {"sales": "li.zhou", "quality": "lei.liu",
                                           "engineering": "bin.huang"}[task.department])
        password = db.run(lambda s: demo.signing_password(s, actor, T0)) if db.run(
            lambda s: runtime.rules_of(store.get_task(s, task.id)).signature) else None
        db.run(lambda s: runtime.complete(s, task.id, actor, at(minutes), scenario.answers[task.name][0],
                                          password=password))
    with pytest.raises(Refusal, match=r"'mei.wang' did 'Implement corrective action 实施纠正措施 \(D6\)'"):
        audit.run(db, lambda s: runtime.complete(s, task.id, "mei.wang", at(30),
                                                 scenario.answers["verify_effectiveness"][0]))
    [refusal] = _refusals(db, instance_id)
    assert (refusal.actor, refusal.data["task"], refusal.data["conflicts_with"]["task"]) == \
        ("mei.wang", "verify_effectiveness", "implement_capa")
    db.run(lambda s: runtime.complete(s, task.id, "lei.liu", at(31), scenario.answers["verify_effectiveness"][0]))

"""The shipped document change procedure (P4, 文件控制程序), driven path by path as the departments would."""

import pytest

from conftest import T0, at, fingerprint
from engine import replay, runtime, store
from engine.errors import ExpressionError, Forbidden, FormError, Refusal
from walk import complete, deploy_shipped, edited_settings, ended_at, open_tasks, outcome, signatures, walk

REQUEST = {"document_kind": "procedure", "document_number": "QP-8.5-03",
           "document_title": "Customer complaint procedure 客户投诉处理程序", "current_revision": "A/0",
           "revision_label": "A/1", "change_reason": "Complaints must reach quality within 2 hours",
           "change_note": "Quality review due 2 h after receipt", "requesting_department": "Quality 质量部"}
REVIEW_PASSED = {"review_passed": "yes", "review_comment": "Consistent with QP-8.5-04"}
RELEASE = {"effective_date": "2026-11-10", "revision_history_updated": "yes",
           "distribution": "Sales, Quality, Engineering", "copies_issued": "3"}
WITHDRAWAL = {"obsolete_revision": "A/0", "copies_recovered": "3", "copies_destroyed": "2",
              "master_marked_obsolete": "yes", "withdrawn_on": "2026-11-10"}
STANDARD = {"request_change": [REQUEST], "review_change": [REVIEW_PASSED],
            "approve_by_mgmt_rep": [{"approved": "yes"}], "approve_by_gm": [{"approved": "yes"}],
            "approve_by_department_head": [{"approved": "yes", "approval_comment": "OK"}],
            "release_document": [RELEASE], "withdraw_obsolete": [WITHDRAWAL]}
# Document control: mei.wang requests and releases, lei.liu reviews (not the requester), the head approves.
REVIEWER = {"review_change": "lei.liu"}


@pytest.fixture
def change_db(org_db):
    """The organisation plus the shipped document change procedure."""
    deploy_shipped(org_db, "document_change")
    return org_db


def change(db, answers=None, **kwargs):
    return walk(db, "document_change", "mei.wang", {**STANDARD, **(answers or {})},
                actors={**REVIEWER, **kwargs.pop("actors", {})}, **kwargs)


@pytest.mark.parametrize("kind, approval, department, approver", [
    ("procedure", "approve_by_mgmt_rep", "mgmt_rep", "jian.tang"),
    ("manual", "approve_by_gm", "gm", "guoqiang.feng"),
    ("department", "approve_by_department_head", "quality", "qiang.li"),
])
def test_approved_change_is_released_and_the_obsolete_revision_withdrawn(change_db, kind, approval, department,
                                                                          approver):
    done = change(change_db, {"request_change": [{**REQUEST, "document_kind": kind}]})
    assert done.inboxes == [("request_change", "quality"), ("review_change", "quality"), (approval, department),
                            ("release_document", "quality"), ("withdraw_obsolete", "quality")]
    assert signatures(change_db, done.instance_id) == [("review_change", "lei.liu", "reviewed"),
                                                       (approval, approver, "approved"),
                                                       ("release_document", "mei.wang", "released")]
    status, data = outcome(change_db, done.instance_id)
    assert status == "completed" and data["approved"] is True and data["revision_label"] == "A/1"
    assert data["copies_recovered"] == 3 and data["master_marked_obsolete"] is True
    assert ended_at(change_db, done.instance_id) == ["revision_in_force"]


def test_change_not_passed_at_review_goes_back_to_the_requester_and_is_reviewed_again(change_db):
    done = change(change_db, {"review_change": [{"review_passed": "no", "review_comment": "Cite QP-8.5-04"},
                                                REVIEW_PASSED],
                              "revise_or_withdraw": [{"rework_decision": "revise"}],
                              "request_change": [REQUEST, {**REQUEST, "change_note": "Also cite QP-8.5-04"}]})
    assert done.inboxes == [("request_change", "quality"), ("review_change", "quality"),
                            ("revise_or_withdraw", "quality"), ("request_change", "quality"),
                            ("review_change", "quality"), ("approve_by_mgmt_rep", "mgmt_rep"),
                            ("release_document", "quality"), ("withdraw_obsolete", "quality")]
    status, data = outcome(change_db, done.instance_id)
    assert status == "completed" and data["approved"] is True and data["change_note"] == "Also cite QP-8.5-04"


def test_revised_request_shows_the_earlier_answers(change_db):
    done = change(change_db, {"review_change": [{"review_passed": "no"}]}, until="revise_or_withdraw")
    [rework] = open_tasks(change_db, done.instance_id)
    complete(change_db, rework.id, "mei.wang", at(120), {"rework_decision": "revise"})
    [again] = open_tasks(change_db, done.instance_id)
    assert (again.name, again.department) == ("request_change", "quality")
    view = change_db.run(lambda s: runtime.describe_task(s, again.id))
    assert {k: view.data[k] for k in REQUEST} == REQUEST


def test_rejected_change_can_be_withdrawn_and_nothing_is_released(change_db):
    done = change(change_db, {"approve_by_mgmt_rep": [{"approved": "no", "approval_comment": "Not needed"}],
                              "revise_or_withdraw": [{"rework_decision": "withdraw", "rework_comment": "Agreed"}]})
    assert done.inboxes == [("request_change", "quality"), ("review_change", "quality"),
                            ("approve_by_mgmt_rep", "mgmt_rep"), ("revise_or_withdraw", "quality")]
    assert signatures(change_db, done.instance_id)[-1] == ("approve_by_mgmt_rep", "jian.tang", "rejected")
    status, data = outcome(change_db, done.instance_id)
    assert status == "completed" and data["approved"] is False and data["rework_decision"] == "withdraw"
    assert ended_at(change_db, done.instance_id) == ["change_withdrawn"]


def test_rejected_change_revised_goes_through_review_and_approval_again(change_db):
    done = change(change_db, {"approve_by_gm": [{"approved": "no"}, {"approved": "yes"}],
                              "revise_or_withdraw": [{"rework_decision": "revise"}],
                              "request_change": [{**REQUEST, "document_kind": "manual"}]})
    names = [name for name, _ in done.inboxes]
    assert names == ["request_change", "review_change", "approve_by_gm", "revise_or_withdraw", "request_change",
                     "review_change", "approve_by_gm", "release_document", "withdraw_obsolete"]
    assert [meaning for task, _, meaning in signatures(change_db, done.instance_id) if task == "approve_by_gm"] == \
        ["rejected", "approved"]
    assert outcome(change_db, done.instance_id)[1]["approved"] is True
    assert change_db.run(lambda s: replay.replay(s, done.instance_id)).match  # the loop replays to the same end


# --- the contract with procedure revisions (issue 6) -----------------------------------------------------

DRAFT = {"document_kind": "procedure", "process_key": "customer_complaint", "version": 2,
         "revision_label": "A/1", "change_note": "Adds a containment step in engineering"}


def test_a_procedure_revision_prefills_the_request_and_goes_to_the_management_representative(change_db):
    done = change(change_db, until="request_change", data=DRAFT)
    [request] = open_tasks(change_db, done.instance_id)
    view = change_db.run(lambda s: runtime.describe_task(s, request.id))
    assert {k: view.data[k] for k in DRAFT} == DRAFT
    fields = {f.name for f in view.form.fields}
    assert {"document_kind", "revision_label", "change_note"} <= fields  # prefilled, editable
    assert not {"process_key", "version"} & fields  # which draft: shown, not editable
    filled = {"document_kind": "procedure", "revision_label": "A/1", "change_note": DRAFT["change_note"],
              "document_number": "QP-8.5-03", "document_title": "Customer complaint procedure",
              "current_revision": "A/0", "change_reason": "Containment before analysis"}
    done = change(change_db, {"request_change": [filled]}, data=DRAFT)
    assert ("approve_by_mgmt_rep", "mgmt_rep") in done.inboxes
    status, data = outcome(change_db, done.instance_id)
    assert status == "completed" and data["approved"] is True and data["document_kind"] == "procedure"
    assert (data["process_key"], data["version"], data["revision_label"]) == ("customer_complaint", 2, "A/1")


def test_the_request_cannot_point_the_approval_at_another_draft(change_db):
    done = change(change_db, until="request_change", data=DRAFT)
    [request] = open_tasks(change_db, done.instance_id)
    with pytest.raises(FormError) as refused:
        complete(change_db, request.id, "mei.wang", at(30), {**REQUEST, "version": 3})
    assert refused.value.problems == {"version": "is not a field of form 'document_change_request'"}


def test_any_department_may_raise_a_change(change_db):
    done = walk(change_db, "document_change", "bin.huang", STANDARD, actors=REVIEWER, until="review_change")
    assert done.inboxes == [("request_change", "quality")]


# --- who may do what ------------------------------------------------------------------------------------

def test_the_requester_may_not_review_their_own_change(change_db):
    done = change(change_db, until="review_change")
    [review] = open_tasks(change_db, done.instance_id)
    with pytest.raises(Refusal, match="separation of duties"):
        complete(change_db, review.id, "mei.wang", at(60), REVIEW_PASSED)
    assert [t.name for t in open_tasks(change_db, done.instance_id)] == ["review_change"]


def test_a_department_document_is_not_approved_by_its_reviewer(change_db):
    done = change(change_db, {"request_change": [{**REQUEST, "document_kind": "department"}]},
                  actors={"review_change": "qiang.li"}, until="approve_by_department_head")
    [approval] = open_tasks(change_db, done.instance_id)
    with pytest.raises(Refusal, match="'qiang.li' did 'Review change 审核'"):
        complete(change_db, approval.id, "qiang.li", at(90), {"approved": "yes"})


def test_approval_needs_the_head_of_the_approving_function(change_db):
    done = change(change_db, until="approve_by_mgmt_rep")
    [approval] = open_tasks(change_db, done.instance_id)
    with pytest.raises(Forbidden, match="head"):
        complete(change_db, approval.id, "hong.han", at(90), {"approved": "yes"})


def test_who_approves_which_kind_is_configuration(change_db, tmp_path):
    edited = edited_settings(tmp_path, lambda s: s["document_change"]["approver_by_kind"].update(department="mgmt_rep"))
    deploy_shipped(change_db, "document_change", settings_file=edited)
    done = change(change_db, {"request_change": [{**REQUEST, "document_kind": "department"}]})
    assert ("approve_by_mgmt_rep", "mgmt_rep") in done.inboxes
    assert "approve_by_department_head" not in [name for name, _ in done.inboxes]


def test_a_kind_with_no_approver_configured_is_refused_at_review_and_changes_nothing(change_db, tmp_path):
    edited = edited_settings(tmp_path, lambda s: s["document_change"]["approver_by_kind"].pop("manual"))
    deploy_shipped(change_db, "document_change", settings_file=edited)
    done = change(change_db, {"request_change": [{**REQUEST, "document_kind": "manual"}]}, until="review_change")
    [review] = open_tasks(change_db, done.instance_id)
    before = fingerprint(change_db)
    with pytest.raises(ExpressionError, match=r"'Approved by\? 批准人' \(gw_approver\).*'manual'"):
        complete(change_db, review.id, "lei.liu", at(60), REVIEW_PASSED)
    assert fingerprint(change_db) == before


def test_bad_request_is_refused_with_each_field_named_and_changes_nothing(change_db):
    instance_id = change_db.run(lambda s: runtime.start(s, "document_change", "mei.wang", T0).id)
    [request] = open_tasks(change_db, instance_id)
    before = fingerprint(change_db)
    with pytest.raises(FormError) as refused:
        complete(change_db, request.id, "mei.wang", at(1),
                 {**REQUEST, "revision_label": "A1", "document_kind": "memo", "current_revision": "A/"})
    assert set(refused.value.problems) == {"revision_label", "document_kind", "current_revision"}
    assert "pattern" in refused.value.problems["revision_label"]
    assert fingerprint(change_db) == before
    assert change_db.run(lambda s: store.get_task(s, request.id).status) == "open"

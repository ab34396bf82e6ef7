"""The shipped spending request (费用申请), driven as the departments would: the requester's department
states amount and purpose, its head or the general manager approves by the amount, finance pays."""

import pytest

from conftest import ROOT, T0, at, fingerprint
from engine import audit, runtime, store
from engine.errors import Forbidden, FormError, Refusal
from walk import complete, ended_at, history, open_tasks, outcome

PROCESSES = ROOT / "processes"
REQUEST = {"amount": "12000", "purpose": "Spare main boards for the Wuxi region", "spending_category": "spare_parts",
           "payee": "Suzhou Electronics"}
PAYMENT = {"paid_amount": "12000", "paid_on": "2026-11-04", "voucher_number": "PV-2026-1102"}


@pytest.fixture
def funding_db(org_db):
    """The organisation plus the shipped spending request."""
    org_db.run(lambda s: runtime.deploy(s, [PROCESSES / "funding_request.bpmn"], ROOT / "forms", "qiang.li", T0,
                                        settings_file=PROCESSES / "settings.yaml"))
    return org_db


def open_task(db, instance_id):
    [task] = open_tasks(db, instance_id)
    return task


def request_funding(db, amount):
    """Start a request as a service engineer and fill it in; returns the instance id and the approval task."""
    instance_id = db.run(lambda s: runtime.start(s, "funding_request", "yan.sun", T0).id)
    task = open_task(db, instance_id)
    assert (task.name, task.department) == ("request_funding", "service")
    complete(db, task.id, "yan.sun", at(10), {**REQUEST, "amount": str(amount)})
    return instance_id, open_task(db, instance_id)


def finished(db, instance_id):
    """The instance's status and the end events it reached."""
    return outcome(db, instance_id)[0], ended_at(db, instance_id)


@pytest.mark.parametrize("amount", [12000, 50000])
def test_up_to_50000_yuan_the_department_head_approves_and_finance_pays(funding_db, amount):
    instance_id, approval = request_funding(funding_db, amount)
    assert (approval.name, approval.department, approval.role) == ("approve_by_head", "service", "head")
    complete(funding_db, approval.id, "gang.zhao", at(20), {"funding_decision": "approved"})
    payment = open_task(funding_db, instance_id)
    assert (payment.name, payment.department) == ("pay", "finance")
    complete(funding_db, payment.id, "ning.peng", at(30), PAYMENT)
    assert finished(funding_db, instance_id) == ("completed", ["spending_paid"])


def test_above_50000_yuan_the_general_manager_approves(funding_db):
    instance_id, approval = request_funding(funding_db, 50000.01)
    assert (approval.name, approval.department) == ("approve_by_gm", "gm")
    before = fingerprint(funding_db)
    with pytest.raises(Forbidden, match="head"):  # the deputy general manager is a member, not the head
        funding_db.run(lambda s: runtime.complete(s, approval.id, "xiaoming.deng", at(20),
                                                  {"funding_decision": "approved"}))
    assert fingerprint(funding_db) == before
    complete(funding_db, approval.id, "guoqiang.feng", at(20), {"funding_decision": "approved"})
    assert (open_task(funding_db, instance_id).department) == "finance"
    complete(funding_db, open_task(funding_db, instance_id).id, "lan.cao", at(30), PAYMENT)
    events = history(funding_db, instance_id)
    assert [(e.data["task"], e.actor) for e in events if e.kind == "task_completed"] == [
        ("request_funding", "yan.sun"), ("approve_by_gm", "guoqiang.feng"), ("pay", "lan.cao")]
    assert [(e.actor, e.data["meaning"]) for e in events if e.kind == "task_signed"] == [("guoqiang.feng", "approved")]


def test_a_rejected_request_ends_without_payment(funding_db):
    instance_id, approval = request_funding(funding_db, 8000)
    complete(funding_db, approval.id, "gang.zhao", at(20), {"funding_decision": "rejected",
                                                           "funding_comment": "Use stock"})
    assert finished(funding_db, instance_id) == ("completed", ["request_rejected"])


def test_the_head_may_not_approve_his_own_request(funding_db):
    instance_id = funding_db.run(lambda s: runtime.start(s, "funding_request", "gang.zhao", T0).id)
    complete(funding_db, open_task(funding_db, instance_id).id, "gang.zhao", at(10), REQUEST)
    approval = open_task(funding_db, instance_id)
    with pytest.raises(Refusal, match="separation of duties"):
        audit.run(funding_db, lambda s: runtime.complete(s, approval.id, "gang.zhao", at(20),
                                                         {"funding_decision": "approved"}, password="irrelevant"))
    assert [e.kind for e in history(funding_db, instance_id)][-1] == "action_refused"
    assert open_task(funding_db, instance_id).id == approval.id


@pytest.mark.parametrize("field, value, problem", [("amount", "-1", "amount: must be at least 0"),
                                                   ("purpose", "", "purpose: is required")])
def test_a_bad_request_is_refused_naming_the_field_and_changes_nothing(funding_db, field, value, problem):
    instance_id = funding_db.run(lambda s: runtime.start(s, "funding_request", "yan.sun", T0).id)
    before = fingerprint(funding_db)
    with pytest.raises(FormError, match=problem):
        complete(funding_db, open_task(funding_db, instance_id).id, "yan.sun", at(10), {**REQUEST, field: value})
    assert fingerprint(funding_db) == before


def test_the_limit_is_a_setting_pinned_with_the_version(funding_db):
    row = funding_db.run(lambda s: store.latest_definition(s, "funding_request"))
    assert row.manifest["settings"] == {"gm_approval_above": 50000}

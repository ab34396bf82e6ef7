"""The shipped customer complaint procedure (P1), driven path by path as the departments would."""

from datetime import datetime, timedelta, timezone

import pytest

from conftest import T0
from engine import audit, demo, runtime, store, timers

MEMBER = {"sales": "li.zhou", "quality": "mei.wang", "engineering": "bin.huang", "rnd": "yang.song",
          "mgmt_rep": "hong.han"}
INTAKE = {"customer": "Hangzhou Motors", "contact": "Mr. Zhao", "product_model": "QX-200", "channel": "email",
          "description": "E07 overcurrent after 2 h", "complaint_type": "quality", "quantity_affected": "12"}
REVIEW_OURS = {"facts_verified": "yes", "nonconformity": "confirmed", "responsibility": "ours"}
PLAN = {"root_cause": "Solder voids", "failure_cause": "process", "containment": "Quarantine lot",
        "corrective_action": "Re-qualify reflow", "planned_completion": "2026-12-05"}
STANDARD = {
    "intake": [INTAKE],
    "approve_proceed": [{"proceed": "proceed"}],
    "quality_review": [REVIEW_OURS],
    "cause_analysis": [PLAN],
    "approve_capa": [{"capa_decision": "approved"}],
    "implement_capa": [{"actions_taken": "Done", "implemented_on": "2026-12-03"}],
    "verify_effectiveness": [{"effective": "yes", "verification_evidence": "0 voids"}],
    "final_disposition": [{"disposition": "Replace 12 units"}],
    "countersign_engineering": [{"engineering_agrees": "yes"}],
    "countersign_rnd": [{"rnd_agrees": "yes"}],
    "reply_customer": [{"reply_summary": "Shipped", "replied_on": "2026-12-08"}],
    "confirm_satisfaction": [{"satisfied": "yes", "satisfaction_score": "5", "customer_representative": "Zhao"}],
}


def drive(db, answers, until=None):
    """Run a complaint to its end (or until task ``until`` is open); each task done by a member (or head)
    of the department it landed in, half an hour after the previous one.

    Returns the sequence of (task, department) in the order the inboxes received them, and the instance id.
    """
    queues = {name: list(values) for name, values in {**STANDARD, **answers}.items()}
    clock = T0
    instance_id = db.run(lambda s: runtime.start(s, "customer_complaint", MEMBER["sales"], clock).id)
    seen = []
    for _ in range(80):
        clock += timedelta(minutes=30)
        tasks = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
        if not tasks or tasks[0].name == until:
            return seen, instance_id
        task = tasks[0]
        seen.append((task.name, task.department))
        org = db.run(runtime.organisation)
        actor = org.departments[task.department].head if task.role else MEMBER[task.department]
        queue = queues[task.name]
        data = queue.pop(0) if len(queue) > 1 else queue[0]
        db.run(lambda s: runtime.complete(s, task.id, actor, clock, data, password=_password(s, task, actor, clock)))
    raise AssertionError(f"complaint did not finish: {seen}")


def _password(session, task, actor, now):
    return demo.signing_password(session, actor, now) if runtime.rules_of(task).signature else None


def final(db, instance_id):
    return db.run(lambda s: (store.get_instance(s, instance_id).status,
                             runtime.instance_data(store.get_instance(s, instance_id))))


def test_not_ours_goes_back_to_sales_and_closes(complaint_db):
    seen, instance_id = drive(complaint_db, {
        "quality_review": [{**REVIEW_OURS, "responsibility": "not_ours"}],
        "explain_to_customer": [{"explanation": "Overvoltage on site", "customer_accepts": "yes"}]})
    assert seen == [("intake", "sales"), ("approve_proceed", "mgmt_rep"), ("quality_review", "quality"),
                    ("explain_to_customer", "sales")]
    assert final(complaint_db, instance_id)[0] == "completed"


def test_ours_effective_first_time_runs_capa_countersign_reply_and_closes(complaint_db):
    seen, instance_id = drive(complaint_db, {})
    assert seen == [("intake", "sales"), ("approve_proceed", "mgmt_rep"), ("quality_review", "quality"),
                    ("cause_analysis", "engineering"), ("approve_capa", "mgmt_rep"),
                    ("implement_capa", "engineering"), ("verify_effectiveness", "quality"),
                    ("final_disposition", "quality"), ("countersign_engineering", "engineering"),
                    ("countersign_rnd", "rnd"), ("reply_customer", "sales"), ("confirm_satisfaction", "sales")]
    status, data = final(complaint_db, instance_id)
    assert status == "completed" and data["verification_rounds"] == 1


def test_failed_verification_loops_back_to_cause_analysis_and_counts_rounds(complaint_db):
    seen, instance_id = drive(complaint_db, {"verify_effectiveness": [
        {"effective": "no", "verification_evidence": "7 voids"},
        {"effective": "yes", "verification_evidence": "0 voids"}]})
    names = [name for name, _ in seen]
    assert names.count("cause_analysis") == 2 and names.count("verify_effectiveness") == 2
    assert names[names.index("verify_effectiveness") + 1] == "cause_analysis"
    assert final(complaint_db, instance_id)[1]["verification_rounds"] == 2


def test_delivery_complaint_stays_in_sales(complaint_db):
    seen, _ = drive(complaint_db, {
        "intake": [{**INTAKE, "complaint_type": "delivery"}],
        "handle_delivery": [{"resolution": "Short shipment of 2 sent by express"}]})
    assert seen == [("intake", "sales"), ("handle_delivery", "sales"), ("reply_customer", "sales"),
                    ("confirm_satisfaction", "sales")]


def test_early_warning_can_return_complaint_to_sales(complaint_db):
    seen, _ = drive(complaint_db, {"approve_proceed": [{"proceed": "return_to_sales"}, {"proceed": "proceed"}],
                                   "quality_review": [{**REVIEW_OURS, "responsibility": "not_ours"}],
                                   "explain_to_customer": [{"explanation": "x", "customer_accepts": "yes"}]})
    assert [n for n, _ in seen][:4] == ["intake", "approve_proceed", "intake", "approve_proceed"]


def test_rejected_capa_goes_back_to_cause_analysis(complaint_db):
    seen, _ = drive(complaint_db, {"approve_capa": [{"capa_decision": "rejected"}, {"capa_decision": "approved"}]})
    names = [n for n, _ in seen]
    assert names[names.index("approve_capa") + 1] == "cause_analysis"


def test_refused_countersign_sends_disposition_back_to_cause_analysis(complaint_db):
    seen, _ = drive(complaint_db, {"countersign_rnd": [{"rnd_agrees": "no"}, {"rnd_agrees": "yes"}]})
    names = [n for n, _ in seen]
    assert names.count("cause_analysis") == 2 and names.count("countersign_rnd") == 2


def test_unsatisfied_customer_sends_quality_complaint_back_to_cause_analysis(complaint_db):
    seen, _ = drive(complaint_db, {"confirm_satisfaction": [
        {"satisfied": "no", "satisfaction_score": "2", "customer_representative": "Zhao"},
        {"satisfied": "yes", "satisfaction_score": "4", "customer_representative": "Zhao"}]})
    names = [n for n, _ in seen]
    assert names[names.index("confirm_satisfaction") + 1] == "cause_analysis"


@pytest.mark.parametrize("role_task", ["approve_proceed", "approve_capa", "final_disposition",
                                       "countersign_engineering", "countersign_rnd"])
def test_approvals_need_the_department_head(complaint_db, role_task):
    manifest = complaint_db.run(lambda s: store.latest_definition(s, "customer_complaint").manifest)
    assert manifest["user_tasks"][f"customer_complaint/{role_task}"]["role"] == "head"


def test_history_lists_every_step_with_actor_time_and_data(complaint_db):
    _, instance_id = drive(complaint_db, {})
    events = complaint_db.run(lambda s: audit.history(s, instance_id))
    kinds = [e.kind for e in events]
    assert kinds[0] == "instance_started" and kinds[-1] == "instance_completed"
    completions = [e for e in events if e.kind == "task_completed"]
    assert len(completions) == 12
    intake = completions[0]
    assert intake.actor == "li.zhou" and intake.at == T0 + timedelta(minutes=30)
    assert intake.data["data"]["customer"] == "Hangzhou Motors" and intake.data["data"]["quantity_affected"] == 12
    decisions = [e.data for e in events if e.kind == "step_completed" and e.data["step"] == "gw_responsibility"]
    assert decisions == [{"step": "gw_responsibility", "name": "Our responsibility? 责任判定",
                          "type": "ExclusiveGateway", "next": ["open_capa"]}]


# --- the procedure's clocks: 2 h to reach quality, 24 h (or the customer's deadline) to reply ----------

def open_task(db, instance_id):
    [task] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    return task


def escalated_to(db, instance_id):
    return [e.data["to"] for e in db.run(lambda s: audit.history(s, instance_id)) if e.kind == "task_escalated"]


def inbox_of(db, user):
    return db.run(lambda s: store.inbox(s, runtime.visible_departments(s, user, None), runtime.ACTIVE_TASK,
                                        escalated_to=user))


def test_complaint_not_recorded_within_two_hours_of_receipt_goes_to_the_sales_head(complaint_db):
    instance_id = complaint_db.run(lambda s: runtime.start(s, "customer_complaint", "li.zhou", T0).id)
    assert open_task(complaint_db, instance_id).due_at == T0 + timedelta(hours=2)
    timers.fire_due(complaint_db, T0 + timedelta(hours=3, minutes=1))
    assert escalated_to(complaint_db, instance_id) == ["jun.chen"]
    [task] = [t for t in inbox_of(complaint_db, "jun.chen") if t.instance_id == instance_id]
    assert task.escalation_reason.startswith("'Record complaint 登记客诉处理单' was due 2026-11-02T19:00+08:00 and is 1h 01m")


def test_quality_complaint_not_forwarded_within_two_hours_escalates_to_the_general_manager(complaint_db):
    _, instance_id = drive(complaint_db, {}, until="approve_proceed")
    approval = open_task(complaint_db, instance_id)
    assert approval.due_at == T0 + timedelta(hours=2)  # two hours from receipt, not from the approval's creation
    timers.fire_due(complaint_db, T0 + timedelta(hours=2, minutes=1))
    kinds = [e.kind for e in complaint_db.run(lambda s: audit.history(s, instance_id))]
    assert kinds[-1] == "task_overdue_notified"
    timers.fire_due(complaint_db, T0 + timedelta(hours=6, minutes=1))
    # The management representative's head (jian.tang) already owns the approval, so it goes to the GM.
    assert escalated_to(complaint_db, instance_id) == ["guoqiang.feng"]
    assert [t.name for t in inbox_of(complaint_db, "guoqiang.feng")] == ["approve_proceed"]
    complaint_db.run(lambda s: runtime.complete(s, approval.id, "guoqiang.feng", T0 + timedelta(hours=7),
                                                {"proceed": "proceed"}))
    assert open_task(complaint_db, instance_id).name == "quality_review"


def test_reply_not_sent_within_24_hours_escalates_to_the_sales_head_then_the_general_manager(complaint_db):
    _, instance_id = drive(complaint_db, {}, until="reply_customer")
    reply = open_task(complaint_db, instance_id)
    assert reply.due_at == reply.created_at + timedelta(hours=24)
    timers.fire_due(complaint_db, reply.due_at + timedelta(hours=1, minutes=1))
    assert escalated_to(complaint_db, instance_id) == ["jun.chen"]
    timers.fire_due(complaint_db, reply.due_at + timedelta(hours=4, minutes=1))
    assert escalated_to(complaint_db, instance_id) == ["jun.chen", "guoqiang.feng"]
    assert [t.name for t in inbox_of(complaint_db, "guoqiang.feng")] == ["reply_customer"]


def test_an_earlier_customer_deadline_brings_the_reply_forward(complaint_db):
    _, instance_id = drive(complaint_db, {"intake": [{**INTAKE, "customer_deadline": "2026-11-02"}]},
                           until="reply_customer")
    assert open_task(complaint_db, instance_id).due_at == datetime(2026, 11, 2, 16, 0, tzinfo=timezone.utc)


def test_a_delivery_complaint_is_due_by_the_customer_deadline(complaint_db):
    _, instance_id = drive(complaint_db, {"intake": [{**INTAKE, "complaint_type": "delivery",
                                                      "customer_deadline": "2026-11-05"}]}, until="handle_delivery")
    assert open_task(complaint_db, instance_id).due_at == datetime(2026, 11, 5, 16, 0, tzinfo=timezone.utc)

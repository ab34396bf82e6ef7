"""The shipped customer complaint procedure (P1), driven path by path as the departments would."""

from datetime import datetime, timedelta, timezone

import pytest

from conftest import ROOT, T0
from engine import audit, replay, runtime, store, timers
from walk import MEMBER, Walk, inbox, outcome, walk

INTAKE = {"customer": "Hangzhou Motors", "contact": "Mr. Zhao", "product_model": "QX-200", "channel": "email",
          "description": "E07 overcurrent after 2 h", "complaint_type": "quality", "quantity_affected": "12"}
REVIEW_OURS = {"facts_verified": "yes", "nonconformity": "confirmed", "responsibility": "ours"}
STANDARD = {
    "intake": [INTAKE],
    "approve_proceed": [{"proceed": "proceed"}],
    "quality_review": [REVIEW_OURS],
    # the CAPA (P3) the complaint calls
    "form_team": [{"capa_source": "complaint", "team_leader": "Wang Mei", "team_members": "Huang Bin, Song Yang"}],
    "describe_problem": [{"description": "E07 overcurrent after 2 h", "product_model": "QX-200",
                          "quantity_affected": "12", "detected_at": "customer"}],
    "contain_problem": [{"containment": "Quarantine lot", "suspect_quantity": "300", "contained_on": "2026-11-02"}],
    "analyse_root_cause": [{"root_cause": "Solder voids", "failure_cause": "process"}],
    "plan_actions": [{"corrective_action": "Re-qualify reflow", "action_owner": "Huang Bin",
                      "planned_completion": "2026-12-05"}],
    "approve_capa": [{"capa_decision": "approved"}],
    "implement_capa": [{"actions_taken": "Done", "implemented_on": "2026-12-03"}],
    "verify_effectiveness": [{"effective": "yes", "verification_evidence": "0 voids"}],
    "update_standards": [{"documents_updated": ["control_plan"], "change_requested": "yes"}],
    "close_capa": [{"closure_summary": "Effective", "closed_on": "2026-12-04"}],
    # back in the complaint
    "final_disposition": [{"disposition": "Replace 12 units"}],
    "countersign_engineering": [{"engineering_agrees": "yes"}],
    "countersign_rnd": [{"rnd_agrees": "yes"}],
    "reply_customer": [{"reply_summary": "Shipped", "replied_on": "2026-12-08"}],
    "confirm_satisfaction": [{"satisfied": "yes", "satisfaction_score": "5", "customer_representative": "Zhao"}],
}
CAPA = [("form_team", "quality"), ("describe_problem", "quality"), ("contain_problem", "engineering"),
        ("analyse_root_cause", "engineering"), ("plan_actions", "engineering"), ("approve_capa", "mgmt_rep"),
        ("implement_capa", "engineering"), ("verify_effectiveness", "quality"), ("update_standards", "engineering"),
        ("close_capa", "quality")]
AFTER_CAPA = [("final_disposition", "quality"), ("countersign_engineering", "engineering"), ("countersign_rnd", "rnd"),
              ("reply_customer", "sales"), ("confirm_satisfaction", "sales")]


def complaint_walk(db, answers, until=None) -> Walk:
    """A complaint received by sales (li.zhou), answered with STANDARD except ``answers``."""
    return walk(db, "customer_complaint", MEMBER["sales"], {**STANDARD, **answers}, until=until)


def test_not_ours_goes_back_to_sales_and_closes(complaint_db):
    walked = complaint_walk(complaint_db, {
        "quality_review": [{**REVIEW_OURS, "responsibility": "not_ours"}],
        "explain_to_customer": [{"explanation": "Overvoltage on site", "customer_accepts": "yes"}]})
    assert walked.inboxes == [("intake", "sales"), ("approve_proceed", "mgmt_rep"), ("quality_review", "quality"),
                    ("explain_to_customer", "sales")]
    assert outcome(complaint_db, walked.instance_id)[0] == "completed"


def test_ours_runs_the_capa_procedure_then_countersign_reply_and_closes(complaint_db):
    walked = complaint_walk(complaint_db, {})
    assert walked.inboxes == [("intake", "sales"), ("approve_proceed", "mgmt_rep"), ("quality_review", "quality"),
                    *CAPA, *AFTER_CAPA]
    status, data = outcome(complaint_db, walked.instance_id)
    assert status == "completed"
    assert (data["effective"], data["verification_rounds"], data["failure_cause"]) == (True, 1, "process")
    tasks = complaint_db.run(lambda s: store.tasks_of_instance(s, walked.instance_id))
    assert {t.name: t.process for t in tasks}["verify_effectiveness"] == "capa"


def test_the_complaint_hands_its_problem_to_the_capa(complaint_db):
    walked = complaint_walk(complaint_db, {}, until="form_team")
    [task] = complaint_db.run(lambda s: store.tasks_of_instance(s, walked.instance_id, runtime.ACTIVE_TASK))
    data = complaint_db.run(lambda s: runtime.describe_task(s, task.id, "mei.wang", T0).data)
    assert {k: data[k] for k in ("capa_source", "customer", "product_model", "description", "quantity_affected")} == {
        "capa_source": "complaint", "customer": "Hangzhou Motors", "product_model": "QX-200",
        "description": "E07 overcurrent after 2 h", "quantity_affected": 12}


def test_failed_verification_loops_back_to_root_cause_inside_the_capa_and_counts_rounds(complaint_db):
    walked = complaint_walk(complaint_db, {"verify_effectiveness": [
        {"effective": "no", "verification_evidence": "7 voids"},
        {"effective": "yes", "verification_evidence": "0 voids"}]})
    assert walked.tasks.count("analyse_root_cause") == 2 and walked.tasks.count("verify_effectiveness") == 2
    assert walked.inboxes[walked.tasks.index("verify_effectiveness") + 1] == ("analyse_root_cause", "engineering")
    assert walked.tasks.count("form_team") == 1
    assert outcome(complaint_db, walked.instance_id)[1]["verification_rounds"] == 2


def test_delivery_complaint_stays_in_sales(complaint_db):
    walked = complaint_walk(complaint_db, {
        "intake": [{**INTAKE, "complaint_type": "delivery"}],
        "handle_delivery": [{"resolution": "Short shipment of 2 sent by express"}]})
    assert walked.inboxes == [("intake", "sales"), ("handle_delivery", "sales"), ("reply_customer", "sales"),
                    ("confirm_satisfaction", "sales")]


def test_unsatisfied_delivery_complaint_goes_back_to_sales_delivery_handling(complaint_db):
    walked = complaint_walk(complaint_db, {
        "intake": [{**INTAKE, "complaint_type": "delivery"}],
        "handle_delivery": [{"resolution": "Short shipment of 2 sent by express"}],
        "confirm_satisfaction": [{"satisfied": "no", "satisfaction_score": "2", "customer_representative": "Zhao"},
                                 {"satisfied": "yes", "satisfaction_score": "4", "customer_representative": "Zhao"}]})
    assert walked.inboxes == [("intake", "sales"), *[("handle_delivery", "sales"), ("reply_customer", "sales"),
                                           ("confirm_satisfaction", "sales")] * 2]


def test_quality_complaint_without_early_warning_approval_goes_straight_to_quality(complaint_db, tmp_path):
    settings = (ROOT / "processes" / "settings.yaml").read_text(encoding="utf-8")
    edited = tmp_path / "settings.yaml"
    edited.write_text(settings.replace("approval_required_for: [quality]", "approval_required_for: []"),
                      encoding="utf-8")
    processes = ROOT / "processes"
    complaint_db.run(lambda s: runtime.deploy(s, [processes / "customer_complaint.bpmn", processes / "capa.bpmn"],
                                              ROOT / "forms", "qiang.li", T0, settings_file=edited))
    walked = complaint_walk(complaint_db, {"quality_review": [{**REVIEW_OURS, "responsibility": "not_ours"}],
                                   "explain_to_customer": [{"explanation": "x", "customer_accepts": "yes"}]})
    assert walked.inboxes == [("intake", "sales"), ("quality_review", "quality"), ("explain_to_customer", "sales")]


def test_early_warning_can_return_complaint_to_sales(complaint_db):
    walked = complaint_walk(complaint_db, {"approve_proceed": [{"proceed": "return_to_sales"}, {"proceed": "proceed"}],
                                   "quality_review": [{**REVIEW_OURS, "responsibility": "not_ours"}],
                                   "explain_to_customer": [{"explanation": "x", "customer_accepts": "yes"}]})
    assert walked.inboxes == [("intake", "sales"), ("approve_proceed", "mgmt_rep"), ("intake", "sales"),
                    ("approve_proceed", "mgmt_rep"), ("quality_review", "quality"), ("explain_to_customer", "sales")]


def test_rejected_capa_plan_goes_back_to_engineering_inside_the_capa(complaint_db):
    walked = complaint_walk(complaint_db, {"approve_capa": [{"capa_decision": "rejected"}, {"capa_decision": "approved"}]})
    assert walked.inboxes[walked.tasks.index("approve_capa") + 1] == ("plan_actions", "engineering")
    assert walked.tasks.count("form_team") == 1 and walked.tasks.count("final_disposition") == 1


def test_refused_countersign_runs_the_capa_again(complaint_db):
    walked = complaint_walk(complaint_db, {"countersign_rnd": [{"rnd_agrees": "no"}, {"rnd_agrees": "yes"}]})
    after_refusal = walked.inboxes[walked.tasks.index("countersign_rnd") + 1:]
    assert after_refusal[:len(CAPA)] == CAPA
    assert walked.tasks.count("countersign_rnd") == 2 and walked.tasks.count("final_disposition") == 2
    assert outcome(complaint_db, walked.instance_id)[0] == "completed"


def test_unsatisfied_customer_sends_quality_complaint_back_to_the_capa(complaint_db):
    walked = complaint_walk(complaint_db, {"confirm_satisfaction": [
        {"satisfied": "no", "satisfaction_score": "2", "customer_representative": "Zhao"},
        {"satisfied": "yes", "satisfaction_score": "4", "customer_representative": "Zhao"}]})
    assert walked.inboxes[walked.tasks.index("confirm_satisfaction") + 1] == ("form_team", "quality")
    assert walked.tasks.count("close_capa") == 2 and walked.tasks.count("reply_customer") == 2


def test_a_complaint_that_went_through_the_capa_replays_to_match(complaint_db):
    walked = complaint_walk(complaint_db, {"verify_effectiveness": [
        {"effective": "no", "verification_evidence": "7 voids"}, {"effective": "yes", "verification_evidence": "0"}]})
    assert complaint_db.run(lambda s: replay.replay(s, walked.instance_id)).match
    assert complaint_db.run(lambda s: audit.verify(s)).ok


@pytest.mark.parametrize("role_task", ["approve_proceed", "approve_capa", "final_disposition",
                                       "countersign_engineering", "countersign_rnd"])
def test_approvals_need_the_department_head(complaint_db, role_task):
    manifest = complaint_db.run(lambda s: store.latest_definition(s, "customer_complaint").manifest)
    process = "capa" if role_task == "approve_capa" else "customer_complaint"
    assert manifest["user_tasks"][f"{process}/{role_task}"]["role"] == "head"


def test_history_lists_every_step_with_actor_time_and_data(complaint_db):
    walked = complaint_walk(complaint_db, {})
    events = complaint_db.run(lambda s: audit.history(s, walked.instance_id))
    kinds = [e.kind for e in events]
    assert kinds[0] == "instance_started" and kinds[-1] == "instance_completed"
    completions = [e for e in events if e.kind == "task_completed"]
    assert len(completions) == 18
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


def test_complaint_not_recorded_within_two_hours_of_receipt_goes_to_the_sales_head(complaint_db):
    instance_id = complaint_db.run(lambda s: runtime.start(s, "customer_complaint", "li.zhou", T0).id)
    assert open_task(complaint_db, instance_id).due_at == T0 + timedelta(hours=2)
    timers.fire_due(complaint_db, T0 + timedelta(hours=3, minutes=1))
    assert escalated_to(complaint_db, instance_id) == ["jun.chen"]
    [task] = [t for t in inbox(complaint_db, "jun.chen") if t.instance_id == instance_id]
    assert task.escalation_reason.startswith("'Record complaint 登记客诉处理单' was due 2026-11-02T19:00+08:00 and is 1h 01m")


def test_quality_complaint_not_forwarded_within_two_hours_escalates_to_the_general_manager(complaint_db):
    walked = complaint_walk(complaint_db, {}, until="approve_proceed")
    approval = open_task(complaint_db, walked.instance_id)
    assert approval.due_at == T0 + timedelta(hours=2)  # two hours from receipt, not from the approval's creation
    timers.fire_due(complaint_db, T0 + timedelta(hours=2, minutes=1))
    kinds = [e.kind for e in complaint_db.run(lambda s: audit.history(s, walked.instance_id))]
    assert kinds[-1] == "task_overdue_notified"
    timers.fire_due(complaint_db, T0 + timedelta(hours=6, minutes=1))
    # The management representative's head (jian.tang) already owns the approval, so it goes to the GM.
    assert escalated_to(complaint_db, walked.instance_id) == ["guoqiang.feng"]
    assert [t.name for t in inbox(complaint_db, "guoqiang.feng")] == ["approve_proceed"]
    complaint_db.run(lambda s: runtime.complete(s, approval.id, "guoqiang.feng", T0 + timedelta(hours=7),
                                                {"proceed": "proceed"}))
    assert open_task(complaint_db, walked.instance_id).name == "quality_review"


def test_reply_not_sent_within_24_hours_escalates_to_the_sales_head_then_the_general_manager(complaint_db):
    walked = complaint_walk(complaint_db, {}, until="reply_customer")
    reply = open_task(complaint_db, walked.instance_id)
    assert reply.due_at == reply.created_at + timedelta(hours=24)
    timers.fire_due(complaint_db, reply.due_at + timedelta(hours=1, minutes=1))
    assert escalated_to(complaint_db, walked.instance_id) == ["jun.chen"]
    timers.fire_due(complaint_db, reply.due_at + timedelta(hours=4, minutes=1))
    assert escalated_to(complaint_db, walked.instance_id) == ["jun.chen", "guoqiang.feng"]
    assert [t.name for t in inbox(complaint_db, "guoqiang.feng")] == ["reply_customer"]


def test_an_earlier_customer_deadline_brings_the_reply_forward(complaint_db):
    walked = complaint_walk(complaint_db, {"intake": [{**INTAKE, "customer_deadline": "2026-11-02"}]},
                           until="reply_customer")
    assert open_task(complaint_db, walked.instance_id).due_at == datetime(2026, 11, 2, 16, 0, tzinfo=timezone.utc)


def test_a_delivery_complaint_is_due_by_the_customer_deadline(complaint_db):
    walked = complaint_walk(complaint_db, {"intake": [{**INTAKE, "complaint_type": "delivery",
                                                      "customer_deadline": "2026-11-05"}]}, until="handle_delivery")
    assert open_task(complaint_db, walked.instance_id).due_at == datetime(2026, 11, 5, 16, 0, tzinfo=timezone.utc)


def test_an_overdue_capa_step_inside_a_complaint_climbs_the_complaint_ladder(complaint_db):
    walked = complaint_walk(complaint_db, {}, until="contain_problem")
    containment = open_task(complaint_db, walked.instance_id)
    assert (containment.process, containment.department) == ("capa", "engineering")
    assert containment.due_at == containment.created_at + timedelta(days=1)  # capa: containment_within
    assert [t.name for t in inbox(complaint_db, "bin.huang")] == ["contain_problem"]
    timers.fire_due(complaint_db, containment.due_at + timedelta(hours=1, minutes=1))
    assert escalated_to(complaint_db, walked.instance_id) == ["wei.zhang"]  # the engineering head, after 1 h (complaint ladder)
    assert "contain_problem" in [t.name for t in inbox(complaint_db, "wei.zhang")]

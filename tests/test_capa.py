"""The shipped CAPA procedure (P3) started on its own by Quality, driven path by path as the departments would."""

from datetime import datetime, timedelta, timezone

import pytest

from conftest import FIXTURES, ROOT, T0, fingerprint
from engine import audit, replay, runtime, store, timers
from engine.errors import FormError, Forbidden
from walk import deploy_shipped, outcome, walk

TEAM = {"capa_source": "internal_audit", "source_reference": "IA-2026-07 finding 3", "team_leader": "Wang Mei",
        "team_members": "Huang Bin (engineering), Liu Lei (quality)"}
PROBLEM = {"description": "Torque of M6 screws below spec on line 2", "product_model": "QX-200",
           "quantity_affected": "40", "detected_at": "audit"}
ROOT_CAUSE = {"root_cause": "Torque tool not calibrated", "failure_cause": "process", "analysis_method": "five_why"}
PLAN = {"corrective_action": "Calibrate all torque tools", "action_owner": "Huang Bin",
        "planned_completion": "2026-11-20"}
ANSWERS = {
    "form_team": [TEAM],
    "describe_problem": [PROBLEM],
    "contain_problem": [{"containment": "Re-torque 40 drives in stock", "suspect_quantity": "40",
                         "contained_on": "2026-11-02"}],
    "analyse_root_cause": [ROOT_CAUSE],
    "plan_actions": [PLAN],
    "approve_capa": [{"capa_decision": "approved"}],
    "implement_capa": [{"actions_taken": "Tools calibrated, weekly check added", "implemented_on": "2026-11-10"}],
    "verify_effectiveness": [{"effective": "yes", "verification_evidence": "0 low-torque screws in 500",
                              "pieces_checked": "500"}],
    "update_standards": [{"documents_updated": ["work_instruction", "control_plan"],
                          "document_numbers": "WI-ASM-012 B/0, CP-QX200 C/1", "change_requested": "yes"}],
    "close_capa": [{"closure_summary": "Effective, standards updated", "closed_on": "2026-11-25"}],
}
EIGHT_D = [("form_team", "quality"), ("describe_problem", "quality"), ("contain_problem", "engineering"),
           ("analyse_root_cause", "engineering"), ("plan_actions", "engineering"), ("approve_capa", "mgmt_rep"),
           ("implement_capa", "engineering"), ("verify_effectiveness", "quality"), ("update_standards", "engineering"),
           ("close_capa", "quality")]


@pytest.fixture
def capa_db(org_db):
    """The organisation plus the shipped CAPA procedure (P3) alone, as Quality starts it on its own."""
    deploy_shipped(org_db, "capa")
    return org_db


def capa_walk(db, **answers):
    """A CAPA started by Quality (mei.wang) for an audit finding, answered with ANSWERS except ``answers``."""
    return walk(db, "capa", "mei.wang", {**ANSWERS, **answers})


def test_quality_starts_a_capa_for_an_audit_finding_and_it_runs_the_eight_disciplines(capa_db):
    walked = capa_walk(capa_db)
    assert walked.inboxes == EIGHT_D
    status, data = outcome(capa_db, walked.instance_id)
    assert status == "completed"
    assert (data["capa_source"], data["effective"], data["verification_rounds"]) == ("internal_audit", True, 1)
    assert data["documents_updated"] == ["work_instruction", "control_plan"]


def test_approval_is_signed_by_the_management_representative_and_closure_by_the_quality_head(capa_db):
    instance_id = capa_walk(capa_db).instance_id
    events = capa_db.run(lambda s: audit.history(s, instance_id))
    by_task = {e.data["task"]: e.actor for e in events if e.kind == "task_completed"}
    assert (by_task["approve_capa"], by_task["close_capa"]) == ("jian.tang", "qiang.li")
    signed = [e for e in events if e.kind == "task_signed"]
    assert [(e.actor, e.data["meaning"]) for e in signed] == [("jian.tang", "approved")]


def test_rejected_plan_goes_back_to_engineering_for_a_new_plan(capa_db):
    walked = capa_walk(capa_db, approve_capa=[{"capa_decision": "rejected", "capa_approval_comment": "Too vague"},
                                                    {"capa_decision": "approved"}])
    assert walked.inboxes[4:8] == [("plan_actions", "engineering"), ("approve_capa", "mgmt_rep"),
                         ("plan_actions", "engineering"), ("approve_capa", "mgmt_rep")]
    assert walked.tasks.count("analyse_root_cause") == 1
    assert outcome(capa_db, walked.instance_id)[1]["verification_rounds"] == 1


def test_not_effective_goes_back_to_root_cause_and_the_rounds_are_counted(capa_db):
    walked = capa_walk(capa_db, verify_effectiveness=[
        {"effective": "no", "verification_evidence": "3 low-torque screws in 500"},
        {"effective": "no", "verification_evidence": "1 low-torque screw in 500"},
        {"effective": "yes", "verification_evidence": "0 in 1000"}])
    after_first = walked.inboxes[walked.tasks.index("verify_effectiveness") + 1]
    assert after_first == ("analyse_root_cause", "engineering")
    assert walked.tasks.count("verify_effectiveness") == 3 and walked.tasks.count("contain_problem") == 1
    status, data = outcome(capa_db, walked.instance_id)
    assert (status, data["verification_rounds"], data["effective"]) == ("completed", 3, True)
    steps = [e.data for e in capa_db.run(lambda s: audit.history(s, walked.instance_id))
             if e.kind == "step_completed" and e.data["step"] == "gw_effective"]
    assert [step["next"] for step in steps] == [["gw_to_root_cause"], ["gw_to_root_cause"], ["update_standards"]]


def test_only_quality_starts_a_capa_on_its_own(capa_db):
    with pytest.raises(Forbidden, match="started by department 'quality'"):
        capa_db.run(lambda s: runtime.start(s, "capa", "bin.huang", T0))


def test_first_form_asks_where_the_capa_comes_from(capa_db):
    instance_id = capa_walk(capa_db, form_team=[{**TEAM, "capa_source": "repeat_failure"}]).instance_id
    assert outcome(capa_db, instance_id)[1]["capa_source"] == "repeat_failure"
    form = capa_db.run(lambda s: runtime.describe_task(s, store.tasks_of_instance(s, instance_id)[0].id).form)
    assert {c.value for c in form.fields[0].choices} >= {"complaint", "service", "internal_audit", "repeat_failure"}


@pytest.mark.parametrize("field, value, message", [
    ("quantity_affected", "-1", "quantity_affected"), ("description", "", "description"),
    ("detected_at", "canteen", "detected_at")])
def test_a_bad_problem_description_is_refused_and_changes_nothing(capa_db, field, value, message):
    instance_id = walk(capa_db, "capa", "mei.wang", ANSWERS, until="describe_problem").instance_id
    [task] = capa_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    before = fingerprint(capa_db)
    with pytest.raises(FormError, match=message):
        capa_db.run(lambda s: runtime.complete(s, task.id, "mei.wang", T0 + timedelta(hours=2),
                                               {**PROBLEM, field: value}))
    assert fingerprint(capa_db) == before


def test_containment_not_done_within_a_day_escalates_to_the_engineering_head(capa_db):
    instance_id = walk(capa_db, "capa", "mei.wang", ANSWERS, until="contain_problem").instance_id
    [task] = capa_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    assert task.department == "engineering" and task.due_at == task.created_at + timedelta(days=1)
    timers.fire_due(capa_db, task.due_at + timedelta(days=1, minutes=1))
    escalations = [e.data["to"] for e in capa_db.run(lambda s: audit.history(s, instance_id))
                   if e.kind == "task_escalated"]
    assert escalations == ["wei.zhang"]


def test_implementation_is_due_by_the_planned_completion_date(capa_db):
    instance_id = walk(capa_db, "capa", "mei.wang", ANSWERS, until="implement_capa").instance_id
    [task] = capa_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    # the end of 2026-11-20 in the calendar's time zone (Asia/Shanghai)
    assert task.due_at == datetime(2026, 11, 20, 16, 0, tzinfo=timezone.utc)


# --- called from another procedure ---------------------------------------------------------------------

@pytest.fixture
def caller_db(org_db):
    """tests/processes/calls_capa.bpmn (a service lane hands a problem to the CAPA) deployed with capa.bpmn."""
    org_db.run(lambda s: runtime.deploy(s, [FIXTURES / "processes" / "calls_capa.bpmn", ROOT / "processes" / "capa.bpmn"],
                                        ROOT / "forms", "qiang.li", T0, settings_file=ROOT / "processes" / "settings.yaml"))
    return org_db


def test_a_called_capa_routes_its_tasks_to_the_departments_of_its_own_lanes(caller_db):
    walked = walk(caller_db, "calls_capa", "yan.sun", ANSWERS, until="contain_problem")
    assert walked.inboxes == EIGHT_D[:2]
    [task] = caller_db.run(lambda s: store.tasks_of_instance(s, walked.instance_id, runtime.ACTIVE_TASK))
    assert (task.process, task.department) == ("capa", "engineering")
    assert task.due_at == task.created_at + timedelta(days=1)  # the capa settings travel with the caller


def test_a_called_capa_shows_the_callers_problem_on_its_first_form(caller_db):
    instance_id = walk(caller_db, "calls_capa", "yan.sun", ANSWERS, until="form_team").instance_id
    [task] = caller_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    assert (task.process, task.department) == ("capa", "quality")
    data = caller_db.run(lambda s: runtime.describe_task(s, task.id, "mei.wang", T0).data)
    assert {k: data[k] for k in ("capa_source", "source_reference", "description", "quantity_affected")} == {
        "capa_source": "service", "source_reference": "SR-0042", "description": "Fan bearing noise",
        "quantity_affected": 4}


def test_a_called_capa_returns_only_its_declared_outputs_to_the_caller(caller_db):
    walked = walk(caller_db, "calls_capa", "yan.sun", {**ANSWERS, "verify_effectiveness": [
        {"effective": "no", "verification_evidence": "noise on 1 of 20"},
        {"effective": "yes", "verification_evidence": "0 of 50"}]})
    assert walked.tasks.count("verify_effectiveness") == 2
    status, data = outcome(caller_db, walked.instance_id)
    assert status == "completed"
    assert {k: data[k] for k in ("effective", "verification_rounds", "failure_cause", "planned_completion")} == {
        "effective": True, "verification_rounds": 2, "failure_cause": "process", "planned_completion": "2026-11-20"}
    assert data["service_note"] == "kept by the caller" and data["capa_source"] == "service"
    assert "team_leader" not in data and "containment" not in data  # the CAPA's working data stays inside it
    assert caller_db.run(lambda s: replay.replay(s, walked.instance_id)).match


def test_a_callers_own_setting_wins_over_the_called_capas(org_db, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text((ROOT / "processes" / "settings.yaml").read_text(encoding="utf-8")
                        + "calls_capa:\n  containment_within: PT4H\n", encoding="utf-8")
    org_db.run(lambda s: runtime.deploy(s, [FIXTURES / "processes" / "calls_capa.bpmn", ROOT / "processes" / "capa.bpmn"],
                                        ROOT / "forms", "qiang.li", T0, settings_file=settings))
    instance_id = walk(org_db, "calls_capa", "yan.sun", ANSWERS, until="contain_problem").instance_id
    [task] = org_db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    assert task.due_at == task.created_at + timedelta(hours=4)

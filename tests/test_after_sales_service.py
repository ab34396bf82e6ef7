"""The shipped after-sales service procedure (P2) and its problem-level table, driven path by path as the
departments would: who gets each task, which branch each answer takes, and what the history keeps."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree
from SpiffWorkflow.util.task import TaskState

from conftest import ORG_FILE, ROOT, T0, fingerprint
from engine import audit, clock, definitions, replay, runtime, store, timers
from engine.directory import Organisation
from engine.errors import ExpressionError, FormError
from test_capa import ANSWERS as CAPA_ANSWERS, EIGHT_D
from walk import MEMBER, complete, doer, open_tasks, outcome, walk

PROCESSES = ROOT / "processes"
REQUEST = {"customer": "Wuxi Water Works", "contact": "Mr. Qian 0510-8888", "product_model": "QX-200",
           "serial_number": "SN-1001", "channel": "phone", "symptom": "Display freezes after start-up",
           "warranty_status": "in_warranty", "site_address": "Wuxi, Binhu district", "distance_km": "120",
           "fault_cause": "operation_question", "quick_fix": "yes"}
HANDLED_REMOTELY = {"diagnosis": "Wrong start-up parameter", "solution": "Reset parameters by phone",
                    "on_site_needed": "no", "caused_by_us": "no"}
REPORT = {"work_done": "Parameters reset", "hours_spent": "1.5", "resolved": "yes", "customer_confirmed": "yes",
          "customer_representative": "Qian"}
STANDARD = {
    "register_request": [REQUEST],
    "handle_problem": [HANDLED_REMOTELY],
    "approve_handling": [{"handling_decision": "approved"}],
    "confirm_problem": [{"reproduced": "yes", "confirmation_findings": "Reproduced on the test bench"}],
    "solve_problem": [{"rnd_root_cause": "Watchdog disabled in firmware 2.1", "rnd_solution": "Firmware 2.2",
                       "solution_kind": "software_change", "on_site_needed": "no"}],
    "decide_warranty": [{"in_warranty": "yes", "used_per_manual": "yes"}],
    "quote_service": [{"parts_cost": "800", "labour_cost": "300", "travel_cost": "100", "list_price": "1200"}],
    "approve_quote": [{"quote_decision": "approved"}],
    "dispatch_engineer": [{"engineer": "Guo Yu", "planned_arrival": "2026-11-03T09:00:00+08:00"}],
    "arrive_on_site": [{"arrived_at": "2026-11-03T08:40:00+08:00"}],
    "repair_on_site": [{"repair_done": "Replaced the main board", "repaired_at": "2026-11-03T12:00:00+08:00"}],
    "provide_loan_unit": [{"loan_serial": "LOAN-07", "loan_delivered_at": "2026-11-04T10:00:00+08:00"}],
    "service_report": [REPORT],
    "satisfaction_survey": [{"satisfaction_score": "5", "response_score": "4"}],
    "record_charge": [{"invoice_number": "INV-2026-118", "amount_received": "1200"}],
    "return_visit": [{"visited_on": "2026-11-10", "visit_method": "phone", "still_working": "yes", "praise": "yes"}],
    **CAPA_ANSWERS,
    "form_team": [{**CAPA_ANSWERS["form_team"][0], "capa_source": "service", "source_reference": "SN-1001"}],
}


@pytest.fixture
def service_db(org_db):
    """The organisation plus the shipped after-sales service procedure, its problem-level table and the CAPA it calls."""
    deploy(org_db, service_files())
    return org_db


def service_files(table=PROCESSES / "problem_level.dmn"):
    """The files a deployment of the after-sales service needs: its BPMN, its problem-level table, the CAPA it calls."""
    return [PROCESSES / "after_sales_service.bpmn", table, PROCESSES / "capa.bpmn"]


def deploy(db, paths):
    return db.run(lambda s: runtime.deploy(s, paths, ROOT / "forms", "qiang.li", T0,
                                           settings_file=PROCESSES / "settings.yaml"))


def do(db, task, data, now):
    """Complete ``task`` as a member of its department (its head when the task needs the head)."""
    return complete(db, task.id, doer(db, task), now, data)


def drive(db, answers, until=None):
    """Run a service request to its end (or until task ``until`` is open), half an hour per step; when no task
    is open the worker fires what is due (the return visit).

    Returns the (task, department) pairs in the order the inboxes received them, and the instance id.
    """
    walked = walk(db, "after_sales_service", MEMBER["service"], {**STANDARD, **answers}, until=until)
    return walked.inboxes, walked.instance_id


def request(**changes):
    return [{**REQUEST, **changes}]


LEVEL_1_2_HANDLING = [("handle_problem", "tech_support"), ("approve_handling", "tech_support")]
AFTER_FREE_REMOTE_FIX = [("decide_warranty", "service"), ("service_report", "tech_support"),
                         ("satisfaction_survey", "service"), ("return_visit", "service")]


# --- the paths, one scenario per branch ----------------------------------------------------------------

def test_level_1_question_stays_with_technical_support_free_remote_and_closes(service_db):
    seen, instance_id = drive(service_db, {})
    assert seen == [("register_request", "service"), *LEVEL_1_2_HANDLING, *AFTER_FREE_REMOTE_FIX]
    status, data = outcome(service_db, instance_id)
    assert status == "completed"
    assert data["problem_level"] == 1 and data["level_reason"].startswith("Solvable remotely")


def test_level_3_goes_to_technical_management_then_rnd_and_opens_a_capa(service_db):
    seen, instance_id = drive(service_db, {"register_request": request(fault_cause="product_software", quick_fix="no")})
    assert seen[:3] == [("register_request", "service"), ("confirm_problem", "tech_mgmt"), ("solve_problem", "rnd")]
    # the CAPA's own steps go to the departments of its lanes while the return visit waits
    assert seen[3:] == [*AFTER_FREE_REMOTE_FIX[:-1], *EIGHT_D, ("return_visit", "service")]
    status, data = outcome(service_db, instance_id)
    assert status == "completed" and data["problem_level"] == 3
    assert (data["effective"], data["verification_rounds"], data["capa_source"]) == (True, 1, "service")
    assert service_db.run(lambda s: replay.replay(s, instance_id)).match


def test_the_capa_starts_with_what_the_service_request_knows(service_db):
    _, instance_id = drive(service_db, {"register_request": request(fault_cause="hardware_design")}, until="form_team")
    [team] = open_tasks(service_db, instance_id)
    assert (team.department, team.process) == ("quality", "capa")
    seen_by_quality = service_db.run(lambda s: runtime.describe_task(s, team.id, "mei.wang", T0)).data
    assert seen_by_quality["capa_source"] == "service" and seen_by_quality["product_model"] == "QX-200"
    assert seen_by_quality["description"].startswith("Display freezes after start-up (level 4: Hardware design fault")


def test_level_3_not_reproduced_is_handled_by_technical_support_without_a_capa(service_db):
    seen, _ = drive(service_db, {
        "register_request": request(fault_cause="production_process"),
        "confirm_problem": [{"reproduced": "no", "confirmation_findings": "Bench test passes 72 h"}]})
    assert seen == [("register_request", "service"), ("confirm_problem", "tech_mgmt"), *LEVEL_1_2_HANDLING,
                    *AFTER_FREE_REMOTE_FIX]


def test_handling_sent_back_by_the_technical_support_manager_is_handled_again(service_db):
    seen, _ = drive(service_db, {"approve_handling": [{"handling_decision": "rework", "handling_comment": "Check logs"},
                                                      {"handling_decision": "approved"}]})
    assert seen[:5] == [("register_request", "service"), *LEVEL_1_2_HANDLING, *LEVEL_1_2_HANDLING]


def test_handling_approval_needs_the_technical_support_manager_not_the_engineer(service_db):
    _, instance_id = drive(service_db, {}, until="approve_handling")
    [approval] = open_tasks(service_db, instance_id)
    before = fingerprint(service_db)
    with pytest.raises(Exception, match="head"):
        service_db.run(lambda s: runtime.complete(s, approval.id, "kai.luo", T0 + timedelta(hours=2),
                                                  {"handling_decision": "approved"}))
    assert fingerprint(service_db) == before


def test_misuse_is_paid_within_the_discount_limit_and_finance_records_the_charge(service_db):
    seen, instance_id = drive(service_db, {
        "register_request": request(fault_cause="misuse"),
        "decide_warranty": [{"in_warranty": "yes", "used_per_manual": "no"}],
        "quote_service": [{"parts_cost": "800", "labour_cost": "200", "travel_cost": "80", "list_price": "1200"}]})
    assert seen == [("register_request", "service"), *LEVEL_1_2_HANDLING, ("decide_warranty", "service"),
                    ("quote_service", "service"), ("service_report", "tech_support"),
                    ("satisfaction_survey", "service"), ("record_charge", "finance"), ("return_visit", "service")]
    data = outcome(service_db, instance_id)[1]
    assert data["problem_level"] == 1 and data["quote_total"] == 1080  # exactly 10% below the list: no approval


def test_quote_more_than_10_percent_below_list_needs_the_general_manager_who_may_send_it_back(service_db):
    seen, instance_id = drive(service_db, {
        "decide_warranty": [{"in_warranty": "no", "used_per_manual": "yes"}],
        "quote_service": [{"parts_cost": "800", "labour_cost": "200", "travel_cost": "70", "list_price": "1200"},
                          {"parts_cost": "800", "labour_cost": "200", "travel_cost": "50", "list_price": "1200"}],
        "approve_quote": [{"quote_decision": "rejected", "quote_comment": "Too low"},
                          {"quote_decision": "approved"}]})
    assert seen[3:8] == [("decide_warranty", "service"), ("quote_service", "service"), ("approve_quote", "gm"),
                         ("quote_service", "service"), ("approve_quote", "gm")]
    assert ("record_charge", "finance") in seen
    events = service_db.run(lambda s: audit.history(s, instance_id))
    approvals = [e for e in events if e.kind == "task_completed" and e.data["task"] == "approve_quote"]
    assert {e.actor for e in approvals} == {"guoqiang.feng"}  # the general manager himself, not his deputy
    assert outcome(service_db, instance_id)[1]["quote_total"] == 1050


def test_level_2_caused_by_us_is_repaired_on_site_and_opens_a_capa(service_db):
    seen, instance_id = drive(service_db, {
        "register_request": request(fault_cause="component_quality", quick_fix="no"),
        "handle_problem": [{**HANDLED_REMOTELY, "on_site_needed": "yes", "caused_by_us": "yes"}]})
    assert seen == [("register_request", "service"), *LEVEL_1_2_HANDLING, ("decide_warranty", "service"),
                    ("dispatch_engineer", "service"), ("arrive_on_site", "tech_support"),
                    ("repair_on_site", "tech_support"), *AFTER_FREE_REMOTE_FIX[1:-1], *EIGHT_D,
                    ("return_visit", "service")]
    assert outcome(service_db, instance_id)[1]["problem_level"] == 2


@pytest.mark.parametrize("facts, handling", [
    ({"quick_fix": "no"}, {"caused_by_us": "no"}),  # an operation question needing an engineer: level 2, not ours
    ({"fault_cause": "transport"}, {"caused_by_us": "yes"}),  # level 1: no CAPA
])
def test_no_capa_below_level_2_or_when_not_caused_by_us(service_db, facts, handling):
    seen, instance_id = drive(service_db, {"register_request": request(**facts),
                                           "handle_problem": [{**HANDLED_REMOTELY, **handling}]})
    assert seen == [("register_request", "service"), *LEVEL_1_2_HANDLING, *AFTER_FREE_REMOTE_FIX]
    assert outcome(service_db, instance_id)[0] == "completed"


def test_not_repaired_within_12_hours_of_arrival_a_loan_unit_is_due_within_24_hours(service_db):
    _, instance_id = drive(service_db, {"handle_problem": [{**HANDLED_REMOTELY, "on_site_needed": "yes"}]},
                           until="repair_on_site")
    [repair] = open_tasks(service_db, instance_id)
    assert repair.due_at == repair.created_at + timedelta(hours=12)
    timers.fire_due(service_db, repair.created_at + timedelta(hours=12, minutes=1))
    loan, still_repairing = sorted(open_tasks(service_db, instance_id), key=lambda t: t.name != "provide_loan_unit")
    assert (loan.name, loan.department) == ("provide_loan_unit", "service")
    assert loan.due_at == loan.created_at + timedelta(hours=24)
    assert still_repairing.id == repair.id  # the repair goes on beside the loan unit
    later = repair.created_at + timedelta(hours=13)
    do(service_db, loan, STANDARD["provide_loan_unit"][0], later)
    do(service_db, repair, STANDARD["repair_on_site"][0], later + timedelta(minutes=30))
    assert [(t.name, t.department) for t in open_tasks(service_db, instance_id)] == [("service_report", "tech_support")]


def test_unresolved_or_unconfirmed_service_is_handled_again_at_its_level(service_db):
    seen, _ = drive(service_db, {"service_report": [{**REPORT, "customer_confirmed": "no"}, REPORT]})
    names = [name for name, _ in seen]
    assert names[names.index("service_report") + 1:][:2] == ["handle_problem", "approve_handling"]
    assert names.count("service_report") == 2


def test_return_visit_waits_the_configured_working_days(service_db):
    _, instance_id = drive(service_db, {}, until="satisfaction_survey")
    [survey] = open_tasks(service_db, instance_id)
    do(service_db, survey, STANDARD["satisfaction_survey"][0], T0 + timedelta(hours=4))  # Monday 21:00 Beijing
    assert open_tasks(service_db, instance_id) == []
    instance = service_db.run(lambda s: store.get_instance(s, instance_id))
    # after hours, so three working days from Tuesday 08:30 (Beijing): Friday 08:30, 00:30 UTC
    visit_due = datetime(2026, 11, 6, 0, 30, tzinfo=timezone.utc)
    assert instance.next_due_at == visit_due
    timers.fire_due(service_db, visit_due - timedelta(minutes=1))
    assert open_tasks(service_db, instance_id) == []
    timers.fire_due(service_db, visit_due + timedelta(minutes=1))
    assert [(t.name, t.department) for t in open_tasks(service_db, instance_id)] == [("return_visit", "service")]


# --- deadlines from the settings -------------------------------------------------------------------------

def test_registration_is_due_within_24_hours_of_receipt(service_db):
    instance_id = service_db.run(lambda s: runtime.start(s, "after_sales_service", "yan.sun", T0).id)
    [register] = open_tasks(service_db, instance_id)
    assert (register.department, register.due_at) == ("service", T0 + timedelta(hours=24))


@pytest.mark.parametrize("distance, hours", [(0, 24), (300, 24), (300.5, 48), (1000, 48), (1001, 72), (4000, 72)])
def test_arrival_deadline_follows_the_distance_table(service_db, distance, hours):
    _, instance_id = drive(service_db, {"register_request": request(distance_km=str(distance)),
                                        "handle_problem": [{**HANDLED_REMOTELY, "on_site_needed": "yes"}]},
                           until="arrive_on_site")
    [arrive] = open_tasks(service_db, instance_id)
    assert (arrive.department, arrive.due_at) == ("tech_support", arrive.created_at + timedelta(hours=hours))


# --- forms -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task_name, data, problem", [
    ("register_request", {**REQUEST, "distance_km": "-5"}, "distance_km: must be at least 0"),
    ("register_request", {**REQUEST, "fault_cause": "gremlins"}, "fault_cause: must be one of"),
    ("satisfaction_survey", {"satisfaction_score": "6"}, "satisfaction_score: must be at most 5"),
    ("satisfaction_survey", {"satisfaction_score": "0"}, "satisfaction_score: must be at least 1"),
])
def test_invalid_answers_are_refused_naming_the_field_and_change_nothing(service_db, task_name, data, problem):
    _, instance_id = drive(service_db, {}, until=task_name)
    [task] = open_tasks(service_db, instance_id)
    before = fingerprint(service_db)
    with pytest.raises(FormError, match=problem):
        do(service_db, task, data, T0 + timedelta(hours=5))
    assert fingerprint(service_db) == before


# --- the problem-level table, row by row ----------------------------------------------------------------

ROWS = [  # fault_cause, quick_fix -> level, first department after registration
    ("need_not_met", "no", 4, "tech_mgmt"),
    ("hardware_design", "yes", 4, "tech_mgmt"),
    ("production_process", "yes", 3, "tech_mgmt"),
    ("quality_control", "no", 3, "tech_mgmt"),
    ("product_software", "no", 3, "tech_mgmt"),
    ("system_design", "yes", 3, "tech_mgmt"),
    ("component_quality", "yes", 2, "tech_support"),
    ("local_software", "no", 2, "tech_support"),
    ("operation_question", "no", 2, "tech_support"),
    ("transport", "no", 1, "tech_support"),
    ("handling", "yes", 1, "tech_support"),
    ("misuse", "no", 1, "tech_support"),
    ("operation_question", "yes", 1, "tech_support"),
]


@pytest.mark.parametrize("cause, quick, level, department", ROWS)
def test_problem_level_table_row(service_db, cause, quick, level, department):
    instance_id = service_db.run(lambda s: runtime.start(s, "after_sales_service", "yan.sun", T0).id)
    [register] = open_tasks(service_db, instance_id)
    do(service_db, register, {**REQUEST, "fault_cause": cause, "quick_fix": quick}, T0)
    [next_task] = open_tasks(service_db, instance_id)
    assert next_task.department == department
    assert service_db.run(lambda s: runtime.instance_data(store.get_instance(s, instance_id)))["problem_level"] == level


def test_every_answer_the_registration_form_allows_gets_exactly_one_level():
    org = Organisation.from_yaml(ORG_FILE.read_text(encoding="utf-8"), str(ORG_FILE))
    definition = next(d for d in definitions.prepare(service_files(), org, ROOT / "forms", PROCESSES / "settings.yaml")
                      if d.process_key == "after_sales_service")
    [causes] = [f.choices for f in definition.forms["service_request"].fields if f.name == "fault_cause"]
    levels = {}
    for cause in (choice.value for choice in causes):
        for quick in (True, False):
            workflow = runtime.new_workflow(definition, definition.settings)
            with clock.running_at(T0):
                workflow.do_engine_steps()
                [register] = workflow.get_tasks(state=TaskState.READY, manual=True)
                register.data.update({**REQUEST, "fault_cause": cause, "quick_fix": quick})
                register.run()
                workflow.do_engine_steps()
            levels[cause, quick] = register.children[0].data["problem_level"]
    assert levels == {(cause, quick): level for cause, _, level, _ in ROWS for quick in (True, False)
                      if cause != "operation_question"} | {("operation_question", True): 1,
                                                           ("operation_question", False): 2}


def test_a_gap_left_in_the_table_is_refused_naming_the_table_and_the_inputs_and_changes_nothing(org_db, tmp_path):
    table = (PROCESSES / "problem_level.dmn").read_text(encoding="utf-8")
    rule = re.search(r'      <rule id="rule_8">.*?</rule>\n', table, re.S).group(0)
    assert '? in ("transport", "handling", "misuse")' in rule
    (tmp_path / "problem_level.dmn").write_text(table.replace(rule, ""), encoding="utf-8")  # a process owner's edit
    deploy(org_db, service_files(table=tmp_path / "problem_level.dmn"))
    instance_id = org_db.run(lambda s: runtime.start(s, "after_sales_service", "yan.sun", T0).id)
    [register] = open_tasks(org_db, instance_id)
    before = fingerprint(org_db)
    with pytest.raises(ExpressionError) as refused:
        do(org_db, register, {**REQUEST, "fault_cause": "transport", "quick_fix": "no"}, T0)
    message = str(refused.value)
    assert "at step 'Classify problem level 判定问题等级' (classify_level)" in message
    assert ("decision table 'problem_level' (Problem level 问题等级) in dmn/problem_level.dmn has no rule for the "
            "inputs fault_cause='transport', quick_fix=False") in message
    assert fingerprint(org_db) == before
    do(org_db, register, {**REQUEST, "fault_cause": "component_quality"}, T0)  # a cause the table covers
    assert [(t.name, t.department) for t in open_tasks(org_db, instance_id)] == [("handle_problem", "tech_support")]


# --- history ---------------------------------------------------------------------------------------------

def test_history_keeps_every_step_the_level_decision_and_replays(service_db):
    _, instance_id = drive(service_db, {"register_request": request(fault_cause="local_software")})
    events = service_db.run(lambda s: audit.history(s, instance_id))
    assert events[0].kind == "instance_started" and events[-1].kind == "instance_completed"
    completed = [(e.data["task"], e.actor) for e in events if e.kind == "task_completed"]
    assert completed == [("register_request", "yan.sun"), ("handle_problem", "yu.guo"),
                         ("approve_handling", "tao.he"), ("decide_warranty", "yan.sun"),
                         ("service_report", "yu.guo"), ("satisfaction_survey", "yan.sun"),
                         ("return_visit", "yan.sun")]
    steps = [e.data["step"] for e in events if e.kind == "step_completed"]
    assert "classify_level" in steps and "wait_return_visit" in steps
    assert [e.data["timer"] for e in events if e.kind == "timer_fired"] == ["wait_return_visit"]
    assert events[-1].data["data"]["problem_level"] == 2
    assert service_db.run(lambda s: audit.verify(s, instance_id)).ok
    assert service_db.run(lambda s: replay.replay(s, instance_id)).match


# --- the diagram -----------------------------------------------------------------------------------------

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "di": "http://www.omg.org/spec/DD/20100524/DI"}


@pytest.mark.parametrize("name", ["after_sales_service.bpmn", "funding_request.bpmn"])
def test_diagram_draws_the_pool_every_lane_and_every_flow_with_its_route(name):
    root = etree.parse(str(PROCESSES / name)).getroot()
    shapes = {s.get("bpmnElement") for s in root.iterfind(".//bpmndi:BPMNShape", NS)}
    pools_and_lanes = {el.get("id") for el in root.iterfind(".//bpmn:participant", NS)} | {
        el.get("id") for el in root.iterfind(".//bpmn:lane", NS)}
    assert pools_and_lanes - shapes == set()
    routes = {e.get("bpmnElement"): len(e.findall("di:waypoint", NS)) for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    assert {f.get("id") for f in root.iterfind(".//bpmn:sequenceFlow", NS)} == set(routes)
    assert min(routes.values()) >= 2

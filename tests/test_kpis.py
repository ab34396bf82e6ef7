"""KPIs to the exact value, on complaints seeded through the engine with known times, causes and outcomes.

The seeded month is November 2026 in the reporting time zone (UTC+8); one complaint arrives at
07:00 on 1 November local time, still 31 October in UTC, and one is from October.
"""

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conftest import ROOT
from engine import corrections, demo, kpis, reports, runtime, store, timers
from engine.errors import NotFound
from test_customer_complaint import INTAKE, STANDARD
import test_after_sales_service
import test_capa
import test_customer_satisfaction
import walk
from walk import MEMBER

TZ = ZoneInfo("Asia/Shanghai")
NOVEMBER_END = datetime(2026, 12, 1, tzinfo=TZ)


def local(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=TZ)


# The CAPA's 8D steps before its action plan take one hour together (its root cause analysis), its standards
# update and closure none: the complaint's CAPA steps keep the times the figures below were computed with.
CAPA_GAPS = {"form_team": [0], "describe_problem": [0], "contain_problem": [0], "plan_actions": [0],
             "update_standards": [0], "close_capa": [0]}


def run_complaint(db, received: datetime, answers: dict, gaps: dict | None = None, leave_open: str | None = None):
    """Start a complaint at ``received`` and do its tasks in turn, each ``gaps[task]`` hours (default 1, see
    CAPA_GAPS) after the previous step; stop, leaving it open, at the task named ``leave_open``. Returns the
    instance id."""
    queues = {name: list(values) for name, values in {**STANDARD, **answers}.items()}
    waits = {name: list(values) for name, values in {**CAPA_GAPS, **(gaps or {})}.items()}
    clock = received
    instance_id = db.run(lambda s: runtime.start(s, "customer_complaint", MEMBER["sales"], clock).id)
    while True:
        tasks = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
        if not tasks or tasks[0].name == leave_open:
            return instance_id
        task = tasks[0]
        wait = waits.get(task.name) or [1]
        clock += timedelta(hours=wait.pop(0) if len(wait) > 1 else wait[0])
        org = db.run(runtime.organisation)
        actor = org.departments[task.department].head if task.role else MEMBER[task.department]
        queue = queues[task.name]
        data = queue.pop(0) if len(queue) > 1 else queue[0]
        db.run(lambda s: runtime.complete(s, task.id, actor, clock, data, password=(
            demo.signing_password(s, actor, clock) if runtime.rules_of(task).signature else None)))


def intake(**fields) -> list[dict]:
    return [{**INTAKE, "quantity_affected": "1", **fields}]


@pytest.fixture
def seeded(complaint_db):
    """Six complaints with hand-computed figures (hours from receipt in brackets).

    fast:      quality, Acme/QX-200, 2 pieces, cause process; Quality (2), CAPA closed (7), reply (11),
               closed (12), score 5
    slow:      quality, Acme/QX-200 again, 5 pieces; early-warning signed after 3 h: Quality (4); first CAPA
               process, implemented 20 days later, not effective; second CAPA material, effective; reply (496),
               closed (497), score 3
    not_ours:  quality, Beta/VF-75, customer's deadline 5 Nov; Quality (2); explained (4) = reply and closure
    delivery:  Beta/VF-75 again; reply (3); the customer never confirms: still open
    boundary:  delivery, Gamma/HMI-7, received 1 Nov 07:00 local (31 Oct UTC); reply (3), closed (4), score 4
    october:   quality, Gamma/QX-200, 15 Oct, cause process, all in October
    """
    db = complaint_db
    ids = {
        "october": run_complaint(db, local(15, 9, month=10), {"intake": intake(customer="Gamma")}),
        "boundary": run_complaint(db, local(1, 7), {
            "intake": intake(customer="Gamma", product_model="HMI-7", complaint_type="delivery"),
            "handle_delivery": [{"resolution": "Re-sent"}],
            "confirm_satisfaction": [{"satisfied": "yes", "satisfaction_score": "4", "customer_representative": "G"}]}),
        "fast": run_complaint(db, local(2, 9), {"intake": intake(customer="Acme", quantity_affected="2")}),
        "slow": run_complaint(db, local(3, 9), {
            "intake": intake(customer="acme ", quantity_affected="5"),
            "analyse_root_cause": [{"root_cause": "Solder voids", "failure_cause": "process"},
                                   {"root_cause": "Capacitor batch", "failure_cause": "material"}],
            "plan_actions": [{**STANDARD["plan_actions"][0], "planned_completion": "2026-11-10"},
                             {**STANDARD["plan_actions"][0], "planned_completion": "2026-11-30"}],
            "verify_effectiveness": [{"effective": "no", "verification_evidence": "x"},
                                     {"effective": "yes", "verification_evidence": "y"}],
            "confirm_satisfaction": [{"satisfied": "yes", "satisfaction_score": "3", "customer_representative": "A"}]},
            gaps={"approve_proceed": [3], "implement_capa": [20 * 24, 1]}),
        "not_ours": run_complaint(db, local(4, 9), {
            "intake": intake(customer="Beta", product_model="VF-75", customer_deadline="2026-11-05"),
            "quality_review": [{"facts_verified": "yes", "nonconformity": "not_reproducible",
                                "responsibility": "not_ours"}],
            "explain_to_customer": [{"explanation": "Overvoltage", "customer_accepts": "yes"}]}),
        "delivery": run_complaint(db, local(5, 9), {
            "intake": intake(customer="Beta", product_model="VF-75", complaint_type="delivery"),
            "handle_delivery": [{"resolution": "Sent"}]}, leave_open="confirm_satisfaction"),
    }
    return db, ids


def november(db, now=NOVEMBER_END):
    return db.run(lambda s: reports.monthly(s, 2026, 11, TZ, now))


def test_complaints_received_count_by_local_month_and_type(seeded):
    db, ids = seeded
    figure = november(db).figure("complaints_received")
    assert figure.value == 5
    order = ("boundary", "fast", "slow", "not_ours", "delivery")
    assert [r["instance"] for r in figure.rows] == [ids[k] for k in order]
    assert figure.tables["by type"] == [{"type": "quality", "count": 3}, {"type": "delivery", "count": 2}]


def test_quality_notice_counts_hours_to_the_review_task_against_the_forms_due_time(seeded):
    db, ids = seeded
    figure = november(db).figure("quality_notice")
    assert (figure.value, figure.met) == (0.6667, False)
    assert figure.stats == {"count": 3, "on_time": 2, "late": 1, "median_hours": 2.0, "p90_hours": 4.0}
    assert [(r["instance"], r["hours"], r["deadline"], r["deadline_rule"], r["on_time"]) for r in figure.rows] == [
        (ids["fast"], 2.0, local(2, 11), "step due", True), (ids["slow"], 4.0, local(3, 11), "step due", False),
        (ids["not_ours"], 2.0, local(4, 11), "step due", True)]


def test_response_time_uses_the_customers_deadline_else_the_default_days(seeded):
    db, ids = seeded
    figure = november(db).figure("response_time")
    assert (figure.value, figure.met) == (0.8, False)
    assert figure.stats == {"count": 5, "on_time": 4, "late": 1, "median_hours": 4.0, "p90_hours": 496.0}
    rules = {r["instance"]: (r["hours"], r["deadline_rule"], r["on_time"]) for r in figure.rows}
    assert rules[ids["not_ours"]] == (4.0, "customer 2026-11-05", True)
    assert rules[ids["slow"]] == (496.0, "15 d", False)


def test_response_time_is_broken_down_by_complaint_type(seeded):
    db, _ = seeded
    assert november(db).figure("response_time").tables["by type"] == [
        {"type": "delivery", "count": 2, "on_time": 2, "late": 0, "share": 1.0, "median_hours": 3.0},
        {"type": "quality", "count": 3, "on_time": 2, "late": 1, "share": 0.6667, "median_hours": 11.0}]


def test_closure_time_runs_from_receipt_to_instance_completed(seeded):
    db, ids = seeded
    figure = november(db).figure("closure_time")
    assert (figure.value, figure.met) == (1.0, True)
    assert figure.stats == {"count": 4, "on_time": 4, "late": 0, "median_hours": 8.0, "p90_hours": 497.0}
    assert ids["delivery"] not in [r["instance"] for r in figure.rows]


def test_capa_on_time_is_measured_against_the_first_planned_completion(seeded):
    db, ids = seeded
    figure = november(db).figure("capa_on_time")
    assert (figure.value, figure.stats) == (0.5, {"count": 2, "on_time": 1})
    assert [(r["instance"], str(r["planned"]), r["on_time"]) for r in figure.rows] == [
        (ids["fast"], "2026-12-05", True), (ids["slow"], "2026-11-10", False)]


def test_capa_effectiveness_reads_only_the_first_verification(seeded):
    db, ids = seeded
    figure = november(db).figure("capa_effectiveness")
    assert (figure.value, figure.stats) == (0.5, {"count": 2, "effective": 1})
    assert [(r["instance"], r["effective"], r["verifications"]) for r in figure.rows] == [
        (ids["fast"], True, 1), (ids["slow"], False, 2)]


def test_repeat_complaints_match_customer_and_product_ignoring_case(seeded):
    db, ids = seeded
    figure = november(db).figure("repeat_complaints")
    assert figure.value == 2
    assert [(r["instance"], r["earlier"]) for r in figure.rows] == [
        (ids["slow"], [ids["fast"]]), (ids["delivery"], [ids["not_ours"]])]


def test_failure_causes_count_the_quarter_to_date_by_the_latest_cause(seeded):
    db, ids = seeded
    figure = november(db).figure("failure_causes")
    assert figure.period == "2026-Q4 to date (2026-11-30)"
    assert figure.tables["by cause"] == [{"cause": "process", "count": 2, "cumulative_share": 0.6667},
                                         {"cause": "material", "count": 1, "cumulative_share": 1.0}]
    assert (figure.value, figure.target, figure.met) == (2, 10, True)


def test_failure_cause_over_the_quarterly_limit_is_a_miss(seeded, tmp_path):
    db, _ = seeded
    settings = tmp_path / "settings.yaml"
    text = (ROOT / "processes" / "settings.yaml").read_text(encoding="utf-8")
    settings.write_text(text.replace("target_max_repeats_per_quarter: 10", "target_max_repeats_per_quarter: 1"))
    processes = ROOT / "processes"
    db.run(lambda s: runtime.deploy(s, [processes / "customer_complaint.bpmn", processes / "capa.bpmn"],
                                    ROOT / "forms", "qiang.li", local(20, 9), settings_file=settings))
    figure = november(db).figure("failure_causes")
    assert (figure.target, figure.met) == (1, False)
    assert figure.tables["by quarter"][0] == {"quarter": "2026-Q4", "cause": "process", "count": 2, "over_limit": True}


def test_pieces_above_the_limit_count_as_occurrences_over_it(seeded):
    db, ids = seeded
    figure = november(db).figure("pieces_per_occurrence")
    assert (figure.value, figure.met) == (1, False)
    assert [(r["instance"], r["quantity"]) for r in figure.rows] == [(ids["slow"], 5)]


def test_satisfaction_averages_scores_and_counts_unanswered_confirmations(seeded):
    db, _ = seeded
    figure = november(db).figure("satisfaction")
    assert (figure.value, figure.met) == (4.0, True)
    assert figure.stats == {"responses": 3, "satisfied": 3, "asked": 4, "answered": 3, "response_rate": 0.75}


@pytest.fixture
def surveyed(seeded):
    """The six complaints plus surveys from the other two procedures that score satisfaction:

    p5_november: a customer satisfaction survey 满意度调查表 answered 2 Nov, answers 5 4 5 4 5 (average 4.6)
    p5_october:  one answered 20 Oct, answers 2 4 3 1 3 (average 2.6, a low score)
    p2_november: an after-sales service request whose survey 满意度调查表 scored 2, 2 Nov
    """
    db, ids = seeded
    test_after_sales_service.deploy(db, test_after_sales_service.service_files())
    walk.deploy_shipped(db, "customer_satisfaction")
    ids["p5_november"] = test_customer_satisfaction.survey(db).instance_id
    ids["p5_october"] = test_customer_satisfaction.survey(
        db, {"survey_by_sales": [test_customer_satisfaction.UNHAPPY]}, start=local(20, 9, month=10)).instance_id
    _, ids["p2_november"] = test_after_sales_service.drive(
        db, {"satisfaction_survey": [{"satisfaction_score": "2"}]}, until="return_visit")
    return db, ids


def test_satisfaction_counts_each_survey_of_every_procedure_once(surveyed):
    db, ids = surveyed
    figure = november(db).figure("satisfaction")
    assert (figure.value, figure.met) == (3.72, False)  # (5 + 3 + 4 + 4.6 + 2) / 5, below the 4.0 target
    assert sorted((r["source"], r["instance"], r["score"]) for r in figure.rows) == sorted([
        ("customer_complaint", ids["fast"], 5), ("customer_complaint", ids["slow"], 3),
        ("customer_complaint", ids["boundary"], 4), ("customer_satisfaction", ids["p5_november"], 4.6),
        ("after_sales_service", ids["p2_november"], 2)])
    assert figure.stats == {"responses": 5, "satisfied": 4, "asked": 6, "answered": 5, "response_rate": 0.8333}
    assert figure.tables["by source"] == [{"source": "after_sales_service", "count": 1, "average": 2},
                                          {"source": "customer_complaint", "count": 3, "average": 4},
                                          {"source": "customer_satisfaction", "count": 1, "average": 4.6}]
    assert [row["count"] for row in figure.tables["by score"]] == [0, 1, 1, 1, 2]


def test_a_survey_answered_before_the_period_counts_in_its_own_month(surveyed):
    db, ids = surveyed
    october = db.run(lambda s: reports.monthly(s, 2026, 10, TZ, NOVEMBER_END)).figure("satisfaction")
    assert october.value == 3.8  # the October complaint's 5 and the October survey's (2 + 4 + 3 + 1 + 3) / 5
    assert sorted((r["source"], r["instance"], r["score"], r["satisfied"]) for r in october.rows) == [
        ("customer_complaint", ids["october"], 5, True), ("customer_satisfaction", ids["p5_october"], 2.6, False)]


def test_each_survey_row_names_the_event_holding_its_answers(surveyed):
    db, ids = surveyed
    for row in november(db).figure("satisfaction").rows:
        event = next(e for e in walk.history(db, row["instance"]) if f"#{e.seq}" == row["events"])
        assert (event.kind, event.data["task"]) == ("task_completed", row["task"])
        assert event.at == row["answered"]


def test_open_complaint_past_its_closure_deadline_is_overdue(seeded):
    db, ids = seeded
    report = db.run(lambda s: reports.current(s, TZ, local(10, 9, month=12)))
    figure = report.figure("overdue")
    assert [(r["kind"], r["instance"], r["days_overdue"], r["bucket"]) for r in figure.rows] == [
        ("complaint", ids["delivery"], 5.0, "1-7 d")]
    assert figure.met is False


def test_escalations_count_the_workers_escalation_events_by_department(seeded):
    db, _ = seeded
    assert november(db).figure("escalations").value == 0
    stuck = run_complaint(db, local(20, 9), {}, leave_open="intake")
    timers.fire_due(db, local(20, 16))  # intake due 11:00: reminded then, to the head at 12:00, the GM at 15:00
    figure = november(db).figure("escalations")
    assert [(r["instance"], r["level"], r["to"]) for r in figure.rows] == [(stuck, 2, "jun.chen"),
                                                                           (stuck, 3, "guoqiang.feng")]
    assert figure.tables["by department"] == [{"department": "sales", "count": 2}]


def test_steps_with_due_times_are_rated_per_department(seeded):
    db, _ = seeded
    figure = november(db).figure("on_time_tasks")
    # engineering: containment (due in a day) on time twice; implementation (due by the planned completion)
    # on time for fast and for slow's second round, late for slow's first (20 days, planned 10 Nov)
    assert (figure.value, figure.stats) == (0.8824, {"count": 17, "on_time": 15})
    assert figure.tables["by department"] == [
        {"department": "engineering", "count": 5, "on_time": 4, "late": 1, "share": 0.8},
        {"department": "mgmt_rep", "count": 3, "on_time": 2, "late": 1, "share": 0.6667},
        {"department": "sales", "count": 9, "on_time": 9, "late": 0, "share": 1.0}]


def test_a_past_month_reads_no_event_after_its_end(seeded):
    db, ids = seeded
    october = db.run(lambda s: reports.monthly(s, 2026, 10, TZ, NOVEMBER_END))
    assert october.as_of == datetime(2026, 11, 1, tzinfo=TZ)
    assert [r["instance"] for r in october.figure("complaints_received").rows] == [ids["october"]]
    assert october.figure("overdue").rows == []


def test_a_month_not_yet_begun_is_refused(seeded):
    db, _ = seeded
    with pytest.raises(NotFound, match="no history for 2027-01 yet"):
        db.run(lambda s: reports.monthly(s, 2027, 1, TZ, NOVEMBER_END))


def test_trend_starts_at_the_first_month_with_a_complaint(seeded):
    db, _ = seeded
    trend = november(db).trend
    assert [(row["month"], row["received"], row["closed"]) for row in trend] == [("2026-10", 1, 1), ("2026-11", 5, 4)]


def test_a_renamed_reply_task_is_one_change_in_the_names_table(seeded, monkeypatch):
    db, _ = seeded
    monkeypatch.setattr(kpis, "NAMES", replace(kpis.NAMES, reply_tasks=("explain_to_customer",)))
    assert november(db).figure("response_time").stats["count"] == 1



def test_a_corrected_failure_cause_is_counted_as_corrected_and_traced(seeded):
    db, ids = seeded
    plan = db.run(lambda s: next(t for t in store.tasks_of_instance(s, ids["fast"]) if t.name == "analyse_root_cause"))
    db.run(lambda s: corrections.correct(s, plan.id, plan.completed_by, local(25, 9), {"failure_cause": "supplier"},
                                         "analysis found the supplier's lot"))
    figure = november(db).figure("failure_causes")
    assert {r["cause"]: r["count"] for r in figure.tables["by cause"]} == {"process": 1, "material": 1, "supplier": 1}
    [row] = [r for r in figure.rows if r["instance"] == ids["fast"]]
    assert row["events"].startswith("#") and ", corrected #" in row["events"]


def test_a_capa_started_on_its_own_counts_beside_the_complaints_capas(seeded):
    db, ids = seeded
    audit_capa = walk.walk(db, "capa", "mei.wang", test_capa.ANSWERS).instance_id  # an internal audit finding, 2 Nov
    on_time = november(db).figure("capa_on_time")
    assert (on_time.value, on_time.stats) == (0.6667, {"count": 3, "on_time": 2})
    assert (audit_capa, "2026-11-20", True) in [(r["instance"], str(r["planned"]), r["on_time"]) for r in on_time.rows]
    causes = november(db).figure("failure_causes").tables["by cause"]
    assert {row["cause"]: row["count"] for row in causes} == {"process": 3, "material": 1}

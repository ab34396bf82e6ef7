"""The demo: a fresh database with the shipped organisation and procedures, and three complaints run
along different paths (two through the CAPA procedure they call), each step a separate command by the
right person, with a moving clock.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from . import credentials, revisions, runtime, store
from .errors import EngineError
from .store import Database

_INTAKE = {
    "customer": "Hangzhou Precision Motors 杭州精密电机", "contact": "Mr. Zhao, +86 571 5550 1234",
    "product_model": "QX-200 servo drive", "serial_or_lot": "LOT-2026-1107", "order_number": "SO-88231",
    "quantity_affected": "12", "channel": "email", "customer_request": "replace,capa_report",
    "customer_deadline": "2026-12-15", "complaint_type": "quality",
    "description": "Drives trip with overcurrent fault E07 after 2 h of operation",
}
_COMMON = {
    "approve_proceed": [{"proceed": "proceed", "approval_comment": "Forward to quality 转质量部"}],
    # the CAPA (P3) the complaint calls
    "form_team": [{"capa_source": "complaint", "source_reference": "SO-88231", "team_leader": "Wang Mei 王梅",
                   "team_members": "Huang Bin 黄斌 (engineering), Song Yang 宋洋 (R&D), Liu Lei 刘磊 (quality)"}],
    "describe_problem": [{"description": "Drives trip with overcurrent fault E07 after 2 h of operation",
                          "customer": "Hangzhou Precision Motors 杭州精密电机", "product_model": "QX-200 servo drive",
                          "quantity_affected": "12", "detected_at": "customer", "detected_on": "2026-11-02"}],
    "contain_problem": [{"containment": "Quarantine LOT-2026-1107; 100% X-ray of stock", "suspect_quantity": "380",
                         "contained_on": "2026-11-03"}],
    "analyse_root_cause": [{"root_cause": "Solder voids on the power stage from a worn reflow profile",
                            "failure_cause": "process", "analysis_method": "five_why",
                            "escape_point": "X-ray sampling did not cover the power stage"}],
    "plan_actions": [{"corrective_action": "Re-qualify the reflow profile; add X-ray sampling",
                      "preventive_action": "Monthly profile check in the control plan", "action_owner": "Huang Bin 黄斌",
                      "planned_completion": "2026-12-05"}],
    "approve_capa": [{"capa_decision": "approved", "capa_approval_comment": "Approved 同意"}],
    "implement_capa": [{"actions_taken": "Profile re-qualified, X-ray sampling added", "implemented_on": "2026-12-03"}],
    "update_standards": [{"documents_updated": "work_instruction,control_plan",
                          "document_numbers": "WI-SMT-004 B/0, CP-QX200 C/1", "change_requested": "yes"}],
    "close_capa": [{"closure_summary": "Verified effective; work instruction and control plan revised",
                    "closed_on": "2026-12-04"}],
    "final_disposition": [{"disposition": "Replace 12 units; CAPA closed", "capa_report": "8D report QA-8D-0412"}],
    "countersign_engineering": [{"engineering_agrees": "yes"}],
    "countersign_rnd": [{"rnd_agrees": "yes"}],
    "reply_customer": [{"reply_summary": "Replacement shipped with the 8D report", "capa_report_sent": "yes",
                        "replied_on": "2026-12-08"}],
    "confirm_satisfaction": [{"satisfied": "yes", "satisfaction_score": "5",
                              "customer_representative": "Zhao Lei 赵磊"}],
}


@dataclass(frozen=True)
class Scenario:
    """A complaint run from intake to closure: the answer given to each task, in order of asking."""

    title: str
    key: str
    answers: dict[str, list[dict]] = field(default_factory=dict)


def _answers(**overrides: list[dict]) -> dict[str, list[dict]]:
    return {**_COMMON, "intake": [_INTAKE], **overrides}


SCENARIOS = (
    Scenario("Not our responsibility 非我方责任", "DEMO-1", _answers(
        quality_review=[{"facts_verified": "yes", "nonconformity": "not_reproducible", "responsibility": "not_ours",
                         "review_notes": "Damage from customer's overvoltage, logs attached"}],
        explain_to_customer=[{"explanation": "Drive log shows 410 V input, above the 380 V rating",
                              "real_cause": "Site supply surge", "customer_accepts": "yes"}])),
    Scenario("Ours, effective the first time 我方责任,一次有效", "DEMO-2", _answers(
        quality_review=[{"facts_verified": "yes", "nonconformity": "confirmed", "responsibility": "ours"}],
        verify_effectiveness=[{"effective": "yes", "verification_evidence": "0 voids in 200 X-rayed boards"}])),
    Scenario("Ours, first verification failed 我方责任,首次验证无效", "DEMO-3", _answers(
        quality_review=[{"facts_verified": "yes", "nonconformity": "confirmed", "responsibility": "ours"}],
        analyse_root_cause=[_COMMON["analyse_root_cause"][0],
                            {**_COMMON["analyse_root_cause"][0], "root_cause": "Voids also from a stencil aperture error"}],
        plan_actions=[_COMMON["plan_actions"][0],
                      {**_COMMON["plan_actions"][0], "corrective_action": "New stencil with corrected apertures"}],
        verify_effectiveness=[{"effective": "no", "verification_evidence": "Voids still on 7 of 200 boards"},
                              {"effective": "yes", "verification_evidence": "0 voids in 400 boards"}])),
)

_STEP = timedelta(hours=1)  # every step in time: the 2-hour rule to reach quality holds
DEMO_PASSWORD = "qproc-demo"  # every sample user's first password (sign-in and signatures)
_MAX_STEPS = 60


def prepare(db: Database, org_file: Path, calendar_file: Path, processes_dir: Path, now: datetime) -> str:
    """Load the organisation and calendar and deploy the shipped procedures (no-ops when already done); say what was done."""
    def work(session):
        org = runtime.load_organisation(session, org_file, runtime.SYSTEM_ACTOR, now)
        runtime.load_calendar(session, calendar_file, runtime.SYSTEM_ACTOR, now)
        if revisions.setting(session, "activation") != "direct":
            revisions.change_setting(session, "activation", "direct", runtime.SYSTEM_ACTOR, now,
                                     "sample database: new procedure versions take effect when deployed")
        files = sorted(p for p in processes_dir.iterdir() if p.suffix in (".bpmn", ".dmn"))
        owner = org.departments["quality"].head
        deployed = runtime.deploy(session, files, processes_dir.parent / "forms", owner, now,
                                  settings_file=processes_dir / "settings.yaml")
        return (f"Organisation: {len(org.departments)} departments, {len(org.users)} users. Deployed: "
                + ", ".join(f"{d.process_key} v{d.version}" for d in deployed))
    return db.run(work)


def _actor(org, department: str, role: str | None) -> str:
    """Who acts for a department in the demo: its head for head tasks, else its first other member."""
    dept = org.departments[department]
    if role:
        return dept.head
    return next((m for m in dept.members if m != dept.head), dept.head)


def signing_password(session, actor: str, now: datetime) -> str:
    """The demo signature password of ``actor``, set (and recorded) the first time they sign."""
    if store.get_credential(session, actor) is None:
        credentials.set_password(session, runtime.organisation(session), actor, DEMO_PASSWORD, actor, now)
    return DEMO_PASSWORD


def run_scenario(db: Database, scenario: Scenario, now: datetime) -> int:
    """Run one scenario, one transaction per step as staff would, the clock starting two days before ``now``.

    Returns the instance id. Raises EngineError if the procedure asks for a task the scenario has no answer for.
    """
    answers = {name: list(values) for name, values in scenario.answers.items()}
    clock = now - timedelta(days=2)

    def begin(session):
        starter = _actor(runtime.organisation(session), "sales", None)
        taken = store.find_instance_by_key(session, "customer_complaint", scenario.key) is not None
        key = f"{scenario.key}-{now:%Y%m%d%H%M%S}" if taken else scenario.key
        return runtime.start(session, "customer_complaint", starter, clock, business_key=key).id

    instance_id = db.run(begin)
    for _ in range(_MAX_STEPS):
        clock += _STEP

        def step(session):
            open_tasks = store.tasks_of_instance(session, instance_id, runtime.ACTIVE_TASK)
            if not open_tasks:
                return None
            task = open_tasks[0]
            if not answers.get(task.name):
                raise EngineError(f"demo scenario '{scenario.title}' has no answer for task '{task.name}'")
            actor = _actor(runtime.organisation(session), task.department, task.role)
            password = signing_password(session, actor, clock) if runtime.rules_of(task).signature else None
            runtime.complete(session, task.id, actor, clock, answers[task.name][0], password=password)
            return task.name

        answered = db.run(step)
        if answered is None:
            return instance_id
        if len(answers[answered]) > 1:  # consumed only once committed: a retried step must give the same answer
            answers[answered].pop(0)
    raise EngineError(f"demo scenario '{scenario.title}' did not finish in {_MAX_STEPS} steps")

"""The qproc command as a user meets it: CliRunner on a real database, exit codes and printed lines."""

import json

import pytest
from click.testing import CliRunner

from cli import main
from conftest import CALENDAR_FILE, ORG_FILE, ROOT, fingerprint, postgresql_only, tamper
from engine.store import SCHEMA_REVISION, Database


@pytest.fixture
def qproc(db, tmp_path, monkeypatch):
    """Run qproc in an empty folder against the test's database; returns (exit_code, output)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QPROC_USER", raising=False)
    url = db.url
    runner = CliRunner()

    def run(*args, user=None, now="2026-11-02T09:00:00+08:00"):
        prefix = ["--db", url, "--now", now] + (["--as", user] if user else [])
        result = runner.invoke(main, prefix + list(args), catch_exceptions=False)
        return result.exit_code, result.output

    run.url = url
    return run


@pytest.fixture
def deployed(qproc):
    assert qproc("org", "load", str(ORG_FILE))[0] == 0
    assert qproc("calendar", "load", str(CALENDAR_FILE))[0] == 0
    code, out = qproc("deploy", str(ROOT / "processes"), user="qiang.li")
    assert code == 0, out
    return qproc


def _quality_intake(qproc):
    code, out = qproc("start", "customer_complaint", "--key", "CC-001", user="li.zhou")
    assert code == 0, out
    intake = json.loads(qproc("tasks", "--json", user="li.zhou")[1])[0]
    data = ["--set", "customer=Hangzhou Motors", "--set", "contact=Zhao", "--set", "product_model=QX-200",
            "--set", "channel=email", "--set", "description=E07 trips", "--set", "complaint_type=quality"]
    code, out = qproc("complete", str(intake["id"]), *data, user="li.zhou")
    assert code == 0, out
    approval = json.loads(qproc("tasks", "--json", user="jian.tang")[1])[0]
    assert qproc("complete", str(approval["id"]), "--set", "proceed=proceed", user="jian.tang")[0] == 0


def test_deploy_reports_the_version(deployed):
    code, out = deployed("deploy", str(ROOT / "processes"), user="qiang.li")
    assert code == 0 and "customer_complaint: unchanged, still version 1" in out


def test_review_task_is_in_quality_inbox_and_not_in_sales(deployed):
    _quality_intake(deployed)
    quality = json.loads(deployed("tasks", "--json", user="mei.wang")[1])
    sales = json.loads(deployed("tasks", "--json", user="li.zhou")[1])
    assert [(t["task"], t["department"], t["business_key"]) for t in quality] == [("quality_review", "quality", "CC-001")]
    assert sales == []


def test_sales_user_completing_quality_review_is_refused_naming_the_department(deployed):
    _quality_intake(deployed)
    [review] = json.loads(deployed("tasks", "--json", user="mei.wang")[1])
    before = fingerprint(Database(deployed.url))
    code, out = deployed("complete", str(review["id"]), "--set", "facts_verified=yes", user="li.zhou")
    assert code == 1
    assert "belongs to department 'quality' (Quality 质量部); 'li.zhou' is not a member of it" in out
    assert fingerprint(Database(deployed.url)) == before


def test_invalid_form_data_is_refused_naming_each_field(deployed):
    _quality_intake(deployed)
    [review] = json.loads(deployed("tasks", "--json", user="mei.wang")[1])
    code, out = deployed("complete", str(review["id"]), "--set", "facts_verified=perhaps",
                         "--set", "responsibility=theirs", user="mei.wang")
    assert code == 1
    assert "facts_verified: must be yes or no" in out
    assert "nonconformity: is required" in out
    assert "responsibility: must be one of: ours, not_ours" in out


def test_acting_without_a_user_is_a_usage_error(deployed):
    code, out = deployed("tasks")
    assert code == 2 and "--as USER" in out


def test_task_shows_form_fields_and_data_so_far(deployed):
    _quality_intake(deployed)
    [review] = json.loads(deployed("tasks", "--json", user="mei.wang")[1])
    code, out = deployed("task", str(review["id"]), "--lang", "zh", user="mei.wang")
    assert code == 0
    assert "Review complaint 质量评审" in out and "responsibility" in out and "Hangzhou Motors" in out
    detail = json.loads(deployed("task", str(review["id"]), "--json", user="mei.wang")[1])
    assert "facts_verified" in detail["form_schema"]["required"]


def test_history_lists_steps_with_actor_time_and_data(deployed):
    _quality_intake(deployed)
    events = json.loads(deployed("history", "1", "--json")[1])
    completed = [e for e in events if e["kind"] == "task_completed"]
    assert completed[0]["actor"] == "li.zhou" and completed[0]["at"] == "2026-11-02T01:00:00+00:00"
    assert completed[0]["data"]["data"]["customer"] == "Hangzhou Motors"
    code, out = deployed("history", "1")
    assert code == 0 and "jian.tang" in out and "task_completed" in out


def test_unknown_instance_is_refused(deployed):
    code, out = deployed("show", "42")
    assert code == 1 and "no such instance: 42" in out


def test_claim_then_another_member_cannot_complete(deployed):
    _quality_intake(deployed)
    [review] = json.loads(deployed("tasks", "--json", user="mei.wang")[1])
    assert deployed("claim", str(review["id"]), user="mei.wang") == (0, f"Task {review['id']} 'Review complaint 质量评审' is claimed by mei.wang.\n")
    mine = json.loads(deployed("tasks", "--mine", "--json", user="mei.wang")[1])
    assert [t["id"] for t in mine] == [review["id"]]
    code, out = deployed("complete", str(review["id"]), "--set", "facts_verified=yes", user="lei.liu")
    assert code == 1 and "claimed by mei.wang" in out


def test_demo_runs_three_complaints_and_prints_their_histories(qproc):
    code, out = qproc("demo")
    assert code == 0, out
    assert out.count("History of instance") == 3
    listed = json.loads(qproc("instances", "--json")[1])
    assert [i["status"] for i in listed] == ["completed"] * 3


@pytest.fixture
def intake_done(deployed):
    """A quality complaint recorded and approved to proceed: instance 1, its review open."""
    _quality_intake(deployed)
    return deployed


def test_audit_verify_reports_an_intact_history(intake_done):
    code, out = intake_done("audit", "verify")
    assert code == 0 and "Verified 2 chains" in out and ": intact." in out and "Anchor" in out


def test_audit_verify_names_a_tampered_event_and_exits_1(intake_done):
    tamper(Database(intake_done.url), "DELETE FROM events WHERE instance_id = 1 AND seq = 7")
    code, out = intake_done("audit", "verify", "--instance", "1")
    assert code == 1 and "BROKEN instance 1, event #7: missing: the history jumps from #6 to #8 (deleted)" in out


def test_audit_replay_all_on_the_demo_reports_every_instance_match(qproc):
    assert qproc("demo")[0] == 0
    code, out = qproc("audit", "replay", "--all")
    assert code == 0 and "Replay summary" in out and "DIVERGES" not in out
    results = json.loads(qproc("audit", "replay", "--all", "--json")[1])
    assert [(r["instance"], r["match"]) for r in results] == [(1, True), (2, True), (3, True)]


def test_audit_replay_reports_an_altered_instance(intake_done):
    tamper(Database(intake_done.url), "UPDATE tasks SET completed_by = 'hao.wu' WHERE id = 1")
    code, out = intake_done("audit", "replay", "1")
    assert code == 1 and "Instance 1 (CC-001): DIVERGES: stored task row 1 'intake' differs" in out


def test_audit_export_writes_a_readable_page(intake_done, tmp_path):
    code, out = intake_done("audit", "export", "1", "--out", str(tmp_path / "pack"), user="qiang.li")
    assert code == 0 and "history: intact; replay: MATCH" in out
    assert "Evidence pack" in (tmp_path / "pack" / "evidence.html").read_text(encoding="utf-8")


def _to_capa_approval(qproc):
    _quality_intake(qproc)
    [review] = json.loads(qproc("tasks", "--json", user="mei.wang")[1])
    assert qproc("complete", str(review["id"]), "--set", "facts_verified=yes", "--set", "nonconformity=confirmed",
                 "--set", "responsibility=ours", user="mei.wang")[0] == 0
    capa_steps = [  # the CAPA the complaint calls, up to its action plan
        ("mei.wang", "capa_source=complaint", "team_leader=Wang Mei", "team_members=Huang Bin"),
        ("mei.wang", "description=E07", "product_model=QX-200", "quantity_affected=12", "detected_at=customer"),
        ("bin.huang", "containment=quarantine", "suspect_quantity=300", "contained_on=2026-11-02"),
        ("bin.huang", "root_cause=voids", "failure_cause=process"),
        ("bin.huang", "corrective_action=reflow", "action_owner=Huang Bin", "planned_completion=2026-12-05")]
    for user, *answers in capa_steps:
        [task] = json.loads(qproc("tasks", "--json", user=user)[1])
        assert qproc("complete", str(task["id"]), *[arg for a in answers for arg in ("--set", a)], user=user)[0] == 0
    [approval] = json.loads(qproc("tasks", "--json", user="jian.tang")[1])
    return approval["id"]


def test_signing_takes_the_password_from_a_file_and_history_shows_the_signature(deployed, tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("mr-signature-1\n", encoding="utf-8")
    monkeypatch.setenv("QPROC_NEW_PASSWORD", "mr-signature-1")
    assert deployed("user", "set-password", user="jian.tang") == (0, "Signature password of jian.tang is set.\n")
    approval = _to_capa_approval(deployed)
    code, out = deployed("complete", str(approval), "--set", "capa_decision=approved", "--password-file", str(secret),
                         user="jian.tang")
    assert code == 0, out
    signed = [e for e in json.loads(deployed("history", "1", "--json")[1]) if e["kind"] == "task_signed"]
    assert [(e["data"]["printed_name"], e["data"]["meaning"]) for e in signed] == [("Tang Jian 唐建", "approved")]
    assert "signed by" in deployed("history", "1")[1]


def test_signing_with_a_wrong_password_fails_and_is_recorded(deployed, monkeypatch):
    monkeypatch.setenv("QPROC_NEW_PASSWORD", "mr-signature-1")
    deployed("user", "set-password", user="jian.tang")
    approval = _to_capa_approval(deployed)
    monkeypatch.setenv("QPROC_PASSWORD", "guessing-game")
    code, out = deployed("complete", str(approval), "--set", "capa_decision=approved", user="jian.tang")
    assert code == 1 and "wrong password for 'jian.tang'" in out
    events = json.loads(deployed("history", "1", "--json")[1])
    assert events[-1]["kind"] == "action_refused" and events[-1]["actor"] == "jian.tang"


def test_correct_records_old_and_new_values_shown_in_history(deployed):
    _quality_intake(deployed)
    code, out = deployed("correct", "1", "--set", "contact=Zhao Lei", "--reason", "full name", user="li.zhou")
    assert code == 0, out
    [fix] = [e for e in json.loads(deployed("history", "1", "--json")[1]) if e["kind"] == "data_corrected"]
    assert fix["data"]["changes"] == {"contact": {"old": "Zhao", "new": "Zhao Lei"}}
    assert "contact: Zhao →" in deployed("history", "1")[1]


def test_task_shows_its_signature_and_separation_of_duties(deployed):
    approval = _to_capa_approval(deployed)
    code, out = deployed("task", str(approval), user="jian.tang")
    assert code == 0
    assert "Electronic signature: field:capa_decision" in out
    assert "Separation of duties: not by whoever did plan_actions in this instance" in out


def test_set_password_asks_twice_without_echoing(deployed, monkeypatch):
    monkeypatch.delenv("QPROC_NEW_PASSWORD", raising=False)
    result = CliRunner().invoke(main, ["--db", deployed.url, "--as", "jian.tang", "user", "set-password"],
                                input="mr-signature-1\nmr-signature-1\n")
    assert result.exit_code == 0 and "is set" in result.output and "mr-signature-1" not in result.output


def test_calendar_deadline_on_the_friday_before_qingming(deployed):
    code, out = deployed("calendar", "deadline", "2026-04-03T10:00+08:00", "P2D", "--working")
    assert (code, out) == (0, "2026-04-08T10:00:00+08:00\n")


def test_tasks_show_the_due_time_and_mark_overdue_ones(deployed):
    deployed("start", "customer_complaint", "--key", "CC-009", user="li.zhou")
    [task] = json.loads(deployed("tasks", "--json", user="li.zhou", now="2026-11-02T10:30:00+08:00")[1])
    assert task["due_at"] == "2026-11-02T03:00:00+00:00" and task["overdue"] is False
    [task] = json.loads(deployed("tasks", "--json", user="li.zhou", now="2026-11-02T11:30:00+08:00")[1])
    assert task["overdue"] is True


def test_timers_fire_twice_at_the_same_instant_escalates_once(deployed):
    deployed("start", "customer_complaint", "--key", "CC-010", user="li.zhou")
    code, out = deployed("timers", "fire", "--now", "2026-11-02T12:30:00+08:00")
    assert code == 0 and "task 1 of instance 1: escalated to jun.chen (level 2)" in out and "2 done" in out
    code, out = deployed("timers", "fire", "--now", "2026-11-02T12:30:00+08:00")
    assert code == 0 and out.endswith("0 done at 2026-11-02T12:30:00+08:00.\n")
    events = json.loads(deployed("history", "1", "--json")[1])
    assert [e["kind"] for e in events].count("task_escalated") == 1


def test_escalated_task_is_in_the_new_owners_inbox_with_the_reason(deployed):
    deployed("start", "customer_complaint", "--key", "CC-011", user="li.zhou")
    deployed("timers", "fire", "--now", "2026-11-02T16:00:00+08:00")
    [task] = json.loads(deployed("tasks", "--json", user="guoqiang.feng")[1])
    assert task["escalated_to"] == "guoqiang.feng" and task["escalation_level"] == 3
    assert "escalated to the head of General manager 总经理 (guoqiang.feng)" in task["escalation_reason"]
    code, out = deployed("history", "1")
    assert code == 0 and "task_escalated" in out and "guoqiang.feng" in out


def test_overdue_lists_each_late_task_with_its_lateness_and_owner(deployed):
    deployed("start", "customer_complaint", "--key", "CC-012", user="li.zhou")
    deployed("timers", "fire", "--now", "2026-11-02T12:30:00+08:00")
    [row] = json.loads(deployed("overdue", "--json", now="2026-11-02T12:30:00+08:00")[1])
    assert (row["task"], row["late"], row["owner"]) == ("intake", "1h 30m", "jun.chen")


def test_unclaim_puts_task_back(deployed):
    deployed("start", "customer_complaint", user="li.zhou")
    intake = json.loads(deployed("tasks", "--json", user="li.zhou")[1])[0]
    assert deployed("claim", str(intake["id"]), user="li.zhou")[0] == 0
    code, out = deployed("unclaim", str(intake["id"]), user="li.zhou")
    assert code == 0 and "is back in the sales inbox" in out


def test_task_of_another_department_is_not_shown(deployed):
    deployed("start", "customer_complaint", user="li.zhou")
    intake = json.loads(deployed("tasks", "--json", user="li.zhou")[1])[0]
    code, out = deployed("task", str(intake["id"]), user="mei.wang")
    assert code == 1 and "'mei.wang' is not a member of department 'sales'" in out


def test_complete_with_a_stale_revision_is_refused_as_changed_by_someone_else(deployed):
    _quality_intake(deployed)
    [review] = json.loads(deployed("tasks", "--json", user="mei.wang")[1])
    assert deployed("claim", str(review["id"]), user="mei.wang")[0] == 0
    code, out = deployed("complete", str(review["id"]), "--revision", str(review["revision"]),
                         "--set", "facts_verified=yes", user="mei.wang")
    assert code == 1
    assert f"instance {review['instance']} was changed by someone else since you read it" in out
    assert "last change: task_claimed by mei.wang" in out


def _qproc_on(url, *args):
    result = CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_db_upgrade_creates_the_schema_then_has_nothing_to_do(empty_url):
    shown = Database(empty_url).name
    assert _qproc_on(empty_url, "db", "upgrade") == (0, f"{shown}: upgraded from empty to schema revision "
                                                        f"{SCHEMA_REVISION}.\n")
    assert _qproc_on(empty_url, "db", "upgrade") == (0, f"{shown}: already at schema revision "
                                                        f"{SCHEMA_REVISION}; nothing to do.\n")
    assert _qproc_on(empty_url, "db", "current") == (0, f"{shown}: schema revision {SCHEMA_REVISION}, "
                                                        f"the one this qproc needs.\n")


@postgresql_only
def test_db_current_on_an_empty_server_database_says_what_to_run(empty_url):
    shown = Database(empty_url).name
    assert _qproc_on(empty_url, "db", "current") == (1, f"Error: database {shown} has no qproc tables yet: "
                                                        f"run 'qproc db upgrade' to create them\n")


def test_first_command_in_an_empty_folder_needs_no_setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QPROC_DB", raising=False)
    result = CliRunner().invoke(main, ["instances", "--json"], catch_exceptions=False)
    assert (result.exit_code, result.output) == (0, "[]\n")
    assert (tmp_path / "qproc.db").exists()


def test_a_completion_that_would_be_refused_does_not_ask_for_the_password_first(deployed, monkeypatch):
    monkeypatch.delenv("QPROC_PASSWORD", raising=False)
    approval = _to_capa_approval(deployed)
    code, out = deployed("complete", str(approval), "--set", "capa_decision=approved", user="hong.han")
    assert code == 1 and "Password" not in out and "head" in out
    code, out = deployed("complete", str(approval), "--set", "capa_decision=perhaps", user="jian.tang")
    assert code == 1 and "Password" not in out and "capa_decision" in out

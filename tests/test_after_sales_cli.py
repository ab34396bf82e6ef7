"""After-sales service requests scripted through the qproc command, as the service centre and the
technical departments would type it: which inbox each request lands in, by its problem level."""

import json
import re

import pytest
from click.testing import CliRunner

from cli import main
from conftest import CALENDAR_FILE, ORG_FILE, ROOT

LEVEL_1 = ["fault_cause=operation_question", "quick_fix=yes"]
LEVEL_3 = ["fault_cause=production_process", "quick_fix=no"]


@pytest.fixture
def qproc(db, tmp_path, monkeypatch):
    """qproc in an empty folder on the test's database, the shipped procedures deployed; returns run(*args, user)."""
    monkeypatch.chdir(tmp_path)
    for name in ("QPROC_USER", "QPROC_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def run(*args, user=None, exit_code=0):
        prefix = ["--db", db.url, "--now", "2026-11-02T09:00:00+08:00"] + (["--as", user] if user else [])
        result = runner.invoke(main, prefix + list(args), catch_exceptions=False)
        assert result.exit_code == exit_code, result.output
        return result.output

    run("org", "load", str(ORG_FILE))
    run("calendar", "load", str(CALENDAR_FILE))
    run("deploy", str(ROOT / "processes"), user="qiang.li")
    return run


def inbox(qproc, user):
    return [(t["task"], t["department"], t["business_key"]) for t in json.loads(qproc("tasks", "--json", user=user))]


def register(qproc, key, facts, exit_code=0):
    """The service centre starts a request and registers it with the symptom facts ``facts``; returns the output."""
    if not any(t["business_key"] == key for t in json.loads(qproc("tasks", "--json", user="yan.sun"))):
        qproc("start", "after_sales_service", "--key", key, user="yan.sun")
    [task] = [t for t in json.loads(qproc("tasks", "--json", user="yan.sun")) if t["business_key"] == key]
    fields = ["customer=Wuxi Water Works", "contact=Qian", "product_model=QX-200", "serial_number=SN-7",
              "channel=phone", "symptom=Trips after 2 h", "warranty_status=in_warranty", "site_address=Wuxi",
              "distance_km=120", *facts]
    return qproc("complete", str(task["id"]), *[arg for field in fields for arg in ("--set", field)],
                 user="yan.sun", exit_code=exit_code)


def complete_first(qproc, user, *fields):
    task = json.loads(qproc("tasks", "--json", user=user))[0]
    return qproc("complete", str(task["id"]), *[arg for field in fields for arg in ("--set", field)], user=user)


def test_level_1_request_stays_with_technical_support(qproc):
    register(qproc, "SR-1", LEVEL_1)
    assert inbox(qproc, "yu.guo") == [("handle_problem", "tech_support", "SR-1")]
    assert inbox(qproc, "jing.zheng") == [] and inbox(qproc, "yang.song") == []
    complete_first(qproc, "yu.guo", "diagnosis=Wrong parameter", "solution=Reset by phone", "on_site_needed=no",
                   "caused_by_us=no")
    assert inbox(qproc, "tao.he") == [("approve_handling", "tech_support", "SR-1")]


def test_level_3_request_goes_to_technical_management_then_rnd_and_opens_a_capa(qproc):
    register(qproc, "SR-3", LEVEL_3)
    assert inbox(qproc, "yu.guo") == []
    assert inbox(qproc, "jing.zheng") == [("confirm_problem", "tech_mgmt", "SR-3")]
    complete_first(qproc, "jing.zheng", "reproduced=yes", "confirmation_findings=Solder voids on the bench")
    assert inbox(qproc, "yang.song") == [("solve_problem", "rnd", "SR-3")]
    assert json.loads(qproc("show", "1", "--json", user="yang.song"))["data"]["problem_level"] == 3
    complete_first(qproc, "yang.song", "rnd_root_cause=Reflow profile drift", "rnd_solution=New reflow profile",
                   "solution_kind=design_change", "on_site_needed=no")
    complete_first(qproc, "yan.sun", "in_warranty=yes", "used_per_manual=yes")
    complete_first(qproc, "yu.guo", "work_done=Board replaced", "hours_spent=3", "resolved=yes",
                   "customer_confirmed=yes", "customer_representative=Qian")
    out = complete_first(qproc, "yan.sun", "satisfaction_score=4")
    assert "Form the team" in out and "→ quality" in out
    assert inbox(qproc, "mei.wang") == [("form_team", "quality", "SR-3")]  # the CAPA, in Quality's inbox
    assert inbox(qproc, "yan.sun") == []  # the return visit waits for its day


def test_a_gap_in_a_redeployed_table_is_refused_and_the_request_stays_to_register(qproc, tmp_path):
    table = (ROOT / "processes" / "problem_level.dmn").read_text(encoding="utf-8")
    (tmp_path / "problem_level.dmn").write_text(re.sub(r'      <rule id="rule_8">.*?</rule>\n', "", table, flags=re.S),
                                                encoding="utf-8")
    qproc("config", "set", "activation", "direct", "--reason", "the edited table takes effect at once", user="qiang.li")
    out = qproc("deploy", str(ROOT / "processes" / "after_sales_service.bpmn"), str(tmp_path / "problem_level.dmn"),
                str(ROOT / "processes" / "capa.bpmn"), user="qiang.li")
    assert "after_sales_service: deployed as version 2" in out
    out = register(qproc, "SR-X", ["fault_cause=transport", "quick_fix=no"], exit_code=1)
    assert ("decision table 'problem_level' (Problem level 问题等级) in dmn/problem_level.dmn has no rule for the "
            "inputs fault_cause='transport', quick_fix=False") in " ".join(out.split())
    assert inbox(qproc, "yan.sun") == [("register_request", "service", "SR-X")]
    register(qproc, "SR-X", LEVEL_3)
    assert inbox(qproc, "jing.zheng") == [("confirm_problem", "tech_mgmt", "SR-X")]

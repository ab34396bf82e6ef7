"""qproc lint: every problem of a set of BPMN/DMN files, as file:line: message, and deploy refusing the errors.

Each check has a fixture in tests/processes/lint/ (clean.bpmn with one kind of problem put in); the
tests assert the exact lines a user reads. Foreign-modeler files (tests/processes/foreign/) get
messages, never a traceback.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from cli import main
from conftest import FIXTURES, ORG_FILE, ROOT, T0, fingerprint
from engine import definitions, runtime
from engine.directory import Organisation
from engine.errors import DefinitionError
from engine.lint import diagram

LINT = FIXTURES / "processes" / "lint"
FOREIGN = FIXTURES / "processes" / "foreign"
FORMS = FIXTURES / "forms"
ORG = Organisation.from_yaml(ORG_FILE.read_text(encoding="utf-8"))


def lint(*paths: Path, forms: Path = FORMS) -> list[str]:
    """The problems qproc lint prints for ``paths`` checked together, one string each."""
    return [str(p) for p in definitions.check(list(paths), ORG, forms).problems]


def line(path: Path, needle: str) -> int:
    """The line of ``path`` where ``needle`` first occurs."""
    text = path.read_text(encoding="utf-8")
    assert needle in text, f"{needle!r} not in {path.name}"
    return text[:text.index(needle)].count("\n") + 1


def at(name: str, needle: str) -> str:
    """``file:line`` of ``needle`` in the lint fixture ``name``, as lint prints it."""
    return f"{LINT / name}:{line(LINT / name, needle)}"


def node(name: str, element_id: str) -> str:
    """``file:line`` of the element with ``element_id`` in the lint fixture ``name``."""
    return at(name, f'id="{element_id}"')


def test_clean_fixture_has_no_problem():
    assert lint(LINT / "clean.bpmn") == []


def test_user_task_lane_and_form_problems_are_each_reported():
    assert lint(LINT / "user_tasks.bpmn") == [
        f"{node('user_tasks.bpmn', 'lane_quality')}: lane 'Purchasing 采购部' names no department of the "
        f"organisation (known: {', '.join(ORG.departments)})",
        f"{node('user_tasks.bpmn', 'request')}: user task 'request' names form 'no_such_form', but "
        f"{FORMS / 'no_such_form.yaml'} does not exist",
        f"{node('user_tasks.bpmn', 'review')}: user task 'review' is in no lane, so no department can be given it",
    ]


def test_gateway_flow_without_condition_or_default_is_reported():
    assert lint(LINT / "gateway_flows.bpmn") == [
        f"{node('gateway_flows.bpmn', 'f_small')}: sequence flow 'f_small' leaves exclusive gateway "
        "'gw_amount' without a condition and is not its default: add a condition or make it the default"]


def test_refused_condition_and_unquoted_timer_are_reported():
    assert lint(LINT / "expressions.bpmn") == [
        f"{at('expressions.bpmn', 'PT2H<')}: timer 'wait_a_day': PT2H is read as a variable name; write \"PT2H\" "
        "with quotes (timer values are Python expressions)",
        f"{at('expressions.bpmn', '__import__')}: condition of sequence flow 'f_large': expression "
        "\"__import__('os').system('x')\" uses '__import__': names starting with '_' are not allowed in qproc "
        "expressions",
    ]


def test_quoted_timer_with_days_after_the_t_is_reported_with_the_fix():
    assert lint(LINT / "timer_iso.bpmn") == [
        f"{at('timer_iso.bpmn', 'PT1D')}: timer 'wait_a_day': \"PT1D\" is not a valid ISO 8601 duration: "
        "write \"P1D\" (days, weeks and years go before the T)"]


def test_unresolved_call_activity_and_business_rule_task_are_reported():
    assert lint(LINT / "references.bpmn") == [
        f"{node('references.bpmn', 'call_capa')}: call activity 'call_capa' calls process 'capa_missing', "
        "which no file checked with it defines (processes: lint_check)",
        f"{node('references.bpmn', 'decide_level')}: business rule task 'decide_level' calls decision "
        "'missing_decision', which no DMN file checked with it defines (decisions: none)",
    ]


def test_decisions_of_the_dmn_files_checked_together_are_the_ones_offered():
    assert "decisions: severity_gaps" in " ".join(lint(LINT / "references.bpmn", LINT / "severity_gaps.dmn"))


def test_missing_diagram_shape_edge_and_dangling_shape_are_warnings():
    assert lint(LINT / "diagram.bpmn") == [
        f"{node('diagram.bpmn', 'review')}: warning: user task 'review' has no diagram shape (bpmndi:BPMNShape)",
        f"{node('diagram.bpmn', 'f_review')}: warning: sequence flow 'f_review' has no diagram edge "
        "(bpmndi:BPMNEdge)",
        f"{node('diagram.bpmn', 'ghost_di')}: warning: diagram shape 'ghost_di' refers to 'ghost', which is "
        "no element of this file",
    ]


def test_unreachable_node_and_dead_end_are_warnings():
    where = at("reachability.bpmn", 'id="orphan"')
    assert lint(LINT / "reachability.bpmn") == [
        f"{where}: warning: task 'orphan' cannot be reached from any start event",
        f"{where}: warning: task 'orphan' has no outgoing flow and is not an end event: the path stops there",
    ]


def test_decision_table_gaps_are_reported_as_uncovered_combinations():
    where = at("severity_gaps.dmn", "<decisionTable")
    assert lint(LINT / "severity_gaps.dmn") == [
        f"{where}: warning: decision 'severity_gaps': no rule matches severity = \"low\", amount >= 10",
        f"{where}: warning: decision 'severity_gaps': no rule matches severity = \"medium\"",
    ]


def test_overlapping_rules_of_a_unique_table_are_an_error():
    assert lint(LINT / "severity_overlap.dmn") == [
        f"{node('severity_overlap.dmn', 'rule_large')}: decision 'severity_overlap': rules 1 and 2 both match "
        "severity = \"high\", amount >= 10, but the hit policy is UNIQUE"]


def test_problems_of_several_files_come_sorted_by_file_and_line():
    problems = definitions.check(sorted(LINT.iterdir()), ORG, FORMS).problems
    assert [(p.file, p.line) for p in problems] == sorted((p.file, p.line) for p in problems)
    assert len({p.file for p in problems}) == 9  # every fixture but clean.bpmn


def test_a_process_id_defined_in_two_files_is_an_error():
    assert f"{node('diagram.bpmn', 'lint_check')}: process 'lint_check' is also defined in {LINT / 'clean.bpmn'}: " \
        "process ids must be unique among the files checked together" in lint(LINT / "clean.bpmn", LINT / "diagram.bpmn")


# --- the command ----------------------------------------------------------------------------

@pytest.fixture
def qproc_lint(tmp_path, monkeypatch):
    """Run ``qproc lint`` in an empty folder with no database; returns (exit code, output)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QPROC_DB", raising=False)

    def run(*args):
        result = CliRunner().invoke(main, ["lint", *args], catch_exceptions=False)
        return result.exit_code, result.output
    return run


def test_lint_command_exits_0_with_one_line_on_a_clean_file(qproc_lint):
    code, output = qproc_lint(str(LINT / "clean.bpmn"), "--forms", str(FORMS))
    assert (code, output) == (0, f"1 file, clean (organisation: {ROOT / 'org.yaml'})\n")


def test_lint_command_prints_each_problem_and_exits_1(qproc_lint):
    code, output = qproc_lint(str(LINT / "user_tasks.bpmn"), str(LINT / "severity_gaps.dmn"), "--forms", str(FORMS))
    lines = output.splitlines()
    assert code == 1
    assert lines[:-1] == lint(LINT / "severity_gaps.dmn", LINT / "user_tasks.bpmn")
    assert lines[-1].startswith("2 files, 3 errors, 2 warnings")


def test_lint_command_json_lists_problems_with_file_line_and_severity(qproc_lint):
    code, output = qproc_lint(str(LINT / "gateway_flows.bpmn"), "--forms", str(FORMS), "--json")
    report = json.loads(output)
    assert code == 1 and report["clean"] is False
    assert report["problems"] == [{"file": str(LINT / "gateway_flows.bpmn"),
                                   "line": line(LINT / "gateway_flows.bpmn", 'id="f_small"'), "severity": "error",
                                   "message": "sequence flow 'f_small' leaves exclusive gateway 'gw_amount' without "
                                              "a condition and is not its default: add a condition or make it the "
                                              "default"}]


def test_lint_uses_the_databases_organisation_when_there_is_one(org_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--db", org_db.url, "lint", str(LINT / "clean.bpmn"), "--forms", str(FORMS)],
                                catch_exceptions=False)
    assert result.exit_code == 0 and "(organisation: database " in result.output


# --- deploy runs the same checks ------------------------------------------------------------

def test_deploy_refuses_a_file_lint_finds_errors_in_and_changes_nothing(org_db):
    before = fingerprint(org_db)
    with pytest.raises(DefinitionError) as caught:
        org_db.run(lambda s: runtime.deploy(s, [LINT / "user_tasks.bpmn"], FORMS, "qiang.li", T0))
    assert str(caught.value).splitlines() == lint(LINT / "user_tasks.bpmn")
    assert (caught.value.file_name, caught.value.line) == (str(LINT / "user_tasks.bpmn"),
                                                           line(LINT / "user_tasks.bpmn", 'id="lane_quality"'))
    assert fingerprint(org_db) == before


def test_deploy_allows_a_file_with_only_warnings(org_db):
    [result] = org_db.run(lambda s: runtime.deploy(s, [LINT / "diagram.bpmn"], FORMS, "qiang.li", T0))
    assert (result.process_key, result.created) == ("lint_check", True)


def test_deploy_command_names_file_and_line_of_the_refused_file(org_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = fingerprint(org_db)
    result = CliRunner().invoke(main, ["--db", org_db.url, "--as", "qiang.li", "deploy", str(LINT / "timer_iso.bpmn"),
                                       "--forms", str(FORMS)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"{at('timer_iso.bpmn', 'PT1D')}: timer 'wait_a_day': \"PT1D\" is not a valid ISO 8601" in result.output
    assert fingerprint(org_db) == before


# --- files from other modelers ----------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(FOREIGN.glob("*.*")), ids=lambda p: p.name)
def test_foreign_modeler_file_gets_messages_not_a_traceback(path: Path, qproc_lint):
    code, output = qproc_lint(str(path), "--forms", str(FORMS))
    assert code == 1 and "Traceback" not in output and "could not finish" not in output
    assert all(row.startswith(str(path)) for row in output.splitlines()[:-1])


def test_camunda_expressions_and_missing_lanes_are_explained():
    problems = "\n".join(lint(FOREIGN / "camunda7_invoice.bpmn"))
    assert "user task 'approve_invoice' is in no lane, so no department can be given it" in problems
    assert "user task 'approve_invoice' names no form (add the extension property 'form')" in problems
    assert "serviceTask 'send_reminder': A Service Task must have an operator." in problems
    assert "PT1D is read as a variable name; write \"P1D\" with quotes" in problems
    assert "expression '${approved}' is not valid Python" in problems
    assert "sequence flow 'flow_no' leaves exclusive gateway 'approved_decision' without a condition" in problems


def test_feel_cells_of_a_camunda_decision_are_explained():
    problems = "\n".join(lint(FOREIGN / "camunda_dmn13_discount.dmn"))
    assert "cell '[1..10]' is a FEEL range; cells are Python: write e.g. '1 <= ? <= 10'" in problems
    assert "cell '\"gold\",\"silver\"' is a tuple, which the input never equals" in problems


# --- the shipped procedures -----------------------------------------------------------------

SHIPPED = sorted(p for p in (ROOT / "processes").iterdir() if p.suffix in (".bpmn", ".dmn"))


def test_shipped_processes_lint_clean():
    checked = definitions.check(SHIPPED, ORG, ROOT / "forms", ROOT / "processes" / "settings.yaml")
    assert [str(p) for p in checked.problems] == []


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.suffix == ".bpmn"], ids=lambda p: p.name)
def test_every_shipped_bpmn_has_a_shape_per_flow_node_and_an_edge_per_flow(path: Path):
    assert diagram.check(str(path), etree.parse(str(path)).getroot()) == []


# --- checks that keep going ---------------------------------------------------------------------

def test_a_due_property_with_days_after_the_t_is_reported_with_the_fix(tmp_path):
    path = tmp_path / "task_deadlines.bpmn"
    path.write_text((FIXTURES / "processes" / "task_deadlines.bpmn").read_text(encoding="utf-8")
                    .replace('name="due" value="PT2H"', 'name="due" value="PT1D"'), encoding="utf-8")
    problems = [p for p in lint(path) if "warning" not in p]
    assert len(problems) == 1 and problems[0].endswith("property due 'PT1D' is not an ISO 8601 duration: write P1D")


def test_user_tasks_are_checked_even_where_spiff_gives_up_on_the_process(tmp_path):
    path = tmp_path / "user_tasks.bpmn"
    path.write_text((LINT / "user_tasks.bpmn").read_text(encoding="utf-8").replace(
        '<bpmn:intermediateCatchEvent id="wait_a_day" name="A day later">',
        '<bpmn:serviceTask id="wait_a_day" name="A day later">').replace(
        "</bpmn:intermediateCatchEvent>", "</bpmn:serviceTask>"), encoding="utf-8")
    spiff_gave_up = lint(path)
    assert any("serviceTask 'wait_a_day': A Service Task must have an operator" in p for p in spiff_gave_up)
    assert [p.split(": ", 1)[1] for p in spiff_gave_up if "user task" in p or "lane" in p] == \
        [p.split(": ", 1)[1] for p in lint(LINT / "user_tasks.bpmn")]

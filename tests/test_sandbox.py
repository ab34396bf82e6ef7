"""The expression sandbox: what runs, what is refused and why, and how it behaves inside SpiffWorkflow."""

from datetime import timedelta
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from engine import sandbox
from engine.sandbox import SandboxEnvironment, SandboxViolation, check_expression, make_script_engine

FORBIDDEN = [
    pytest.param("eval", "__import__('os')", "names starting with '_' are not allowed", id="__import__"),
    pytest.param("exec", "import os", "imports are not allowed", id="import"),
    pytest.param("eval", "open('/etc/passwd')", "uses 'open', which is not available", id="open"),
    pytest.param("eval", "().__class__.__base__.__subclasses__()", "names starting with '_' are not allowed",
                 id="subclass-escape"),
    pytest.param("eval", "getattr(x, '__class__')", "uses 'getattr', which is not available", id="getattr"),
    pytest.param("eval", "eval('1')", "uses 'eval', which is not available", id="eval"),
    pytest.param("exec", "exec('x=1')", "uses 'exec', which is not available", id="exec"),
    pytest.param("eval", "globals()", "uses 'globals', which is not available", id="globals"),
]

GOOD = [
    pytest.param("eval", "severity <= 2", id="comparison"),
    pytest.param("eval", 'x in ["a", "b"]', id="membership"),
    pytest.param("eval", "not effective", id="negation"),
    pytest.param("exec", "total = 0\nfor n in numbers:\n    total += n", id="loop-with-augmented-assignment"),
    pytest.param("exec", "deadline = datetime(2030, 1, 1) + timedelta(hours=2)", id="datetime-arithmetic"),
]

GATEWAY_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                  id="sandbox_gateway_definitions" targetNamespace="http://qproc.test/sandbox">
  <bpmn:process id="triage" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to_compute" sourceRef="start" targetRef="compute"/>
    <bpmn:scriptTask id="compute" name="Compute priority">
      <bpmn:script>priority = "high" if severity &lt;= 2 else "low"</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="to_route" sourceRef="compute" targetRef="route"/>
    <bpmn:exclusiveGateway id="route" default="to_filed"/>
    <bpmn:sequenceFlow id="to_escalated" sourceRef="route" targetRef="escalated">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">CONDITION</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_filed" sourceRef="route" targetRef="filed"/>
    <bpmn:endEvent id="escalated"/>
    <bpmn:endEvent id="filed"/>
  </bpmn:process>
</bpmn:definitions>
"""


def run_triage(condition, **data):
    """Run the triage process, whose gateway escalates when ``condition`` holds, on ``data``."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(GATEWAY_PROCESS.replace("CONDITION", escape(condition)).encode())
    workflow = BpmnWorkflow(parser.get_spec("triage"), script_engine=make_script_engine())
    workflow.task_tree.data.update(data)
    workflow.do_engine_steps()
    return workflow


@pytest.mark.parametrize("expression, data", [
    pytest.param("severity <= 2", {"severity": 2}, id="comparison"),
    pytest.param('x in ["a", "b"]', {"x": "a"}, id="membership-in-literal"),
    pytest.param("not effective", {"effective": False}, id="negation"),
    pytest.param("complaint_type in approval_required_for", {"complaint_type": "refund",
                                                             "approval_required_for": ["refund", "legal"]},
                 id="membership-in-task-data"),
])
def test_condition_over_task_data_evaluates(expression, data):
    assert SandboxEnvironment().evaluate(expression, data) is True


def test_evaluate_leaves_task_data_unchanged():
    data = {"a": 1}
    assert SandboxEnvironment().evaluate("(b := 2) + a", data) == 3
    assert data == {"a": 1}


def test_task_data_may_use_the_name_of_a_provided_helper():
    assert SandboxEnvironment().evaluate("date == '2030-01-01'", {"date": "2030-01-01"}) is True


def test_script_assigns_variables_into_task_data():
    data = {"severity": 1}
    SandboxEnvironment().execute('priority = "high" if severity <= 2 else "low"\ncount = 3', data)
    assert data == {"severity": 1, "priority": "high", "count": 3}


def test_script_leaves_no_builtins_or_helpers_in_task_data():
    data = {"items": [1, 2]}
    script = "def twice(v):\n    return 2 * v\nsize = len(items)\ndoubled = twice(size)\ntripled = triple(size)"
    SandboxEnvironment().execute(script, data, external_context={"triple": lambda v: 3 * v})
    assert data == {"items": [1, 2], "size": 2, "doubled": 4, "tripled": 6}


def test_script_augmented_assignment_works():
    data = {"numbers": [1, 2, 3], "names": ["a"]}
    SandboxEnvironment().execute("total = 0\nfor n in numbers:\n    total += n\nnames += ['b']", data)
    assert data["total"] == 6
    assert data["names"] == ["a", "b"]


def test_script_list_and_dict_comprehensions_work():
    data = {"numbers": [1, 2, 3]}
    SandboxEnvironment().execute("squares = [n * n for n in numbers]\nby_name = {str(n): n for n in numbers}", data)
    assert data["squares"] == [1, 4, 9]
    assert data["by_name"] == {"1": 1, "2": 2, "3": 3}


def test_script_can_build_a_timedelta():
    data = {}
    SandboxEnvironment().execute("wait = timedelta(hours=2)", data)
    assert data == {"wait": timedelta(hours=2)}


@pytest.mark.parametrize("mode, source, reason", FORBIDDEN)
def test_forbidden_code_is_refused_with_the_reason(mode, source, reason):
    environment = SandboxEnvironment()
    run = environment.evaluate if mode == "eval" else environment.execute
    with pytest.raises(SandboxViolation, match=reason):
        run(source, {"x": 1})


def test_refused_script_runs_no_part_of_itself():
    data = {}
    with pytest.raises(SandboxViolation):
        SandboxEnvironment().execute("started = True\nopen('/etc/passwd')", data)
    assert data == {}


def test_same_source_is_compiled_once(monkeypatch):
    real_compile = sandbox.compile_restricted_eval
    compiled = []
    monkeypatch.setattr(sandbox, "compile_restricted_eval", lambda tree: compiled.append(tree) or real_compile(tree))
    sandbox._compile.cache_clear()
    for severity in range(3):
        SandboxEnvironment().evaluate("severity <= 2", {"severity": severity})
    assert len(compiled) == 1


@pytest.mark.parametrize("severity, end", [(1, "escalated"), (5, "filed")])
def test_gateway_with_harmless_condition_routes_on_task_data(severity, end):
    workflow = run_triage('priority == "high"', severity=severity)
    assert workflow.is_completed()
    assert end in {task.task_spec.bpmn_id for task in workflow.get_tasks(state=TaskState.COMPLETED)}


def test_gateway_with_forbidden_condition_raises_workflow_task_exception():
    with pytest.raises(WorkflowTaskException) as raised:
        run_triage("__import__('os').getcwd() == \"\"", severity=1)
    assert raised.value.error_type == "SandboxViolation"
    assert "names starting with '_' are not allowed" in str(raised.value.__context__)


def test_script_task_assignment_lands_in_task_data():
    workflow = run_triage('priority == "high"', severity=1)
    [compute] = workflow.get_tasks(spec_name="compute")
    assert compute.data["priority"] == "high"
    assert "__builtins__" not in compute.data


@pytest.mark.parametrize("mode, source, reason", FORBIDDEN)
def test_check_expression_reports_forbidden_code(mode, source, reason):
    problems = check_expression(source, mode)
    assert problems
    assert any(reason in problem for problem in problems)


@pytest.mark.parametrize("mode, source", GOOD)
def test_check_expression_accepts_good_code(mode, source):
    assert check_expression(source, mode) == []


def test_check_expression_reports_syntax_error_as_message():
    assert check_expression("severity <=", "eval") == ["expression 'severity <=' is not valid Python: invalid syntax (line 1)"]

"""The injected clock: Spiff's timers and qproc expressions read the command's time, never the wall clock."""

from datetime import datetime, timedelta, timezone

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from conftest import CALENDAR_FILE
from engine import clock
from engine.calendars import BusinessCalendar
from engine.sandbox import SandboxEnvironment, check_expression, make_script_engine

T = datetime(2031, 5, 6, 7, 8, tzinfo=timezone.utc)  # a moment the wall clock will not show during the tests
CHINA = BusinessCalendar.from_yaml(CALENDAR_FILE.read_text(encoding="utf-8"))
WAIT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="d" targetNamespace="http://qproc.test">
  <bpmn:process id="wait" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="pause"/>
    <bpmn:intermediateCatchEvent id="pause">
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT2H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="pause" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def waiting_workflow() -> BpmnWorkflow:
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(WAIT.encode())
    workflow = BpmnWorkflow(parser.get_spec("wait"), script_engine=make_script_engine())
    with clock.running_at(T):
        workflow.do_engine_steps()
    return workflow


def test_spiff_duration_timer_counts_from_the_injected_time():
    workflow = waiting_workflow()
    [pause] = [t for t in workflow.get_tasks(state=TaskState.WAITING) if t.task_spec.name == "pause"]
    assert datetime.fromisoformat(pause.internal_data["event_value"]) == T + timedelta(hours=2)


def test_spiff_timer_fires_only_once_the_injected_clock_passes_it():
    workflow = waiting_workflow()
    with clock.running_at(T + timedelta(hours=1, minutes=59)):
        workflow.refresh_timers()
        workflow.do_engine_steps()
    assert not workflow.is_completed()
    with clock.running_at(T + timedelta(hours=2, seconds=1)):
        workflow.refresh_timers()
        workflow.do_engine_steps()
    assert workflow.is_completed()


def test_spiff_timer_outside_a_command_refuses_to_read_the_wall_clock():
    workflow = waiting_workflow()
    with pytest.raises(clock.ClockNotSet):
        workflow.refresh_timers()


def test_expressions_see_now_as_the_injected_time():
    with clock.running_at(T):
        assert SandboxEnvironment().evaluate("now + timedelta(hours=1)", {}) == T + timedelta(hours=1)


def test_deadline_helper_counts_working_time_on_the_calendar():
    friday_before_qingming = datetime(2026, 4, 3, 2, 0, tzinfo=timezone.utc)  # 10:00 in Beijing
    with clock.running_at(friday_before_qingming, lambda: CHINA):
        assert SandboxEnvironment().evaluate('deadline("P2D", working=True)', {}) == "2026-04-08T02:00:00+00:00"


@pytest.mark.parametrize("source", ["datetime.now()", "date.today()", "datetime.utcnow()", "d.today()"])
def test_reading_the_wall_clock_is_refused(source):
    [problem] = check_expression(source, "eval")
    assert "reads the wall clock" in problem and "'now'" in problem


def test_an_alias_does_not_get_past_the_wall_clock_refusal():
    assert "reads the wall clock" in check_expression("clock = datetime\nx = clock.now()", "exec")[0]

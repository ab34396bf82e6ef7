"""Snapshots: a workflow's state saved without its spec, restored onto it; older snapshots still load."""

from pathlib import Path

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from conftest import FIXTURES, ORG_FILE
from engine import definitions, snapshot
from engine.directory import Organisation
from engine.sandbox import make_script_engine

OLD_SNAPSHOT = FIXTURES / "snapshots" / "gateway_condition_at_review.json"  # plain JSON, as first stored


@pytest.fixture(scope="module")
def definition():
    org = Organisation.from_yaml(ORG_FILE.read_text(encoding="utf-8"), str(ORG_FILE))
    [found] = definitions.prepare([FIXTURES / "processes" / "gateway_condition.bpmn"], org, FIXTURES / "forms")
    return found


def _load(text: str, definition) -> BpmnWorkflow:
    return snapshot.load(text, definition.spec, definition.subprocess_specs, make_script_engine())


def _ready(workflow: BpmnWorkflow) -> list[str]:
    return [t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.READY, manual=True)]


def test_plain_json_snapshot_from_before_compression_loads_and_finishes(definition):
    workflow = _load(Path(OLD_SNAPSHOT).read_text(encoding="utf-8"), definition)
    for expected in ("review", "approve"):
        [task] = workflow.get_tasks(state=TaskState.READY, manual=True)
        assert task.task_spec.bpmn_id == expected
        task.data.update({"approved": True})
        task.run()
        workflow.do_engine_steps()
    assert workflow.is_completed()


def test_dump_is_deflated_and_restores_the_same_state(definition):
    workflow = _load(Path(OLD_SNAPSHOT).read_text(encoding="utf-8"), definition)
    text = snapshot.dump(workflow)
    assert text.startswith("qz1:") and len(text) < len(OLD_SNAPSHOT.read_text(encoding="utf-8")) / 2
    assert _ready(_load(text, definition)) == ["review"]

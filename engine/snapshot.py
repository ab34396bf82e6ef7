"""Snapshots: a running workflow's state as JSON, without the spec it runs on.

SpiffWorkflow's serializer embeds the whole process spec in every serialized instance; qproc stores
each deployed spec once (as its source files) and keeps only the instance's own state per
instance, which is about a third of the size and half the save/load time. :func:`dump` writes that
state; :func:`load` restores it against the Definition the instance is pinned to.

The JSON is stored deflated and base64-encoded behind a ``qz1:`` prefix: mostly task ids and
repeated keys, it shrinks to about a third (an 8-task instance: 5.1 KB to 1.5 KB) for some 30 µs
per save. Plain-JSON snapshots written before that still load.
"""

import base64
import json
import zlib
from copy import deepcopy
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

FORMAT = "qproc-snapshot/1"
_DEFLATED = "qz1:"


class _SpecFreeWorkflowConverter(BpmnWorkflowConverter):
    """Spiff's workflow converter minus the spec: the spec is handed in when restoring."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None, script_engine=None):
        workflow = self.target_class(spec, subprocess_specs, script_engine=script_engine, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _make_serializer() -> BpmnWorkflowSerializer:
    config = deepcopy(SPIFF_CONFIG)
    config[BpmnWorkflow] = _SpecFreeWorkflowConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


_SERIALIZER = _make_serializer()


def dump(workflow: BpmnWorkflow) -> str:
    """The workflow's state (tasks, data, events; no spec) as a JSON string tagged with its format."""
    registry = _SERIALIZER.registry
    registry._encoder_mode = True  # lets Spiff's encoder serialise datetimes in task data, as serialize_json does
    try:
        dct = _SERIALIZER.to_dict(workflow)
    finally:
        registry._encoder_mode = False
    dct["format"] = FORMAT
    dct[_SERIALIZER.VERSION_KEY] = _SERIALIZER.VERSION
    text = json.dumps(dct, cls=_SERIALIZER._encoder_cls, separators=(",", ":"), ensure_ascii=False)
    return _DEFLATED + base64.b64encode(zlib.compress(text.encode("utf-8"), 1)).decode("ascii")


def load(state: str, spec, subprocess_specs, script_engine) -> BpmnWorkflow:
    """Restore a workflow from :func:`dump` output onto the given spec, running expressions in ``script_engine``."""
    dct = json.loads(as_json(state), cls=_SERIALIZER.json_decoder_cls)
    if dct.pop("format", None) != FORMAT:
        raise ValueError("not a qproc workflow snapshot")
    _SERIALIZER.migrate(dct)
    return _SERIALIZER.registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs, script_engine=script_engine)


def as_json(state: str) -> str:
    """The JSON text of a stored snapshot, deflated or not (plain JSON is returned as it is)."""
    if state.startswith(_DEFLATED):
        return zlib.decompress(base64.b64decode(state[len(_DEFLATED):])).decode("utf-8")
    return state

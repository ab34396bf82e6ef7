"""Every shipped procedure opens as a readable diagram: full diagram interchange, each step drawn in its lane."""

import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC", "di": "http://www.omg.org/spec/DD/20100524/DI"}
NOT_DRAWN = {"sequenceFlow", "laneSet", "documentation", "extensionElements", "ioSpecification", "property"}
SHIPPED = sorted((ROOT / "processes").glob("*.bpmn"))


def _bounds(shape):
    box = shape.find("dc:Bounds", NS)
    return tuple(float(box.get(k)) for k in ("x", "y", "width", "height"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_step_lane_and_flow_is_drawn(path):
    root = ET.parse(path).getroot()
    shapes = {s.get("bpmnElement"): s for s in root.iterfind(".//bpmndi:BPMNShape", NS)}
    edges = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    for process in root.iterfind("bpmn:process", NS):
        nodes = [e.get("id") for e in process if e.tag.split("}")[1] not in NOT_DRAWN]
        lanes = [lane.get("id") for lane in process.iterfind(".//bpmn:lane", NS)]
        flows = [f.get("id") for f in process.iterfind("bpmn:sequenceFlow", NS)]
        assert [n for n in nodes + lanes if n not in shapes] == []
        assert [f for f in flows if f not in edges or len(edges[f].findall("di:waypoint", NS)) < 2] == []
    participants = [p.get("id") for p in root.iterfind(".//bpmn:participant", NS)]
    assert [p for p in participants if p not in shapes] == []


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_each_step_is_drawn_inside_its_lane(path):
    root = ET.parse(path).getroot()
    shapes = {s.get("bpmnElement"): s for s in root.iterfind(".//bpmndi:BPMNShape", NS)}
    outside = []
    for lane in root.iterfind(".//bpmn:lane", NS):
        lx, ly, lw, lh = _bounds(shapes[lane.get("id")])
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            x, y, w, h = _bounds(shapes[ref.text])
            if not (lx <= x + w / 2 <= lx + lw and ly <= y + h / 2 <= ly + lh):
                outside.append((ref.text, lane.get("name")))
    assert outside == []

"""Every shipped procedure opens as a readable diagram: each step is drawn inside the lane it belongs to
(that every step and flow is drawn at all is lint's diagram check, tested in test_lint)."""

import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC"}
SHIPPED = sorted((ROOT / "processes").glob("*.bpmn"))


def _bounds(shape):
    box = shape.find("dc:Bounds", NS)
    return tuple(float(box.get(k)) for k in ("x", "y", "width", "height"))


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

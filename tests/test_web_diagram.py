"""The BPMN diagram drawn as SVG from the diagram interchange, with an instance's progress marked."""

import xml.etree.ElementTree as ET

from conftest import FIXTURES, ROOT
from web.diagram import render, wrap

COMPLAINT = (ROOT / "processes" / "customer_complaint.bpmn").read_text(encoding="utf-8")
SVG = "{http://www.w3.org/2000/svg}"


def shapes(svg: str) -> dict[str, str]:
    """Each drawn element's id and its CSS class."""
    root = ET.fromstring(svg)
    return {g.get("data-id"): g.get("class") for g in root.iter(f"{SVG}g") if g.get("data-id")}


def test_every_shape_and_edge_of_the_interchange_is_drawn():
    drawn = shapes(render(COMPLAINT, "customer_complaint"))
    assert COMPLAINT.count("<bpmndi:BPMNEdge") + COMPLAINT.count("<bpmndi:BPMNShape") == len(drawn) + 6
    assert {"intake", "gw_type", "complaint_closed", "flow_type_quality"} <= set(drawn)


def test_done_and_current_steps_are_marked():
    drawn = shapes(render(COMPLAINT, "customer_complaint", done={"complaint_received", "intake"},
                          current={"approve_proceed"}))
    assert drawn["intake"] == "shape userTask done" and drawn["approve_proceed"] == "shape userTask current"
    assert drawn["quality_review"] == "shape userTask "


def test_current_wins_over_done_when_a_loop_returns_to_a_step():
    drawn = shapes(render(COMPLAINT, "customer_complaint", done={"intake"}, current={"intake"}))
    assert drawn["intake"] == "shape userTask current"


def test_only_the_branch_a_gateway_chose_is_marked_taken():
    drawn = shapes(render(COMPLAINT, "customer_complaint", done={"gw_approval", "approve_proceed", "gw_to_review"},
                          chosen={"gw_approval": {"approve_proceed"}}))
    assert drawn["flow_approval_needed"] == "edge done" and drawn["flow_approval_not_needed"] == "edge"


def test_open_task_links_to_its_page():
    svg = render(COMPLAINT, "customer_complaint", current={"intake"}, links={"intake": "/tasks/7"})
    assert '<a href="/tasks/7"><g class="shape userTask current" data-id="intake">' in svg


def test_names_are_escaped():
    svg = render(COMPLAINT.replace("Record complaint", "Record &lt;script&gt;"), "customer_complaint")
    assert "Record &lt;script&gt;" in svg and "<script>" not in svg


def test_file_without_diagram_interchange_draws_nothing():
    text = (FIXTURES / "processes" / "gateway_condition.bpmn").read_text(encoding="utf-8")
    assert "BPMNDiagram" not in text and render(text, "gateway_condition") == ""


def test_chinese_names_break_between_characters_and_keep_the_space_after_english():
    assert wrap("Record complaint 登记客诉处理单", 90) == ["Record", "complaint 登记", "客诉处理单"]

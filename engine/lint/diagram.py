"""Diagram interchange: every flow node, lane and participant has a shape, every sequence flow an edge.

Without them the file runs but cannot be drawn in bpmn.io or Camunda Modeler, so these are
warnings: ``qproc lint`` reports them and ``qproc deploy`` does not refuse them.
"""

from . import WARNING, Problem
from .bpmn import BPMNDI, describe, flow_nodes, is_bpmn, line, local_name, scopes, sequence_flows

_DC = "http://www.omg.org/spec/DD/20100524/DC"
_DI = "http://www.omg.org/spec/DD/20100524/DI"


def check(file: str, root) -> list[Problem]:
    """Missing shapes and edges, shapes without bounds, edges without waypoints, references to nothing."""
    needs_shape = [el for scope in scopes(root) for el in flow_nodes(scope)]
    needs_shape += [el for el in root.iter() if is_bpmn(el, "lane", "participant")]
    needs_edge = [flow for scope in scopes(root) for flow in sequence_flows(scope)]
    if not (needs_shape or needs_edge):
        return []
    if next(root.iter(f"{{{BPMNDI}}}BPMNDiagram"), None) is None:
        return [Problem(file, line(root), f"has no diagram (bpmndi:BPMNDiagram): none of its {len(needs_shape)} "
                        f"nodes and {len(needs_edge)} flows can be drawn", WARNING)]
    ids = {el.get("id") for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    shapes = list(root.iter(f"{{{BPMNDI}}}BPMNShape"))
    edges = list(root.iter(f"{{{BPMNDI}}}BPMNEdge"))
    shaped = {s.get("bpmnElement") for s in shapes}
    edged = {e.get("bpmnElement") for e in edges}
    problems = [Problem(file, line(el), f"{describe(el)} has no diagram shape (bpmndi:BPMNShape)", WARNING)
                for el in needs_shape if el.get("id") not in shaped]
    problems += [Problem(file, line(el), f"sequence flow '{el.get('id')}' has no diagram edge (bpmndi:BPMNEdge)",
                         WARNING) for el in needs_edge if el.get("id") not in edged]
    for drawn in shapes + edges:
        target = drawn.get("bpmnElement")
        if target not in ids:
            problems.append(Problem(file, line(drawn), f"diagram {local_name(drawn)[4:].lower()} "
                                    f"'{drawn.get('id') or '?'}' refers to '{target or ''}', which is no element "
                                    "of this file", WARNING))
    problems += [Problem(file, line(s), f"diagram shape '{s.get('id') or '?'}' has no bounds (dc:Bounds)", WARNING)
                 for s in shapes if s.find(f"{{{_DC}}}Bounds") is None]
    problems += [Problem(file, line(e), f"diagram edge '{e.get('id') or '?'}' has no waypoints (di:waypoint)",
                         WARNING) for e in edges if e.find(f"{{{_DI}}}waypoint") is None]
    return problems

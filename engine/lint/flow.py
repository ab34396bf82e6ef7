"""Sequence flows: each joins two nodes of its process, gateways that choose say how, every node is on a path.

Errors (the engine would fail or guess): a flow whose end is no node of its process; a flow that
leaves an exclusive or inclusive gateway with several ways out without a condition and without
being its default; a default that does not leave its gateway. Warnings (the file runs, but part of
it never will): a node no start event leads to, and a node other than an end event with no way out.
"""

from collections import defaultdict

from . import WARNING, Problem
from .bpmn import child, describe, flow_nodes, line, local_name, scopes, sequence_flows, text

_CHOOSING_GATEWAYS = ("exclusiveGateway", "inclusiveGateway")


def check(file: str, root) -> list[Problem]:
    """Broken flows, gateway flows without condition or default, unreachable nodes and dead ends."""
    problems: list[Problem] = []
    for scope in scopes(root):
        nodes = {el.get("id"): el for el in flow_nodes(scope) if el.get("id")}
        outgoing: dict[str, list] = defaultdict(list)
        for flow in sequence_flows(scope):
            problems += _broken_ends(file, scope, flow, nodes)
            outgoing[flow.get("sourceRef")].append(flow)
        for node in nodes.values():
            if local_name(node) in _CHOOSING_GATEWAYS:
                problems += _gateway(file, node, outgoing[node.get("id")])
        problems += _unreachable(file, nodes, outgoing)
        problems += [Problem(file, line(node), f"{describe(node)} has no outgoing flow and is not an end event: "
                             "the path stops there", WARNING)
                     for node_id, node in nodes.items() if not outgoing[node_id] and _needs_way_out(node)]
    return problems


def _broken_ends(file: str, scope, flow, nodes: dict) -> list[Problem]:
    where = describe(scope)
    return [Problem(file, line(flow), f"sequence flow '{flow.get('id')}' has {end} '{flow.get(attr) or ''}', "
                    f"which is no node of {where}")
            for end, attr in (("source", "sourceRef"), ("target", "targetRef")) if flow.get(attr) not in nodes]


def _gateway(file: str, gateway, leaving: list) -> list[Problem]:
    default = gateway.get("default")
    problems = []
    if default and default not in {f.get("id") for f in leaving}:
        problems.append(Problem(file, line(gateway), f"{describe(gateway)} names default flow '{default}', "
                                "which does not leave it"))
    if len(leaving) > 1:
        problems += [Problem(file, line(flow), f"sequence flow '{flow.get('id')}' leaves {describe(gateway)} "
                             "without a condition and is not its default: add a condition or make it the default")
                     for flow in leaving
                     if flow.get("id") != default and not text(child(flow, "conditionExpression"))]
    return problems


def _needs_way_out(node) -> bool:
    kind = local_name(node)
    return not (kind == "endEvent" or _runs_apart(node)
                or (kind == "intermediateThrowEvent" and child(node, "linkEventDefinition") is not None))


def _runs_apart(node) -> bool:
    """Nodes the normal flow never reaches on purpose: event sub-processes and compensation handlers."""
    return (node.get("triggeredByEvent") == "true" or node.get("isForCompensation") == "true"
            or (local_name(node) == "boundaryEvent" and child(node, "compensateEventDefinition") is not None))


def _link_name(node, kind: str) -> str | None:
    link = child(node, "linkEventDefinition")
    return (link.get("name") or link.get("id")) if local_name(node) == kind and link is not None else None


def _unreachable(file: str, nodes: dict, outgoing: dict) -> list[Problem]:
    """Nodes no path from a start event reaches (boundary events count from their task, links from their throw)."""
    reached = {node_id for node_id, node in nodes.items() if local_name(node) == "startEvent" or _runs_apart(node)}
    if not any(local_name(node) == "startEvent" for node in nodes.values()):
        return []  # no start to count from: Spiff's own parse reports a missing start event
    catches_by_link = defaultdict(list)
    for node_id, node in nodes.items():
        if _link_name(node, "intermediateCatchEvent"):
            catches_by_link[_link_name(node, "intermediateCatchEvent")].append(node_id)
    attached = defaultdict(list)
    for node_id, node in nodes.items():
        if local_name(node) == "boundaryEvent":
            attached[node.get("attachedToRef")].append(node_id)
    todo = list(reached)
    while todo:
        node_id = todo.pop()
        node = nodes.get(node_id)
        following = [f.get("targetRef") for f in outgoing.get(node_id, [])] + attached.get(node_id, [])
        if node is not None and _link_name(node, "intermediateThrowEvent"):
            following += catches_by_link[_link_name(node, "intermediateThrowEvent")]
        for target in following:
            if target in nodes and target not in reached:
                reached.add(target)
                todo.append(target)
    return [Problem(file, line(node), f"{describe(node)} cannot be reached from any start event", WARNING)
            for node_id, node in nodes.items() if node_id not in reached]



"""What the lint checks share about BPMN 2.0 XML: namespaces, element kinds, and how to name an element.

Every helper here accepts any element lxml can give (comments and processing instructions
included) and any attribute being absent, because the files come from any modeler.
"""

import re

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"

ACTIVITIES = frozenset({"task", "userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask",
                        "sendTask", "receiveTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"})
EVENTS = frozenset({"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"})
GATEWAYS = frozenset({"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway",
                      "complexGateway"})
FLOW_NODES = ACTIVITIES | EVENTS | GATEWAYS
SCOPES = frozenset({"process", "subProcess", "transaction", "adHocSubProcess"})


def local_name(element) -> str:
    """The element's tag without its namespace; '' for comments and processing instructions."""
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def is_bpmn(element, *names: str) -> bool:
    """Whether ``element`` is in the BPMN model namespace (and, when ``names`` are given, one of them)."""
    return (isinstance(element.tag, str) and etree.QName(element).namespace == BPMN
            and (not names or local_name(element) in names))


def line(element) -> int:
    """The element's line in its file; 0 when unknown."""
    return element.sourceline or 0


def text(element) -> str:
    """The element's text, stripped; '' when it has none."""
    return (element.text or "").strip() if element is not None else ""


def describe(element) -> str:
    """How a message names an element: its kind in words and its id, e.g. ``user task 'review'``."""
    kind = re.sub(r"(?<!^)(?=[A-Z])", " ", local_name(element)).lower()
    return f"{kind} '{element.get('id') or '?'}'"


def scopes(root) -> list:
    """Every process and (embedded) sub-process: the elements whose children are flow nodes and flows."""
    return [el for el in root.iter() if is_bpmn(el, *SCOPES)]


def flow_nodes(scope) -> list:
    """The flow nodes directly inside a process or sub-process."""
    return [el for el in scope if is_bpmn(el, *FLOW_NODES)]


def sequence_flows(scope) -> list:
    """The sequence flows directly inside a process or sub-process."""
    return [el for el in scope if is_bpmn(el, "sequenceFlow")]


def child(element, name: str, namespace: str = BPMN):
    """The first child named ``name`` (in ``namespace``), or None."""
    return element.find(f"{{{namespace}}}{name}")


def spiff_extension(element, name: str):
    """The spiffworkflow extension element ``name`` of ``element`` (e.g. calledDecisionId, preScript), or None."""
    extensions = child(element, "extensionElements")
    return extensions.find(f"{{{SPIFF}}}{name}") if extensions is not None else None

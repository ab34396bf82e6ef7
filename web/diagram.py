"""The BPMN diagram of a process drawn as SVG from its diagram interchange (BPMN DI), on the server.

:func:`render` reads the shapes and edges a modeller saved in the BPMN file (``bpmndi:BPMNShape``
bounds, ``bpmndi:BPMNEdge`` waypoints) and draws pools, lanes, tasks, events, gateways and
flows with their names, marking the steps an instance has completed and the ones it waits at.
No script runs in the browser: the page embeds the SVG as it is.
"""

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import engine

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
}
_ACTIVITIES = {"task", "userTask", "scriptTask", "serviceTask", "businessRuleTask", "manualTask", "sendTask",
               "receiveTask", "callActivity", "subProcess", "transaction"}
_EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
_GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
_FONT = 11
_LINE = 13
_MARGIN = 20

STYLE = """
.bpmn text { font-family: "Noto Sans", "Noto Sans CJK SC", "Helvetica Neue", Arial, sans-serif; fill: #1f2933; }
.bpmn .pool, .bpmn .lane { fill: none; stroke: #9aa5b1; stroke-width: 1; }
.bpmn .band { fill: #f5f7fa; stroke: #9aa5b1; stroke-width: 1; }
.bpmn .node { fill: #ffffff; stroke: #52606d; stroke-width: 1.5; }
.bpmn .call { stroke-width: 3.5; }
.bpmn .end { stroke-width: 3.5; }
.bpmn .mark { fill: none; stroke: #52606d; stroke-width: 1.5; }
.bpmn .mark-solid { fill: #52606d; stroke: none; }
.bpmn .flow { fill: none; stroke: #7b8794; stroke-width: 1.3; }
.bpmn .flow.message { stroke-dasharray: 6 4; }
.bpmn .flow.association { stroke-dasharray: 2 3; }
.bpmn .done .node { fill: #e3f4e8; stroke: #2f855a; }
.bpmn .flow.done { stroke: #2f855a; stroke-width: 2; }
.bpmn .current .node { fill: #fff1db; stroke: #dd6b20; stroke-width: 3.5; }
.bpmn .current text { font-weight: 600; }
.bpmn .label { font-size: 10px; fill: #3e4c59; }
.bpmn .head { fill: #7b8794; }
.bpmn .edge.done .head { fill: #2f855a; }
"""


@dataclass(frozen=True)
class Box:
    """A rectangle in diagram coordinates."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _box(element: ET.Element | None) -> Box | None:
    if element is None:
        return None
    return Box(*(float(element.get(k, 0)) for k in ("x", "y", "width", "height")))


def _text_width(text: str, size: float = _FONT) -> float:
    """Rough rendered width: CJK characters are about one em, Latin about 0.55 em."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.56 for ch in text)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Words of Latin text and single CJK characters (the pieces a line may break between), each with
    whether a space stood before it."""
    out: list[tuple[str, bool]] = []
    for word in text.split():
        spaced, run = True, ""
        for ch in word:
            if ord(ch) > 0x2E80:
                if run:
                    out.append((run, spaced))
                    spaced, run = False, ""
                out.append((ch, spaced))
                spaced = False
            else:
                run += ch
        if run:
            out.append((run, spaced))
    return out


def wrap(text: str, width: float, size: float = _FONT) -> list[str]:
    """Break a name into lines no wider than ``width`` (a single over-long word keeps its own line)."""
    lines: list[str] = []
    line = ""
    for token, spaced in _tokens(text):
        candidate = line + (" " if line and spaced else "") + token
        if line and _text_width(candidate, size) > width:
            lines.append(line)
            line = token
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def _text_block(lines: list[str], cx: float, top: float, size: float = _FONT, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    spans = "".join(f'<tspan x="{cx:.1f}" y="{top + (i + 1) * (size + 2):.1f}">{escape(line)}</tspan>'
                    for i, line in enumerate(lines))
    return f'<text{klass} text-anchor="middle" font-size="{size}">{spans}</text>'


def _centered_text(name: str, box: Box, size: float = _FONT) -> str:
    lines = wrap(name, box.w - 8, size)
    top = box.cy - len(lines) * (size + 2) / 2 - 2
    return _text_block(lines, box.cx, top, size)


def _outside_label(name: str, label: Box | None, anchor: Box, below: bool = True) -> str:
    if not name:
        return ""
    if label is None:
        width = max(90.0, anchor.w)
        label = Box(anchor.cx - width / 2, anchor.y + anchor.h + 4 if below else anchor.y - 30, width, 26)
    lines = wrap(name, max(label.w * 1.2, 60.0), 10)
    return _text_block(lines, label.cx, label.y - 2, 10, "label")


def _band_label(name: str, box: Box) -> str:
    """A pool or lane name written upwards in the band at its left edge."""
    lines = wrap(name, box.h - 10, 12)
    cx, cy = box.x + 15, box.cy
    spans = "".join(f'<tspan x="{cx:.1f}" dy="{0 if i == 0 else 14}">{escape(line)}</tspan>'
                    for i, line in enumerate(lines))
    offset = -(len(lines) - 1) * 7 + 4
    return (f'<text font-size="12" text-anchor="middle" transform="rotate(-90 {cx:.1f} {cy:.1f})" '
            f'y="{cy + offset:.1f}">{spans}</text>')


def _activity(kind: str, box: Box, name: str) -> str:
    cls = "node call" if kind == "callActivity" else "node"
    parts = [f'<rect class="{cls}" x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}" rx="10" ry="10"/>']
    x, y = box.x + 6, box.y + 6
    if kind == "userTask":
        parts.append(f'<circle class="mark" cx="{x + 6}" cy="{y + 4}" r="3.5"/>'
                     f'<path class="mark" d="M{x} {y + 15} q0 -7 6 -7 q6 0 6 7 z"/>')
    elif kind == "scriptTask":
        parts.append(f'<rect class="mark" x="{x}" y="{y}" width="11" height="14" rx="2"/>'
                     + "".join(f'<line class="mark" x1="{x + 2.5}" y1="{y + 4 + 3 * i}" x2="{x + 8.5}" '
                               f'y2="{y + 4 + 3 * i}"/>' for i in range(3)))
    elif kind == "businessRuleTask":
        parts.append(f'<rect class="mark" x="{x}" y="{y}" width="15" height="11"/>'
                     f'<line class="mark" x1="{x}" y1="{y + 4}" x2="{x + 15}" y2="{y + 4}"/>'
                     f'<line class="mark" x1="{x + 5}" y1="{y + 4}" x2="{x + 5}" y2="{y + 11}"/>')
    elif kind in ("callActivity", "subProcess"):
        bx, by = box.cx - 6, box.y + box.h - 15
        parts.append(f'<rect class="mark" x="{bx}" y="{by}" width="12" height="12"/>'
                     f'<path class="mark" d="M{bx + 6} {by + 3} v6 M{bx + 3} {by + 6} h6"/>')
    parts.append(_centered_text(name, Box(box.x, box.y + 4, box.w, box.h - 8)))
    return "".join(parts)


def _event(kind: str, element: ET.Element, box: Box) -> str:
    r = min(box.w, box.h) / 2
    parts = [f'<circle class="node{" end" if kind == "endEvent" else ""}" cx="{box.cx}" cy="{box.cy}" r="{r}"/>']
    if kind in ("intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"):
        parts.append(f'<circle class="mark" cx="{box.cx}" cy="{box.cy}" r="{r - 3}"/>')
    if element.find("bpmn:timerEventDefinition", NS) is not None:
        parts.append(f'<circle class="mark" cx="{box.cx}" cy="{box.cy}" r="{r - 7}"/>'
                     f'<path class="mark" d="M{box.cx} {box.cy - r + 10} V{box.cy} l5 4"/>')
    if element.find("bpmn:terminateEventDefinition", NS) is not None:
        parts.append(f'<circle class="mark-solid" cx="{box.cx}" cy="{box.cy}" r="{r - 8}"/>')
    return "".join(parts)


def _gateway(kind: str, box: Box, marker_visible: bool) -> str:
    cx, cy, hw, hh = box.cx, box.cy, box.w / 2, box.h / 2
    parts = [f'<polygon class="node" points="{cx},{box.y} {box.x + box.w},{cy} {cx},{box.y + box.h} {box.x},{cy}"/>']
    s = box.w / 5
    if kind == "parallelGateway":
        parts.append(f'<path class="mark" stroke-width="3" d="M{cx} {cy - s} V{cy + s} M{cx - s} {cy} H{cx + s}"/>')
    elif kind == "exclusiveGateway" and marker_visible:
        parts.append(f'<path class="mark" stroke-width="3" d="M{cx - s * .8} {cy - s * .8} L{cx + s * .8} {cy + s * .8} '
                     f'M{cx + s * .8} {cy - s * .8} L{cx - s * .8} {cy + s * .8}"/>')
    elif kind == "inclusiveGateway":
        parts.append(f'<circle class="mark" stroke-width="2.5" cx="{cx}" cy="{cy}" r="{min(hw, hh) / 2.2}"/>')
    elif kind == "eventBasedGateway":
        parts.append(f'<circle class="mark" cx="{cx}" cy="{cy}" r="{min(hw, hh) / 2}"/>')
    return "".join(parts)


def _arrow_head(points: list[tuple[float, float]]) -> str:
    (x1, y1), (x2, y2) = points[-2], points[-1]
    angle = math.atan2(y2 - y1, x2 - x1)
    left = (x2 - 9 * math.cos(angle - 0.4), y2 - 9 * math.sin(angle - 0.4))
    right = (x2 - 9 * math.cos(angle + 0.4), y2 - 9 * math.sin(angle + 0.4))
    return (f'<polygon class="head" points="{x2:.1f},{y2:.1f} {left[0]:.1f},{left[1]:.1f} '
            f'{right[0]:.1f},{right[1]:.1f}"/>')


def _find_plane(root: ET.Element, process_key: str) -> ET.Element | None:
    """The diagram plane that shows the process: its own, or its collaboration's."""
    owners = {process_key}
    for participant in root.iterfind(".//bpmn:participant", NS):
        if participant.get("processRef") == process_key:
            owners.update(c.get("id") for c in root.iterfind("bpmn:collaboration", NS)
                          if participant in list(c))
    planes = list(root.iterfind("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", NS))
    return next((p for p in planes if p.get("bpmnElement") in owners), planes[0] if planes else None)


def render(bpmn_xml: str, process_key: str, done: set[str] = frozenset(), current: set[str] = frozenset(),
           chosen: dict[str, set[str]] | None = None, links: dict[str, str] | None = None) -> str:
    """The process's diagram as an SVG document (empty string when the file has no diagram interchange).

    Elements whose id is in ``done`` are drawn as completed and those in ``current`` as waiting
    (current wins when a loop makes a step both). A flow counts as taken when its source is done,
    its target done or current, and, for a source in ``chosen`` (a gateway mapped to the targets
    it chose), its target among those chosen. ``links`` maps element ids to URLs the shapes link to.
    """
    root = ET.fromstring(bpmn_xml.encode("utf-8"))
    plane = _find_plane(root, process_key)
    if plane is None:
        return ""
    elements = {el.get("id"): el for el in root.iter() if el.get("id")}
    links, chosen = links or {}, chosen or {}
    back: list[str] = []
    edges: list[str] = []
    nodes: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    for shape in plane.iterfind("bpmndi:BPMNShape", NS):
        element = elements.get(shape.get("bpmnElement"))
        box = _box(shape.find("dc:Bounds", NS))
        if element is None or box is None:
            continue
        xs += [box.x, box.x + box.w]
        ys += [box.y, box.y + box.h]
        kind, name, eid = _local(element.tag), element.get("name") or "", element.get("id")
        label = _box(shape.find("bpmndi:BPMNLabel/dc:Bounds", NS))
        if kind in ("participant", "lane"):
            band = (f'<line class="lane" x1="{box.x + 30}" y1="{box.y}" x2="{box.x + 30}" y2="{box.y + box.h}"/>'
                    if kind == "lane" else
                    f'<rect class="band" x="{box.x}" y="{box.y}" width="30" height="{box.h}"/>')
            back.append(f'<g class="{kind}-shape"><rect class="{"pool" if kind == "participant" else "lane"}" '
                        f'x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}"/>{band}'
                        f'{_band_label(name, box)}</g>')
            continue
        if kind in _ACTIVITIES:
            body = _activity(kind, box, name)
        elif kind in _EVENTS:
            body = _event(kind, element, box) + _outside_label(name, label, box)
        elif kind in _GATEWAYS:
            body = (_gateway(kind, box, shape.get("isMarkerVisible") == "true" or kind != "exclusiveGateway")
                    + _outside_label(name, label, box, below=False))
        elif kind == "textAnnotation":
            text = element.findtext("bpmn:text", "", NS)
            body = (f'<path class="mark" d="M{box.x + 10} {box.y} H{box.x} V{box.y + box.h} H{box.x + 10}"/>'
                    + _text_block(wrap(text, box.w - 6, 10), box.cx, box.y, 10, "label"))
        else:
            body = (f'<rect class="node" x="{box.x}" y="{box.y}" width="{box.w}" height="{box.h}"/>'
                    + _outside_label(name, label, box))
        state = "current" if eid in current else "done" if eid in done else ""
        group = (f'<g class="shape {kind} {state}" data-id="{escape(eid)}"><title>{escape(name or eid)}</title>'
                 f'{body}</g>')
        if eid in links:
            group = f'<a href="{escape(links[eid])}">{group}</a>'
        nodes.append(group)
    for edge in plane.iterfind("bpmndi:BPMNEdge", NS):
        element = elements.get(edge.get("bpmnElement"))
        points = [(float(p.get("x", 0)), float(p.get("y", 0))) for p in edge.iterfind("di:waypoint", NS)]
        if element is None or len(points) < 2:
            continue
        xs += [p[0] for p in points]
        ys += [p[1] for p in points]
        kind = _local(element.tag)
        source, target = element.get("sourceRef"), element.get("targetRef")
        taken = source in done and target in done | current and target in chosen.get(source, {target})
        cls = {"messageFlow": "flow message", "association": "flow association"}.get(kind, "flow")
        state = " done" if taken else ""
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        head = _arrow_head(points) if kind != "association" else ""
        label = _box(edge.find("bpmndi:BPMNLabel/dc:Bounds", NS))
        name = element.get("name") or ""
        text = _outside_label(name, label, label) if label else ""
        edges.append(f'<g class="edge{state}" data-id="{escape(element.get("id"))}"><polyline class="{cls}{state}" '
                     f'points="{path}"/>{head}{text}</g>')
    if not xs:
        return ""
    x0, y0 = min(xs) - _MARGIN, min(ys) - _MARGIN
    width, height = max(xs) - x0 + _MARGIN, max(ys) - y0 + _MARGIN
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="bpmn" viewBox="{x0:.0f} {y0:.0f} {width:.0f} '
            f'{height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img" '
            f'aria-label="{escape(process_key)} diagram"><style>{STYLE}</style>'
            f'{"".join(back)}{"".join(edges)}{"".join(nodes)}</svg>')


def instance_svg(session, instance, task_url: Callable[[int], str]) -> str:
    """An instance's diagram with its progress read from its history: completed steps, the branches its
    gateways took, and its open tasks as the current steps, each linked to ``task_url(task id)``."""
    done: set[str] = set()
    chosen: dict[str, set[str]] = {}
    for event in engine.history(session, instance.id):
        if event.kind == "task_completed":
            done.add(event.data["task"])
        elif event.kind == "step_completed":
            done.add(event.data["step"])
            if "next" in event.data:
                chosen.setdefault(event.data["step"], set()).update(event.data["next"])
    open_tasks = engine.store.tasks_of_instance(session, instance.id, engine.ACTIVE_TASK)
    for name, text in sorted(instance.definition.artifacts.items()):
        if not name.startswith("bpmn/"):
            continue
        root = ET.fromstring(text.encode("utf-8"))
        if root.find(f"bpmn:process[@id='{instance.process_key}']", NS) is not None:
            links = {t.name: task_url(t.id) for t in open_tasks}
            # a task of a called process shows its call activity as the current step
            for call in root.iterfind(f"bpmn:process[@id='{instance.process_key}']/bpmn:callActivity", NS):
                inside = [t for t in open_tasks if t.process == call.get("calledElement")]
                if inside:
                    links.setdefault(call.get("id"), task_url(inside[0].id))
            return render(text, instance.process_key, done, set(links), chosen, links)
    return ""

"""The evidence pack as one self-contained HTML page (inline CSS and SVG, no scripts, no links out).

It shows, in the order an auditor reads: the instance and the verify/replay verdicts, the
signature manifestations (printed name, time, meaning, what was signed), the diagram of the
pinned BPMN with the steps this instance went through, every submitted form with its
corrections, refusals, the full history with hashes, and the pinned files.
"""

from html import escape
from typing import Any

from lxml import etree

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
DC = "{http://www.omg.org/spec/DD/20100524/DC}"
DI = "{http://www.omg.org/spec/DD/20100524/DI}"

_CSS = """
body{font:14px/1.45 system-ui,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em auto;max-width:1200px;
color:#1b1b1b;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #ccc;padding:4px 6px;
text-align:left;vertical-align:top}th{background:#f3f3f3}
.ok{background:#e3f5e1;border:1px solid #58a55c}.bad{background:#fbe3e3;border:1px solid #c0392b}
.verdict{display:inline-block;padding:.4em .8em;margin:.2em .5em .2em 0;border-radius:4px;font-weight:600}
.sig{border:2px solid #2c3e50;border-radius:6px;padding:.6em 1em;margin:.6em 0;background:#fafcff}
.sig .name{font-size:1.25em;font-weight:700}.sig .meaning{text-transform:uppercase;font-weight:700;color:#2c3e50}
code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;word-break:break-all}
.old{text-decoration:line-through;color:#a33}.new{color:#1a7a1a;font-weight:600}
.muted{color:#666}pre{white-space:pre-wrap;background:#f7f7f7;padding:.6em;border:1px solid #ddd;font-size:.8em}
svg{height:auto;border:1px solid #ddd;background:#fff}.scroll{overflow-x:auto}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _label(labels: dict, name: str) -> str:
    texts = labels.get(name) or {}
    return " ".join(t for t in (texts.get("en"), texts.get("zh")) if t) or name


def render(pack: dict[str, Any]) -> str:
    """The page for an evidence pack made by ``evidence.collect``."""
    inst = pack["instance"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>Evidence: instance {inst['id']} {_e(inst['business_key'])}</title><style>{_CSS}</style>"
             f"</head><body>",
             f"<h1>Evidence pack — {_e(inst['name'])}</h1>",
             f"<p>Instance <b>{inst['id']}</b>{', key <b>' + _e(inst['business_key']) + '</b>' if inst['business_key'] else ''}"
             f" · version {inst['version']} (content hash <span class='hash'>{_e(pack['definition']['content_hash'])}</span>)"
             f" · status <b>{_e(inst['status'])}</b> · started by {_e(inst['started_by'])} at {_e(inst['started_at'])}"
             f"{' · ended ' + _e(inst['ended_at']) if inst['ended_at'] else ''}</p>",
             f"<p class='muted'>Generated {_e(pack['generated_at'])} by {_e(pack['generated_by'])}. History head: event "
             f"#{inst['head']['seq']}, <span class='hash'>{_e(inst['head']['hash'])}</span></p>",
             _verdicts(pack), _signatures(pack), _diagram(pack), _forms(pack), _refusals(pack), _history(pack),
             _files(pack), "</body></html>"]
    return "\n".join(parts)


def _verdicts(pack: dict) -> str:
    verify, replay = pack["verify"], pack["replay"]
    verify_text = (f"History verified: {verify['events']} events, chain intact" if verify["ok"]
                   else "History BROKEN: " + "; ".join(verify["problems"]))
    replay_text = "Replay: MATCH" if replay["match"] else f"Replay DIVERGES: {replay['divergence']}"
    return (f"<h2>Verdicts</h2><div class='verdict {'ok' if verify['ok'] else 'bad'}'>{_e(verify_text)}</div>"
            f"<div class='verdict {'ok' if replay['match'] else 'bad'}'>{_e(replay_text)}</div>"
            f"<p class='muted'>{_e(pack['hash_recipe'])}</p>")


def _signatures(pack: dict) -> str:
    if not pack["signatures"]:
        return "<h2>Electronic signatures</h2><p>None.</p>"
    titles = {form["task_id"]: form["title"] for form in pack["forms"]}
    boxes = []
    for sig in pack["signatures"]:
        record = sig["record"]
        boxes.append(
            f"<div class='sig {'ok' if sig['bound'] else 'bad'}'><div>Electronically signed by</div>"
            f"<div class='name'>{_e(sig['printed_name'])}</div>"
            f"<div>Meaning: <span class='meaning'>{_e(sig['meaning'])}</span> · Signed at {_e(sig['at'])} (UTC) · "
            f"user id {_e(sig['signer'])}</div>"
            f"<div>Record: task {sig['task_id']} “{_e(titles.get(sig['task_id'], sig['task']))}”, completion event "
            f"#{record['event_seq']} <span class='hash'>{_e(record['event_hash'])}</span></div>"
            f"<div>SHA-256 of the data signed: <span class='hash'>{_e(sig['data_sha256'])}</span></div>"
            f"<div>{'Bound to its record ✔' if sig['bound'] else 'NOT bound to its record ✘'} "
            f"(history event #{sig['seq']})</div></div>")
    return "<h2>Electronic signatures</h2>" + "".join(boxes)


def _visited(pack: dict) -> set[str]:
    steps = set()
    for event in pack["events"]:
        if event["kind"] == "step_completed":
            steps.add(event["data"].get("step"))
        elif event["kind"] == "task_completed":
            steps.add(event["data"].get("task"))
    return steps


def _diagram(pack: dict) -> str:
    """An SVG of the pinned BPMN's own diagram, the steps this instance went through in green."""
    files = pack["definition"]["files"]
    name = f"bpmn/{pack['instance']['process']}.bpmn"
    source = files.get(name) or next((f for n, f in files.items() if n.startswith("bpmn/")), None)
    if source is None:
        return ""
    root = etree.fromstring(source["text"].encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
    kinds = {el.get("id"): etree.QName(el).localname for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    names = {el.get("id"): el.get("name") or "" for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    visited = _visited(pack)
    shapes, edges, width, height = [], [], 0.0, 0.0
    for shape in root.iter(f"{BPMNDI}BPMNShape"):
        bounds = shape.find(f"{DC}Bounds")
        element = shape.get("bpmnElement")
        x, y, w, h = (float(bounds.get(k)) for k in ("x", "y", "width", "height"))
        width, height = max(width, x + w), max(height, y + h)
        shapes.append(_shape(kinds.get(element, ""), names.get(element, ""), element in visited, x, y, w, h))
    for edge in root.iter(f"{BPMNDI}BPMNEdge"):
        points = " ".join(f"{p.get('x')},{p.get('y')}" for p in edge.iter(f"{DI}waypoint"))
        edges.append(f"<polyline points='{points}' fill='none' stroke='#777' stroke-width='1.5' "
                     f"marker-end='url(#arrow)'/>")
    if not shapes:
        return ""
    marker = ("<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' "
              "orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#777'/></marker></defs>")
    lanes = [s for s in shapes if s.startswith("<g class='lane'")]
    others = [s for s in shapes if not s.startswith("<g class='lane'")]
    return (f"<h2>Procedure and path taken</h2><p class='muted'>The pinned BPMN diagram; steps this instance went "
            f"through are green.</p><div class='scroll'><svg viewBox='0 0 {width + 20:.0f} {height + 20:.0f}' "
            f"width='{(width + 20) * 0.7:.0f}' xmlns='http://www.w3.org/2000/svg' font-family='sans-serif'>{marker}"
            f"{''.join(lanes)}{''.join(edges)}{''.join(others)}</svg></div>")


def _shape(kind: str, name: str, visited: bool, x: float, y: float, w: float, h: float) -> str:
    fill = "#c8ecc5" if visited else "#ffffff"
    stroke = "#2e7d32" if visited else "#444"
    text = (f"<text x='{x + w / 2:.0f}' y='{y + h / 2:.0f}' font-size='12' text-anchor='middle' "
            f"dominant-baseline='middle'>{_e(name[:40])}</text>")
    if kind in ("participant", "lane"):
        return (f"<g class='lane'><rect x='{x}' y='{y}' width='{w}' height='{h}' fill='none' stroke='#bbb'/>"
                f"<text x='{x + 14:.0f}' y='{y + h / 2:.0f}' font-size='13' transform='rotate(-90 {x + 14:.0f} "
                f"{y + h / 2:.0f})' text-anchor='middle'>{_e(name)}</text></g>")
    if kind.endswith("Event"):
        r = w / 2
        width_ = 3 if kind == "endEvent" else 1.5
        label = (f"<text x='{x + r:.0f}' y='{y + h + 14:.0f}' font-size='11' text-anchor='middle'>"
                 f"{_e(name[:40])}</text>")
        return (f"<circle cx='{x + r}' cy='{y + r}' r='{r}' fill='{fill}' stroke='{stroke}' "
                f"stroke-width='{width_}'/>{label}")
    if kind.endswith("Gateway"):
        cx, cy = x + w / 2, y + h / 2
        label = f"<text x='{cx:.0f}' y='{y - 6:.0f}' font-size='11' text-anchor='middle'>{_e(name[:40])}</text>"
        return (f"<polygon points='{cx},{y} {x + w},{cy} {cx},{y + h} {x},{cy}' fill='{fill}' stroke='{stroke}' "
                f"stroke-width='1.5'/>{label}")
    return (f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='8' fill='{fill}' stroke='{stroke}' "
            f"stroke-width='1.5'/>{text}")


def _forms(pack: dict) -> str:
    parts = ["<h2>Submitted forms</h2>"]
    for form in pack["forms"]:
        title = form["form_title"]
        parts.append(f"<h3>Task {form['task_id']}: {_e(form['title'])} — form {_e(title.get('en'))} "
                     f"{_e(title.get('zh'))}</h3><p>Submitted by <b>{_e(form['completed_by'])}</b> "
                     f"({_e(form['department'])}) at {_e(form['completed_at'])}</p>")
        rows = []
        for name in dict.fromkeys([*form["labels"], *form["submitted"], *form["current"]]):
            if name not in form["submitted"] and name not in form["current"]:
                continue
            submitted, current = form["submitted"].get(name), form["current"].get(name)
            shown = (f"<span class='old'>{_e(submitted)}</span> → <span class='new'>{_e(current)}</span>"
                     if submitted != current else _e(submitted))
            rows.append(f"<tr><td>{_e(_label(form['labels'], name))}</td><td><code>{_e(name)}</code></td>"
                        f"<td>{shown}</td></tr>")
        parts.append("<table><tr><th>field</th><th>name</th><th>value</th></tr>" + "".join(rows) + "</table>")
        for fix in form["corrections"]:
            changes = "; ".join(f"{_e(k)}: <span class='old'>{_e(v['old'])}</span> → "
                                f"<span class='new'>{_e(v['new'])}</span>" for k, v in fix["changes"].items())
            parts.append(f"<p>Corrected by <b>{_e(fix['actor'])}</b> at {_e(fix['at'])} (event #{fix['seq']}): "
                         f"{changes}. Reason: “{_e(fix['reason'])}”</p>")
    return "".join(parts)


def _refusals(pack: dict) -> str:
    if not pack["refusals"]:
        return ""
    rows = "".join(f"<tr><td>#{r['seq']}</td><td>{_e(r['at'])}</td><td>{_e(r['actor'])}</td><td>{_e(r['action'])}</td>"
                   f"<td>{_e(r['rule'])}</td><td>{_e(r['reason'])}</td></tr>" for r in pack["refusals"])
    return ("<h2>Refused actions</h2><table><tr><th>event</th><th>time</th><th>who</th><th>action</th><th>rule</th>"
            f"<th>why</th></tr>{rows}</table>")


def _history(pack: dict) -> str:
    rows = "".join(
        f"<tr><td>{e['seq']}</td><td>{_e(e['at'])}</td><td>{_e(e['actor'])}</td><td>{_e(e['kind'])}</td>"
        f"<td>{_e(e['task_id'])}</td><td><code>{_e(_brief(e['data']))}</code></td>"
        f"<td class='hash'>{_e(e['hash'][:16])}…</td></tr>" for e in pack["events"])
    return ("<h2>History</h2><table><tr><th>#</th><th>time (UTC)</th><th>actor</th><th>event</th><th>task</th>"
            f"<th>data</th><th>hash</th></tr>{rows}</table>")


def _brief(data: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in data.items())
    return text if len(text) <= 300 else text[:297] + "…"


def _files(pack: dict) -> str:
    items = "".join(f"<details><summary><code>{_e(name)}</code> — SHA-256 <span class='hash'>{_e(f['sha256'])}</span>"
                    f"</summary><pre>{_e(f['text'])}</pre></details>"
                    for name, f in pack["definition"]["files"].items())
    return f"<h2>Pinned files of version {pack['instance']['version']}</h2>{items}"

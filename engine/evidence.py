"""Evidence packs: everything an auditor needs about one instance, readable without qproc.

:func:`collect` gathers, read-only, the exact pinned BPMN, DMN and form files of the instance's
version (each with its SHA-256), every event with its hashes, every submitted form with its
corrections, every signature manifestation, the refusals, and the results of verifying the
chain and replaying the instance. :func:`write` puts it in a folder: ``evidence.json``, a
self-contained ``evidence.html`` (see ``evidence_page``) and the pinned files byte for byte
under ``definition/``.
"""

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from . import audit, corrections, evidence_page, replay, runtime, store
from .audit import EventKind
from .errors import EngineError

FORMAT = "qproc-evidence/1"
HASH_RECIPE = ("Each event's hash is SHA-256 over the UTF-8 bytes of the JSON object {instance_id, seq, at (ISO 8601, "
               "UTC), actor, kind, task_id, definition_hash, data, prev_hash} written with sorted keys, no spaces "
               "and non-ASCII characters kept; prev_hash is the previous event's hash (64 zeros for the first). "
               "A signature's data_sha256 is SHA-256 over the same encoding of the data it signs.")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def collect(session: Session, instance_id: int, actor: str, now: datetime) -> dict[str, Any]:
    """The evidence pack of one instance as plain JSON-ready data (reads only)."""
    instance = store.get_instance(session, instance_id)
    row = instance.definition
    rows = store.events_of(session, instance_id)
    chain = {event.seq: event for event in rows}
    check = audit.verify(session, instance_id)
    outcome = replay.replay(session, instance_id)
    return {
        "format": FORMAT,
        "generated_at": _iso(now), "generated_by": actor,
        "instance": {"id": instance.id, "process": instance.process_key, "name": row.name,
                     "version": row.version, "business_key": instance.business_key, "status": instance.status,
                     "started_by": instance.started_by, "started_at": _iso(instance.started_at),
                     "ended_at": _iso(instance.ended_at), "head": {"seq": instance.last_seq, "hash": instance.last_hash}},
        "definition": {"process": row.process_key, "version": row.version, "content_hash": row.content_hash,
                       "deployed_at": _iso(row.deployed_at), "deployed_by": row.deployed_by,
                       "files": {name: {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "text": text}
                                 for name, text in sorted(row.artifacts.items())},
                       "manifest": row.manifest},
        "hash_recipe": HASH_RECIPE,
        "events": [{"seq": e.seq, "at": _iso(e.at), "actor": e.actor, "kind": e.kind, "task_id": e.task_id,
                    "definition_hash": e.definition_hash, "data": e.data, "prev_hash": e.prev_hash, "hash": e.hash}
                   for e in rows],
        "forms": [_submitted(session, task, rows) for task in store.tasks_of_instance(session, instance_id)
                  if task.status == runtime.TaskStatus.COMPLETED.value],
        "signatures": [{**e.data, "seq": e.seq, "at": _iso(e.at), "task_id": e.task_id,
                        "bound": audit.signature_is_bound(e, chain)}
                       for e in rows if e.kind == EventKind.TASK_SIGNED.value],
        "refusals": [{**e.data, "seq": e.seq, "at": _iso(e.at), "actor": e.actor, "task_id": e.task_id}
                     for e in rows if e.kind == EventKind.ACTION_REFUSED.value],
        "verify": {"ok": check.ok, "events": check.events, "problems": [str(p) for p in check.problems]},
        "replay": {"match": outcome.match, "divergence": outcome.divergence},
    }


def _submitted(session: Session, task, rows) -> dict[str, Any]:
    """One completed task's form: labels, submitted values, corrections and the values as they stand."""
    form = runtime.form_of(session, task)
    fixes = [{"seq": e.seq, "at": _iso(e.at), "actor": e.actor, "reason": e.data["reason"],
                    "changes": e.data["changes"]}
                   for e in rows if e.kind == EventKind.DATA_CORRECTED.value and e.task_id == task.id]
    return {"task_id": task.id, "task": task.name, "title": task.title, "department": task.department,
            "form": form.key, "form_title": form.title, "completed_by": task.completed_by,
            "completed_at": _iso(task.completed_at),
            "labels": {f.name: f.label for f in form.fields},
            "submitted": task.data, "corrections": fixes,
            "current": corrections.submitted_data(session, task)}


def write(pack: dict[str, Any], out: Path) -> list[Path]:
    """Write the pack into folder ``out`` (created if needed); returns the files written.

    Refuses a folder that already holds an evidence pack, so earlier evidence is never overwritten.
    """
    target = out / "evidence.json"
    if target.exists():
        raise EngineError(f"{out} already holds an evidence pack ({target}); choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in pack["definition"]["files"].items():
        path = out / "definition" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(entry["text"].encode("utf-8"))
        written.append(path)
    target.write_text(json.dumps(pack, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    page = out / "evidence.html"
    page.write_text(evidence_page.render(pack), encoding="utf-8")
    return [target, page, *written]

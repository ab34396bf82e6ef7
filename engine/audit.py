"""The history: an append-only, hash-chained log of who did what to which instance, and when.

Every state change the engine makes is recorded here as an event in the same transaction as the
change. Each instance has its own chain (events that belong to no instance, such as deployments,
form the system chain): an event's ``hash`` is SHA-256 over the canonical JSON of its content and
the previous event's hash, so a changed, removed, inserted or reordered event breaks the chain.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from . import store
from .store import EventRow, InstanceRow

GENESIS = "0" * 64


class EventKind(str, Enum):
    """What an event records."""

    DEFINITION_DEPLOYED = "definition_deployed"
    ORGANISATION_LOADED = "organisation_loaded"
    INSTANCE_STARTED = "instance_started"
    TASK_CREATED = "task_created"
    TASK_CLAIMED = "task_claimed"
    TASK_UNCLAIMED = "task_unclaimed"
    TASK_COMPLETED = "task_completed"
    TASK_CANCELLED = "task_cancelled"
    STEP_COMPLETED = "step_completed"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_CANCELLED = "instance_cancelled"


def canonical(value: Any) -> str:
    """The canonical JSON encoding hashed for each event: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def event_hash(row: EventRow) -> str:
    """The hash an event must carry, given its content and its ``prev_hash``."""
    content = {
        "instance_id": row.instance_id, "seq": row.seq, "at": row.at.isoformat(), "actor": row.actor,
        "kind": row.kind, "task_id": row.task_id, "definition_hash": row.definition_hash, "data": row.data,
        "prev_hash": row.prev_hash,
    }
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


def record(session: Session, kind: EventKind, actor: str, at: datetime, instance: InstanceRow | None = None,
           task_id: int | None = None, data: dict | None = None, definition_hash: str | None = None) -> EventRow:
    """Append one event to the instance's chain (or the system chain) and return it.

    For an instance event the instance row carries the chain head (``last_seq``/``last_hash``), so
    appending costs no query; the caller's transaction writes both together.
    """
    at = at.astimezone(timezone.utc)
    if instance is not None:
        seq, prev = instance.last_seq + 1, instance.last_hash or GENESIS
        definition_hash = definition_hash or instance.definition.content_hash
    else:
        last = store.last_system_event(session)
        seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    row = EventRow(instance_id=instance.id if instance is not None else None, seq=seq, at=at, actor=actor,
                   kind=kind.value, task_id=task_id, definition_hash=definition_hash,
                   data=json.loads(canonical(data or {})), prev_hash=prev)
    row.hash = event_hash(row)
    if instance is not None:
        instance.last_seq, instance.last_hash = seq, row.hash
    return store.add_event(session, row)


@dataclass(frozen=True)
class Event:
    """An event as read back from the history."""

    seq: int
    at: datetime
    actor: str
    kind: str
    task_id: int | None
    data: dict
    hash: str


def history(session: Session, instance_id: int | None) -> list[Event]:
    """An instance's events in order (``None``: the system events)."""
    return [Event(seq=r.seq, at=r.at, actor=r.actor, kind=r.kind, task_id=r.task_id, data=r.data, hash=r.hash)
            for r in store.events_of(session, instance_id)]

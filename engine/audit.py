"""The history: an append-only, hash-chained log of who did what to which instance, and when.

Every state change the engine makes is recorded here as an event in the same transaction as the
change. Each instance has its own chain (events that belong to no instance, such as deployments,
form the system chain): an event's ``hash`` is SHA-256 over the canonical JSON of its content and
the previous event's hash, so a changed, removed, inserted or reordered event breaks the chain,
and the instance row's head (``last_seq``/``last_hash``) shows events removed from the end.
:func:`verify` checks all of it; :func:`run` keeps the refusals the history must show.
"""

import hashlib
import itertools
import json
from functools import partial
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from . import definitions, store
from .errors import Refusal
from .store import Database, EventRow, InstanceRow

T = TypeVar("T")

GENESIS = "0" * 64


class EventKind(str, Enum):
    """What an event records."""

    DEFINITION_DEPLOYED = "definition_deployed"
    ORGANISATION_LOADED = "organisation_loaded"
    CALENDAR_LOADED = "calendar_loaded"
    INSTANCE_STARTED = "instance_started"
    TASK_CREATED = "task_created"
    TASK_CLAIMED = "task_claimed"
    TASK_UNCLAIMED = "task_unclaimed"
    TASK_COMPLETED = "task_completed"
    TASK_CANCELLED = "task_cancelled"
    STEP_COMPLETED = "step_completed"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_CANCELLED = "instance_cancelled"
    TASK_SIGNED = "task_signed"          # an electronic signature bound to the task_completed event it signs
    DATA_CORRECTED = "data_corrected"    # submitted data corrected: old and new values, and why
    ACTION_REFUSED = "action_refused"    # a claim or completion refused by a rule the history must show
    PASSWORD_SET = "password_set"        # a user's password was set (system chain; no secret)
    TIMER_FIRED = "timer_fired"                      # an input: the worker fired a due timer {timer, due}
    TASK_OVERDUE_NOTIFIED = "task_overdue_notified"  # an overdue task's owner was reminded
    TASK_ESCALATED = "task_escalated"                # an overdue task got a new owner {level, from, to, reason}
    SETTING_CHANGED = "setting_changed"              # an engine setting changed {key, old, new, reason} (system chain)
    REVISION_ACTIVATED = "revision_activated"        # a draft version approved and put in force (system chain)
    REVISION_REJECTED = "revision_rejected"          # a draft version's approval refused (system chain)
    INSTANCE_MIGRATED = "instance_migrated"          # an input: the instance moved to another version {from, to, reason}


def canonical(value: Any) -> str:
    """The canonical JSON encoding hashed for each event: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def as_recorded(value: Any) -> Any:
    """A value as the history stores it: through canonical JSON (tuples become lists, dates strings)."""
    return json.loads(canonical(value))


def digest(value: Any) -> str:
    """SHA-256 of a value's canonical JSON: what a signature binds to the exact data signed."""
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


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
                   data=as_recorded(data or {}), prev_hash=prev)
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


def run(db: Database, work: Callable[[Session], T]) -> T:
    """Run one command in one transaction; a :class:`Refusal` is then recorded in a transaction of its own.

    The refused command rolls back entirely, so it changes nothing; the refusal must still be
    kept, and it cannot ride in the rolled-back transaction, so it is appended afterwards as an
    ``action_refused`` event on the instance's chain. The Refusal is raised again for the caller.
    """
    try:
        return db.run(work)
    except Refusal as refusal:
        db.run(partial(_record_refusal, refusal=refusal))
        raise


def _record_refusal(session: Session, refusal: Refusal) -> EventRow:
    return record(session, EventKind.ACTION_REFUSED, refusal.actor, refusal.at,
                  instance=store.get_instance(session, refusal.instance_id), task_id=refusal.task_id,
                  data=refusal.details)


# --- verification ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """The first bad event of a chain (``seq`` None: a problem with a stored definition)."""

    instance_id: int | None
    seq: int | None
    what: str

    def __str__(self) -> str:
        chain = f"instance {self.instance_id}" if self.instance_id is not None else "system history"
        return f"{chain}, event #{self.seq}: {self.what}" if self.seq is not None else f"{chain}: {self.what}"


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` checked and found; ``anchor`` digests every chain head, to note down and compare later."""

    chains: int
    events: int
    problems: list[Problem]
    anchor: str

    @property
    def ok(self) -> bool:
        """True when no chain, signature or definition is broken."""
        return not self.problems


def verify(session: Session, instance_id: int | None = None) -> Verification:
    """Check history chains: every hash, every link, the instance heads, signatures and stored definitions.

    With ``instance_id`` only that instance's chain and its pinned definition are checked;
    otherwise every instance's, the system chain and every deployed definition. Each broken chain
    is reported by its first bad event, saying whether it looks modified, deleted, inserted or
    reordered.
    """
    if instance_id is not None:
        instance = store.get_instance(session, instance_id)
        chains = {instance_id: store.events_of(session, instance_id)}
        heads = {instance_id: (instance.last_seq, instance.last_hash)}
        pinned = [instance.definition]
    else:
        heads = store.chain_heads(session)
        chains = {key: [] for key in heads}
        chains.update({key: list(rows) for key, rows in
                       itertools.groupby(store.all_events(session), key=lambda r: r.instance_id)})
        pinned = store.list_definitions(session)
    problems = []
    for chain_id, rows in chains.items():
        found = _check_chain(chain_id, rows, heads.get(chain_id)) or _check_signatures(chain_id, rows)
        if found:
            problems.append(found)
    system_rows = chains[None] if None in chains else store.events_of(session, None)
    problems.extend(_check_definitions(pinned, system_rows))
    system = chains.get(None) or []
    anchor = digest({"system": system[-1].hash if system else GENESIS,
                     "instances": {str(k): list(v) for k, v in sorted(heads.items())}})
    return Verification(chains=len(chains), events=sum(map(len, chains.values())), problems=problems,
                        anchor=anchor)


def _check_chain(chain_id: int | None, rows: list[EventRow], head: tuple[int, str] | None) -> Problem | None:
    """The first broken link of one chain; ``head`` is the instance row's (last_seq, last_hash)."""
    previous, expected = GENESIS, 1
    for row in rows:
        if head is not None and row.seq > head[0]:
            return Problem(chain_id, row.seq, f"{row.kind}: lies beyond the instance head #{head[0]} (inserted)")
        if row.seq != expected:
            return Problem(chain_id, expected, f"missing: the history jumps from #{expected - 1} to #{row.seq} "
                                               f"(deleted)")
        if event_hash(row) != row.hash:
            moved = _recorded_position(row, len(rows) + 1)
            if moved is not None:
                return Problem(chain_id, row.seq, f"{row.kind}: this is event #{moved} moved here (reordered)")
            return Problem(chain_id, row.seq, f"{row.kind}: its content no longer matches its hash (modified)")
        if row.prev_hash != previous:
            return Problem(chain_id, row.seq, f"{row.kind}: it does not follow event #{row.seq - 1} "
                                              f"(inserted, or its predecessor was replaced)")
        previous, expected = row.hash, expected + 1
    if head is not None and expected - 1 < head[0]:
        return Problem(chain_id, expected, f"missing: the instance head records {head[0]} events, the history "
                                           f"ends at #{expected - 1} (deleted)")
    if head is not None and head[0] and previous != head[1]:
        return Problem(chain_id, head[0], "the last event is not the one the instance head records (replaced)")
    return None


def _recorded_position(row: EventRow, limit: int) -> int | None:
    """The seq this event was recorded at, when its content is intact but it now sits elsewhere."""
    stored = row.seq
    try:
        for seq in range(1, limit + 1):
            row.seq = seq
            if seq != stored and event_hash(row) == row.hash:
                return seq
        return None
    finally:
        row.seq = stored


def signature_is_bound(signature: EventRow, chain: dict[int, EventRow]) -> bool:
    """Whether a ``task_signed`` event signs a completion in its own chain (by seq): same instance,
    same task, that event's exact hash and the SHA-256 of exactly the data it submitted."""
    bound = signature.data.get("record", {})
    target = chain.get(bound.get("event_seq"))
    return (target is not None and target.kind == EventKind.TASK_COMPLETED.value
            and target.hash == bound.get("event_hash") and bound.get("instance") == signature.instance_id
            and target.task_id == signature.task_id == bound.get("task_id")
            and digest(target.data.get("data")) == signature.data.get("data_sha256"))


def _check_signatures(chain_id: int | None, rows: list[EventRow]) -> Problem | None:
    """The first signature not bound to the record it claims."""
    by_seq = {row.seq: row for row in rows}
    for row in rows:
        if row.kind == EventKind.TASK_SIGNED.value and not signature_is_bound(row, by_seq):
            bound = row.data.get("record", {})
            return Problem(chain_id, row.seq, f"task_signed: the signature of {row.data.get('printed_name')} is "
                                              f"not bound to task {row.task_id}'s completion in this instance "
                                              f"(it claims instance {bound.get('instance')}, event "
                                              f"#{bound.get('event_seq')})")
    return None


def _check_definitions(rows: list[store.DefinitionRow], system_rows: list[EventRow]) -> list[Problem]:
    """Each given version still hashes to its content hash and has its deployment event."""
    deployed = {(r.data.get("process"), r.definition_hash) for r in system_rows
                if r.kind == EventKind.DEFINITION_DEPLOYED.value}
    problems = []
    for row in rows:
        label = f"definition {row.process_key} v{row.version}"
        if definitions.content_hash(row.artifacts, row.manifest) != row.content_hash:
            problems.append(Problem(None, None, f"{label}: its stored files no longer match its content hash "
                                                f"{row.content_hash[:12]} (modified)"))
        elif (row.process_key, row.content_hash) not in deployed:
            problems.append(Problem(None, None, f"{label}: no deployment event records it (inserted)"))
    return problems


def _minute(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def summary(event: Event) -> str:
    """What an event says, in one line: the task and department it created, the data submitted, the branch
    taken, the timer fired, the escalation, the signature, the correction, the refusal."""
    data = event.data
    if event.kind == EventKind.TASK_CREATED:
        due = f", due {_minute(data['due'])}" if data.get("due") else ""
        return f"{data['title']} → {data['department']}" + (" (head)" if data.get("role") else "") + due
    if event.kind == EventKind.TIMER_FIRED:
        return f"timer {data['timer']} (due {_minute(data['due'])})"
    if event.kind in (EventKind.TASK_ESCALATED, EventKind.TASK_OVERDUE_NOTIFIED):
        return f"level {data['level']}: {data['reason']}"
    if event.kind in (EventKind.TASK_COMPLETED, EventKind.INSTANCE_STARTED):
        return ", ".join(f"{k}={v}" for k, v in (data.get("data") or {}).items())
    if event.kind == EventKind.STEP_COMPLETED:
        nxt = f" → {', '.join(data['next'])}" if data.get("next") else ""
        return f"{data.get('name') or data['step']}{nxt}"
    if event.kind == EventKind.TASK_SIGNED:
        return (f"signed by {data['printed_name']} — {data['meaning']} — signs event #{data['record']['event_seq']}"
                f", data SHA-256 {data['data_sha256'][:16]}…")
    if event.kind == EventKind.DATA_CORRECTED:
        changes = "; ".join(f"{k}: {v['old']} → {v['new']}" for k, v in data["changes"].items())
        return f"{changes} (reason: {data['reason']})"
    if event.kind == EventKind.ACTION_REFUSED:
        return data["reason"]
    if event.kind == EventKind.INSTANCE_MIGRATED:
        kept = ", ".join(f"{t['timer']} due {_minute(t['due'])}" for t in data["timers_kept"])
        return f"version {data['from']} → {data['to']} (reason: {data['reason']})" + (f"; kept {kept}" if kept else "")
    if event.kind in (EventKind.REVISION_ACTIVATED, EventKind.REVISION_REJECTED):
        return (f"{data['process']} v{data['version']} {data['revision']} {event.kind.split('_')[1]} by "
                f"{data['approved_by']} (document change {data['document_change']})")
    return ", ".join(f"{k}={v}" for k, v in data.items() if k != "data")

"""Revisions: document control (P4 文件控制程序) of deployed procedure versions.

Every deployed version gets a revision record: a label ``EDITION/REVISION`` — the letter is the
edition, the number the revision within it (A/0, A/1 …; ``qproc deploy --new-edition`` starts B/0) —
the deployer's note, and a status:

- ``draft``: deployed, waiting for approval; nobody can start it;
- ``active``: the one version new instances start on;
- ``obsolete``: superseded (withdrawn); starting on it is refused, running instances finish on it;
- ``rejected``: its approval was refused.

How a version becomes active is recorded (``activation``):

- ``first_issue``: the first version of a process has no approved revision before it: it is active
  when deployed (its original issue was approved outside qproc, as the paper procedure was);
- ``approved``: a controlled process's new version is a draft and the engine starts a
  ``document_change`` instance for it; when that instance completes with ``approved`` true the
  version is put in force and the approver recorded (``revision_activated`` in the system history);
- ``direct``: the database's ``activation`` setting is ``direct`` (development databases, the demo);
- ``uncontrolled``: the process is not controlled — ``document_change`` itself never is (it could not
  approve its own first revision), nor processes left out of the ``controlled`` setting.
"""

from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from . import audit, store
from .audit import EventKind
from .errors import EngineError, InvalidTransition, NotFound
from .store import DefinitionRow, InstanceRow, RevisionRow

DOCUMENT_CHANGE = "document_change"
DOCUMENT_KIND = "procedure"


class RevisionStatus(str, Enum):
    """Where a deployed version stands in document control."""

    DRAFT = "draft"          # deployed, awaiting approval through a document change
    ACTIVE = "active"        # new instances start on it
    OBSOLETE = "obsolete"    # superseded: no new instances; running ones finish on it
    REJECTED = "rejected"    # its approval was refused


class Activation(str, Enum):
    """How a version became active."""

    FIRST_ISSUE = "first_issue"    # the first version of a process
    APPROVED = "approved"          # approved through a document_change instance
    DIRECT = "direct"              # the database's activation setting is 'direct'
    UNCONTROLLED = "uncontrolled"  # the process is not under document control


_MOVES = {RevisionStatus.DRAFT: {RevisionStatus.ACTIVE, RevisionStatus.OBSOLETE, RevisionStatus.REJECTED},
          RevisionStatus.ACTIVE: {RevisionStatus.OBSOLETE}}

# Engine settings kept in the database: allowed values (None: any list of process keys, or "all") and default.
SETTINGS: dict[str, tuple[tuple[str, ...] | None, Any]] = {
    "activation": (("approval", "direct"), "approval"),
    "controlled": (None, "all"),
}


# --- settings --------------------------------------------------------------------------------

def setting(session: Session, key: str) -> Any:
    """The value of an engine setting: the stored one, else its default."""
    row = store.get_setting(session, key)
    return row.value if row is not None else SETTINGS[key][1]


def settings(session: Session) -> dict[str, Any]:
    """Every engine setting with its value in force."""
    return {key: setting(session, key) for key in SETTINGS}


def _parse_setting(key: str, value: str) -> Any:
    if key not in SETTINGS:
        raise NotFound(f"no such setting: '{key}' (known: {', '.join(SETTINGS)})")
    allowed, _ = SETTINGS[key]
    if allowed is not None:
        if value not in allowed:
            raise EngineError(f"setting '{key}' must be one of {', '.join(allowed)}, not '{value}'")
        return value
    keys = sorted({part.strip() for part in value.split(",") if part.strip()})
    if not keys:
        raise EngineError(f"setting '{key}' needs 'all' or a comma-separated list of process keys")
    return "all" if keys == ["all"] else keys


def change_setting(session: Session, key: str, value: str, actor: str, now: datetime, reason: str) -> Any:
    """Change an engine setting; the change, its reason and the old value are recorded in the system history.

    ``activation``: ``approval`` (default) or ``direct``; ``controlled``: ``all`` or process keys, comma-separated.
    """
    parsed = _parse_setting(key, value)
    if not reason.strip():
        raise InvalidTransition(f"cannot change setting '{key}': give a reason")
    old = setting(session, key)
    store.put_setting(session, key, parsed, now, actor)
    audit.record(session, EventKind.SETTING_CHANGED, actor, now,
                 data={"key": key, "old": old, "new": parsed, "reason": reason})
    return parsed


def is_controlled(session: Session, process_key: str) -> bool:
    """Whether new versions of a process need approval through a document change (document_change never does)."""
    if process_key == DOCUMENT_CHANGE:
        return False
    controlled = setting(session, "controlled")
    return controlled == "all" or process_key in controlled


# --- labels and registration -----------------------------------------------------------------

def next_label(previous: str | None, new_edition: bool = False) -> str:
    """The label after ``previous``: the next revision of its edition, or revision 0 of the next edition."""
    if previous is None:
        return "A/0"
    edition, _, number = previous.partition("/")
    if new_edition:
        return f"{chr(ord(edition) + 1)}/0"
    return f"{edition}/{int(number) + 1}"


def register(session: Session, row: DefinitionRow, note: str | None, new_edition: bool, actor: str,
             now: datetime) -> tuple[RevisionRow, list[int]]:
    """Give a newly deployed version its revision record; returns it and the versions it made obsolete.

    It is active at once when it is the process's first version, the process is not controlled, or the
    activation setting is ``direct``; otherwise it is a draft for the caller to send for approval.
    """
    previous = store.revisions_of(session, row.process_key)
    revision = store.add_revision(session, RevisionRow(
        definition_id=row.id, definition=row, process_key=row.process_key,
        label=next_label(previous[-1].label if previous else None, new_edition), note=note,
        status=RevisionStatus.DRAFT.value))
    how = (Activation.FIRST_ISSUE if not previous else Activation.UNCONTROLLED
           if not is_controlled(session, row.process_key) else Activation.DIRECT
           if setting(session, "activation") == "direct" else None)
    if how is None:
        return revision, []
    return revision, _put_in_force(session, revision, how, actor, now)


def _move(revision: RevisionRow, new: RevisionStatus) -> None:
    current = RevisionStatus(revision.status)
    if new not in _MOVES.get(current, set()):
        raise InvalidTransition(f"cannot make {revision.process_key} version {revision.definition.version} "
                                f"({revision.label}) {new.value}: it is {current.value}")
    revision.status = new.value


def _put_in_force(session: Session, revision: RevisionRow, how: Activation, actor: str, now: datetime) -> list[int]:
    """Activate a draft and make the version in force before it obsolete; returns the obsoleted versions.

    The database allows one active version per process: the old one is withdrawn (and written) first, so
    two approvals racing for the same process collide and the later one re-runs on what the first did.
    """
    obsoleted = []
    for other in store.revisions_of(session, revision.process_key, (RevisionStatus.ACTIVE.value,)):
        _move(other, RevisionStatus.OBSOLETE)
        other.obsoleted_at = now
        obsoleted.append(other.definition.version)
    session.flush()
    _move(revision, RevisionStatus.ACTIVE)
    revision.activation, revision.activated_at, revision.activated_by = how.value, now, actor
    return obsoleted


def approval_request(row: DefinitionRow, revision: RevisionRow) -> dict[str, Any]:
    """The data a document_change instance starts with for a draft version (the contract with P4's BPMN)."""
    return {"document_kind": DOCUMENT_KIND, "process_key": row.process_key, "version": row.version,
            "revision_label": revision.label, "change_note": revision.note or ""}


def _approver(session: Session, instance: InstanceRow) -> str | None:
    """Who completed the document change's approval: the last completed task whose data says ``approved``
    (else the last completed task: the approval may be decided under another field name)."""
    done = store.tasks_of_instance(session, instance.id, ("completed",))
    approvals = [t for t in done if "approved" in (t.data or {})] or done
    return approvals[-1].completed_by if approvals else None


def document_change_completed(session: Session, instance: InstanceRow, data: dict[str, Any],
                              now: datetime) -> RevisionRow | None:
    """Settle the draft a finished document change was about: ``approved`` true, with the case still about this
    procedure revision (``document_kind``, ``process_key``, ``version`` as the engine started it), puts it in force
    (``revision_activated``); anything else rejects it (``revision_rejected``); returns the activated revision.

    A version approved after a newer one was activated is withdrawn at once (obsolete), not put back in force.
    """
    revision = store.revision_by_change(session, instance.id)
    if revision is None or revision.status != RevisionStatus.DRAFT.value:
        return None
    row, approver = revision.definition, _approver(session, instance)
    facts = {"process": row.process_key, "version": row.version, "revision": revision.label,
             "document_change": instance.id, "approved_by": approver}
    still_this = {key: data.get(key) for key in ("document_kind", "process_key", "version")} == {
        "document_kind": DOCUMENT_KIND, "process_key": row.process_key, "version": row.version}
    if data.get("approved") is not True or not still_this:
        _move(revision, RevisionStatus.REJECTED)
        audit.record(session, EventKind.REVISION_REJECTED, approver or instance.started_by, now,
                     definition_hash=row.content_hash, data=facts)
        return None
    newer = [r for r in store.revisions_of(session, row.process_key, (RevisionStatus.ACTIVE.value,))
             if r.definition.version > row.version]
    if newer:
        _move(revision, RevisionStatus.OBSOLETE)
        revision.obsoleted_at = now
        audit.record(session, EventKind.REVISION_ACTIVATED, approver, now, definition_hash=row.content_hash,
                     data={**facts, "status": revision.status, "superseded_by": newer[-1].definition.version})
        return None
    obsoleted = _put_in_force(session, revision, Activation.APPROVED, approver, now)
    audit.record(session, EventKind.REVISION_ACTIVATED, approver, now, definition_hash=row.content_hash,
                 data={**facts, "status": revision.status, "obsoletes": obsoleted})
    return revision


# --- which version to start ------------------------------------------------------------------

def definition_to_start(session: Session, process_key: str, version: int | None = None) -> DefinitionRow:
    """The version a new instance starts on: the active one; a named version only if it is the active one.

    Refused with InvalidTransition naming the active version when the named one is a draft, obsolete or rejected.
    """
    if version is None:
        row = store.active_definition(session, process_key)
        if row is not None:
            return row
        store.latest_definition(session, process_key)  # NotFound for an unknown process
        pending = store.revisions_of(session, process_key, (RevisionStatus.DRAFT.value,))
        waiting = f": version {pending[-1].definition.version} ({pending[-1].label}) awaits approval" if pending else ""
        raise InvalidTransition(f"process '{process_key}' has no active version{waiting}")
    row = store.get_definition(session, process_key, version)
    revision = store.revision_of(session, row.id)
    if revision.status != RevisionStatus.ACTIVE.value:
        active = store.active_definition(session, process_key)
        now_in_force = (f"the active version is {active.version} ({store.revision_of(session, active.id).label})"
                        if active is not None else "no version is active")
        raise InvalidTransition(f"cannot start {process_key} version {version} ({revision.label}): it is "
                                f"{revision.status}; {now_in_force}")
    return row


def active_revision(session: Session, process_key: str) -> RevisionRow:
    """The revision record of a process's active version; NotFound when none is active."""
    active = store.revisions_of(session, process_key, (RevisionStatus.ACTIVE.value,))
    if not active:
        store.latest_definition(session, process_key)
        raise NotFound(f"process '{process_key}' has no active version")
    return active[-1]

"""Electronic signatures: the signer's password re-checked, and the signature bound to the record it signs.

21 CFR Part 11 asks that a signature show the signer's printed name, the time and its meaning
(11.50) and be linked to its record so that it cannot be moved to another (11.70). Here a
signature is a ``task_signed`` event appended right after the ``task_completed`` event it signs,
in the same transaction. It carries the printed name, the meaning, the SHA-256 of the exact data
submitted, and the instance, task, seq and hash of that completion event; ``audit.verify``
checks that binding. The signer proves who they are by re-entering their password (the one
password of ``engine.credentials``, stored only as an Argon2id hash).
"""

from datetime import datetime

from sqlalchemy.orm import Session

from . import audit, credentials, store
from .audit import EventKind
from .definitions import FIELD_MEANING, UserTaskInfo
from .errors import Forbidden, Refusal
from .store import EventRow, InstanceRow, TaskRow


def authenticate(session: Session, task: TaskRow, actor: str, password: str | None, now: datetime) -> None:
    """Check the signer's re-entered password for a task that needs a signature.

    No password given, or none set yet: Forbidden (nothing was attempted). A wrong password:
    a Refusal, which the history keeps (``audit.run``).
    """
    label = f"task {task.id} '{task.title}' of instance {task.instance_id}"
    if password is None:
        raise Forbidden(f"{label} needs your electronic signature: give your password")
    credential = store.get_credential(session, actor)
    if credential is None:
        raise Forbidden(f"'{actor}' has no password yet: set one with 'qproc user set-password'")
    if not credentials.matches(credential.password_hash, password):
        raise Refusal(f"signature refused for {label}: wrong password for '{actor}'", task.instance_id, task.id,
                      actor, now, {"action": "sign", "task": task.name, "rule": "signature"})


def meaning(info: UserTaskInfo, data: dict) -> str:
    """What the signature means: the task's declared meaning, or the submitted field it names.

    A boolean field means approved (true) or rejected (false); a choice field means its value.
    """
    if not info.signature.startswith(FIELD_MEANING):
        return info.signature
    value = data.get(info.signature.removeprefix(FIELD_MEANING))
    if isinstance(value, bool):
        return "approved" if value else "rejected"
    return str(value)


def sign(session: Session, instance: InstanceRow, task: TaskRow, completion: EventRow, signer: str,
         printed_name: str, meaning_signed: str, now: datetime) -> EventRow:
    """Append the signature of ``completion`` (the task's ``task_completed`` event), bound to it by seq and hash."""
    return audit.record(session, EventKind.TASK_SIGNED, signer, now, instance=instance, task_id=task.id, data={
        "task": task.name, "signer": signer, "printed_name": printed_name, "meaning": meaning_signed,
        "data_sha256": audit.digest(completion.data["data"]),
        "record": {"instance": instance.id, "task_id": task.id, "event_seq": completion.seq,
                   "event_hash": completion.hash},
    })

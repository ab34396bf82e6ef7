"""Credentials: each user's one password, kept only as an Argon2id hash, and every check of it.

This is qproc's single password store. The same password signs a user in (web pages, API
tokens: :func:`check_password`) and signs their approvals (``engine.signatures`` re-asks it for
each electronic signature). The hashes live in the ``credentials`` table (``store.CredentialRow``,
one row per user). Each user sets their own password (``qproc user set-password``), giving the
current one to change it; the system gives a first password only on a first run with the
sample organisation (:func:`give_first_password`, used by ``engine.bootstrap``). Every setting is
recorded in the system history: who set whose password, never the password or its hash.

Hashing is Argon2id (argon2-cffi) with OWASP's minimum parameters (19 MiB of memory, 2 passes,
1 lane): about 50 ms a hash on a small server, where the library's default took 400 ms.
"""

from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from . import audit, store
from .audit import EventKind
from .directory import Organisation
from .errors import Forbidden, FormError, InvalidTransition

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1000
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def _check_length(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise FormError("password", {"password": f"must be at least {MIN_PASSWORD_LENGTH} characters"})
    if len(password) > MAX_PASSWORD_LENGTH:
        raise FormError("password", {"password": f"must be at most {MAX_PASSWORD_LENGTH} characters"})


def matches(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one ``password_hash`` was made from."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(session: Session, org: Organisation, user_id: str, new: str, actor: str, now: datetime,
                 current: str | None = None) -> None:
    """Set a user's password. Each user sets their own; changing one needs the current one.

    Recorded in the system history (who, when; never the password or its hash).
    """
    org.user(actor)
    org.user(user_id)
    if actor != user_id:
        raise Forbidden(f"'{actor}' cannot set the password of '{user_id}': each user sets their own")
    _check_length(new)
    existing = store.get_credential(session, user_id)
    if existing is not None and (current is None or not matches(existing.password_hash, current)):
        raise Forbidden(f"'{user_id}' already has a password: give the current one to change it")
    store.put_credential(session, user_id, _HASHER.hash(new), now, actor)
    audit.record(session, EventKind.PASSWORD_SET, actor, now, data={"user": user_id, "changed": existing is not None})


def give_first_password(session: Session, org: Organisation, user_id: str, password: str, actor: str,
                        now: datetime) -> None:
    """Give a user who has no password yet a first one, set by ``actor`` (the system, on a first run).

    Refuses (InvalidTransition) a user who already has one: only they may change it.
    """
    org.user(user_id)
    _check_length(password)
    if store.get_credential(session, user_id) is not None:
        raise InvalidTransition(f"'{user_id}' already has a password: only they may change it")
    store.put_credential(session, user_id, _HASHER.hash(password), now, actor)
    audit.record(session, EventKind.PASSWORD_SET, actor, now, data={"user": user_id, "changed": False})


@cache
def _no_such_hash() -> str:
    # Checked against when a user has no password, so a wrong user id costs the same time as a wrong password.
    return _HASHER.hash("no such user: a password nobody has")


def check_password(session: Session, org: Organisation, user_id: str, password: str) -> bool:
    """Whether the password is the user's; False for a wrong password, a user not in ``org``, or one
    without a password. Changes nothing, and takes about the same time whichever of those is the case.
    """
    row = store.get_credential(session, user_id) if user_id in org.users else None
    return matches(row.password_hash if row else _no_such_hash(), password) and row is not None

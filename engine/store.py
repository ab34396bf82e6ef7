"""Storage: the SQLAlchemy tables, the database handle, and every query the engine makes.

Writes take a :class:`Session` and never commit: the caller owns the transaction, and
:meth:`Database.run` gives each command exactly one (retried when an optimistic-lock conflict
shows another writer changed the same instance in between). SQLite is the embedded default
(WAL, foreign keys on, ``BEGIN IMMEDIATE`` so writers queue instead of failing); PostgreSQL is
reached through psycopg 3 (``postgresql+psycopg://``) at its default READ COMMITTED isolation,
where the revision check on every instance UPDATE is what catches a concurrent change.

The schema is created and upgraded by the Alembic migrations in ``engine/migrations``
(:meth:`Database.upgrade`); a database whose schema is not the one this code was written for is
refused before any command runs.
"""

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import (JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator, bindparam,
                        UniqueConstraint, create_engine, event, func, inspect, or_, select, text, union)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import (DeclarativeBase, Mapped, Session, joinedload, make_transient_to_detached, mapped_column,
                            relationship, sessionmaker, undefer_group)
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import Select

from .errors import ConcurrentUpdate, DatabaseUnavailable, NotFound, SchemaVersionError

DEFAULT_URL = "sqlite:///qproc.db"
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
SCHEMA_REVISION = "0003"  # the newest migration in engine/migrations/versions: the schema this code needs
T = TypeVar("T")
_AFTER_COMMIT = "qproc_after_commit"
_MEMO = "qproc_memo"
_FILES = "files"
_ORGANISATION_ID = "qproc_organisation_id"


class UTCDateTime(TypeDecorator):
    """Timestamps stored as naive UTC and always handed back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine works in aware UTC times")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    """Declarative base of qproc's tables."""


class DefinitionRow(Base):
    """A deployed process version: immutable once written; its content hash identifies its behaviour."""

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("process_key", "version"), UniqueConstraint("process_key", "content_hash"))

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    # Deferred: commands reach a definition through every task they touch but need its files only once
    # per process (the parsed Definition is cached by content hash); the queries below for definitions
    # themselves load them.
    manifest: Mapped[dict] = mapped_column(JSON, deferred=True, deferred_group=_FILES)
    artifacts: Mapped[dict] = mapped_column(JSON, deferred=True, deferred_group=_FILES)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str] = mapped_column(String(200))


class RevisionRow(Base):
    """Document control of a deployed version (P4): its revision label, note, and where it stands.

    The version itself (``definitions``) never changes; its status does: ``draft`` until approved,
    ``active`` while new instances start on it, ``obsolete`` once superseded, ``rejected`` when its
    approval was refused. ``activation`` says how it became active (see :mod:`engine.revisions`).
    """

    __tablename__ = "revisions"
    __table_args__ = (Index("uq_revisions_one_active", "process_key", unique=True,
                            sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),)

    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"), primary_key=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    label: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    change_instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    activation: Mapped[str | None] = mapped_column(String(30))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_by: Mapped[str | None] = mapped_column(String(200))
    obsoleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    definition: Mapped[DefinitionRow] = relationship(lazy="joined")


class SettingRow(Base):
    """An engine setting stored in the database (e.g. ``activation``), with who changed it last and when."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(String(200))


class InstanceRow(Base):
    """One run of a deployed definition; ``state`` is its workflow snapshot without the spec.

    ``timer_due_at`` is when its earliest waiting timer falls due; ``next_due_at`` is the earlier of
    that and its tasks' next escalation, so the worker finds all due work with one indexed query.
    """

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("process_key", "business_key"),
                      Index("ix_instances_next_due_at", "next_due_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(200))
    business_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), index=True)
    state: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="")
    timer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    definition: Mapped[DefinitionRow] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": revision}


class TaskRow(Base):
    """A human task: a user task of an instance, routed to a department, from creation to completion.

    ``due_at`` comes from the procedure; ``escalate_at`` is when the next step of its escalation
    ladder is due, ``escalation_level`` how many steps were taken, and ``escalated_to`` and
    ``escalation_reason`` who owns it now and why.
    """

    __tablename__ = "tasks"
    # The inbox index also covers the inbox's sort keys, so ordering a department's open tasks reads no table rows.
    __table_args__ = (Index("ix_tasks_inbox", "department", "status", "due_at", "id"),
                      Index("ix_tasks_instance_status", "instance_id", "status"),
                      Index("ix_tasks_assignee_status", "assignee", "status"),
                      Index("ix_tasks_escalated_to_status", "escalated_to", "status"),
                      Index("ix_tasks_status_due_at", "status", "due_at"),
                      Index("ix_tasks_escalate_at", "escalate_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    spiff_id: Mapped[str] = mapped_column(String(36))
    process: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500))
    department: Mapped[str] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(50))
    form_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    assignee: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict | None] = mapped_column(JSON)
    escalate_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_to: Mapped[str | None] = mapped_column(String(200))
    escalation_reason: Mapped[str | None] = mapped_column(Text)

    instance: Mapped[InstanceRow] = relationship(lazy="joined")


class EventRow(Base):
    """One history event. Rows are only ever inserted; ``hash`` chains each to its predecessor."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("instance_id", "seq"),
                      Index("uq_events_system_seq", "seq", unique=True, sqlite_where=text("instance_id IS NULL"),
                            postgresql_where=text("instance_id IS NULL")))

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    seq: Mapped[int]
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50))
    task_id: Mapped[int | None]
    definition_hash: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class CredentialRow(Base):
    """A user's password for sign-in and electronic signatures, as an Argon2id hash (see engine/credentials.py)."""

    __tablename__ = "credentials"

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(500))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    set_by: Mapped[str] = mapped_column(String(200))


class _LoadedFile:
    """Columns of a loaded configuration file: who loaded it, when, and its validated content."""

    id: Mapped[int] = mapped_column(primary_key=True)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    loaded_by: Mapped[str] = mapped_column(String(200))
    content: Mapped[dict] = mapped_column(JSON)


class OrganisationRow(_LoadedFile, Base):
    """A loaded organisation file; the newest row is the one in force."""

    __tablename__ = "organisations"


class CalendarRow(_LoadedFile, Base):
    """A loaded business calendar file; the newest row is the one in force."""

    __tablename__ = "calendars"


class ScheduleRow(Base):
    """The timer start event of a deployed process: when the worker starts its next instance.

    Occurrence ``occurrence`` falls at ``start`` plus that many ``period``s (``repeat`` in all, None:
    no end); ``next_due_at`` is its moment, None once the timer has no occurrence left.
    """

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_next_due_at", "next_due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(200), unique=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"))
    event: Mapped[str] = mapped_column(String(200))
    expression: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    period: Mapped[str | None] = mapped_column(String(100))
    repeat: Mapped[int | None]
    occurrence: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)

    definition: Mapped[DefinitionRow] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": revision}


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Database:
    """A database URL opened for qproc: engine, session factory, schema version, one transaction per command.

    ``sqlite_synchronous`` (SQLite only; default ``QPROC_SQLITE_SYNCHRONOUS`` or NORMAL) is SQLite's
    ``synchronous`` pragma: with WAL, NORMAL may lose the last commits on power loss but never
    corrupts the file; FULL makes every commit durable before it returns.
    """

    def __init__(self, url: str | None = None, sqlite_synchronous: str | None = None):
        self.url = url or os.environ.get("QPROC_DB") or DEFAULT_URL
        synchronous = (sqlite_synchronous or os.environ.get("QPROC_SQLITE_SYNCHRONOUS") or "NORMAL").upper()
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"SQLite synchronous mode '{synchronous}' is not one of {', '.join(SQLITE_SYNCHRONOUS)}")
        self.engine = _make_engine(self.url, synchronous)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._memo: dict = {}
        self._schema_checked = False

    @property
    def name(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def upgrade(self) -> tuple[str | None, str]:
        """Create or upgrade the schema to the newest migration in one transaction; returns (before, after).

        Concurrent upgrades wait for each other (SQLite's write lock; an advisory lock on PostgreSQL).
        A database holding other tables, or migrated by a newer qproc, is refused untouched.
        """
        from . import schema  # Alembic takes ~0.3 s to import: only the commands that migrate pay for it

        with self._unavailable("nothing was changed"), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
            before = _revision(conn)
            if (before is None and inspect(conn).get_table_names()) or (before and not schema.is_known(before)):
                raise SchemaVersionError(self._schema_problem(before, conn))
            schema.upgrade(conn)
            return before, _revision(conn)

    def schema_status(self) -> tuple[str | None, str | None]:
        """The migration the database's schema is at (None: it has none) and, unless that is the one this code
        needs, what is wrong with it and what to run."""
        with self._unavailable("nothing was changed"), self.engine.connect() as conn:
            revision = _revision(conn)
            return revision, None if revision == SCHEMA_REVISION else self._schema_problem(revision, conn)

    def require_current_schema(self) -> None:
        """Refuse (SchemaVersionError, saying what to run) a database whose schema is not the one this code needs.

        A new, empty SQLite database is created on the spot instead, so a newcomer's first command needs no
        set-up; a server database is only ever created or upgraded by an explicit ``qproc db upgrade``.
        """
        revision, problem = self.schema_status()
        if problem is None:
            return
        if revision is None and self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                empty = not inspect(conn).get_table_names()
            if empty:
                self.upgrade()
                return
        raise SchemaVersionError(problem)

    def _schema_problem(self, revision: str | None, conn: Connection) -> str:
        if revision is None:
            if inspect(conn).get_table_names():
                return f"database {self.name} holds tables but no qproc schema revision: it is not a qproc database"
            return f"database {self.name} has no qproc tables yet: run 'qproc db upgrade' to create them"
        from . import schema  # only on this error path: see upgrade()

        if not schema.is_known(revision):
            return (f"database {self.name} is at schema revision {revision}, which this qproc does not know "
                    f"(it needs {SCHEMA_REVISION}): a newer qproc upgraded it; run that version")
        return (f"database {self.name} is at schema revision {revision}, this qproc needs {SCHEMA_REVISION}: "
                f"back it up, then run 'qproc db upgrade'")

    def run(self, work: Callable[[Session], T], retries: int = 5) -> T:
        """Run ``work(session)`` in one transaction and commit; roll back everything if it raises.

        When another writer changed the same instance meanwhile (the revision check failed) or inserted
        the same unique row first, the whole command runs again on a fresh transaction, so it re-reads
        what the other writer committed; ``work`` must therefore change nothing outside the session.
        After ``retries`` such collisions in a row it gives up with ConcurrentUpdate. A lost or refused
        connection raises DatabaseUnavailable, saying whether the command may have taken effect.
        """
        if not self._schema_checked:
            self.require_current_schema()
            self._schema_checked = True
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                return self._attempt(work)
            except StaleDataError:
                if last:
                    raise ConcurrentUpdate(f"gave up after {retries + 1} attempts: each time another command "
                                           f"changed the same instance first; nothing was changed, try again") from None
            except IntegrityError as err:
                if last or not _is_unique_violation(err):
                    raise

    def _attempt(self, work: Callable[[Session], T]) -> T:
        with self._sessions(info={_MEMO: self._memo}) as session:
            with self._unavailable("nothing was changed"):
                result = work(session)
                session.flush()
            with self._unavailable("the connection was lost while committing: check whether the command "
                                   "took effect before repeating it"):
                session.commit()
            for callback in session.info.pop(_AFTER_COMMIT, ()):
                callback()
            return result

    @contextmanager
    def _unavailable(self, outcome: str) -> Iterator[None]:
        try:
            yield
        except OperationalError as err:
            reason = str(err.orig).strip().splitlines()[0] if err.orig is not None else str(err)
            raise DatabaseUnavailable(f"database {self.name} is unavailable ({reason}); {outcome}") from None

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


_UPGRADE_LOCK = 0x71707263  # "qprc": the advisory lock key PostgreSQL upgrades take


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _is_unique_violation(err: IntegrityError) -> bool:
    return getattr(err.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(err.orig)


def memo(session: Session) -> dict:
    """A dict this process keeps for the session's database across commands (for caches of decoded rows).

    Sessions not opened by :meth:`Database.run` get a dict of their own, so nothing leaks between databases.
    """
    return session.info.setdefault(_MEMO, {})


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once the command running in ``session`` has committed; never if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def _make_engine(url: str, synchronous: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, json_serializer=_json_dumps, pool_pre_ping=True)
    engine = create_engine(url, json_serializer=_json_dumps, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn):
        # Take the write lock up front: two deferred transactions that both read then write would
        # otherwise fail with "database is locked" instead of waiting their turn.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# --- definitions -----------------------------------------------------------------------------

def add_definition(session: Session, row: DefinitionRow) -> DefinitionRow:
    """Insert a new definition version."""
    session.add(row)
    session.flush()
    return row


def find_definition_by_hash(session: Session, process_key: str, content_hash: str) -> DefinitionRow | None:
    """The deployed version of a process with exactly this content, if any."""
    return session.scalars(select(DefinitionRow).options(undefer_group(_FILES))
                           .where(DefinitionRow.process_key == process_key,
                                  DefinitionRow.content_hash == content_hash)).first()


def latest_version_number(session: Session, process_key: str) -> int:
    """The highest deployed version number of a process, 0 when none."""
    return session.scalar(select(func.max(DefinitionRow.version)).where(DefinitionRow.process_key == process_key)) or 0


def latest_definition(session: Session, process_key: str) -> DefinitionRow:
    """The newest deployed version of a process; NotFound lists what is deployed."""
    row = session.scalars(select(DefinitionRow).options(undefer_group(_FILES))
                          .where(DefinitionRow.process_key == process_key)
                          .order_by(DefinitionRow.version.desc()).limit(1)).first()
    if row is None:
        known = session.scalars(select(DefinitionRow.process_key).distinct()).all()
        hint = f"deployed: {', '.join(sorted(known))}" if known else "nothing is deployed yet: run qproc deploy"
        raise NotFound(f"no such process: '{process_key}' ({hint})")
    return row


def list_definitions(session: Session) -> list[DefinitionRow]:
    """Every deployed version, by process then version."""
    return list(session.scalars(select(DefinitionRow).options(undefer_group(_FILES))
                                .order_by(DefinitionRow.process_key, DefinitionRow.version)))


# --- instances -------------------------------------------------------------------------------

def add_instance(session: Session, row: InstanceRow) -> InstanceRow:
    """Insert a new instance and give it its id."""
    session.add(row)
    session.flush()
    return row


def get_instance(session: Session, instance_id: int) -> InstanceRow:
    """The instance with this id; raises NotFound naming it."""
    row = session.get(InstanceRow, instance_id)
    if row is None:
        raise NotFound(f"no such instance: {instance_id}")
    return row


def find_instance_by_key(session: Session, process_key: str, business_key: str) -> InstanceRow | None:
    """The instance of a process carrying this business key, if any."""
    return session.scalars(select(InstanceRow).where(InstanceRow.process_key == process_key,
                                                     InstanceRow.business_key == business_key)).first()


def claim_due_instances(session: Session, now: datetime, limit: int) -> list[InstanceRow]:
    """Lock and return up to ``limit`` instances with work due before ``now``, earliest first.

    One indexed query on ``next_due_at``. Rows another transaction holds are skipped (``FOR UPDATE
    SKIP LOCKED`` on PostgreSQL; SQLite serialises writers, so there is nothing to skip), so
    concurrent workers never take the same instance. Rows already in the session are refreshed
    from the locked row, so the caller sees their current revision.
    """
    return list(session.scalars(
        select(InstanceRow).where(InstanceRow.next_due_at < now).order_by(InstanceRow.next_due_at, InstanceRow.id)
        .limit(limit).with_for_update(skip_locked=True, of=InstanceRow).execution_options(populate_existing=True)))


def earliest_due(session: Session) -> datetime | None:
    """When the earliest waiting timer or escalation of any instance falls due; None when nothing waits."""
    return session.scalar(select(func.min(InstanceRow.next_due_at)))


def list_due_instances(session: Session, limit: int = 500) -> list[InstanceRow]:
    """Instances that have work coming (a waiting timer or an escalation), next due first."""
    return list(session.scalars(select(InstanceRow).where(InstanceRow.next_due_at.is_not(None))
                                .order_by(InstanceRow.next_due_at, InstanceRow.id).limit(limit)))


def list_instances(session: Session, status: str | None = None, limit: int = 500, process_key: str | None = None,
                   version: int | None = None) -> list[InstanceRow]:
    """Instances, newest first, optionally of one status, one process, one version of it."""
    query = select(InstanceRow).order_by(InstanceRow.id.desc()).limit(limit)
    if status:
        query = query.where(InstanceRow.status == status)
    if process_key:
        query = query.where(InstanceRow.process_key == process_key)
    if version is not None:
        query = query.join(DefinitionRow, InstanceRow.definition_id == DefinitionRow.id).where(
            DefinitionRow.version == version)
    return list(session.scalars(query))


def instance_ids(session: Session) -> list[int]:
    """The id of every instance, oldest first."""
    return list(session.scalars(select(InstanceRow.id).order_by(InstanceRow.id)))


def chain_heads(session: Session) -> dict[int, tuple[int, str]]:
    """Each instance's history head as its row records it: id → (last_seq, last_hash)."""
    rows = session.execute(select(InstanceRow.id, InstanceRow.last_seq, InstanceRow.last_hash))
    return {row.id: (row.last_seq, row.last_hash) for row in rows}


# --- tasks -----------------------------------------------------------------------------------

_TASK_VALUES = [column.key for column in TaskRow.__table__.columns if column.key != "id"]
_INSERT_TASK = TaskRow.__table__.insert().returning(TaskRow.__table__.c.id)


def add_task(session: Session, row: TaskRow) -> TaskRow:
    """Insert a new human task and give it its id; it is then in the session like a row loaded from the database.

    One INSERT of this row alone: the command's other pending changes (the instance row above all) are not
    flushed with it, so each is written once, when the command ends.
    """
    values = {key: getattr(row, key) for key in _TASK_VALUES}
    row.id = session.connection().execute(_INSERT_TASK, values).scalar_one()
    for key, value in values.items():  # every column held, so none is read back from the database
        setattr(row, key, value)
    make_transient_to_detached(row)
    stale = session.identity_map.get(session.identity_key(TaskRow, row.id))
    if stale is not None:  # a row of a rolled-back savepoint (SQLite hands its id out again): it is gone
        session.expunge(stale)
    session.add(row)
    return row


def get_task(session: Session, task_id: int) -> TaskRow:
    """The human task with this id; raises NotFound naming it."""
    row = session.get(TaskRow, task_id)
    if row is None:
        raise NotFound(f"no such task: {task_id}")
    return row


# Statements every command runs, built once: building and keying a statement costs as much as running it.
_TASKS_OF_INSTANCE = select(TaskRow).where(TaskRow.instance_id == bindparam("instance_id")).order_by(TaskRow.id)
_TASKS_OF_INSTANCE_IN = _TASKS_OF_INSTANCE.where(TaskRow.status.in_(bindparam("statuses", expanding=True)))


def tasks_of_instance(session: Session, instance_id: int, statuses: tuple[str, ...] | None = None) -> list[TaskRow]:
    """An instance's human tasks in creation order, optionally only those in the given statuses."""
    if statuses:
        return list(session.scalars(_TASKS_OF_INSTANCE_IN, {"instance_id": instance_id, "statuses": list(statuses)}))
    return list(session.scalars(_TASKS_OF_INSTANCE, {"instance_id": instance_id}))


def active_task_names(session: Session, instance_id: int) -> list[tuple[int, str]]:
    """(id, task name) of an instance's open and claimed tasks, in creation order (a light query: no rows loaded)."""
    query = (select(TaskRow.id, TaskRow.name).where(TaskRow.instance_id == instance_id,
                                                    TaskRow.status.in_(("open", "claimed"))).order_by(TaskRow.id))
    return [(task_id, name) for task_id, name in session.execute(query)]


_INBOX_ORDER = (TaskRow.due_at.is_(None), TaskRow.due_at, TaskRow.id)  # earliest due first, undated last


def inbox(session: Session, departments: list[str], statuses: tuple[str, ...], assignee: str | None = None,
          escalated_to: str | None = None, limit: int = 500, process: str | None = None) -> list[TaskRow]:
    """Tasks in the given statuses of the given departments or escalated to ``escalated_to``, earliest due first
    (tasks without a due time last, then by id).

    With ``assignee`` only the tasks that person claimed or that were escalated to them; with
    ``process`` only tasks of that process's instances.
    """
    narrow = []
    if assignee is not None:
        narrow.append(or_(TaskRow.assignee == assignee, TaskRow.escalated_to == assignee))
    if process is not None:
        narrow.append(TaskRow.instance_id.in_(select(InstanceRow.id).where(InstanceRow.process_key == process)))
    # The first ``limit`` ids come from one short range of an index per department, status and due/undue part,
    # each read in index order and cut at ``limit``: the time grows with the page, not with the department's
    # open tasks (one sort over the whole department, or an OR of department and escalation, read them all).
    first = []
    for status in statuses:
        for department in departments:
            same = (TaskRow.department == department, TaskRow.status == status, *narrow)
            first.append(_first(limit, (*same, TaskRow.due_at.is_not(None)), TaskRow.due_at, TaskRow.id))
            first.append(_first(limit, (*same, TaskRow.due_at.is_(None)), TaskRow.id))
        if escalated_to is not None:
            first.append(_first(limit, (TaskRow.escalated_to == escalated_to, TaskRow.status == status, *narrow),
                                *_INBOX_ORDER))
    if not first:
        return []  # no department and no escalations to look in
    candidates = union(*first).subquery()
    ids = (select(candidates.c.id)
           .order_by(candidates.c.due_at.is_(None), candidates.c.due_at, candidates.c.id).limit(limit))
    query = (select(TaskRow).options(joinedload(TaskRow.instance).defer(InstanceRow.state))  # a list needs no state
             .where(TaskRow.id.in_(ids)).order_by(*_INBOX_ORDER))
    return list(session.scalars(query))


def _first(limit: int, where: tuple, *order) -> Select:
    """(id, due_at) of the first ``limit`` tasks matching ``where`` in ``order``, as a subquery a union can take."""
    branch = select(TaskRow.id, TaskRow.due_at).where(*where).order_by(*order).limit(limit).subquery()
    return select(branch.c.id, branch.c.due_at)


def overdue_tasks(session: Session, now: datetime, statuses: tuple[str, ...], limit: int = 1000) -> list[TaskRow]:
    """Tasks in the given statuses whose due time is before ``now``, most overdue first."""
    return list(session.scalars(select(TaskRow).where(TaskRow.status.in_(statuses), TaskRow.due_at < now)
                                .order_by(TaskRow.due_at, TaskRow.id).limit(limit)))


def next_escalation(session: Session, instance_id: int, statuses: tuple[str, ...]) -> datetime | None:
    """The earliest next-escalation time among an instance's tasks in the given statuses, None if none."""
    return session.scalar(select(func.min(TaskRow.escalate_at)).where(TaskRow.instance_id == instance_id,
                                                                      TaskRow.status.in_(statuses)))


def tasks_to_escalate(session: Session, instance_id: int, now: datetime, statuses: tuple[str, ...]) -> list[TaskRow]:
    """An instance's tasks in the given statuses whose next escalation step is due before ``now``."""
    return list(session.scalars(select(TaskRow).where(TaskRow.instance_id == instance_id,
                                                      TaskRow.status.in_(statuses), TaskRow.escalate_at < now)
                                .order_by(TaskRow.escalate_at, TaskRow.id)))


# --- events ----------------------------------------------------------------------------------

_EVENT_VALUES = [column.key for column in EventRow.__table__.columns if column.key != "id"]
_INSERT_EVENT = EventRow.__table__.insert()


def add_event(session: Session, row: EventRow) -> EventRow:
    """Append a history event (the only write the events table ever sees) and return it as given.

    Written at once with one INSERT, so the rest of the command reads it back like any other event; the
    row object stays outside the session (nothing ever changes an event, and nothing needs its id).
    """
    session.connection().execute(_INSERT_EVENT, {key: getattr(row, key) for key in _EVENT_VALUES})
    return row


def last_system_event(session: Session) -> EventRow | None:
    """The newest event that belongs to no instance (deployments, organisation loads)."""
    return session.scalars(select(EventRow).where(EventRow.instance_id.is_(None))
                           .order_by(EventRow.seq.desc()).limit(1)).first()


def events_of(session: Session, instance_id: int | None) -> list[EventRow]:
    """An instance's events in order (``None``: the system events)."""
    query = select(EventRow).order_by(EventRow.seq)
    query = query.where(EventRow.instance_id.is_(None) if instance_id is None else EventRow.instance_id == instance_id)
    return list(session.scalars(query))


def task_event(session: Session, task_id: int, kind: str) -> EventRow | None:
    """The first event of this kind about a task (e.g. its completion), or None."""
    return session.scalars(select(EventRow).where(EventRow.task_id == task_id, EventRow.kind == kind)
                           .order_by(EventRow.seq).limit(1)).first()


def all_events(session: Session) -> list[EventRow]:
    """Every event, grouped by chain (instance id; the system chain's NULL sorts as a group too), in order."""
    return list(session.scalars(select(EventRow).order_by(EventRow.instance_id, EventRow.seq)))


# --- credentials -----------------------------------------------------------------------------

def get_credential(session: Session, user_id: str) -> CredentialRow | None:
    """The user's stored password hash, if they have set one."""
    return session.get(CredentialRow, user_id)


def put_credential(session: Session, user_id: str, password_hash: str, at: datetime, by: str) -> CredentialRow:
    """Store (or replace) a user's password hash."""
    row = session.get(CredentialRow, user_id)
    if row is None:
        row = CredentialRow(user_id=user_id)
        session.add(row)
    row.password_hash, row.set_at, row.set_by = password_hash, at, by
    return row


def users_with_credentials(session: Session) -> set[str]:
    """Ids of every user who has a password."""
    return set(session.scalars(select(CredentialRow.user_id)))


# --- organisation ----------------------------------------------------------------------------

def add_organisation(session: Session, row: OrganisationRow) -> OrganisationRow:
    """Store a newly loaded organisation; it is in force from now on."""
    session.add(row)
    session.flush()
    session.info[_ORGANISATION_ID] = row.id
    return row


def current_organisation(session: Session) -> OrganisationRow | None:
    """The organisation in force (the newest loaded), or None before the first load."""
    return session.scalars(select(OrganisationRow).order_by(OrganisationRow.id.desc()).limit(1)).first()


_CURRENT_ORGANISATION_ID = select(func.max(OrganisationRow.id))


def current_organisation_id(session: Session) -> int | None:
    """The id of the organisation in force, or None before the first load (cheaper than loading the row).

    Queried once per session: a command sees one organisation from start to end (its own load included).
    """
    found = session.info.get(_ORGANISATION_ID)
    if found is None:
        found = session.info[_ORGANISATION_ID] = session.scalar(_CURRENT_ORGANISATION_ID)
    return found


def get_organisation(session: Session, organisation_id: int) -> OrganisationRow:
    """A loaded organisation by id; raises NotFound naming it."""
    row = session.get(OrganisationRow, organisation_id)
    if row is None:
        raise NotFound(f"no such organisation: {organisation_id}")
    return row


# --- business calendar -----------------------------------------------------------------------

def add_calendar(session: Session, row: CalendarRow) -> CalendarRow:
    """Store a newly loaded business calendar; it is in force from now on."""
    session.add(row)
    session.flush()
    return row


def current_calendar(session: Session, at: datetime | None = None) -> CalendarRow | None:
    """The business calendar in force (the newest loaded), or None before the first load.

    With ``at``: the one in force at that moment, the first one for moments before any was loaded
    (back-dated work, such as the demo's, ran on the first calendar).
    """
    newest = select(CalendarRow).order_by(CalendarRow.id.desc()).limit(1)
    if at is None:
        return session.scalars(newest).first()
    return (session.scalars(newest.where(CalendarRow.loaded_at <= at)).first()
            or session.scalars(select(CalendarRow).order_by(CalendarRow.id).limit(1)).first())


# --- schedules (timer start events) ----------------------------------------------------------

def find_schedule(session: Session, process_key: str) -> ScheduleRow | None:
    """The schedule of a process's timer start event, if it has one."""
    return session.scalars(select(ScheduleRow).where(ScheduleRow.process_key == process_key)).first()


def add_schedule(session: Session, row: ScheduleRow) -> ScheduleRow:
    """Insert the schedule of a newly deployed timer start event."""
    session.add(row)
    session.flush()
    return row


def delete_schedule(session: Session, row: ScheduleRow) -> None:
    """Remove a schedule (its process's newest version no longer starts by a timer)."""
    session.delete(row)


def list_schedules(session: Session) -> list[ScheduleRow]:
    """Every schedule, next due first."""
    return list(session.scalars(select(ScheduleRow).order_by(ScheduleRow.next_due_at.is_(None),
                                                             ScheduleRow.next_due_at, ScheduleRow.id)))


def claim_due_schedules(session: Session, now: datetime, limit: int) -> list[ScheduleRow]:
    """Lock and return up to ``limit`` schedules due before ``now`` (skipping rows another worker holds)."""
    return list(session.scalars(
        select(ScheduleRow).where(ScheduleRow.next_due_at < now).order_by(ScheduleRow.next_due_at, ScheduleRow.id)
        .limit(limit).with_for_update(skip_locked=True, of=ScheduleRow).execution_options(populate_existing=True)))
# --- reporting -------------------------------------------------------------------------------

def instance_events_before(session: Session, until: datetime) -> list[tuple[EventRow, str, str | None]]:
    """Every instance event before ``until``, with its instance's process key and business key, by instance and seq."""
    query = (select(EventRow, InstanceRow.process_key, InstanceRow.business_key)
             .join(InstanceRow, EventRow.instance_id == InstanceRow.id)
             .where(EventRow.at < until).order_by(EventRow.instance_id, EventRow.seq))
    return [(row, process_key, business_key) for row, process_key, business_key in session.execute(query)]


def task_processes(session: Session) -> dict[int, str]:
    """For every human task: the process its user task belongs to (a called process's, for a task inside one)."""
    return {task_id: process for task_id, process in session.execute(select(TaskRow.id, TaskRow.process))}


def definition_in_force(session: Session, process_key: str, at: datetime) -> DefinitionRow | None:
    """The newest version of a process deployed before ``at``, or None when none was."""
    return session.scalars(select(DefinitionRow).where(DefinitionRow.process_key == process_key,
                                                       DefinitionRow.deployed_at < at)
                           .order_by(DefinitionRow.version.desc()).limit(1)).first()


# --- revisions and settings ------------------------------------------------------------------

def add_revision(session: Session, row: RevisionRow) -> RevisionRow:
    """Insert the revision record of a newly deployed version."""
    session.add(row)
    session.flush()
    return row


def active_definition(session: Session, process_key: str) -> DefinitionRow | None:
    """The version of a process new instances start on (files loaded), None when none is active."""
    return session.scalars(select(DefinitionRow).options(undefer_group(_FILES))
                           .join(RevisionRow, RevisionRow.definition_id == DefinitionRow.id)
                           .where(DefinitionRow.process_key == process_key, RevisionRow.status == "active")
                           .order_by(DefinitionRow.version.desc()).limit(1)).first()


def revision_of(session: Session, definition_id: int) -> RevisionRow | None:
    """The revision record of a deployed version (None only for a version never registered)."""
    return session.get(RevisionRow, definition_id)


def revisions_of(session: Session, process_key: str, statuses: tuple[str, ...] | None = None) -> list[RevisionRow]:
    """A process's revision records by version, optionally only those in the given statuses."""
    query = (select(RevisionRow).join(DefinitionRow, RevisionRow.definition_id == DefinitionRow.id)
             .where(RevisionRow.process_key == process_key).order_by(DefinitionRow.version))
    if statuses:
        query = query.where(RevisionRow.status.in_(statuses))
    return list(session.scalars(query))


def revision_by_change(session: Session, change_instance_id: int) -> RevisionRow | None:
    """The revision a document change instance asks approval for, if any."""
    return session.scalars(select(RevisionRow).where(RevisionRow.change_instance_id == change_instance_id)).first()


def all_revisions(session: Session) -> dict[int, RevisionRow]:
    """Every revision record by definition id."""
    return {row.definition_id: row for row in session.scalars(select(RevisionRow))}


def get_definition(session: Session, process_key: str, version: int) -> DefinitionRow:
    """One deployed version of a process (files loaded); NotFound names what exists."""
    row = session.scalars(select(DefinitionRow).options(undefer_group(_FILES))
                          .where(DefinitionRow.process_key == process_key, DefinitionRow.version == version)).first()
    if row is None:
        latest_definition(session, process_key)  # NotFound for an unknown process
        raise NotFound(f"process '{process_key}' has no version {version} "
                       f"(newest: {latest_version_number(session, process_key)})")
    return row


def get_setting(session: Session, key: str) -> SettingRow | None:
    """A stored engine setting, None when it was never set."""
    return session.get(SettingRow, key)


def put_setting(session: Session, key: str, value: Any, at: datetime, by: str) -> SettingRow:
    """Store (or replace) an engine setting."""
    row = session.get(SettingRow, key)
    if row is None:
        row = SettingRow(key=key)
        session.add(row)
    row.value, row.changed_at, row.changed_by = value, at, by
    return row


def running_instances_of(session: Session, process_key: str, version: int | None = None) -> list[InstanceRow]:
    """Running instances of a process (on one version when given), oldest first."""
    query = (select(InstanceRow).join(DefinitionRow, InstanceRow.definition_id == DefinitionRow.id)
             .where(InstanceRow.process_key == process_key, InstanceRow.status == "running").order_by(InstanceRow.id))
    if version is not None:
        query = query.where(DefinitionRow.version == version)
    return list(session.scalars(query))

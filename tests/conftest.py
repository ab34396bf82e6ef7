"""Shared fixtures: a real database per test on each backend, the shipped organisation, deployed fixtures.

Every test that uses a database runs twice, ``[sqlite]`` on a new file in tmp_path and ``[postgresql]`` in
a new schema of the PostgreSQL server at QPROC_TEST_POSTGRESQL (default: the local test server), dropped
afterwards. Without that server the PostgreSQL runs are skipped, except under CI (CI=true), where they fail.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import Executable

from engine import credentials, revisions, runtime, store
from engine.store import Database

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
ORG_FILE = ROOT / "org.yaml"
CALENDAR_FILE = ROOT / "calendar.yaml"
POSTGRESQL = os.environ.get("QPROC_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

postgresql_only = pytest.mark.parametrize("backend", ["postgresql"])  # what only PostgreSQL has or does
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture(scope="session")
def postgresql_server():
    """An autocommit engine on the test PostgreSQL server, to create and drop the tests' schemas."""
    server = create_engine(POSTGRESQL, isolation_level="AUTOCOMMIT")
    try:
        with server.connect():
            pass
    except OperationalError as err:
        message = f"PostgreSQL is not reachable at {POSTGRESQL} ({str(err.orig).splitlines()[0]})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run every test on PostgreSQL", pytrace=False)
        pytest.skip(f"{message}: start it or set QPROC_TEST_POSTGRESQL to run the [postgresql] tests")
    yield server
    server.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The database backend a test runs on; every database test runs on both."""
    return request.param


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2id at its smallest cost in tests (as Django swaps in a fast hasher): production's
    setting spends ~50 ms per hash by design, which every signed step of every test would pay."""
    monkeypatch.setattr(credentials, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@contextmanager
def empty_database(backend: str, folder: Path, request) -> Iterator[str]:
    """The URL of an empty database of ``backend``: a new SQLite file in ``folder``, or a new PostgreSQL schema.

    The schema is named for nothing but a random id (tests run in parallel) and dropped afterwards, after
    ending any connection a test's child process left behind (they carry the schema as application name).
    """
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'qproc.db'}"
        return
    server = request.getfixturevalue("postgresql_server")
    schema = f"qproc_test_{uuid.uuid4().hex[:16]}"
    with server.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    # Commits need not wait for the disk: a test database does not have to survive a server crash.
    options = quote(f"-csearch_path={schema} -csynchronous_commit=off")
    try:
        yield f"{POSTGRESQL}?application_name={schema}&options={options}"
    finally:
        with server.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = :name"), {"name": schema})
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def empty_url(backend, tmp_path, request):
    """The URL of an empty database of the test's backend (see ``empty_database``)."""
    with empty_database(backend, tmp_path, request) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated to the newest schema once per test process, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "qproc.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    database.dispose()
    return path


@pytest.fixture
def db(backend, empty_url, tmp_path, request):
    """A database of the test's backend at the newest schema, made by the migrations."""
    if backend == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "qproc.db")
    database = Database(empty_url)
    if backend == "postgresql":
        database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def org_db(db):
    """The database with the shipped organisation and business calendar loaded, new versions activated directly."""
    db.run(lambda s: runtime.load_organisation(s, ORG_FILE, "admin", T0))
    db.run(lambda s: runtime.load_calendar(s, CALENDAR_FILE, "admin", T0))
    db.run(lambda s: revisions.change_setting(s, "activation", "direct", "admin", T0, "test database"))
    return db


def deploy_fixture(db, name: str, text_replacements: dict[str, str] | None = None, tmp_path: Path | None = None):
    """Deploy tests/processes/<name>.bpmn (optionally edited into tmp_path first) with tests/forms."""
    path = FIXTURES / "processes" / f"{name}.bpmn"
    if text_replacements:
        content = path.read_text(encoding="utf-8")
        for old, new in text_replacements.items():
            assert old in content, f"{old!r} not in {path.name}"
            content = content.replace(old, new)
        path = tmp_path / f"{name}.bpmn"
        path.write_text(content, encoding="utf-8")
    return db.run(lambda s: runtime.deploy(s, [path], FIXTURES / "forms", "qiang.li", T0))


@pytest.fixture
def gateway_db(org_db):
    """The organisation plus the gateway_condition fixture process."""
    deploy_fixture(org_db, "gateway_condition")
    return org_db


@pytest.fixture
def checks_db(org_db):
    """The organisation plus the parallel_checks fixture: three quality checks open at once per instance."""
    deploy_fixture(org_db, "parallel_checks")
    return org_db


@pytest.fixture
def complaint_db(org_db):
    """The organisation plus the shipped customer complaint procedure and the CAPA procedure it calls."""
    processes = ROOT / "processes"
    org_db.run(lambda s: runtime.deploy(s, [processes / "customer_complaint.bpmn", processes / "capa.bpmn"],
                                        ROOT / "forms", "qiang.li", T0, settings_file=processes / "settings.yaml"))
    return org_db


def at(minutes: int) -> datetime:
    """A moment ``minutes`` after T0."""
    return T0 + timedelta(minutes=minutes)


def fingerprint(db: Database) -> dict[str, list]:
    """Every row of every table, to prove a refused command changed nothing."""
    with db.engine.connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
                for table in inspect(conn).get_table_names()}


def tamper(db: Database, sql: str | Executable, **params) -> None:
    """Change the database behind the engine's back, as someone with direct SQL access could (SQL text, or a
    Core statement where values need the column's type, e.g. JSON).

    On PostgreSQL that takes a superuser, who can switch off the trigger guarding the history for
    the transaction (``session_replication_role``); the hash chain must still catch the change.
    """
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql) if isinstance(sql, str) else sql, params)


SIGNED_APPROVAL = {'<spiffworkflow:property name="role" value="head" />':
                   '<spiffworkflow:property name="role" value="head" />'
                   '<spiffworkflow:property name="signature" value="field:approved" />'
                   '<spiffworkflow:property name="not_same_as" value="review" />'}


@pytest.fixture
def four_eyes_db(org_db, tmp_path):
    """gateway_condition whose head approval is signed (meaning from 'approved') and must not be the reviewer's."""
    deploy_fixture(org_db, "gateway_condition", SIGNED_APPROVAL, tmp_path)
    return org_db


def run_to_approval(db, reviewer: str = "mei.wang") -> tuple[int, int]:
    """Start a large request on four_eyes_db and review it; returns (instance id, approval task id)."""
    instance_id = db.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id)
    [request] = db.run(lambda s: store.tasks_of_instance(s, instance_id))
    db.run(lambda s: runtime.complete(s, request.id, "li.zhou", at(1), {"amount": 50}))
    [review] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    db.run(lambda s: runtime.complete(s, review.id, reviewer, at(2), {"approved": "yes"}))
    [approval] = db.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
    return instance_id, approval.id


PASSWORD = "test-password"
WEB_USERS = ("li.zhou", "mei.wang", "jian.tang")


@pytest.fixture
def web_db(complaint_db):
    """The complaint procedure deployed and passwords for a sales clerk, a quality engineer and the management rep."""
    def work(session):
        for user in WEB_USERS:
            credentials.set_password(session, runtime.organisation(session), user, PASSWORD, user, T0)
    complaint_db.run(work)
    return complaint_db


@pytest.fixture
def web_app(web_db):
    """The web application over web_db, its clock stopped at T0."""
    from web.app import create_app
    return create_app(web_db, clock=lambda: T0, secret="test-secret")

"""Shared fixtures: a real SQLite database per test, the shipped organisation, deployed fixtures."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import inspect, text

from engine import credentials, runtime, store
from engine.store import Database

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
ORG_FILE = ROOT / "org.yaml"
CALENDAR_FILE = ROOT / "calendar.yaml"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2id at its smallest cost in tests (as Django swaps in a fast hasher): production's
    setting spends ~50 ms per hash by design, which every signed step of every test would pay."""
    monkeypatch.setattr(credentials, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def db(tmp_path):
    """A fresh SQLite database file with the schema created."""
    database = Database(f"sqlite:///{tmp_path / 'qproc.db'}")
    database.create_schema()
    yield database
    database.dispose()


@pytest.fixture
def org_db(db):
    """The database with the shipped organisation and business calendar loaded."""
    db.run(lambda s: runtime.load_organisation(s, ORG_FILE, "admin", T0))
    db.run(lambda s: runtime.load_calendar(s, CALENDAR_FILE, "admin", T0))
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
def complaint_db(org_db):
    """The organisation plus the shipped customer complaint procedure."""
    processes = ROOT / "processes"
    org_db.run(lambda s: runtime.deploy(s, [processes / "customer_complaint.bpmn"], ROOT / "forms", "qiang.li", T0,
                                        settings_file=processes / "settings.yaml"))
    return org_db


def at(minutes: int) -> datetime:
    """A moment ``minutes`` after T0."""
    return T0 + timedelta(minutes=minutes)


def fingerprint(db: Database) -> dict[str, list]:
    """Every row of every table, to prove a refused command changed nothing."""
    with db.engine.connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
                for table in inspect(conn).get_table_names()}


def tamper(db: Database, sql: str, **params) -> None:
    """Change the database behind the engine's back, as someone with direct SQL access could."""
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


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

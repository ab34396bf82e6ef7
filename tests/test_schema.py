"""Schema migrations: what they build, upgrading an old database with data in it, refusing a wrong schema."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from conftest import (ORG_FILE, T0, at, deploy_fixture, fingerprint, postgresql_only,
                      sqlite_only)
from engine import audit, runtime, schema, store
from engine.errors import SchemaVersionError
from engine.store import Base, Database


def test_code_needs_the_newest_migration():
    assert store.SCHEMA_REVISION == schema.head()


def test_migrations_build_exactly_the_tables_store_declares(db):
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []


def _at_first_migration(url: str) -> Database:
    database = Database(url)
    with database.engine.begin() as conn:
        schema.upgrade(conn, "0001")
    return database


def test_upgrading_a_database_made_at_the_first_migration_keeps_every_row(empty_url, monkeypatch):
    old = _at_first_migration(empty_url)
    monkeypatch.setattr(store, "SCHEMA_REVISION", "0001")  # qproc as it was when 0001 was the newest
    old.run(lambda s: runtime.load_organisation(s, ORG_FILE, "admin", T0))
    deploy_fixture(old, "gateway_condition")
    first, second = (old.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id) for _ in range(2))
    [task] = old.run(lambda s: store.tasks_of_instance(s, first))
    old.run(lambda s: runtime.complete(s, task.id, "li.zhou", at(1), {"amount": 25}))
    before = fingerprint(old)
    old.dispose()
    monkeypatch.undo()

    upgraded = Database(empty_url)
    assert upgraded.upgrade() == ("0001", store.SCHEMA_REVISION)
    after = fingerprint(upgraded)
    assert after.pop("alembic_version") == [(store.SCHEMA_REVISION,)]
    before.pop("alembic_version")
    assert after == before
    assert upgraded.run(audit.verify).problems == []
    [review] = upgraded.run(lambda s: store.tasks_of_instance(s, first, runtime.ACTIVE_TASK))
    upgraded.run(lambda s: runtime.complete(s, review.id, "mei.wang", at(2), {"approved": True}))
    assert upgraded.run(lambda s: store.tasks_of_instance(s, second, runtime.ACTIVE_TASK)[0].name) == "request"
    upgraded.dispose()


def test_engine_refuses_a_database_behind_and_says_what_to_run(empty_url):
    old = _at_first_migration(empty_url)
    with pytest.raises(SchemaVersionError, match=f"is at schema revision 0001, this qproc needs "
                                                 f"{store.SCHEMA_REVISION}: back it up, then run 'qproc db upgrade'"):
        old.run(runtime.organisation)
    old.dispose()


def test_database_upgraded_by_a_newer_qproc_is_refused(db):
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    newer = Database(db.url)
    with pytest.raises(SchemaVersionError, match="revision 0999, which this qproc does not know"):
        newer.run(runtime.organisation)
    with pytest.raises(SchemaVersionError, match="a newer qproc upgraded it"):
        newer.upgrade()
    newer.dispose()


def test_database_holding_other_tables_is_never_taken_over(empty_url):
    foreign = Database(empty_url)
    with foreign.engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    for attempt in (foreign.upgrade, lambda: foreign.run(runtime.organisation)):
        with pytest.raises(SchemaVersionError, match="holds tables but no qproc schema revision"):
            attempt()
    with foreign.engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT COUNT(*) FROM customers"))] == [0]
    foreign.dispose()


@sqlite_only
def test_first_command_on_a_new_sqlite_file_creates_the_schema(empty_url):
    fresh = Database(empty_url)
    assert fresh.run(lambda s: store.list_instances(s)) == []
    assert fresh.schema_status() == (store.SCHEMA_REVISION, None)
    fresh.dispose()


@postgresql_only
def test_empty_postgresql_database_waits_for_an_explicit_upgrade(empty_url):
    server = Database(empty_url)
    with pytest.raises(SchemaVersionError, match="has no qproc tables yet: run 'qproc db upgrade' to create them"):
        server.run(runtime.organisation)
    assert server.upgrade() == (None, store.SCHEMA_REVISION)
    assert server.run(lambda s: store.list_instances(s)) == []
    server.dispose()

"""Schema migrations: what they build, upgrading an old database with data in it, refusing a wrong schema."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from conftest import (ORG_FILE, T0, at, deploy_fixture, fingerprint, postgresql_only,
                      sqlite_only)
from engine import audit, replay, revisions, runtime, schema, store
from engine.errors import InvalidTransition, SchemaVersionError
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


_ADDED_BY = {  # what each later migration added, removed again to leave a database as an older qproc left it
    "0003": ["DROP TABLE settings", "DROP TABLE revisions"],
    "0002": ["DROP INDEX uq_events_system_seq"],
}
_POSTGRESQL_GUARDS = ["DROP TRIGGER events_append_only ON events", "DROP TRIGGER events_no_truncate ON events",
                      "DROP FUNCTION qproc_history_is_append_only()"]


def _as_left_by(database: Database, revision: str) -> dict[str, list]:
    """Take back what the migrations after ``revision`` added (their rows with them), mark the database as being
    at ``revision``, and return its rows: a database with data made by the qproc of that revision."""
    with database.engine.begin() as conn:
        for later in sorted((r for r in _ADDED_BY if r > revision), reverse=True):
            for statement in _ADDED_BY[later] + (_POSTGRESQL_GUARDS if later == "0002" and
                                                 conn.dialect.name == "postgresql" else []):
                conn.execute(text(statement))
        conn.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
    rows = fingerprint(database)
    database.dispose()
    return rows


def _upgraded_keeps_every_row(url: str, before: dict[str, list], revision: str) -> tuple[Database, dict[str, list]]:
    upgraded = Database(url)
    assert upgraded.upgrade() == (revision, store.SCHEMA_REVISION)
    after = fingerprint(upgraded)
    assert after.pop("alembic_version") == [(store.SCHEMA_REVISION,)]
    before.pop("alembic_version")
    added = {table: after.pop(table) for table in set(after) - set(before)}
    assert after == before
    assert upgraded.run(audit.verify).problems == []
    return upgraded, added


def test_upgrading_a_database_made_at_the_first_migration_keeps_every_row(empty_url):
    made = Database(empty_url)
    made.upgrade()
    made.run(lambda s: runtime.load_organisation(s, ORG_FILE, "admin", T0))
    deploy_fixture(made, "gateway_condition")
    first, second = (made.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id) for _ in range(2))
    [task] = made.run(lambda s: store.tasks_of_instance(s, first))
    made.run(lambda s: runtime.complete(s, task.id, "li.zhou", at(1), {"amount": 25}))
    before = _as_left_by(made, "0001")

    upgraded, added = _upgraded_keeps_every_row(empty_url, before, "0001")
    assert set(added) == {"revisions", "settings"}
    [review] = upgraded.run(lambda s: store.tasks_of_instance(s, first, runtime.ACTIVE_TASK))
    upgraded.run(lambda s: runtime.complete(s, review.id, "mei.wang", at(2), {"approved": True}))
    assert upgraded.run(lambda s: store.tasks_of_instance(s, second, runtime.ACTIVE_TASK)[0].name) == "request"
    upgraded.dispose()


def test_upgrading_a_0002_database_labels_its_versions_and_keeps_its_instances_running(empty_url, tmp_path):
    made = Database(empty_url)
    made.upgrade()
    made.run(lambda s: runtime.load_organisation(s, ORG_FILE, "admin", T0))
    made.run(lambda s: revisions.change_setting(s, "activation", "direct", "admin", T0, "as 0002 behaved"))
    deploy_fixture(made, "gateway_condition")
    on_v1 = made.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id)
    deploy_fixture(made, "gateway_condition", {"amount &gt; 10": "amount &gt; 100"}, tmp_path)
    on_v2 = made.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", T0).id)
    before = _as_left_by(made, "0002")

    upgraded, added = _upgraded_keeps_every_row(empty_url, before, "0002")
    assert added["settings"] == []  # a database upgraded from 0002 asks for approval of new versions
    labels = upgraded.run(lambda s: [(r.definition.version, r.label, r.status, r.activation)
                                     for r in store.revisions_of(s, "gateway_condition")])
    assert labels == [(1, "A/0", "obsolete", "before_revision_control"), (2, "A/1", "active", "before_revision_control")]
    for instance_id in (on_v1, on_v2):
        [request] = upgraded.run(lambda s: store.tasks_of_instance(s, instance_id, runtime.ACTIVE_TASK))
        upgraded.run(lambda s: runtime.complete(s, request.id, "li.zhou", at(1), {"amount": 50}))
    assert upgraded.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", at(2)).definition.version) == 2
    with pytest.raises(InvalidTransition, match="version 1 \\(A/0\\): it is obsolete; the active version is 2 \\(A/1\\)"):
        upgraded.run(lambda s: runtime.start(s, "gateway_condition", "li.zhou", at(2), version=1))
    assert [r.match for r in upgraded.run(replay.replay_all)] == [True, True, True]
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

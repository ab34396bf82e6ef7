"""history guards

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

The system chain (events of no instance) gets a unique sequence number, so two servers deploying at
once cannot fork it; on PostgreSQL a trigger rejects UPDATE, DELETE and TRUNCATE on the history.
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_REJECT = """
CREATE FUNCTION qproc_history_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the history is append-only: % on table % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def upgrade() -> None:
    op.create_index("uq_events_system_seq", "events", ["seq"], unique=True,
                    sqlite_where=sa.text("instance_id IS NULL"), postgresql_where=sa.text("instance_id IS NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REJECT)
        op.execute("CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
                   "FOR EACH ROW EXECUTE FUNCTION qproc_history_is_append_only()")
        op.execute("CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION qproc_history_is_append_only()")

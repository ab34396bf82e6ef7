"""procedure revisions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Document control of deployed versions (P4): a ``revisions`` row per version (label, note, status,
how and when it became active; at most one active per process) and a ``settings`` table (e.g. ``activation``: approval or direct).
Versions deployed before revision control get labels A/0, A/1 … in version order; the newest
version of each process is active (new instances already started on it), older ones obsolete.
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BEFORE_REVISION_CONTROL = "before_revision_control"


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("process_key", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("change_instance_id", sa.Integer(), nullable=True),
        sa.Column("activation", sa.String(length=30), nullable=True),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.Column("activated_by", sa.String(length=200), nullable=True),
        sa.Column("obsoleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["definition_id"], ["definitions.id"]),
        sa.ForeignKeyConstraint(["change_instance_id"], ["instances.id"]),
        sa.PrimaryKeyConstraint("definition_id"),
    )
    op.create_index("ix_revisions_process_key", "revisions", ["process_key"])
    op.create_index("uq_revisions_one_active", "revisions", ["process_key"], unique=True,
                    sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    _label_existing_versions()


def _label_existing_versions() -> None:
    """Every version already deployed gets its revision row: the newest of each process active, older obsolete."""
    conn = op.get_bind()
    definitions = sa.table("definitions", sa.column("id"), sa.column("process_key"), sa.column("version"),
                           sa.column("deployed_at"), sa.column("deployed_by"))
    revisions = sa.table("revisions", *(sa.column(name) for name in (
        "definition_id", "process_key", "label", "status", "activation", "activated_at", "activated_by",
        "obsoleted_at")))
    rows = conn.execute(sa.select(definitions).order_by(definitions.c.process_key, definitions.c.version)).all()
    newest = {row.process_key: row.version for row in rows}
    for row in rows:
        active = row.version == newest[row.process_key]
        conn.execute(revisions.insert().values(
            definition_id=row.id, process_key=row.process_key, label=f"A/{row.version - 1}",
            status="active" if active else "obsolete", activation=BEFORE_REVISION_CONTROL,
            activated_at=row.deployed_at, activated_by=row.deployed_by, obsoleted_at=None))

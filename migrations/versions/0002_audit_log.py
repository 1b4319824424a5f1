"""audit log: entries, Merkle nodes, checkpoints, and triggers that keep them append-only

Revision ID: 0002_audit
Revises: 0001_workflow
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0002_audit"
down_revision: str | None = "0001_workflow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("audit_entry", "audit_node", "audit_checkpoint")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("compact_range", sa.LargeBinary(), nullable=False),
        sa.Column("last_leaf", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=True),
        sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("origin", name=op.f("uq_audit_log_origin")),
    )
    op.create_table(
        "audit_entry",
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user", sa.String(length=128), nullable=True),
        sa.Column("actor_unit", sa.String(length=64), nullable=True),
        sa.Column("actor_role", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=128), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["log_id"], ["audit_log.id"], name=op.f("fk_audit_entry_log_id_audit_log")
        ),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_audit_entry")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_audit_entry_object", "audit_entry", ["log_id", "object_type", "object_id", "seq"]
    )
    op.create_index("ix_audit_entry_unit", "audit_entry", ["log_id", "actor_unit", "seq"])
    op.create_index("ix_audit_entry_user", "audit_entry", ["log_id", "actor_user", "seq"])
    op.create_index("ix_audit_entry_action", "audit_entry", ["log_id", "action", "seq"])
    op.create_index("ix_audit_entry_created_at", "audit_entry", ["log_id", "created_at"])
    op.create_table(
        "audit_node",
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("node_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["log_id"], ["audit_log.id"], name=op.f("fk_audit_node_log_id_audit_log")
        ),
        sa.PrimaryKeyConstraint("log_id", "level", "node_index", name=op.f("pk_audit_node")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["log_id"], ["audit_log.id"], name=op.f("fk_audit_checkpoint_log_id_audit_log")
        ),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_audit_checkpoint")),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {event} refused'); END"
            )
    # The head row moves forward only, and is never deleted.
    op.execute(
        "CREATE TRIGGER audit_log_forward_only BEFORE UPDATE ON audit_log "
        "WHEN NEW.id <> OLD.id OR NEW.origin <> OLD.origin OR NEW.size < OLD.size "
        "BEGIN SELECT RAISE(ABORT, 'audit_log head may only move forward'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END"
    )


def _postgresql_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION audit_log_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id <> OLD.id OR NEW.origin <> OLD.origin OR NEW.size < OLD.size THEN
                RAISE EXCEPTION 'audit_log head may only move forward'
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
    for table in (*APPEND_ONLY, "audit_log"):
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    op.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_forward_only BEFORE UPDATE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_forward_only()"
    )


def downgrade() -> None:
    # Dropping a table drops its triggers; the PostgreSQL functions go after them.
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_node")
    op.drop_index("ix_audit_entry_created_at", table_name="audit_entry")
    op.drop_index("ix_audit_entry_action", table_name="audit_entry")
    op.drop_index("ix_audit_entry_user", table_name="audit_entry")
    op.drop_index("ix_audit_entry_unit", table_name="audit_entry")
    op.drop_index("ix_audit_entry_object", table_name="audit_entry")
    op.drop_table("audit_entry")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_forward_only()")
        op.execute("DROP FUNCTION audit_refuse_change()")

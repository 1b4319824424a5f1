"""audit log (SQLite): entries in a rowid table keyed by log_id * 2**40 + seq

audit_entry was a WITHOUT ROWID table keyed by (log_id, seq). Such a table keeps whole rows,
bodies included, in the interior pages of its B-tree as well as in its leaves, so about seven
fit a page and every append reorganised large cells. Here it becomes an ordinary rowid table
whose rowid, entry_key, is log_id * 2**40 + seq: one integer that orders and identifies an
entry exactly as (log_id, seq) did, so that the pair needs no index of its own. A CHECK holds
entry_key to that value, so it stays unique exactly when (log_id, seq) is. The rows, the two
filter indexes and the append-only triggers are carried over unchanged. PostgreSQL: nothing
changes.

Revision ID: 0013_audit_entry_sqlite_key
Revises: 0012_audit_append_with_commit
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0013_audit_entry_sqlite_key"
down_revision: str | None = "0012_audit_append_with_commit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "log_id * 1099511627776 + seq"  # log_id * 2**40 + seq (audit.schema.sqlite_entry_key)
COLUMNS = (
    "log_id, seq, created_at, actor_user, actor_unit, actor_role, action, object_type, "
    "object_id, body, leaf_hash"
)
COLUMN_DEFINITIONS = """
    log_id INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    created_at DATETIME NOT NULL,
    actor_user VARCHAR(128),
    actor_unit VARCHAR(64),
    actor_role VARCHAR(64),
    action VARCHAR(64) NOT NULL,
    object_type VARCHAR(64) NOT NULL,
    object_id VARCHAR(128) NOT NULL,
    body BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    CONSTRAINT fk_audit_entry_log_id_audit_log FOREIGN KEY(log_id) REFERENCES audit_log (id),
"""


def _replace(create: str, select_key: str) -> None:
    """audit_entry made again by `create` (as audit_entry_new), its rows copied in seq order,
    then its indexes and append-only triggers. DROP TABLE fires no DELETE trigger."""
    op.execute(create)
    op.execute(
        f"INSERT INTO audit_entry_new ({select_key}{COLUMNS}) "  # noqa: S608 - constants
        f"SELECT {KEY + ', ' if select_key else ''}{COLUMNS} FROM audit_entry "
        "ORDER BY log_id, seq"
    )
    op.execute("DROP TABLE audit_entry")
    op.execute("ALTER TABLE audit_entry_new RENAME TO audit_entry")
    op.execute(
        "CREATE INDEX ix_audit_entry_object ON audit_entry (log_id, object_type, object_id, seq)"
    )
    op.execute("CREATE INDEX ix_audit_entry_action ON audit_entry (log_id, action, seq)")
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_entry_no_{event.lower()} BEFORE {event} ON audit_entry "
            f"BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only: {event} refused'); END"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _replace(
        "CREATE TABLE audit_entry_new (\n    entry_key INTEGER NOT NULL PRIMARY KEY,"
        + COLUMN_DEFINITIONS
        + f"    CONSTRAINT ck_audit_entry_key CHECK (seq >= 0 AND seq < 1099511627776 "
        f"AND entry_key = {KEY})\n)",
        "entry_key, ",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _replace(
        "CREATE TABLE audit_entry_new ("
        + COLUMN_DEFINITIONS
        + "    CONSTRAINT pk_audit_entry PRIMARY KEY (log_id, seq)\n) WITHOUT ROWID",
        "",
    )

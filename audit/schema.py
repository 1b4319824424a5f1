"""The audit ledger's tables (SQLAlchemy Core), on their own MetaData.

Entries, perfect-subtree nodes and checkpoints are append-only: migration 0002 installs
triggers that refuse UPDATE and DELETE on them (and TRUNCATE on PostgreSQL). The head row in
audit_log changes on every append; nothing trusts it but the next append.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    literal_column,
)

# The same convention as workflow/models.py (audit/ may not import it).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One row per organization's log: where the next append starts.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("origin", String(255), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    # The compact range of [0, size): one 32-byte hash per set bit of size, largest first.
    Column("compact_range", LargeBinary, nullable=False),
    # Leaf hash of entry size - 1 (the next entry's "prev"); empty while the log is empty.
    Column("last_leaf", LargeBinary, nullable=False),
    Column("checkpoint_size", BigInteger, nullable=True),
    Column("checkpoint_at", DateTime(timezone=True), nullable=True),
)

# One row per entry. seq counts from 0 and is the leaf index in the Merkle tree.
audit_entry = Table(
    "audit_entry",
    metadata,
    Column("log_id", Integer, ForeignKey("audit_log.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Filter columns, copied from the body at append time; the body is authoritative. Only the
    # object and action filters are indexed: the others scan one ward's primary-key range
    # (migration 0008 explains why).
    Column("actor_user", String(128), nullable=True),
    Column("actor_unit", String(64), nullable=True),
    Column("actor_role", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(128), nullable=False),
    # The exact canonical bytes that were hashed: never re-serialised from the columns.
    Column("body", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Index("ix_audit_entry_object", "log_id", "object_type", "object_id", "seq"),
    Index("ix_audit_entry_action", "log_id", "action", "seq"),
)

# Hashes of complete perfect subtrees above the leaves (level >= 1), written when the append
# that completes them happens; leaves (level 0) are audit_entry.leaf_hash.
audit_node = Table(
    "audit_node",
    metadata,
    Column("log_id", Integer, ForeignKey("audit_log.id"), primary_key=True),
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("node_index", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("log_id", Integer, ForeignKey("audit_log.id"), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

APPEND_ONLY_TABLES = ("audit_entry", "audit_node", "audit_checkpoint")

# SQLite (migration 0013): audit_entry is a rowid table whose rowid, the column entry_key, is
# log_id * 2**40 + seq (a CHECK holds it to that), so that (log_id, seq) needs no index of its
# own and the table's B-tree keeps only keys in its interior pages. The column is not in the
# metadata above, which PostgreSQL shares: SQLite's inserts give it, and its reads of one log
# go by its range (`entry_range`, `entry_order`).
SQLITE_KEY_BITS = 40
sqlite_key_column = literal_column("audit_entry.entry_key", BigInteger)


def sqlite_entry_key(log_id: int, seq: int) -> int:
    return (log_id << SQLITE_KEY_BITS) + seq


def entry_range(dialect: str, log_id: int, lo: int, hi: int | None) -> list[ColumnElement[bool]]:
    """WHERE conditions for the entries of log `log_id` with lo <= seq < hi (no upper end
    when hi is None), as each database finds them by key."""
    if dialect == "sqlite":
        # A seq is below 2**40 (the CHECK): bounds outside that would reach another log's keys.
        end = 1 << SQLITE_KEY_BITS
        lo = min(max(lo, 0), end)
        hi = end if hi is None else min(max(hi, lo), end)
        # The key alone: with log_id = ? as well, SQLite's planner prefers a filter index
        # leading with log_id and reads the whole log through it.
        return [
            sqlite_key_column >= sqlite_entry_key(log_id, lo),
            sqlite_key_column < sqlite_entry_key(log_id, hi),
        ]
    where = [audit_entry.c.log_id == log_id, audit_entry.c.seq >= lo]
    if hi is not None:
        where.append(audit_entry.c.seq < hi)
    return where


def entry_order(dialect: str) -> ColumnElement[int]:
    """What orders one log's entries by seq without a sort: on SQLite the key."""
    return sqlite_key_column if dialect == "sqlite" else audit_entry.c.seq

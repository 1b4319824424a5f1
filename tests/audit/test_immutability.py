"""The database refuses to change or remove what the log has written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from audit.ledger import CheckpointPolicy, Ledger

pytestmark = pytest.mark.db

CHANGES = [
    "UPDATE audit_entry SET action = 'forged'",
    "UPDATE audit_entry SET body = body",
    "DELETE FROM audit_entry WHERE seq = (SELECT MAX(seq) FROM audit_entry)",
    "UPDATE audit_node SET hash = hash",
    "DELETE FROM audit_node",
    "UPDATE audit_checkpoint SET note = 'forged'",
    "DELETE FROM audit_checkpoint",
    "UPDATE audit_log SET size = size - 1",
    "UPDATE audit_log SET origin = 'elsewhere'",
    "DELETE FROM audit_log",
]


@pytest.fixture
def written(session: Session, append: Any, keys: Any) -> Session:
    ledger = Ledger(
        "test.example/immutable",
        signer=keys.signer,
        policy=CheckpointPolicy(every_entries=2, interval=None),
    )
    append(session, ledger, 9)  # 8 entries complete the first stored audit_node row
    session.flush()
    return session


@pytest.mark.parametrize("sql", CHANGES)
def test_changes_are_refused(written: Session, sql: str) -> None:
    before = written.execute(text("SELECT COUNT(*), MAX(action) FROM audit_entry")).one()
    savepoint = written.begin_nested()
    with pytest.raises(DBAPIError, match=r"append-only|forward"):
        written.execute(text(sql))
    savepoint.rollback()
    after = written.execute(text("SELECT COUNT(*), MAX(action) FROM audit_entry")).one()
    assert tuple(before) == tuple(after)


@pytest.mark.parametrize("table", ["audit_entry", "audit_node", "audit_checkpoint", "audit_log"])
def test_truncate_is_refused_on_postgresql(written: Session, table: str) -> None:
    if written.get_bind().dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    savepoint = written.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        written.execute(text(f"TRUNCATE {table} CASCADE"))
    savepoint.rollback()


def test_the_head_may_move_forward(written: Session) -> None:
    # The append path itself: the head row is updated, forward.
    written.execute(text("UPDATE audit_log SET checkpoint_size = checkpoint_size"))


def test_sqlite_entry_keys_are_held_to_log_and_seq(written: Session) -> None:
    """SQLite (migration 0013): an entry's rowid key is log_id * 2**40 + seq, or the insert is
    refused, so the key is unique exactly when (log_id, seq) is."""
    if written.get_bind().dialect.name != "sqlite":
        pytest.skip("the rowid key is SQLite's")

    def copy_of_entry_0_as_seq_100(key: str) -> Any:
        return text(
            "INSERT INTO audit_entry (entry_key, log_id, seq, created_at, action, object_type, "
            f"object_id, body, leaf_hash) SELECT {key}, log_id, seq + 100, created_at, action, "
            "object_type, object_id, body, leaf_hash FROM audit_entry WHERE seq = 0"
        )

    for wrong in ("log_id * 1099511627776 + 101", "(log_id + 1) * 1099511627776 + 100"):
        savepoint = written.begin_nested()
        with pytest.raises(DBAPIError, match="ck_audit_entry_key"):
            written.execute(copy_of_entry_0_as_seq_100(wrong))
        savepoint.rollback()
    savepoint = written.begin_nested()  # the key the ledger gives is accepted
    written.execute(copy_of_entry_0_as_seq_100("log_id * 1099511627776 + 100"))
    savepoint.rollback()

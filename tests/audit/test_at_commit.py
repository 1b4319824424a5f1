"""Appends sent with the COMMIT (`Ledger.append_at_commit`, PostgreSQL).

The append waits on the connection and goes in one message with the transaction's COMMIT, so
that the log's head row is locked only while the server runs the two. What must hold: the
entry commits with the transaction or not at all; anything that might need it first sends it
at once (a statement, a ledger call, a look at the entry, a SAVEPOINT); a rollback, also to a
savepoint, drops it; a failure of the append makes the COMMIT fail with nothing committed.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import audit.ledger as ledger_module
from audit import merkle
from audit.canonical import canonical_bytes
from audit.ledger import (
    AppendedEntry,
    CommittedMismatchError,
    ConcurrentAppendError,
    Ledger,
    LedgerError,
    PendingEntry,
)
from audit.schema import audit_entry
from workflow.db import make_engine

from .conftest import T0
from .test_concurrency import _check_log, _commit_behind, _now

pytestmark = pytest.mark.db
ORIGIN = "test.example/at-commit"


def _fields(i: int) -> dict[str, Any]:
    return {
        "ts": T0 + timedelta(minutes=i),
        "actor": {"user": f"user{i % 2}", "unit": "U1", "role": "member"},
        "action": "task.submit",
        "object": {"type": "task_instance", "id": str(i % 3)},
        "details": {"note": f"Lần {i}"},
    }


def _record(i: int, prev: bytes) -> dict[str, Any]:
    """The body entry `i` has when it is the log's entry `i`."""
    return {
        "v": 1,
        "log": ORIGIN,
        "seq": i,
        "ts": (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prev": prev.hex(),
        "actor": {"user": f"user{i % 2}", "unit": "U1", "role": "member"},
        "action": "task.submit",
        "object": {"type": "task_instance", "id": str(i % 3)},
        "details": {"note": f"Lần {i}"},
    }


def _pg(url: str) -> Engine:
    if not url.startswith("postgresql"):
        pytest.skip("on SQLite an append is written at once (the write lock is held anyway)")
    return make_engine(url)


def _primed(engine: Engine, ledger: Ledger, n: int = 2) -> None:
    """`n` entries appended and committed: this process now knows the head."""
    with Session(engine) as session, session.begin():
        for i in range(n):
            ledger.append(session, **_fields(i))


@pytest.fixture
def primed(fresh_db_url: str) -> Iterator[tuple[Engine, Ledger]]:
    """A PostgreSQL engine and a ledger whose log holds two committed entries."""
    engine = _pg(fresh_db_url)
    ledger = Ledger(ORIGIN)
    try:
        _primed(engine, ledger)
        yield engine, ledger
    finally:
        engine.dispose()


def _head_is_free(engine: Engine) -> bool:
    """Whether another connection can lock the log's head row at once."""
    with engine.connect() as other:
        try:
            other.execute(
                text("SELECT id FROM audit_log WHERE origin = :o FOR UPDATE NOWAIT"), {"o": ORIGIN}
            )
        except Exception as exc:
            if getattr(exc.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
                return False
            raise
        finally:
            other.rollback()
    return True


def _size(engine: Engine, ledger: Ledger) -> int:
    with Session(engine) as session:
        return ledger.size(session)


def test_on_sqlite_it_is_an_ordinary_append(db_url: str, session: Session) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's case")
    ledger = Ledger(ORIGIN)
    first = ledger.append_at_commit(session, **_fields(0))
    assert isinstance(first, AppendedEntry) and first.seq == 0
    assert ledger.size(session) == 1


def test_without_the_listeners_it_is_an_ordinary_append(primed: tuple[Engine, Ledger]) -> None:
    """An engine not made by make_engine has no COMMIT listener: nothing may wait on it."""
    engine, ledger = primed
    bare = create_engine(engine.url)
    try:
        with Session(bare) as session:
            session.begin()
            entry = ledger.append_at_commit(session, **_fields(2))
            assert isinstance(entry, AppendedEntry) and entry.seq == 2
            session.commit()
        assert _size(engine, ledger) == 3
    finally:
        bare.dispose()


def test_the_append_goes_with_the_commit_and_holds_no_lock_before(
    primed: tuple[Engine, Ledger], fresh_db_url: str, keys: Any, tmp_path: Path
) -> None:
    engine, ledger = primed
    with Session(engine) as session:
        session.begin()
        pending = ledger.append_at_commit(session, **_fields(2))
        assert isinstance(pending, PendingEntry)
        # Nothing was sent: the head is free for the other writers of the ward.
        assert _head_is_free(engine)
        assert _size(engine, ledger) == 2
        session.commit()
        assert pending.seq == 2
    with Session(engine) as session:
        stored = ledger.entry(session, 2)
        assert (
            stored.body
            == pending.body
            == canonical_bytes(_record(2, ledger.entry(session, 1).leaf_hash))
        )
        assert stored.leaf_hash == pending.leaf_hash
    _check_log(fresh_db_url, 3, keys, tmp_path, ORIGIN)


def test_looking_at_the_entry_before_the_commit_sends_it_at_once(
    primed: tuple[Engine, Ledger],
) -> None:
    engine, ledger = primed
    with Session(engine) as session:
        session.begin()
        pending = ledger.append_at_commit(session, **_fields(2))
        assert pending.seq == 2
        assert not _head_is_free(engine)  # sent: this transaction holds the head
        assert ledger.size(session) == 3
        session.commit()
    assert _size(engine, ledger) == 3


@pytest.mark.parametrize("first", ["statement", "ledger call", "savepoint", "second append"])
def test_what_might_need_the_entry_first_sends_it(
    primed: tuple[Engine, Ledger], first: str
) -> None:
    engine, ledger = primed
    with Session(engine) as session:
        session.begin()
        pending = ledger.append_at_commit(session, **_fields(2))
        if first == "statement":
            assert session.scalar(select(func.count()).select_from(audit_entry)) == 3
        elif first == "ledger call":
            assert ledger.entry(session, 2).body == pending.body
        elif first == "savepoint":
            with session.begin_nested() as savepoint:
                savepoint.rollback()  # the entry was sent before the SAVEPOINT
        else:
            second = ledger.append_at_commit(session, **_fields(3))
            assert pending.seq == 2 and second.seq == 3
        session.commit()
    assert _size(engine, ledger) == (4 if first == "second append" else 3)


def test_a_rollback_drops_the_append(primed: tuple[Engine, Ledger]) -> None:
    engine, ledger = primed
    with Session(engine) as session:
        session.begin()
        pending = ledger.append_at_commit(session, **_fields(2))
        session.rollback()
    with pytest.raises(LedgerError, match="rolled back"):
        pending.result()
    assert _size(engine, ledger) == 2
    with Session(engine) as session:  # the next transaction knows nothing of it
        session.begin()
        later = ledger.append_at_commit(session, **_fields(2))
        session.commit()
        assert later.seq == 2


def test_a_rollback_to_a_savepoint_drops_the_append_made_inside_it(
    primed: tuple[Engine, Ledger],
) -> None:
    engine, ledger = primed
    with Session(engine) as session:
        session.begin()
        savepoint = session.begin_nested()
        inside = ledger.append_at_commit(session, **_fields(2))
        savepoint.rollback()
        kept = ledger.append_at_commit(session, **_fields(2))
        session.commit()
        assert kept.seq == 2
    with pytest.raises(LedgerError):
        inside.result()
    assert _size(engine, ledger) == 3


def test_on_a_stale_head_the_entry_is_built_again_and_committed(
    primed: tuple[Engine, Ledger],
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if another process had appended since this one last did: the database builds the
    entry again on the head it finds, within the same message as the COMMIT."""
    engine, ledger = primed
    key = (str(engine.url), ORIGIN)
    stale = ledger_module._KNOWN_HEADS[key]
    _primed_more = _fields(2)
    with Session(engine) as session, session.begin():
        ledger.append(session, **_primed_more)
    monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, stale)
    with Session(engine) as session:
        session.begin()
        pending = ledger.append_at_commit(session, **_fields(3))
        session.commit()
    assert pending.seq == 3 and ledger_module._KNOWN_HEADS[key].size == 4
    with Session(engine) as session:
        expected = canonical_bytes(_record(3, ledger.entry(session, 2).leaf_hash))
        assert ledger.entry(session, 3).body == pending.body == expected
    _check_log(fresh_db_url, 4, keys, tmp_path, ORIGIN)


def _count_rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs of the entries the database built again (their body differs from the one
    sent), as the ledger learns of them."""
    seqs: list[int] = []
    real = Ledger._rebuilt

    def counted(self: Ledger, head: Any, seq: int, *args: Any) -> Any:
        seqs.append(seq)
        return real(self, head, seq, *args)

    monkeypatch.setattr(Ledger, "_rebuilt", counted)
    return seqs


def test_built_on_a_head_not_yet_committed_the_entry_is_written_as_built(
    primed: tuple[Engine, Ledger],
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another transaction of this process appended and holds the head uncommitted; an entry
    built on that head and sent with its own COMMIT waits for it, and once it has committed
    finds the head it was built on: the entry goes in as built, not built again."""
    engine, ledger = primed
    rebuilt = _count_rebuilds(monkeypatch)
    first = Session(engine)
    first.begin()
    ledger.append(first, **_fields(2))  # the head's row locked, the new head known here
    outcome: list[Any] = []

    def second() -> None:
        try:
            with Session(engine) as session:
                session.begin()
                pending = ledger.append_at_commit(session, **_fields(3))
                session.commit()  # sends the append, which waits for the first to commit
                outcome.append(pending.seq)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    _commit_behind(first, second, "the append")
    assert outcome == [3] and rebuilt == []
    _check_log(fresh_db_url, 4, keys, tmp_path, ORIGIN)


def test_on_a_stale_empty_head_the_first_entry_is_built_again(
    fresh_db_url: str, keys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built on an empty log that another process has since appended to: the database builds
    the entry again after that one (from the genesis "prev" to a real one)."""
    engine = _pg(fresh_db_url)
    ledger = Ledger(ORIGIN)
    try:
        key = (str(engine.url), ORIGIN)
        with Session(engine) as session, session.begin():
            ledger.ensure_log(session)
            empty = ledger_module._head_from_row(
                session.execute(
                    text(
                        "SELECT id, size, compact_range, last_leaf, checkpoint_size, "
                        "checkpoint_at FROM audit_log WHERE origin = :o"
                    ),
                    {"o": ORIGIN},
                ).one()
            )
        _primed(engine, ledger, 1)
        monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, empty)
        rebuilt = _count_rebuilds(monkeypatch)
        with Session(engine) as session:
            session.begin()
            pending = ledger.append_at_commit(session, **_fields(1))
            session.commit()
        assert pending.seq == 1 and rebuilt == [1]
        with Session(engine) as session:
            expected = canonical_bytes(_record(1, ledger.entry(session, 0).leaf_hash))
            assert ledger.entry(session, 1).body == pending.body == expected
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 2, keys, tmp_path, ORIGIN)


def _other_change(session: Session) -> None:
    """A change of the caller's own in the same transaction."""
    session.execute(text("CREATE TABLE IF NOT EXISTS at_commit_probe (n integer)"))
    session.execute(text("INSERT INTO at_commit_probe VALUES (1)"))


def _probe_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        exists = conn.scalar(text("SELECT to_regclass('at_commit_probe') IS NOT NULL"))
        return int(conn.scalar(text("SELECT count(*) FROM at_commit_probe"))) if exists else 0


def _failing_commit(
    engine: Engine, ledger: Ledger, i: int, error: type[Exception], match: str
) -> AppendedEntry | PendingEntry:
    """A transaction with a change of its own and entry `i` appended at its commit, whose
    COMMIT raises `error` (its message matching `match`); what the append returned."""
    with Session(engine) as session:
        session.begin()
        _other_change(session)
        pending = ledger.append_at_commit(session, **_fields(i))
        with pytest.raises(error, match=match):
            session.commit()
    return pending


def test_an_entry_built_again_otherwise_after_the_commit_is_an_alarm(
    primed: tuple[Engine, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database built the entry again (the head had moved) into bytes that the ledger
    cannot even read in its own layout. The COMMIT has run: the error says so
    (CommittedMismatchError, not a bare ValueError), the caller's change is committed with
    the database's entry, and the head this process remembered is forgotten."""
    engine, ledger = primed
    key = (str(engine.url), ORIGIN)
    stale = ledger_module._KNOWN_HEADS[key]
    with Session(engine) as session, session.begin():
        ledger.append(session, **_fields(2))
    monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, stale)
    real = ledger_module._around_link
    calls: list[bytes] = []

    def unreadable_on_return(body: bytes) -> tuple[bytes, bytes]:
        calls.append(body)
        if len(calls) > 1:
            raise ValueError("subsection not found")
        return real(body)

    monkeypatch.setattr(ledger_module, "_around_link", unreadable_on_return)
    pending = _failing_commit(engine, ledger, 3, CommittedMismatchError, "committed with it")
    assert len(calls) == 2, "the entry was not built again by the database"
    with pytest.raises(LedgerError, match="does not match"):
        pending.result()
    assert key not in ledger_module._KNOWN_HEADS
    assert _probe_rows(engine) == 1 and _size(engine, ledger) == 4


def test_an_append_that_fails_at_the_commit_fails_the_commit(primed: tuple[Engine, Ledger]) -> None:
    """An entry stored past the head behind the ledger's back: the append fails, the COMMIT
    is not run, and the caller's own change is not committed either."""
    engine, ledger = primed
    with Session(engine) as session:
        stray = ledger.entry(session, 1)
    with engine.begin() as conn:
        conn.execute(
            audit_entry.insert().values(
                log_id=ledger.ensure_log(conn), seq=2, created_at=_now(), action="x",
                object_type="x", object_id="x", body=stray.body, leaf_hash=stray.leaf_hash,
            )
        )  # fmt: skip
    pending = _failing_commit(engine, ledger, 2, ConcurrentAppendError, "nothing was committed")
    with pytest.raises(LedgerError, match="nothing was committed"):
        pending.result()
    assert _probe_rows(engine) == 0
    with Session(engine) as session:
        assert ledger.size(session) == 2


def test_an_append_to_a_log_that_is_not_there_fails_the_commit(
    primed: tuple[Engine, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after the database was made again at the same URL: the head this process remembers
    names a log that is not there. The function raises rather than answer nothing, so the
    COMMIT behind it never commits the change without its entry."""
    engine, ledger = primed
    key = (str(engine.url), ORIGIN)
    remembered = ledger_module._KNOWN_HEADS[key]
    monkeypatch.setitem(
        ledger_module._KNOWN_HEADS, key, dataclasses.replace(remembered, id=remembered.id + 99)
    )
    _failing_commit(engine, ledger, 2, LedgerError, "is not there")
    assert _probe_rows(engine) == 0
    assert _size(engine, ledger) == 2
    # The remembered head was forgotten: the next append reads the head under the lock.
    with Session(engine) as session:
        session.begin()
        retried = ledger.append_at_commit(session, **_fields(2))
        session.commit()
    assert retried.seq == 2 and _size(engine, ledger) == 3


def test_the_entry_is_the_one_built_when_appended(primed: tuple[Engine, Ledger]) -> None:
    """A caller that changes its values after the append does not change the entry, whether
    it is sent before the COMMIT or with it."""
    engine, ledger = primed
    with Session(engine) as session:
        session.begin()
        fields = _fields(2)
        first = ledger.append_at_commit(session, **fields)
        fields["details"]["note"] = "đổi sau"
        assert ledger.size(session) == 3  # sent now
        fields = _fields(3)
        second = ledger.append_at_commit(session, **fields)
        fields["details"]["note"] = "đổi sau"
        session.commit()
    with Session(engine) as session:
        for pending, i in ((first, 2), (second, 3)):
            stored = ledger.entry(session, i)
            assert stored.body == pending.body
            assert stored.content()["details"] == {"note": f"Lần {i}"}


def test_the_stored_subtrees_are_right_whether_an_append_completes_any_or_not(
    primed: tuple[Engine, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven appends in eight complete no stored subtree and send none (NULLs, not empty
    arrays); the others send theirs, or on a stale head have the database compute them, on
    each of the append's paths. Every root from the stored subtrees, and every inclusion
    proof, matches the leaves."""
    engine, ledger = primed  # entries 0 and 1
    key = (str(engine.url), ORIGIN)
    for i in range(2, 34):
        if i in (14, 22):
            # As if another process appended entry i: entry i + 1, which completes subtrees
            # (of 8 and 16 at 15, of 8 at 23), is built on a stale head and the database
            # builds it again, its subtrees too.
            stale = ledger_module._KNOWN_HEADS[key]
            with Session(engine) as session, session.begin():
                ledger.append(session, **_fields(i))
            monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, stale)
            continue
        if i in (30, 31):
            # As in a new process: no head known, the append reads it under the lock and
            # writes in one statement, with no subtree (30) and with three (31).
            monkeypatch.delitem(ledger_module._KNOWN_HEADS, key)
        with Session(engine) as session:
            session.begin()
            pending = ledger.append_at_commit(session, **_fields(i))
            session.commit()
        assert pending.seq == i
    with Session(engine) as session:
        leaves = [ledger.entry(session, i).leaf_hash for i in range(34)]
        stored = session.execute(
            text(
                "SELECT n.level, n.node_index FROM audit_node n JOIN audit_log l "
                "ON l.id = n.log_id WHERE l.origin = :o ORDER BY 1, 2"
            ),
            {"o": ORIGIN},
        ).all()
        expected = [(3, 0), (3, 1), (3, 2), (3, 3), (4, 0), (4, 1), (5, 0)]
        assert [tuple(r) for r in stored] == expected
        for size in range(1, 35):
            root = merkle.root_from_leaves(leaves[:size])
            assert ledger.root(session, size) == root
            for seq in range(size):
                proof = ledger.inclusion_proof(session, seq, size)
                assert merkle.verify_inclusion(leaves[seq], seq, size, proof, root)


def test_a_rollback_after_the_connection_was_lost_raises_what_happened(
    primed: tuple[Engine, Ledger],
) -> None:
    """With the listeners installed, a rollback on a connection the server dropped still
    reports the lost connection, not an error of the listeners."""
    engine, ledger = primed
    with Session(engine) as session:
        session.begin()
        ledger.append_at_commit(session, **_fields(2))
        pid = session.scalar(text("SELECT pg_backend_pid()"))
        with engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            killer.commit()
        with pytest.raises(OperationalError):
            session.execute(text("SELECT 1"))
        session.rollback()
    assert _size(engine, ledger) == 2  # the transaction died with its connection


def test_a_two_phase_rollback_drops_the_append(primed: tuple[Engine, Ledger]) -> None:
    engine, ledger = primed
    with engine.connect() as conn:
        twophase = conn.begin_twophase()
        pending = ledger.append_at_commit(conn, **_fields(2))
        twophase.rollback()
        with pytest.raises(LedgerError, match="rolled back"):
            pending.result()
        assert ledger.size(conn) == 2
        conn.commit()
    assert _size(engine, ledger) == 2


def test_a_session_dropped_with_an_append_waiting_gives_its_connection_back(
    fresh_db_url: str,
) -> None:
    engine = _pg(fresh_db_url)
    small = make_engine(fresh_db_url, pool_size=1, max_overflow=0, pool_timeout=2)
    ledger = Ledger(ORIGIN)
    try:
        _primed(small, ledger)
        session = Session(small)
        session.begin()
        pending = ledger.append_at_commit(session, **_fields(2))
        assert isinstance(pending, PendingEntry)
        del session
        gc.collect()
        with small.connect() as conn:  # the only connection is back in the pool
            assert ledger.size(conn) == 2
    finally:
        small.dispose()
        engine.dispose()


def test_appends_hold_on_a_server_with_the_old_string_quoting(
    fresh_db_url: str, keys: Any, tmp_path: Path
) -> None:
    """A server or role set to standard_conforming_strings = off reads backslashes in string
    literals as escapes: the log's functions (compiled with their literals) and the bytea
    arrays of an append sent with its COMMIT (one append in eight stores nodes) would break.
    The engines make_engine makes set it on for their connections."""
    if not fresh_db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    engine = make_engine(
        fresh_db_url, connect_args={"options": "-c standard_conforming_strings=off"}
    )
    ledger = Ledger(ORIGIN)
    try:
        _primed(engine, ledger)
        for i in range(2, 20):
            with Session(engine) as session:
                session.begin()
                ledger.append_at_commit(session, **_fields(i))
                session.commit()
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 20, keys, tmp_path, ORIGIN)

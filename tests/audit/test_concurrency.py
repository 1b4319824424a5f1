"""Concurrent writers, threads and processes, never fork or gap a log."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import ledger as ledger_module
from audit.canonical import canonical_bytes
from audit.export import export_log
from audit.ledger import CheckpointPolicy, ConcurrentAppendError, Ledger
from audit.merkle import leaf_hash, verify_inclusion
from audit.schema import audit_entry, audit_log
from audit.verify import verify_export
from workflow.db import make_engine

pytestmark = pytest.mark.db
ORIGIN = "test.example/concurrent"


def _check_log(url: str, expected: int, keys: Any, tmp_path: Path, origin: str = ORIGIN) -> None:
    engine = make_engine(url)
    folder = tmp_path / f"export-{origin.rsplit('/', 1)[-1]}"
    try:
        with Session(engine) as session, session.begin():
            seqs = session.scalars(
                select(audit_entry.c.seq)
                .join(audit_log, audit_log.c.id == audit_entry.c.log_id)
                .where(audit_log.c.origin == origin)
                .order_by(audit_entry.c.seq)
            ).all()
            assert seqs == list(range(expected))
            Ledger(origin).checkpoint(session, keys.signer, now=_now())
        with Session(engine) as session:
            summary = export_log(session, origin, folder, keys.verifier_text)
        assert summary.size == expected
        report = verify_export(folder, keys.verifier_text)
        assert report.ok, report.problem
        assert report.size == expected and report.covered == expected
    finally:
        engine.dispose()


def _commit_behind(first: Session, second: Any, what: str) -> None:
    """Run `second` in a thread while `first` holds the head's row lock; once `second` is
    seen waiting for it, commit `first` and let `second` finish."""
    waiting = threading.Thread(target=second)
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive(), f"{what} did not wait for the head's row lock"
    first.commit()
    first.close()
    waiting.join(10)
    assert not waiting.is_alive()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 6, 1, tzinfo=UTC)


def _load_workers(monkeypatch: pytest.MonkeyPatch) -> Any:
    # Spawned processes import the worker by module name, so its folder goes on sys.path
    # (inherited by the children through multiprocessing's preparation data).
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import _audit_workers  # type: ignore[import-not-found]

    return _audit_workers


# With at_commit, on PostgreSQL most appends go with their COMMIT (Ledger.append_at_commit).
@pytest.mark.parametrize("at_commit", [False, True], ids=["append", "at-commit"])
def test_threads_append_without_gaps(
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    at_commit: bool,
) -> None:
    workers = _load_workers(monkeypatch)
    threads, each = 6, 15
    kinds: list[str] = []
    real = Ledger.append_at_commit

    def recorded(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        entry = real(self, *args, **kwargs)
        kinds.append(type(entry).__name__)
        return entry

    monkeypatch.setattr(Ledger, "append_at_commit", recorded)
    with ThreadPoolExecutor(threads) as pool:
        results = list(
            pool.map(
                lambda w: workers.append_many(fresh_db_url, ORIGIN, w, each, at_commit),
                range(threads),
            )
        )
    assert sorted(s for r in results for s in r) == list(range(threads * each))
    if at_commit and fresh_db_url.startswith("postgresql"):
        # All but the appends made before this process knew the head went with the COMMIT.
        assert kinds.count("PendingEntry") >= threads * (each - 2), kinds
    _check_log(fresh_db_url, threads * each, keys, tmp_path)


@pytest.mark.parametrize("at_commit", [False, True], ids=["append", "at-commit"])
def test_processes_append_without_gaps(
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    at_commit: bool,
) -> None:
    workers = _load_workers(monkeypatch)
    procs, each = 3, 15
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        results = pool.starmap(
            workers.append_many,
            [(fresh_db_url, ORIGIN, w, each, at_commit) for w in range(procs)],
        )
    assert sorted(s for r in results for s in r) == list(range(procs * each))
    _check_log(fresh_db_url, procs * each, keys, tmp_path)


# --- PostgreSQL: writers of one process chain their appends on the head's row lock ------------


def _pg_engine(url: str) -> Any:
    if not url.startswith("postgresql"):
        pytest.skip("the head's row lock and the known head are PostgreSQL's append path")
    return make_engine(url)


def _count_locked_writes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Calls of the path that reads the head under the lock (or builds again on the head a
    lost race returned): True when it was given that head."""
    calls: list[bool] = []
    real = Ledger._locked_write

    def counted(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("head") is not None)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "_locked_write", counted)
    return calls


def test_a_waiting_append_goes_through_when_the_one_before_commits(
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    append: Any,
) -> None:
    append_n = append
    engine = _pg_engine(fresh_db_url)
    ledger = Ledger(ORIGIN)
    try:
        with Session(engine) as session, session.begin():
            append_n(session, ledger, 1)  # this process now knows the head
        locked = _count_locked_writes(monkeypatch)
        first = Session(engine)
        first.begin()
        append_n(first, ledger, 1, start=1)  # holds the head's row lock until it commits
        seqs: list[int] = []

        def second() -> None:
            with Session(engine) as session, session.begin():
                seqs.append(append_n(session, ledger, 1, start=2)[0].seq)

        _commit_behind(first, second, "the second append")
        # Built on the first's entry before it committed, and written as it was: neither
        # append read the head again.
        assert seqs == [2] and locked == []
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 3, keys, tmp_path)


def test_an_append_on_the_head_this_process_left_does_not_read_it_again(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, append: Any
) -> None:
    engine = make_engine(fresh_db_url)
    ledger = Ledger(ORIGIN)
    try:
        with Session(engine) as session, session.begin():
            append(session, ledger, 1)
        locked = _count_locked_writes(monkeypatch)
        with Session(engine) as session, session.begin():
            assert [e.seq for e in append(session, ledger, 3, start=1)] == [1, 2, 3]
        assert locked == []
    finally:
        engine.dispose()


def _append_on_a_stale_head(
    engine: Any, ledger: Ledger, append_n: Any, monkeypatch: pytest.MonkeyPatch, known: int
) -> tuple[Any, list[bool]]:
    """Append `known` entries, then one more as if by another process (this process keeps
    expecting the head after the first `known`), then one on that stale expectation: that
    entry and the calls of the locked path it made."""
    key = (str(engine.url), ledger.origin)
    with Session(engine) as session, session.begin():
        append_n(session, ledger, known)
    stale = ledger_module._KNOWN_HEADS[key]
    with Session(engine) as session, session.begin():
        append_n(session, ledger, 1, start=known)
    monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, stale)
    locked = _count_locked_writes(monkeypatch)
    with Session(engine) as session, session.begin():
        written = append_n(session, ledger, 1, start=known + 1)[0]
    return written, locked


def test_an_append_on_a_stale_head_builds_again_under_the_lock(
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    append: Any,
) -> None:
    """As if another process had appended since this one last did. On PostgreSQL the
    database builds the entry again on the head it found locked, in the same statement; on
    SQLite (the write lock held) the head is read again and the entry built on it. Either
    way the entry is exactly the canonical body on the real head. The rebuilt entry is
    entry 7, which completes a stored subtree of eight leaves, and a proof reads that node."""
    append_n = append
    pg = fresh_db_url.startswith("postgresql")
    engine = make_engine(fresh_db_url)
    ledger = Ledger(ORIGIN)
    key = (str(engine.url), ORIGIN)
    try:
        written, locked = _append_on_a_stale_head(engine, ledger, append_n, monkeypatch, 6)
        assert locked == ([] if pg else [False])
        assert written.seq == 7 and ledger_module._KNOWN_HEADS[key].size == 8
        with Session(engine) as session, session.begin():
            append_n(session, ledger, 1, start=8)
            stored = ledger.entry(session, 7)
            record = {
                "v": 1,
                "log": ORIGIN,
                "seq": 7,
                "ts": "2026-03-02T01:37:00Z",  # T0 + 7 minutes
                "prev": ledger.entry(session, 6).leaf_hash.hex(),
                "actor": {"user": "user1", "unit": "U1", "role": "member"},
                "action": "task.accepted",
                "object": {"type": "task", "id": "3"},
                "details": {"note": "Lần 7: nộp minh chứng"},
            }
            assert stored.body == written.body == canonical_bytes(record)
            assert stored.leaf_hash == written.leaf_hash == leaf_hash(written.body)
            # The path of entry 8 in a tree of 9 is the stored node over entries 0..7.
            proof = ledger.inclusion_proof(session, 8, 9)
            root = ledger.root(session, 9)
            assert verify_inclusion(ledger.entry(session, 8).leaf_hash, 8, 9, proof, root)
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 9, keys, tmp_path)


def test_an_append_on_a_stale_head_that_makes_a_checkpoint_due_signs_it(
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    append: Any,
) -> None:
    """Built on the head this process left, the entry signs nothing; on the head another
    process left, it is the third since the last checkpoint and signs one. The database
    leaves that to the locked path, which signs and writes it."""
    engine = make_engine(fresh_db_url)
    policy = CheckpointPolicy(every_entries=3, interval=None)
    ledger = Ledger(ORIGIN, signer=keys.signer, policy=policy)
    try:
        written, locked = _append_on_a_stale_head(engine, ledger, append, monkeypatch, 1)
        assert len(locked) == 1 and written.seq == 2
        assert written.checkpoint is not None and written.checkpoint.size == 3
        with Session(engine) as session:
            assert [cp.size for cp in ledger.checkpoints(session)] == [3]
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 3, keys, tmp_path)


def test_a_transaction_holding_the_head_does_not_wait_for_the_process_chain(
    fresh_db_url: str,
    keys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    append: Any,
) -> None:
    """The writer waiting on the head's row lock holds this process's chain lock for that
    log; the transaction it waits for appends again and must not wait for that lock."""
    append_n = append
    engine = _pg_engine(fresh_db_url)
    monkeypatch.setattr(ledger_module, "_CHAIN_WAIT", 120.0)  # a wait would be a hang
    ledger = Ledger(ORIGIN)
    try:
        with Session(engine) as session, session.begin():
            append_n(session, ledger, 1)
        first = Session(engine)
        first.begin()
        append_n(first, ledger, 1, start=1)

        def second() -> None:
            with Session(engine) as session, session.begin():
                append_n(session, ledger, 1, start=3)

        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive()
        again = threading.Thread(target=lambda: append_n(first, ledger, 1, start=2))
        again.start()
        again.join(20)
        assert not again.is_alive(), "the head's holder waited for the chain lock"
        first.commit()
        first.close()
        waiting.join(20)
        assert not waiting.is_alive()
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 4, keys, tmp_path)


def test_an_identical_entry_built_on_a_stale_head_is_appended_after_the_other(
    fresh_db_url: str, keys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process appended an entry byte for byte equal to this one (same fields, same
    instant) on the head this process still expects. The head after that entry is the one
    this entry would have made, so only the head before tells them apart: the append must
    see that the log moved and add this entry after the other, never report the other's."""
    engine = _pg_engine(fresh_db_url)
    ledger = Ledger(ORIGIN)
    key = (str(engine.url), ORIGIN)
    fields: dict[str, Any] = {
        "ts": _now(),
        "actor": {"user": "lan", "unit": "VP", "role": "member"},
        "action": "auth.login_failed",
        "object": {"type": "user", "id": "lan"},
    }
    try:
        with Session(engine) as session, session.begin():
            ledger.append(session, **{**fields, "action": "auth.login"})
        stale = ledger_module._KNOWN_HEADS[key]
        with Session(engine) as session, session.begin():
            first = ledger.append(session, **fields)
        monkeypatch.setitem(ledger_module._KNOWN_HEADS, key, stale)
        with Session(engine) as session, session.begin():
            again = ledger.append(session, **fields)
        assert (first.seq, again.seq) == (1, 2) and first.body != again.body
        with Session(engine) as session:
            assert ledger.entry(session, 2).body == again.body
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 3, keys, tmp_path)


def test_an_entry_stored_past_the_head_makes_the_append_fail_closed(
    fresh_db_url: str, append: Any
) -> None:
    """A row at the seq the head says is next (inserted behind the ledger's back) is never
    overwritten or skipped: the append fails, and nothing of it is written."""
    engine = _pg_engine(fresh_db_url)
    ledger = Ledger(ORIGIN)
    try:
        with Session(engine) as session, session.begin():
            stray = append(session, ledger, 2)[1]
        with engine.begin() as conn:
            log_id = ledger.ensure_log(conn)
            conn.execute(
                audit_entry.insert().values(
                    log_id=log_id, seq=2, created_at=_now(), action="x", object_type="x",
                    object_id="x", body=stray.body, leaf_hash=stray.leaf_hash,
                )
            )  # fmt: skip
        with Session(engine) as session, pytest.raises(ConcurrentAppendError), session.begin():
            append(session, ledger, 1, start=2)
        with Session(engine) as session:
            assert ledger.size(session) == 2
    finally:
        engine.dispose()


def test_a_remembered_head_whose_id_is_now_another_logs_is_not_used(
    fresh_db_url: str, keys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, append: Any
) -> None:
    """As after the database was made again at the same URL with the logs created in another
    order: the id this process remembers for its log is now another log's."""
    engine = make_engine(fresh_db_url)
    ledger, other = Ledger(ORIGIN), Ledger(ORIGIN + "-other")
    key = (str(engine.url), ORIGIN)
    try:
        with Session(engine) as session, session.begin():
            append(session, other, 2)
            append(session, ledger, 1)
            other_id = other.ensure_log(session)
        remembered = ledger_module._KNOWN_HEADS[key]
        monkeypatch.setitem(
            ledger_module._KNOWN_HEADS, key, dataclasses.replace(remembered, id=other_id)
        )
        with Session(engine) as session, session.begin():
            assert append(session, ledger, 1, start=1)[0].seq == 1
            assert other.size(session) == 2 and ledger.size(session) == 2
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 2, keys, tmp_path)
    _check_log(fresh_db_url, 2, keys, tmp_path, ORIGIN + "-other")


def test_an_append_on_a_connection_without_a_transaction_does_not_crash(
    fresh_db_url: str, append: Any
) -> None:
    engine = make_engine(fresh_db_url)
    try:
        with engine.connect() as conn:
            assert append(conn, Ledger(ORIGIN), 2)[1].seq == 1
            conn.rollback()
    finally:
        engine.dispose()


def test_an_append_at_commit_waits_for_the_transaction_that_creates_the_log(
    fresh_db_url: str, keys: Any, tmp_path: Path, append: Any
) -> None:
    """The first append to a log creates its head row. Until that transaction commits, no
    other transaction sees the row, nor waits for it: an append sent with another COMMIT and
    built on the head the first one left found no log and failed that COMMIT (seen once in
    CI, in test_threads_append_without_gaps). It must wait for the log instead, and follow."""
    engine = _pg_engine(fresh_db_url)
    ledger = Ledger(ORIGIN)
    seqs: list[int] = []
    try:
        first = Session(engine)
        first.begin()
        append(first, ledger, 1)  # creates the log, and holds its head until it commits

        def second() -> None:
            with Session(engine) as session, session.begin():
                entry = ledger.append_at_commit(
                    session,
                    ts=_now(),
                    actor={"user": "u", "unit": "U", "role": "member"},
                    action="stress.append",
                    object={"type": "worker", "id": "1"},
                )
            seqs.append(entry.seq)

        _commit_behind(first, second, "the append at the second COMMIT")
        assert seqs == [1]
    finally:
        engine.dispose()
    _check_log(fresh_db_url, 2, keys, tmp_path)

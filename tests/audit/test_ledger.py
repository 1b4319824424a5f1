"""The ledger in the database: appends, proofs, checkpoints and the auditor's queries."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import ledger as ledger_module
from audit import merkle
from audit.canonical import canonical_bytes
from audit.checkpoint import parse_and_verify_checkpoint
from audit.export import ENTRIES_FILE, export_log
from audit.ledger import STORED_NODE_LEVEL, CheckpointPolicy, Ledger, LedgerError, ensure_log
from audit.schema import audit_entry, audit_log, audit_node, entry_range

pytestmark = pytest.mark.db
ORIGIN = "test.example/ledger"


def test_append_builds_a_canonical_gapless_chain(session: Session, append: Any) -> None:
    ledger = Ledger(ORIGIN)
    appended = append(session, ledger, 5)
    assert [e.seq for e in appended] == [0, 1, 2, 3, 4]
    prev = "0" * 64
    for entry in appended:
        body = json.loads(entry.body)
        assert canonical_bytes(body) == entry.body  # stored bytes are canonical
        assert body["v"] == 1 and body["log"] == ORIGIN and body["seq"] == entry.seq
        assert body["prev"] == prev and body["ts"].endswith("Z")
        assert entry.leaf_hash == merkle.leaf_hash(entry.body)
        prev = entry.leaf_hash.hex()
    assert ledger.size(session) == 5
    assert ledger.root(session) == merkle.root_from_leaves([e.leaf_hash for e in appended])


def test_body_fields_and_filter_columns(session: Session) -> None:
    ledger = Ledger(ORIGIN)
    decomposed = unicodedata.normalize("NFD", "Trả lại để hoàn thiện")
    entry = ledger.append(
        session,
        ts=datetime(2026, 5, 1, 15, 0, 0, 250000, tzinfo=UTC) + timedelta(hours=0),
        actor={"user": "lan", "unit": "VP", "role": "reviewer"},
        action="task.returned",
        object={"type": "task", "id": 17},
        before={"state": "submitted"},
        after={"state": "returned"},
        details={"reason": decomposed, "evidence": {"sha256": "ab" * 32, "size": 1024}},
    )
    body = json.loads(entry.body)
    assert body["ts"] == "2026-05-01T15:00:00.250000Z"
    assert body["details"]["reason"] == "Trả lại để hoàn thiện"  # NFC
    assert body["before"] == {"state": "submitted"} and body["after"] == {"state": "returned"}
    row = session.execute(select(audit_entry).where(audit_entry.c.seq == entry.seq)).one()
    assert (row.actor_user, row.actor_unit, row.actor_role) == ("lan", "VP", "reviewer")
    assert (row.action, row.object_type, row.object_id) == ("task.returned", "task", "17")
    assert bytes(row.body) == entry.body
    # None-valued parts are omitted from the body.
    plain = ledger.append(
        session,
        ts=T(),
        actor={"user": None},
        action="login.failed",
        object={"type": "user", "id": "x"},
    )
    assert "before" not in json.loads(plain.body)


def T() -> datetime:
    return datetime(2026, 5, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"ts": datetime(2026, 1, 1)},  # naive
        {"details": {"score": 9.5}},  # float
        {"action": ""},
        {"object": {"type": "task"}},
        {"actor": {"user": "x" * 200}},
    ],
)
def test_bad_appends_are_refused_and_write_nothing(
    session: Session, change: dict[str, Any]
) -> None:
    ledger = Ledger(ORIGIN)
    fields: dict[str, Any] = {
        "ts": T(),
        "actor": {"user": "a"},
        "action": "x",
        "object": {"type": "task", "id": 1},
    }
    fields.update(change)
    with pytest.raises((TypeError, ValueError)):
        ledger.append(session, **fields)
    assert ledger.size(session) == 0


def test_append_joins_the_callers_transaction(session: Session, append: Any) -> None:
    ledger = Ledger(ORIGIN)
    append(session, ledger, 2)
    session.commit()
    nested = session.begin_nested()
    append(session, ledger, 3, start=2)
    assert ledger.size(session) == 5
    nested.rollback()
    assert ledger.size(session) == 2
    assert append(session, ledger, 1, start=2)[0].seq == 2


def test_proofs_from_the_database(session: Session, append: Any) -> None:
    ledger = Ledger(ORIGIN)
    leaves = [e.leaf_hash for e in append(session, ledger, 37)]
    for size in (1, 2, 3, 8, 13, 32, 37):
        root = ledger.root(session, size)
        assert root == merkle.root_from_leaves(leaves[:size])
        for seq in {0, size // 2, size - 1}:
            proof = ledger.inclusion_proof(session, seq, size)
            assert merkle.verify_inclusion(leaves[seq], seq, size, proof, root)
        for old in {1, size // 2 or 1, size}:
            proof = ledger.consistency_proof(session, old, size)
            assert merkle.verify_consistency(old, size, proof, ledger.root(session, old), root)
    assert ledger.inclusion_proof(session, 5) == ledger.inclusion_proof(session, 5, 37)
    with pytest.raises(LedgerError):
        ledger.inclusion_proof(session, 3, 38)
    with pytest.raises(LedgerError):
        ledger.root(session, 38)
    with pytest.raises(LedgerError):
        ledger.consistency_proof(session, 0, 5)


def test_on_demand_checkpoint_is_signed_and_idempotent(
    session: Session, append: Any, keys: Any
) -> None:
    ledger = Ledger(ORIGIN)
    append(session, ledger, 4)
    cp = ledger.checkpoint(session, keys.signer, now=T())
    parsed = parse_and_verify_checkpoint(cp.note, keys.verifier, origin=ORIGIN)
    assert (parsed.size, parsed.root) == (4, ledger.root(session))
    assert ledger.checkpoint(session, keys.signer, now=T()) == cp
    assert ledger.latest_checkpoint(session, covering=4) == cp
    assert ledger.latest_checkpoint(session, covering=5) is None
    empty = Ledger("test.example/empty")
    cp0 = empty.checkpoint(session, keys.signer, now=T())
    assert cp0.size == 0 and cp0.root == merkle.EMPTY_ROOT


def test_automatic_checkpoints_by_count_and_by_time(
    session: Session, append: Any, keys: Any, t0: datetime
) -> None:
    by_count = Ledger(
        ORIGIN, signer=keys.signer, policy=CheckpointPolicy(every_entries=4, interval=None)
    )
    made = [e.checkpoint.size for e in append(session, by_count, 10) if e.checkpoint]
    assert made == [4, 8]
    by_time = Ledger(
        "test.example/by-time",
        signer=keys.signer,
        policy=CheckpointPolicy(every_entries=None, interval=timedelta(minutes=30)),
    )
    # append() spaces entries a minute apart: the first append signs, then every 30 minutes.
    made = [e.checkpoint.size for e in append(session, by_time, 65) if e.checkpoint]
    assert made == [1, 31, 61]
    for cp in by_time.checkpoints(session):
        assert parse_and_verify_checkpoint(cp.note, keys.verifier).root == by_time.root(
            session, cp.size
        )
    assert (
        Ledger("test.example/unsigned")
        .append(session, ts=t0, actor={}, action="a", object={"type": "t", "id": 1})
        .checkpoint
        is None
    )


def test_history_and_filtered_pages(session: Session, append: Any, t0: datetime) -> None:
    ledger = Ledger(ORIGIN)
    append(session, ledger, 24)
    append(session, Ledger("test.example/other-ward"), 5)
    history = ledger.history(session, "task", "1")
    assert [e.seq for e in history] == [1, 5, 9, 13, 17, 21]
    assert all(e.object_id == "1" and e.content()["object"]["id"] == "1" for e in history)
    page = ledger.entries(session, unit="U0", per_page=3)
    assert page.total == 8 and page.pages == 3
    assert [e.seq for e in page.items] == [21, 18, 15]
    assert [e.seq for e in ledger.entries(session, unit="U0", per_page=3, page=3).items] == [3, 0]
    assert ledger.entries(session, user="user1", action="task.accepted").total == 4
    window = ledger.entries(
        session, since=t0 + timedelta(minutes=5), until=t0 + timedelta(minutes=8)
    )
    assert [e.seq for e in window.items] == [7, 6, 5]
    assert window.items[0].created_at == t0 + timedelta(minutes=7)
    assert ledger.entries(session, object_type="plan").total == 0
    assert Ledger("test.example/none").entries(session).total == 0
    assert Ledger("test.example/none").history(session, "task", "1") == []


def test_logs_sharing_a_database_keep_to_their_own_entries(
    session: Session, append: Any, keys: Any, tmp_path: Any
) -> None:
    """Reads of one log (by seq on PostgreSQL, by SQLite's rowid key range since migration
    0013) never reach the entries of the log made before or after it, whatever seq is
    asked for."""
    before, ledger, after = Ledger("test.example/a"), Ledger(ORIGIN), Ledger("test.example/z")
    append(session, before, 3)
    mine = append(session, ledger, 4)
    append(session, after, 6)
    assert [e.seq for e in ledger.entries(session, per_page=100).items] == [3, 2, 1, 0]
    assert ledger.entries(session).total == 4
    assert ledger.entry(session, 3).body == mine[3].body
    for seq in (4, 5, 2**40, 2**40 + 1, 2**62, -1):
        with pytest.raises(LedgerError, match="has no entry"):
            ledger.entry(session, seq)
    # The ranges themselves, beyond the bounds of a seq (on SQLite, of a log's keys).
    log_id, dialect = ensure_log(session, ORIGIN), session.get_bind().dialect.name

    def seqs(lo: int, hi: int | None) -> list[tuple[int, int]]:
        query = select(audit_entry.c.log_id, audit_entry.c.seq).where(
            *entry_range(dialect, log_id, lo, hi)
        )
        return sorted(tuple(row) for row in session.execute(query))

    assert seqs(0, 2**62) == seqs(-5, None) == [(log_id, s) for s in range(4)]
    assert seqs(2**40, None) == seqs(2**40 - 1, 2**41) == seqs(3, 1) == []
    summary = export_log(session, ORIGIN, tmp_path / "export", keys.verifier_text)
    lines = (tmp_path / "export" / ENTRIES_FILE).read_bytes().splitlines()
    assert summary.size == 4 and lines == [e.body for e in mine]
    leaves = [e.leaf_hash for e in mine]
    expected = merkle.inclusion_proof(
        3, 4, lambda lv, ix: merkle.perfect_root(leaves[ix << lv : (ix + 1) << lv])
    )
    assert ledger.inclusion_proof(session, 3) == expected


def test_ensure_log_is_idempotent(session: Session) -> None:
    first = ensure_log(session, "test.example/a")
    assert ensure_log(session, "test.example/a") == first
    assert ensure_log(session, "test.example/b") != first
    head = session.execute(select(audit_log).where(audit_log.c.id == first)).one()
    assert head.size == 0 and bytes(head.compact_range) == b""


def test_only_subtrees_of_eight_leaves_and_more_are_stored(session: Session, append: Any) -> None:
    ledger = Ledger(ORIGIN)
    append(session, ledger, 37)
    rows = session.execute(select(audit_node.c.level, audit_node.c.node_index)).all()
    # 37 leaves complete 4 subtrees of 8, 2 of 16 and 1 of 32; smaller ones are folded on read.
    assert sorted((r.level, r.node_index) for r in rows) == [
        (3, 0), (3, 1), (3, 2), (3, 3), (4, 0), (4, 1), (5, 0),
    ]  # fmt: skip
    assert STORED_NODE_LEVEL == 3


def test_a_proof_for_an_entry_the_log_does_not_have_fails(session: Session, append: Any) -> None:
    ledger = Ledger(ORIGIN)
    append(session, ledger, 5)
    # The path of entry 5 in a tree of 6 needs only entries 0-4, which exist: still refused.
    with pytest.raises(LedgerError):
        ledger.inclusion_proof(session, 5, 6)


def test_a_stale_known_head_writes_nothing_and_the_append_reads_the_head(
    session: Session, append: Any
) -> None:
    """PostgreSQL appends first try the head this process last wrote; one that is no longer
    the head (another writer moved it, or the transaction that moved it rolled back) must
    change nothing, and the append then builds on the real head."""
    ledger = Ledger(ORIGIN)
    appended = append(session, ledger, 3)
    fake = b"\x11" * 32
    for key, head in list(ledger_module._KNOWN_HEADS.items()):
        if key[1] == ORIGIN:  # same size, another history; then an older head
            ledger_module._KNOWN_HEADS[key] = replace(head, last_leaf=fake)
    appended += append(session, ledger, 1, start=3)
    for key, head in list(ledger_module._KNOWN_HEADS.items()):
        if key[1] == ORIGIN:
            ledger_module._KNOWN_HEADS[key] = replace(head, size=1, compact_range=fake)
    appended += append(session, ledger, 1, start=4)
    assert [e.seq for e in appended] == [0, 1, 2, 3, 4]
    bodies = [json.loads(e.body) for e in appended]
    assert [b["prev"] for b in bodies[1:]] == [e.leaf_hash.hex() for e in appended[:-1]]
    stored = session.execute(
        select(audit_entry.c.seq, audit_entry.c.body).order_by(audit_entry.c.seq)
    ).all()
    assert [(r.seq, bytes(r.body)) for r in stored] == [(e.seq, e.body) for e in appended]
    assert ledger.root(session) == merkle.root_from_leaves([e.leaf_hash for e in appended])

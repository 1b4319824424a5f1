"""The ledger: appending entries to an organization's Merkle log inside the caller's
transaction, checkpoints, proofs from the database, and the auditor's queries."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit import merkle
from audit.canonical import canonical_bytes
from audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from audit.schema import (
    audit_checkpoint,
    audit_entry,
    audit_log,
    entry_order,
    entry_range,
    sqlite_entry_key,
)

BODY_VERSION = 1
GENESIS_PREV = "0" * 64  # the "prev" of entry 0: there is no earlier leaf

# audit_node holds the perfect subtrees of this level and above (8 leaves and more); a smaller
# one is folded from its leaves when a proof needs it (at most 4 leaves for a level-2 node),
# so seven appends in eight store no node. Logs written while every level from 1 up was
# stored keep those rows; nothing reads the ones below this level.
STORED_NODE_LEVEL = 3

Executor = Session | Connection


class LedgerError(Exception):
    """The log cannot do what was asked (unknown log, bad range, damaged store)."""


class AppendFailedError(LedgerError):
    """An append sent with its transaction's COMMIT failed in the database; the message says
    whether the transaction was committed (no, as a rule; unknown if the connection was lost
    while the COMMIT was on its way)."""


class CommittedMismatchError(LedgerError):
    """An append sent with its transaction's COMMIT was built again by the database (another
    writer had moved the head) into an entry that is not the one this process prepared, and
    the transaction has committed with it: an integrity alarm. The change and that entry are
    saved; the log's export should be verified."""


class ConcurrentAppendError(LedgerError):
    """The head moved under an append (appends to this log were not serialised), or an entry
    is already stored at the seq the head says is next. The caller's transaction must be
    rolled back and may be retried."""


@dataclass(frozen=True)
class AppendedEntry:
    seq: int
    leaf_hash: bytes
    body: bytes
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True)
class CheckpointPolicy:
    """When an append also signs a checkpoint: after `every_entries` entries or once
    `interval` has passed since the last checkpoint (by the appended entry's timestamp).
    None disables that trigger."""

    every_entries: int | None = 1000
    interval: timedelta | None = timedelta(minutes=60)

    def due(self, size: int, last_size: int | None, last_at: datetime | None, ts: datetime) -> bool:
        if self.every_entries is not None and size - (last_size or 0) >= self.every_entries:
            return True
        return self.interval is not None and (last_at is None or ts - last_at >= self.interval)


_DEFAULT_POLICY = CheckpointPolicy()  # frozen: one for every ledger made without a policy


@dataclass(frozen=True)
class EntryView:
    """One stored entry as the auditor's pages show it; `body` is the authoritative record."""

    seq: int
    created_at: datetime
    actor_user: str | None
    actor_unit: str | None
    actor_role: str | None
    action: str
    object_type: str
    object_id: str
    body: bytes
    leaf_hash: bytes

    def content(self) -> dict[str, Any]:
        """The body parsed: v, log, seq, ts, prev, actor, action, object, before, after, details."""
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass(frozen=True)
class Page:
    items: list[EntryView]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


@dataclass
class _Head:
    id: int
    size: int
    compact_range: bytes
    last_leaf: bytes
    checkpoint_size: int | None
    checkpoint_at: datetime | None = field(default=None)
    # The log's row was created by the transaction that holds this head (or may have been).
    # On PostgreSQL such a head is published as the process's known head only once that
    # transaction has committed (_on_commit): until then other transactions neither see the
    # row nor wait for it, so an append built on it and sent with another COMMIT would find
    # no log and fail that COMMIT.
    new_log: bool = field(default=False)


def _connection(executor: Executor) -> Connection:
    """The executor's connection (a session's own: same transaction, less overhead), with any
    append waiting for its COMMIT sent first, so that what follows sees it and comes after
    it."""
    conn = executor.connection() if isinstance(executor, Session) else executor
    if _WAITING:  # most calls: nothing waits (always on SQLite); skip the weak-key lookup
        _send_waiting(conn)
    return conn


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is UTC:
        return ts
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return ts.astimezone(UTC)


def _from_db_time(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _db_time(conn: Connection, when: datetime) -> Any:
    # The hot path talks to the driver directly; SQLite stores UTC as SQLAlchemy does.
    return _sqlite_time(when) if conn.dialect.name == "sqlite" else when


def _sqlite_time(when: datetime) -> str:
    # What SQLAlchemy's SQLite DateTime stores for a UTC time (the append skips its binding).
    return when.replace(tzinfo=None).isoformat(" ", "microseconds")


def _read_db_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _from_db_time(value)


def _cursor(conn: Connection) -> Any:
    """A DB-API cursor on the connection's current transaction (the append's hot path skips
    SQLAlchemy's per-statement machinery; nothing here relies on its events)."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


_SQL_CACHE: dict[tuple[str, str], str] = {}


def _sql(conn: Connection, template: str) -> str:
    """`template` with {p} placeholders in the driver's parameter style (cached)."""
    key = (conn.dialect.paramstyle, template)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        sql = _SQL_CACHE[key] = template.replace("{p}", _placeholder(conn))
    return sql


# The append path runs these through exec_driver_sql: a few statements per entry, with no
# expression building or compilation in between (see bench/audit_bench.py).
_HEAD_SQL = (
    "SELECT id, size, compact_range, last_leaf, checkpoint_size, checkpoint_at "
    "FROM audit_log WHERE origin = {p}"
)
# An entry's row, in the order of Ledger._entry_row.
_ENTRY_COLUMN_NAMES = (
    "log_id, seq, created_at, actor_user, actor_unit, actor_role, action, object_type, "
    "object_id, body, leaf_hash"
)
_PG_ENTRY_SQL = (
    f"INSERT INTO audit_entry ({_ENTRY_COLUMN_NAMES}) "  # noqa: S608 - constants
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
# SQLite's entries carry their rowid key as well (migration 0013; audit.schema.sqlite_entry_key).
_SQLITE_ENTRY_SQL = (
    f"INSERT INTO audit_entry (entry_key, {_ENTRY_COLUMN_NAMES}) "  # noqa: S608 - constants
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NODE_SQL = "INSERT INTO audit_node (log_id, level, node_index, hash) VALUES ({p}, {p}, {p}, {p})"
_MOVE_SQL = (
    "UPDATE audit_log SET size = {p}, compact_range = {p}, last_leaf = {p} "
    "WHERE id = {p} AND size = {p}"
)
# PostgreSQL: the entry, its nodes and the head move in one statement (one round trip).
_PG_WRITE_SQL = (
    f"WITH entry AS ({_PG_ENTRY_SQL}), "  # noqa: S608 - constants
    "node AS (INSERT INTO audit_node (log_id, level, node_index, hash) "
    "SELECT %s, l, i, h FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[]) AS t(l, i, h)) "
    "UPDATE audit_log SET size = %s, compact_range = %s, last_leaf = %s "
    "WHERE id = %s AND size = %s"
)
# PostgreSQL, when this process already knows the head, in one round trip (migration 0011):
# audit_append_at_head locks the log's head row (by id and origin: an id remembered from a
# database since made again may now be another log's), waiting if need be for a concurrent
# append to commit, and reads it as it then stands. If it is exactly the head the entry was
# built on (size and last leaf, which through the bodies' "prev" chain pin every earlier
# entry, and the checkpoint fields), it stores the entry as built; if another process appended
# meanwhile, it builds the entry again on the head now locked (only the body's "prev" and
# "seq" values depend on it: the caller sends the bytes around them) and stores that, so a lost
# race costs no second round trip under the lock. It writes nothing, and returns the head
# locked, when on that head the entry would sign a checkpoint: the locked path does that.
_PG_HEAD_AND_ENTRY_ARGS = (
    "%(log)s, %(origin)s, %(seq)s, %(prev)s, %(cp_size)s::bigint, %(cp_at)s::timestamptz, "
    "%(range)s, %(leaf)s, %(body)s, %(levels)s::smallint[], %(indexes)s::bigint[], "
    "%(hashes)s::bytea[], %(pre)s, %(post)s, "
)
_PG_COLUMN_ARGS = (
    "%(ts)s, %(user)s::text, %(unit)s::text, %(role)s::text, %(action)s, %(otype)s, %(oid)s)"
)
_PG_APPEND_SQL = (
    "SELECT * FROM audit_append_at_head("  # noqa: S608 - constants
    + _PG_HEAD_AND_ENTRY_ARGS
    + "%(every)s::bigint, %(interval)s::interval, "
    + _PG_COLUMN_ARGS
)
# PostgreSQL, sent in one message with the transaction's COMMIT (migrations 0012, 0014): the same
# append with the checkpoint policy off, so that it always writes, and an error, not an empty
# answer, when the log is not there (the COMMIT behind it must never commit a change without
# its entry).
_PG_AT_COMMIT_SQL = (
    "SELECT * FROM audit_append_with_commit("  # noqa: S608 - constants
    + _PG_HEAD_AND_ENTRY_ARGS
    + _PG_COLUMN_ARGS
)
# SQLite, on the head this process left (the write lock is already held).
_SQLITE_GUARDED_MOVE = (
    "UPDATE audit_log SET size = ?, compact_range = ?, last_leaf = ? "
    "WHERE id = ? AND origin = ? AND size = ? AND last_leaf = ?"
)
_MOVE_CP_SQL = (
    "UPDATE audit_log SET size = {p}, compact_range = {p}, last_leaf = {p}, "
    "checkpoint_size = {p}, checkpoint_at = {p} WHERE id = {p} AND size = {p}"
)


# Proof reads, one statement: the leaves the small subtrees are folded from, and the stored
# nodes by key. On PostgreSQL the leaves go by key too, not by seq range: with ranges as array
# parameters the generic plan cannot estimate them and is far slower, so the server planned
# every proof again; with keys alone the prepared statement keeps one good plan. SQLite reads
# contiguous ranges.
_PG_NODES_SQL = (
    "SELECT 0::smallint, e.seq, e.leaf_hash FROM unnest(%s::bigint[]) AS s(seq) "
    "JOIN audit_entry e ON e.log_id = %s AND e.seq = s.seq "
    "UNION ALL SELECT n.level, n.node_index, n.hash "
    "FROM unnest(%s::smallint[], %s::bigint[]) AS w(l, i) "
    "JOIN audit_node n ON n.log_id = %s AND n.level = w.l AND n.node_index = w.i"
)
_SQLITE_LEAF_RANGE = (
    "SELECT 0, seq, leaf_hash FROM audit_entry WHERE entry_key >= ? AND entry_key < ?"
)
_SQLITE_NODE_LOOKUP = (
    "SELECT level, node_index, hash FROM audit_node "
    "WHERE log_id = ? AND level = ? AND node_index = ?"
)


@dataclass(slots=True)
class _Fields:
    """An append's arguments, checked (not frozen: built on every append, and a frozen
    dataclass's __init__ costs several times a plain one's)."""

    when: datetime
    actor: Mapping[str, Any]
    action: str
    object: Mapping[str, Any]
    before: Any
    after: Any
    details: Any
    actor_user: str | None
    actor_unit: str | None
    actor_role: str | None
    object_type: str
    object_id: str


@dataclass(slots=True)
class _Built:
    seq: int
    body: bytes
    leaf: bytes
    tree: merkle.CompactRange
    tree_bytes: bytes  # tree.to_bytes(), the head's new compact range
    nodes: list[tuple[int, int, bytes]]
    checkpoint: Checkpoint | None

    def node_arrays(self) -> tuple[list[int] | None, list[int] | None, list[bytes] | None]:
        """The nodes as three parallel arrays (levels, indexes, hashes) for unnest(); NULLs
        when there are none (seven appends in eight), which the statements take as no rows:
        psycopg's quoting of three empty lists cost more than the rest of the append's
        arguments together (12-25 µs a call, 29/11)."""
        if not self.nodes:
            return None, None, None
        return (
            [level for level, _, _ in self.nodes],
            [index for _, index, _ in self.nodes],
            [h for _, _, h in self.nodes],
        )

    def head_after(self, head: _Head) -> _Head:
        """`head` moved past this entry (its checkpoint fields as they were)."""
        return _Head(
            head.id, self.tree.size, self.tree_bytes, self.leaf, head.checkpoint_size,
            head.checkpoint_at, head.new_log,
        )  # fmt: skip


def _around_link(body: bytes) -> tuple[bytes, bytes]:
    """A body's canonical bytes before its "prev" value and from ',"ts":' on: all but the two
    values that depend on the head. Canonical JSON sorts keys and every key after "prev" at
    the top level ("seq", "ts", "v") holds a scalar, so the last ',"prev":"' is the top-level
    one (a nested "prev" key sits inside an earlier value), and "seq" follows its 64 hex
    digits."""
    i = body.rindex(b',"prev":"') + 9
    return body[:i], body[body.index(b',"ts":"', i + 64) :]


# The head each log will have after this process's latest append to it, by (database URL,
# origin); on PostgreSQL set as soon as that entry is built, before its write is sent or
# committed. Only a hint: a write built on it happens only if the head is exactly that when
# the write holds the log's lock (PostgreSQL: the head's row lock; SQLite: the write lock).
_KNOWN_HEADS: dict[tuple[str, str], _Head] = {}
# The first half of those keys, per engine: rendering the URL costs more than the lookup.
_URL_KEYS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _log_key(conn: Connection, origin: str) -> tuple[str, str]:
    engine = conn.engine
    url = _URL_KEYS.get(engine)
    if url is None:
        url = _URL_KEYS[engine] = str(engine.url)
    return url, origin


# One lock per log, held by a writer of this process from reading the known head, through
# building on it, to its guarded write's answer. The writes of one process therefore reach
# the head's row lock in the order they were built, each on the one before: the second waits
# there while the first commits and goes through the moment it has, instead of failing and
# reading the head again. A transaction that already holds the head's row lock never waits
# for this one (it appends on its own head), and nobody waits longer than _CHAIN_WAIT for it
# (then the append reads the head under the row lock instead), so it adds no deadlock.
_CHAIN_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_CHAIN_WAIT = 0.25  # seconds
# Connection.info key: (a weak reference to the root transaction, {origin: head}) of the logs
# whose head row lock that transaction holds because it appended to them.
_HELD = "cchc_audit_heads_held"


def _publish(key: tuple[str, str], head: _Head) -> None:
    """Make `head` what this process's next PostgreSQL append builds on, unless its log's row
    may not be committed yet (_Head.new_log; _on_commit publishes it then)."""
    if not head.new_log:
        _KNOWN_HEADS[key] = head


def _held_heads(conn: Connection) -> dict[str, _Head]:
    """The heads whose row lock the connection's current transaction holds, by origin (each
    its own last entry there); an empty dict, not yet registered, when it holds none."""
    txn = conn.get_transaction()
    held = conn.info.get(_HELD)
    return held[1] if txn is not None and held is not None and held[0]() is txn else {}


def _hold(conn: Connection, own: dict[str, _Head], origin: str, head: _Head) -> None:
    """Record that the current transaction holds the lock of `origin`'s head, now `head`;
    `own` is what _held_heads returned before."""
    txn = conn.get_transaction()
    if not own and txn is not None:
        conn.info[_HELD] = (weakref.ref(txn), own)
    own[origin] = head


# --- appends sent with the COMMIT (PostgreSQL) ---------------------------------------------------
#
# Every writer of a ward waits for the log's head row lock, which an append holds until its
# transaction ends. Sent as its own statement, the append holds it through the answer's way
# back, the caller's remaining work and the COMMIT's own round trip. `Ledger.append_at_commit`
# keeps the append on the connection instead, and a listener on the engine's COMMIT sends it
# in one message with the COMMIT: the lock is held only while the server runs the two. The
# append goes out at once, in the same transaction and in order, whenever anything else might
# need it first: a statement through SQLAlchemy (a query, a flush, a SAVEPOINT or its
# RELEASE), any ledger call on the connection, or a look at the pending entry. A rollback,
# also to a savepoint (nothing is pending from before a SAVEPOINT, which sent it), drops it.

# The append waiting on each connection (the SQLAlchemy Connection of the transaction, held
# weakly: the pool's record of the driver connection outlives it, and a waiting append there
# would keep a dropped session's connection from ever going back to the pool).
_WAITING: weakref.WeakKeyDictionary[Connection, _Waiting] = weakref.WeakKeyDictionary()
_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()
_HOOKING = threading.Lock()


class PendingEntry:
    """The entry of an append that waits for its transaction's COMMIT (see
    `Ledger.append_at_commit`): known once that COMMIT has gone through, or as soon as it is
    asked for before, when the append is sent at once. Reading it after the transaction was
    rolled back, or its append failed, raises LedgerError."""

    __slots__ = ("_conn", "_entry", "_lost")

    def __init__(self, conn: Connection) -> None:
        self._conn = weakref.ref(conn)
        self._entry: AppendedEntry | None = None
        self._lost: str | None = None

    def result(self) -> AppendedEntry:
        if self._entry is None and self._lost is None:
            conn = self._conn()
            if conn is not None:
                _send_waiting(conn)
        if self._entry is None:
            raise LedgerError(self._lost or "the append's connection was closed without it")
        return self._entry

    @property
    def seq(self) -> int:
        return self.result().seq

    @property
    def leaf_hash(self) -> bytes:
        return self.result().leaf_hash

    @property
    def body(self) -> bytes:
        return self.result().body


@dataclass(slots=True)
class _Waiting:
    ledger: Ledger
    key: tuple[str, str]
    head: _Head  # the head the entry was built on
    built: _Built
    params: dict[str, Any]  # the function's arguments, fixed when the entry was built
    pre: bytes
    post: bytes
    txn: weakref.ref[Any]  # the root transaction it belongs to
    pending: PendingEntry


def _is_unique_violation(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) == "23505"


def _take_waiting(conn: Connection) -> _Waiting | None:
    """The append waiting on this connection, removed from it; None when there is none, or
    when it belongs to a transaction that is over (then it is dropped)."""
    waiting = _WAITING.pop(conn, None)
    if waiting is None:
        return None
    txn = waiting.txn()
    if txn is None or txn is not conn.get_transaction():
        waiting.pending._lost = "the transaction of the append ended without it"
        return None
    return waiting


def _drop_waiting(conn: Connection, *_args: Any) -> None:
    """Rollback (also to a savepoint, and two-phase): the waiting append goes with the
    rest."""
    waiting = _WAITING.pop(conn, None)
    if waiting is not None:
        waiting.pending._lost = "the transaction of the append was rolled back"


def _send(conn: Connection, waiting: _Waiting, *, commit: bool) -> None:
    """Run the waiting append as it was built (its arguments were fixed then), followed by
    the COMMIT in the same message when `commit`; record the entry it wrote. If it fails,
    the transaction is aborted (and the COMMIT not run): the remembered head is forgotten, so
    that the next append reads the head under the lock. If it went through but the entry the
    database built again does not match the one prepared, the head is forgotten too, and
    the error says whether the COMMIT has run with it (CommittedMismatchError)."""
    ledger, e = waiting.ledger, waiting.built
    driver = conn.connection.driver_connection
    assert driver is not None
    # The values bound on the client (the driver's quoting): one message, the append then the
    # COMMIT. psycopg's pipeline mode would do the same in one round trip, at more cost on
    # the client.
    from psycopg import ClientCursor  # PostgreSQL only: not imported for SQLite

    cur = ClientCursor(driver)
    try:
        try:
            cur.execute(_PG_AT_COMMIT_SQL + ("; COMMIT" if commit else ""), waiting.params)
        except Exception as exc:
            _KNOWN_HEADS.pop(waiting.key, None)
            if not commit:
                outcome = "roll back and try again"
            elif getattr(driver, "broken", False) or getattr(driver, "closed", False):
                outcome = "the connection was lost with the COMMIT: whether it committed is unknown"
            else:
                outcome = "nothing was committed"
            waiting.pending._lost = f"the append failed, and {outcome}: {exc}"
            if commit:
                # The server skipped the COMMIT and the transaction is aborted; end it here,
                # since SQLAlchemy, its commit failed, would hand the connection back to the
                # pool as it is.
                with contextlib.suppress(Exception):  # broken: the pool's ping sees it
                    driver.rollback()
            if _is_unique_violation(exc):
                raise ledger._stored_past_head(e.seq, outcome) from exc
            if commit:
                # Raised out of SQLAlchemy's COMMIT: a ledger error that says what became of
                # the transaction, rather than the driver's error alone.
                raise AppendFailedError(waiting.pending._lost) from exc
            raise
        row = cur.fetchone()
    finally:
        cur.close()
    # The function answers a row or raises.
    assert row is not None
    now = _head_from_row(row[:6])
    written_seq, rebuilt = row[6], row[7]
    if rebuilt is None:
        done = AppendedEntry(e.seq, e.leaf, e.body, None), e.head_after(waiting.head)
    else:
        try:
            done = ledger._rebuilt(now, written_seq, rebuilt, waiting.pre, waiting.post)
        except LedgerError as exc:
            _KNOWN_HEADS.pop(waiting.key, None)
            waiting.pending._lost = str(exc)
            if commit:
                raise CommittedMismatchError(
                    f"{exc}; the transaction was committed with it: export the log and verify it"
                ) from exc
            raise
    _KNOWN_HEADS[waiting.key] = done[1]
    waiting.pending._entry = done[0]
    if not commit:
        # This transaction now holds the head's row lock: later appends build on its entry.
        _hold(conn, _held_heads(conn), ledger.origin, done[1])


def _send_waiting(conn: Connection, *_args: Any) -> None:
    """Send the append waiting on this connection, if any, now, in the transaction, as it
    was built (also the listener before every statement through SQLAlchemy)."""
    waiting = _take_waiting(conn)
    if waiting is not None:
        _send(conn, waiting, commit=False)


def _on_commit(conn: Connection) -> None:
    """The engine's COMMIT listener: the waiting append and the COMMIT in one message. A
    transaction that created a log publishes that log's head once its COMMIT has gone
    through (it runs the COMMIT itself here; SQLAlchemy's then finds nothing to commit)."""
    created = [(origin, h) for origin, h in _held_heads(conn).items() if h.new_log]
    waiting = _take_waiting(conn)
    if waiting is not None:
        _send(conn, waiting, commit=True)
    if created:
        if waiting is None:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.commit()
        for origin, head in created:
            _KNOWN_HEADS[_log_key(conn, origin)] = dataclasses.replace(head, new_log=False)


def enable_append_at_commit(engine: Any) -> None:
    """Let appends on this engine's connections go with the COMMIT (PostgreSQL; see
    `Ledger.append_at_commit`) by installing the listeners that send or drop a waiting
    append. Call it when the engine is made, before it is shared: SQLAlchemy's listener
    lists are not meant to change while other threads run statements. Idempotent; nothing
    to do on other databases."""
    if engine.dialect.name != "postgresql":
        return
    with _HOOKING:
        if engine in _HOOKED:
            return
        event.listen(engine, "commit", _on_commit)
        event.listen(engine, "rollback", _drop_waiting)
        event.listen(engine, "rollback_savepoint", _drop_waiting)
        event.listen(engine, "rollback_twophase", _drop_waiting)
        event.listen(engine, "before_cursor_execute", _send_waiting)
        _HOOKED.add(engine)


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with a Z: seconds, plus microseconds when there are any (isoformat's own
    choice, with a four-digit year)."""
    return _utc(ts).replace(tzinfo=None).isoformat() + "Z"


def _short(value: Any, limit: int, what: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"{what} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{what} must be a string")
    text = str(value)
    if (required and not text) or len(text) > limit:
        raise ValueError(f"{what} must be 1 to {limit} characters")
    return text


_HEAD_COLUMNS = (
    audit_log.c.id,
    audit_log.c.size,
    audit_log.c.compact_range,
    audit_log.c.last_leaf,
    audit_log.c.checkpoint_size,
    audit_log.c.checkpoint_at,
)


def _head_from_row(row: Any) -> _Head:
    log_id, size, compact_range, last_leaf, cp_size, cp_at = row
    return _Head(
        int(log_id),
        int(size),
        bytes(compact_range),
        bytes(last_leaf),
        None if cp_size is None else int(cp_size),
        _read_db_time(cp_at),
    )


def ensure_log(executor: Executor, origin: str) -> int:
    """The id of the log `origin`, creating its empty head row if missing (race-safe)."""
    conn = _connection(executor)
    found = conn.execute(select(audit_log.c.id).where(audit_log.c.origin == origin)).scalar()
    if found is not None:
        return int(found)
    values = {
        "origin": origin,
        "size": 0,
        "compact_range": b"",
        "last_leaf": b"",
        "checkpoint_size": None,
        "checkpoint_at": None,
    }
    insert_fn = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert_fn(audit_log).values(values).on_conflict_do_nothing(index_elements=["origin"])
    conn.execute(stmt)
    return int(
        conn.execute(select(audit_log.c.id).where(audit_log.c.origin == origin)).scalar_one()
    )


class Ledger:
    """One organization's audit log, identified by its checkpoint origin.

    Every method takes the caller's Session (or Connection) and joins its transaction; none
    commits. Appends are serialised per log: on PostgreSQL by a row lock on the head row, on
    SQLite by the write lock that the engine's BEGIN IMMEDIATE takes.
    """

    def __init__(
        self,
        origin: str,
        *,
        signer: NoteSigner | None = None,
        policy: CheckpointPolicy | None = None,
    ) -> None:
        if not origin or "\n" in origin or origin != origin.strip() or len(origin) > 255:
            raise ValueError("origin must be one line of 1 to 255 characters")
        self.origin = origin
        self.signer = signer
        self.policy = policy or _DEFAULT_POLICY
        self._cached_id: int | None = None

    # --- writing --------------------------------------------------------------------------

    def ensure_log(self, executor: Executor) -> int:
        return ensure_log(executor, self.origin)

    def _head(self, conn: Connection, *, lock: bool, cur: Any = None) -> _Head | None:
        sql = _sql(conn, _HEAD_SQL)
        if lock and conn.dialect.name == "postgresql":
            sql += " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE already holds the write lock
        own = cur is None
        if own:
            cur = _cursor(conn)
        try:
            cur.execute(sql, (self.origin,))
            row = cur.fetchone()
        finally:
            if own:
                cur.close()
        return None if row is None else _head_from_row(row)

    def _locked_head(self, conn: Connection, cur: Any = None) -> _Head:
        head = self._head(conn, lock=True, cur=cur)
        if head is None:
            # Created here, or by a transaction that committed while ensure_log waited: either
            # way marked on PostgreSQL, whose appends publish it only once this transaction
            # commits (see _Head.new_log). SQLite's writers wait for the whole transaction.
            ensure_log(conn, self.origin)
            head = self._head(conn, lock=True, cur=cur)
            assert head is not None  # ensure_log just created it
            head.new_log = conn.dialect.name == "postgresql"
        return head

    def append(
        self,
        executor: Executor,
        *,
        ts: datetime,
        actor: Mapping[str, Any],
        action: str,
        object: Mapping[str, Any],
        before: Any = None,
        after: Any = None,
        details: Any = None,
    ) -> AppendedEntry:
        """Append one entry in the caller's transaction and return it (never commits).

        `actor` has "user", "unit" and "role" (any may be None); `object` has "type" and
        "id"; `before`, `after` and `details` are JSON values (no floats) or None (omitted).
        If it raises, part of the append may have been written: the caller's transaction must
        be rolled back, never committed.
        """
        fields = self._fields(ts, actor, action, object, before, after, details)
        return self._append_on(_connection(executor), fields)

    @staticmethod
    def _fields(
        ts: datetime,
        actor: Mapping[str, Any],
        action: str,
        object: Mapping[str, Any],
        before: Any,
        after: Any,
        details: Any,
    ) -> _Fields:
        when = _utc(ts)
        actor_user = _short(actor.get("user"), 128, "actor user", required=False)
        actor_unit = _short(actor.get("unit"), 64, "actor unit", required=False)
        actor_role = _short(actor.get("role"), 64, "actor role", required=False)
        action_text = _short(action, 64, "action", required=True)
        object_type = _short(object.get("type"), 64, "object type", required=True)
        object_id = _short(object.get("id"), 128, "object id", required=True)
        assert action_text is not None and object_type is not None and object_id is not None
        return _Fields(
            when, actor, action_text, object, before, after, details,
            actor_user, actor_unit, actor_role, object_type, object_id,
        )  # fmt: skip

    def _append_on(self, conn: Connection, fields: _Fields) -> AppendedEntry:
        cur = _cursor(conn)
        try:
            if conn.dialect.name == "postgresql":
                return self._append_pg(conn, cur, fields)
            return self._append_sqlite(conn, cur, fields)
        finally:
            cur.close()

    def append_at_commit(
        self,
        executor: Executor,
        *,
        ts: datetime,
        actor: Mapping[str, Any],
        action: str,
        object: Mapping[str, Any],
        before: Any = None,
        after: Any = None,
        details: Any = None,
    ) -> AppendedEntry | PendingEntry:
        """`append`, for a caller that commits soon after: on PostgreSQL the append may wait
        on the connection and go in one message with the transaction's COMMIT (see
        PendingEntry), so that the log's head stays locked only while the server runs the
        two. It waits only when this process knows the head to build on, this transaction
        holds no lock on it yet, the entry signs no checkpoint, and the engine was given
        the listeners (`enable_append_at_commit`); otherwise, and on SQLite, it is
        `append`. If the append fails at the COMMIT, the COMMIT fails and nothing of the
        transaction is committed. Sent before the COMMIT or with it, the entry is the one
        built here: later changes to the caller's values do not reach it."""
        f = self._fields(ts, actor, action, object, before, after, details)
        conn = _connection(executor)
        if conn.engine in _HOOKED:  # PostgreSQL, with the listeners installed
            key = _log_key(conn, self.origin)
            head = _KNOWN_HEADS.get(key)
            txn = conn.get_transaction()
            holds = self.origin in _held_heads(conn)
            if head is not None and txn is not None and not holds:
                e = self._build(head, f)
                if e.checkpoint is None:
                    pre, post = _around_link(e.body)
                    params = self._append_params(head, e, f, pre, post)
                    pending = PendingEntry(conn)
                    _WAITING[conn] = _Waiting(
                        self, key, head, e, params, pre, post, weakref.ref(txn), pending
                    )
                    return pending
        return self._append_on(conn, f)

    def _append_sqlite(self, conn: Connection, cur: Any, f: _Fields) -> AppendedEntry:
        """SQLite: the transaction already holds the database's write lock (BEGIN IMMEDIATE).
        The entry is built on the head this process left, and the head moves only if it is
        still that one (another process may have appended since); otherwise the head is read
        and the entry built again. Either way the head moves before the entry is inserted."""
        key = _log_key(conn, self.origin)
        known = _KNOWN_HEADS.get(key)
        done = None if known is None else self._known_write_sqlite(conn, cur, known, f)
        if done is None:
            done = self._locked_write(conn, cur, f, pg=False)
        _KNOWN_HEADS[key] = done[1]
        return done[0]

    def _known_write_sqlite(
        self, conn: Connection, cur: Any, head: _Head, f: _Fields
    ) -> tuple[AppendedEntry, _Head] | None:
        e = self._build(head, f)
        if e.checkpoint is not None:
            return None
        # The size and last leaf pin the whole log (through the bodies' "prev" chain). A
        # checkpoint signed since by someone else only makes the next one due later, and an
        # entry that would sign one goes through the locked path anyway.
        cur.execute(
            _SQLITE_GUARDED_MOVE,
            (e.tree.size, e.tree_bytes, e.leaf, head.id, self.origin, e.seq, head.last_leaf),
        )
        if cur.rowcount != 1:
            return None
        self._insert_entry(conn, cur, head.id, e, f, pg=False)
        return AppendedEntry(e.seq, e.leaf, e.body, None), e.head_after(head)

    def _append_pg(self, conn: Connection, cur: Any, f: _Fields) -> AppendedEntry:
        key = _log_key(conn, self.origin)
        own = _held_heads(conn)
        done: tuple[AppendedEntry, _Head] | None = None
        if self.origin in own:
            # This transaction holds the head's row lock: it builds on its own last entry.
            done = self._speculative_write(conn, cur, own[self.origin], key, f)
        else:
            chain = _CHAIN_LOCKS.setdefault(key, threading.Lock())
            if chain.acquire(timeout=_CHAIN_WAIT):
                try:
                    known = _KNOWN_HEADS.get(key)
                    if known is not None:
                        done = self._speculative_write(conn, cur, known, key, f)
                finally:
                    chain.release()
        if done is None:
            done = self._locked_write(conn, cur, f, pg=True)
            _publish(key, done[1])
        _hold(conn, own, self.origin, done[1])
        return done[0]

    def _speculative_write(
        self, conn: Connection, cur: Any, head: _Head, key: tuple[str, str], f: _Fields
    ) -> tuple[AppendedEntry, _Head] | None:
        """Build on `head`, which this process expects the log to have, record the head after
        this entry as the next writer's expectation, then lock the head and write, in one
        round trip; when the head turns out to be another, the database builds the entry
        again on the one now locked and writes that. None, with nothing written, when the
        entry would sign a checkpoint (the locked path does that) or the head row is not
        there."""
        e = self._build(head, f)
        if e.checkpoint is not None:
            return None
        moved_to = e.head_after(head)
        _publish(key, moved_to)
        pre, post = _around_link(e.body)
        try:
            cur.execute(_PG_APPEND_SQL, self._append_params(head, e, f, pre, post), prepare=True)
        except Exception as exc:
            if not _is_unique_violation(exc):
                raise
            raise self._stored_past_head(e.seq, "roll back and try again") from exc
        row = cur.fetchone()
        if row is None:  # no such log with that id (any more): a database made again
            return None
        now = _head_from_row(row[:6])
        written_seq, rebuilt = row[6], row[7]
        if written_seq is None:
            # Another append got there first and on its head this entry signs a checkpoint:
            # this transaction holds the lock on that head, and signs and writes on it.
            done = self._locked_write(conn, cur, f, pg=True, head=now)
        elif rebuilt is None:
            return AppendedEntry(e.seq, e.leaf, e.body, None), moved_to
        else:
            done = self._rebuilt(now, written_seq, rebuilt, pre, post)
        if not head.new_log:
            _publish(key, done[1])
        return done

    def _stored_past_head(self, seq: int, outcome: str) -> ConcurrentAppendError:
        """The head said the log had no entry at `seq`, yet one is stored: the append fails
        closed rather than write past it."""
        return ConcurrentAppendError(
            f"log {self.origin}: entry {seq} exists although the head is before it; {outcome}"
        )

    def _rebuilt(
        self, now: _Head, written_seq: int, rebuilt: bytes, pre: bytes, post: bytes
    ) -> tuple[AppendedEntry, _Head]:
        """The entry the database built again on the head another append left (`now` is the
        head after it), checked: the same bytes around the two values that depend on the
        head, and the leaf and seq as the head says."""
        body = bytes(rebuilt)
        try:
            around: tuple[bytes, bytes] | None = _around_link(body)
        except ValueError:  # not even in the layout the ledger writes
            around = None
        if (
            written_seq != now.size - 1
            or around != (pre, post)
            or merkle.leaf_hash(body) != now.last_leaf
        ):
            raise LedgerError(f"log {self.origin}: the entry built again does not match")
        return AppendedEntry(written_seq, now.last_leaf, body, None), now

    def _build(self, head: _Head, f: _Fields) -> _Built:
        """The entry that follows `head`: its canonical body, leaf, new tree and nodes."""
        seq = head.size
        record: dict[str, Any] = {
            "v": BODY_VERSION,
            "log": self.origin,
            "seq": seq,
            "ts": format_ts(f.when),
            "prev": head.last_leaf.hex() if seq else GENESIS_PREV,
            "actor": f.actor,
            "action": f.action,
            "object": f.object,
        }
        if f.before is not None:
            record["before"] = f.before
        if f.after is not None:
            record["after"] = f.after
        if f.details is not None:
            record["details"] = f.details
        body = canonical_bytes(record)
        leaf = merkle.leaf_hash(body)
        tree = merkle.CompactRange.from_bytes(seq, head.compact_range)
        # The subtrees this leaf completes that are stored: none for seven appends in eight.
        nodes = tree.append(leaf)[STORED_NODE_LEVEL:]
        checkpoint = None
        if self.signer is not None and self.policy.due(
            tree.size, head.checkpoint_size, head.checkpoint_at, f.when
        ):
            checkpoint = sign_checkpoint(self.signer, self.origin, tree.size, tree.root())
        return _Built(seq, body, leaf, tree, tree.to_bytes(), nodes, checkpoint)

    def _append_params(
        self, head: _Head, e: _Built, f: _Fields, pre: bytes, post: bytes
    ) -> dict[str, Any]:
        """audit_append_at_head's arguments. The checkpoint policy goes as it takes it: None
        for a trigger that is off, and for both when this ledger signs nothing."""
        levels, indexes, hashes = e.node_arrays()
        signing = self.signer is not None
        return {
            "pre": pre,
            "post": post,
            "every": self.policy.every_entries if signing else None,
            "interval": self.policy.interval if signing else None,
            "log": head.id,
            "origin": self.origin,
            "seq": e.seq,
            "prev": head.last_leaf,
            "cp_size": head.checkpoint_size,
            "cp_at": head.checkpoint_at,
            "range": e.tree_bytes,
            "leaf": e.leaf,
            "ts": f.when,
            "user": f.actor_user,
            "unit": f.actor_unit,
            "role": f.actor_role,
            "action": f.action,
            "otype": f.object_type,
            "oid": f.object_id,
            "body": e.body,
            "levels": levels,
            "indexes": indexes,
            "hashes": hashes,
        }

    def _insert_entry(
        self, conn: Connection, cur: Any, log_id: int, e: _Built, f: _Fields, *, pg: bool
    ) -> None:
        """The entry's row and the nodes it completes, one statement each."""
        row = self._entry_row(log_id, e, f, pg=pg)
        if pg:
            cur.execute(_PG_ENTRY_SQL, row)
        else:
            cur.execute(_SQLITE_ENTRY_SQL, (sqlite_entry_key(log_id, e.seq), *row))
        if e.nodes:
            cur.executemany(_sql(conn, _NODE_SQL), [(log_id, lv, ix, h) for lv, ix, h in e.nodes])

    @staticmethod
    def _entry_row(log_id: int, e: _Built, f: _Fields, *, pg: bool) -> tuple[Any, ...]:
        return (
            log_id,
            e.seq,
            f.when if pg else _sqlite_time(f.when),
            f.actor_user,
            f.actor_unit,
            f.actor_role,
            f.action,
            f.object_type,
            f.object_id,
            e.body,
            e.leaf,
        )

    def _locked_write(
        self, conn: Connection, cur: Any, f: _Fields, *, pg: bool, head: _Head | None = None
    ) -> tuple[AppendedEntry, _Head]:
        """Read the head under the log's lock (FOR UPDATE; SQLite's write lock), then write;
        `head` when this transaction has just read it under that lock."""
        if head is None:
            head = self._locked_head(conn, cur)
        e = self._build(head, f)
        seq, leaf, tree, checkpoint = e.seq, e.leaf, e.tree, e.checkpoint
        if pg and checkpoint is None:
            cur.execute(
                _PG_WRITE_SQL,
                (
                    *self._entry_row(head.id, e, f, pg=True),
                    head.id,
                    *e.node_arrays(),
                    tree.size,
                    e.tree_bytes,
                    leaf,
                    head.id,
                    seq,
                ),
                prepare=True,
            )
        else:
            self._insert_entry(conn, cur, head.id, e, f, pg=pg)
            if checkpoint is None:
                cur.execute(_sql(conn, _MOVE_SQL), (tree.size, e.tree_bytes, leaf, head.id, seq))
            else:
                self._insert_checkpoint(conn, head.id, checkpoint, f.when)
                cp_at = _db_time(conn, f.when)
                moved_to = (tree.size, e.tree_bytes, leaf, tree.size, cp_at, head.id, seq)
                cur.execute(_sql(conn, _MOVE_CP_SQL), moved_to)
        if cur.rowcount != 1:
            raise ConcurrentAppendError(f"log {self.origin} moved past {seq} during an append")
        moved = e.head_after(head)
        if checkpoint is not None:
            moved = dataclasses.replace(moved, checkpoint_size=tree.size, checkpoint_at=f.when)
        return AppendedEntry(seq, leaf, e.body, checkpoint), moved

    @staticmethod
    def _insert_checkpoint(conn: Connection, log_id: int, cp: Checkpoint, when: datetime) -> None:
        conn.execute(
            audit_checkpoint.insert(),
            {
                "log_id": log_id,
                "size": cp.size,
                "root": cp.root,
                "note": cp.note,
                "created_at": when,
            },
        )

    def checkpoint(self, executor: Executor, signer: NoteSigner, *, now: datetime) -> Checkpoint:
        """Sign (and store) a checkpoint at the current size; the stored one if it exists."""
        when = _utc(now)
        conn = _connection(executor)
        head = self._locked_head(conn)
        existing = conn.execute(
            select(audit_checkpoint.c.root, audit_checkpoint.c.note).where(
                audit_checkpoint.c.log_id == head.id, audit_checkpoint.c.size == head.size
            )
        ).first()
        if existing is not None:
            return Checkpoint(self.origin, head.size, bytes(existing.root), existing.note)
        tree = merkle.CompactRange.from_bytes(head.size, head.compact_range)
        cp = sign_checkpoint(signer, self.origin, head.size, tree.root())
        self._insert_checkpoint(conn, head.id, cp, when)
        conn.execute(
            update(audit_log)
            .where(audit_log.c.id == head.id)
            .values(checkpoint_size=head.size, checkpoint_at=when)
        )
        return cp

    # --- reading the tree -----------------------------------------------------------------

    def _read_head(self, executor: Executor) -> tuple[Connection, _Head]:
        conn = _connection(executor)
        head = self._head(conn, lock=False)
        if head is None:
            raise LedgerError(f"there is no audit log {self.origin!r}")
        return conn, head

    def size(self, executor: Executor) -> int:
        conn = _connection(executor)
        head = self._head(conn, lock=False)
        return 0 if head is None else head.size

    @staticmethod
    def _nodes(
        conn: Connection, log_id: int, wanted: Sequence[merkle.NodeId], *, leaf: int | None = None
    ) -> merkle.GetNode:
        """Fetch perfect-subtree hashes in one round trip.

        Subtrees of STORED_NODE_LEVEL and above are audit_node rows, fetched by key; smaller
        ones (and leaves) are folded from their leaves, read as contiguous ranges of
        audit_entry. `leaf`, when given, is read as well: a proof for an entry the log does not
        have then fails instead of describing a tree that does not exist. On SQLite each piece
        is a primary-key lookup or range joined by UNION ALL (row-value IN lists and OR-ed
        lookups are far slower there)."""
        stored = [(lv, ix) for lv, ix in wanted if lv >= STORED_NODE_LEVEL]
        spans = sorted({(ix << lv, (ix + 1) << lv) for lv, ix in wanted if lv < STORED_NODE_LEVEL})
        if leaf is not None:
            spans = sorted({*spans, (leaf, leaf + 1)})
        ranges: list[list[int]] = []
        for lo, hi in spans:
            if ranges and lo <= ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], hi)
            else:
                ranges.append([lo, hi])
        rows: list[Any] = []
        cur = _cursor(conn)
        try:
            if conn.dialect.name == "postgresql":
                # One constant statement, prepared on the server, arrays as input.
                params = (
                    [seq for lo, hi in ranges for seq in range(lo, hi)],  # subtrees under 8 leaves
                    log_id,
                    [lv for lv, _ in stored],
                    [ix for _, ix in stored],
                    log_id,
                )
                cur.execute(_PG_NODES_SQL, params, prepare=True)
                rows = cur.fetchall()
            elif ranges or stored:
                parts: list[str] = []
                args: list[Any] = []
                for lo, hi in ranges:
                    parts.append(_SQLITE_LEAF_RANGE)
                    args += [sqlite_entry_key(log_id, lo), sqlite_entry_key(log_id, hi)]
                for lv, ix in stored:
                    parts.append(_SQLITE_NODE_LOOKUP)
                    args += [log_id, lv, ix]
                cur.execute(" UNION ALL ".join(parts), args)
                rows = cur.fetchall()
        finally:
            cur.close()
        leaves: dict[int, bytes] = {}
        found: dict[merkle.NodeId, bytes] = {}
        for lv, ix, h in rows:
            if lv == 0:
                leaves[int(ix)] = bytes(h)
            else:
                found[(int(lv), int(ix))] = bytes(h)
        absent = [seq for lo, hi in ranges for seq in range(lo, hi) if seq not in leaves]
        missing = [node for node in stored if node not in found] + [(0, s) for s in absent]
        if missing:
            raise LedgerError(f"the log has no Merkle nodes {missing[:3]}: is the size too large?")
        for lv, ix in wanted:
            if lv < STORED_NODE_LEVEL:
                found[(lv, ix)] = merkle.perfect_root(
                    [leaves[seq] for seq in range(ix << lv, (ix + 1) << lv)]
                )
        return lambda level, index: found[(level, index)]

    def _log_id(self, conn: Connection) -> int:
        # A log's id never changes once its head row exists.
        if self._cached_id is None:
            found = conn.execute(select(audit_log.c.id).where(audit_log.c.origin == self.origin))
            log_id = found.scalar()
            if log_id is None:
                raise LedgerError(f"there is no audit log {self.origin!r}")
            self._cached_id = int(log_id)
        return self._cached_id

    def _check_size(self, head: _Head, size: int | None) -> int:
        size = head.size if size is None else size
        if not 0 <= size <= head.size:
            raise LedgerError(f"log {self.origin} has {head.size} entries, not {size}")
        return size

    def root(self, executor: Executor, size: int | None = None) -> bytes:
        """The root hash of the first `size` entries (default: all)."""
        conn, head = self._read_head(executor)
        size = self._check_size(head, size)
        if size == head.size:
            return merkle.CompactRange.from_bytes(head.size, head.compact_range).root()
        pieces = merkle.perfect_ranges(0, size)
        get = self._nodes(conn, head.id, pieces)
        return merkle.fold_right([get(level, index) for level, index in pieces])

    def inclusion_proof(self, executor: Executor, seq: int, size: int | None = None) -> list[bytes]:
        """The audit path of entry `seq` in the tree of the first `size` entries (default: all).

        With `size` given this is one query: the path's nodes exist exactly when the log has
        at least `size` entries, so a missing node means the size is out of range."""
        if size is None:
            conn, head = self._read_head(executor)
            size, log_id = head.size, head.id
        else:
            conn = _connection(executor)
            log_id = self._log_id(conn)
        if not 0 <= seq < size:
            raise LedgerError(f"entry {seq} is not in a tree of size {size}")
        ranges = merkle.inclusion_ranges(seq, size)
        get = self._nodes(conn, log_id, merkle.nodes_for(ranges), leaf=seq)
        return [merkle.subtree_hash(a, b, get) for a, b in ranges]

    def consistency_proof(
        self, executor: Executor, old: int, new: int | None = None
    ) -> list[bytes]:
        """Proof that the tree of `old` entries is a prefix of the tree of `new` entries."""
        conn, head = self._read_head(executor)
        new = self._check_size(head, new)
        if not 0 < old <= new:
            raise LedgerError(f"no consistency proof from size {old} to size {new}")
        ranges = merkle.consistency_ranges(old, new)
        get = self._nodes(conn, head.id, merkle.nodes_for(ranges))
        return [merkle.subtree_hash(a, b, get) for a, b in ranges]

    def entry(self, executor: Executor, seq: int) -> EntryView:
        conn, head = self._read_head(executor)
        if not 0 <= seq < head.size:
            raise LedgerError(f"log {self.origin} has no entry {seq}")
        where = entry_range(conn.dialect.name, head.id, seq, seq + 1)
        row = conn.execute(select(*_ENTRY_COLUMNS).where(*where)).first()
        if row is None:
            raise LedgerError(f"log {self.origin} has no entry {seq}")
        return _view(row)

    def checkpoints(self, executor: Executor) -> list[Checkpoint]:
        """Every stored checkpoint, by size."""
        conn, head = self._read_head(executor)
        rows = conn.execute(
            select(audit_checkpoint.c.size, audit_checkpoint.c.root, audit_checkpoint.c.note)
            .where(audit_checkpoint.c.log_id == head.id)
            .order_by(audit_checkpoint.c.size)
        )
        return [Checkpoint(self.origin, int(r.size), bytes(r.root), r.note) for r in rows]

    def latest_checkpoint(self, executor: Executor, *, covering: int = 0) -> Checkpoint | None:
        """The largest stored checkpoint of size >= `covering`, if any."""
        conn, head = self._read_head(executor)
        row = conn.execute(
            select(audit_checkpoint.c.size, audit_checkpoint.c.root, audit_checkpoint.c.note)
            .where(audit_checkpoint.c.log_id == head.id, audit_checkpoint.c.size >= covering)
            .order_by(audit_checkpoint.c.size.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return Checkpoint(self.origin, int(row.size), bytes(row.root), row.note)

    # --- the auditor's queries ------------------------------------------------------------

    def history(
        self, executor: Executor, object_type: str, object_id: str | int
    ) -> list[EntryView]:
        """Every entry about one object, oldest first."""
        conn = _connection(executor)
        head = self._head(conn, lock=False)
        if head is None:
            return []
        rows = conn.execute(
            select(*_ENTRY_COLUMNS)
            .where(
                audit_entry.c.log_id == head.id,
                audit_entry.c.object_type == object_type,
                audit_entry.c.object_id == str(object_id),
            )
            .order_by(audit_entry.c.seq)
        )
        return [_view(r) for r in rows]

    def entries(
        self,
        executor: Executor,
        *,
        unit: str | None = None,
        user: str | None = None,
        action: str | None = None,
        object_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> Page:
        """Entries matching every given filter, newest first; `since` is inclusive and `until`
        exclusive. Pages count from 1."""
        if page < 1 or not 1 <= per_page <= 1000:
            raise ValueError("page counts from 1 and per_page is 1..1000")
        conn = _connection(executor)
        head = self._head(conn, lock=False)
        if head is None:
            return Page([], page, per_page, 0)
        filters: list[Any] = []
        if unit is not None:
            filters.append(audit_entry.c.actor_unit == unit)
        if user is not None:
            filters.append(audit_entry.c.actor_user == user)
        if action is not None:
            filters.append(audit_entry.c.action == action)
        if object_type is not None:
            filters.append(audit_entry.c.object_type == object_type)
        if since is not None:
            filters.append(audit_entry.c.created_at >= _utc(since))
        if until is not None:
            filters.append(audit_entry.c.created_at < _utc(until))
        if action is not None or object_type is not None:
            # Their indexes lead with (log_id, action) and (log_id, object_type) and end with
            # seq: they find the rows and give their order.
            where: list[Any] = [audit_entry.c.log_id == head.id, *filters]
            order: Any = audit_entry.c.seq
        else:  # one log's range of the primary key (on SQLite, of the rowid key)
            where = [*entry_range(conn.dialect.name, head.id, 0, None), *filters]
            order = entry_order(conn.dialect.name)
        if filters:
            count = select(func.count()).select_from(audit_entry).where(*where)
            total = int(conn.execute(count).scalar() or 0)
        else:
            total = head.size  # the log holds exactly entries 0 .. size - 1
        rows = conn.execute(
            select(*_ENTRY_COLUMNS)
            .where(*where)
            .order_by(order.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        return Page([_view(r) for r in rows], page, per_page, total)


_ENTRY_COLUMNS = (
    audit_entry.c.seq,
    audit_entry.c.created_at,
    audit_entry.c.actor_user,
    audit_entry.c.actor_unit,
    audit_entry.c.actor_role,
    audit_entry.c.action,
    audit_entry.c.object_type,
    audit_entry.c.object_id,
    audit_entry.c.body,
    audit_entry.c.leaf_hash,
)


def _view(row: Any) -> EntryView:
    created = _from_db_time(row.created_at)
    assert created is not None
    return EntryView(
        seq=int(row.seq),
        created_at=created,
        actor_user=row.actor_user,
        actor_unit=row.actor_unit,
        actor_role=row.actor_role,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        body=bytes(row.body),
        leaf_hash=bytes(row.leaf_hash),
    )

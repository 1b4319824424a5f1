"""The ledger: appending entries to an organization's Merkle log inside the caller's
transaction, checkpoints, proofs from the database, and the auditor's queries."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit import merkle
from audit.canonical import canonical_bytes
from audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from audit.schema import audit_checkpoint, audit_entry, audit_log

BODY_VERSION = 1
GENESIS_PREV = "0" * 64  # the "prev" of entry 0: there is no earlier leaf

Executor = Session | Connection


class LedgerError(Exception):
    """The log cannot do what was asked (unknown log, bad range, damaged store)."""


class ConcurrentAppendError(LedgerError):
    """The head moved under an append: appends to this log were not serialised."""


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


def _connection(executor: Executor) -> Connection:
    # Core statements on the session's own connection: same transaction, less overhead.
    return executor.connection() if isinstance(executor, Session) else executor


def _utc(ts: datetime) -> datetime:
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
    if conn.dialect.name == "sqlite":
        return when.replace(tzinfo=None).isoformat(" ", "microseconds")
    return when


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
_ENTRY_SQL = (
    "INSERT INTO audit_entry (log_id, seq, created_at, actor_user, actor_unit, actor_role, "
    "action, object_type, object_id, body, leaf_hash) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
_NODE_SQL = "INSERT INTO audit_node (log_id, level, node_index, hash) VALUES ({p}, {p}, {p}, {p})"
_MOVE_SQL = (
    "UPDATE audit_log SET size = {p}, compact_range = {p}, last_leaf = {p} "
    "WHERE id = {p} AND size = {p}"
)
# PostgreSQL: the entry, its nodes and the head move in one statement (one round trip).
_PG_WRITE_SQL = (
    "WITH entry AS (INSERT INTO audit_entry (log_id, seq, created_at, actor_user, actor_unit, "
    "actor_role, action, object_type, object_id, body, leaf_hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)), "
    "node AS (INSERT INTO audit_node (log_id, level, node_index, hash) "
    "SELECT %s, l, i, h FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[]) AS t(l, i, h)) "
    "UPDATE audit_log SET size = %s, compact_range = %s, last_leaf = %s "
    "WHERE id = %s AND size = %s"
)
_MOVE_CP_SQL = (
    "UPDATE audit_log SET size = {p}, compact_range = {p}, last_leaf = {p}, "
    "checkpoint_size = {p}, checkpoint_at = {p} WHERE id = {p} AND size = {p}"
)


_PG_NODES_SQL = (
    "SELECT 0, seq, leaf_hash FROM audit_entry WHERE log_id = %s AND seq = ANY(%s::bigint[]) "
    "UNION ALL SELECT n.level, n.node_index, n.hash FROM audit_node n "
    "JOIN unnest(%s::smallint[], %s::bigint[]) AS w(l, i) ON n.level = w.l AND n.node_index = w.i "
    "WHERE n.log_id = %s"
)
_LEAF_LOOKUP = "SELECT 0, seq, leaf_hash FROM audit_entry WHERE log_id = {p} AND seq = {p}"
_NODE_LOOKUP = (
    "SELECT level, node_index, hash FROM audit_node "
    "WHERE log_id = {p} AND level = {p} AND node_index = {p}"
)


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with a Z: seconds, plus microseconds when there are any."""
    ts = _utc(ts)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}"
    return text + "Z"


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
        self.policy = policy or CheckpointPolicy()
        self._cached_id: int | None = None

    # --- writing --------------------------------------------------------------------------

    def ensure_log(self, executor: Executor) -> int:
        return ensure_log(executor, self.origin)

    def _head(self, conn: Connection, *, lock: bool) -> _Head | None:
        sql = _sql(conn, _HEAD_SQL)
        if lock and conn.dialect.name == "postgresql":
            sql += " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE already holds the write lock
        cur = _cursor(conn)
        try:
            cur.execute(sql, (self.origin,))
            row = cur.fetchone()
        finally:
            cur.close()
        if row is None:
            return None
        log_id, size, compact_range, last_leaf, cp_size, cp_at = row
        return _Head(
            int(log_id),
            int(size),
            bytes(compact_range),
            bytes(last_leaf),
            None if cp_size is None else int(cp_size),
            _read_db_time(cp_at),
        )

    def _locked_head(self, conn: Connection) -> _Head:
        head = self._head(conn, lock=True)
        if head is None:
            ensure_log(conn, self.origin)
            head = self._head(conn, lock=True)
        assert head is not None  # ensure_log just created it
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
        """
        when = _utc(ts)
        actor_user = _short(actor.get("user"), 128, "actor user", required=False)
        actor_unit = _short(actor.get("unit"), 64, "actor unit", required=False)
        actor_role = _short(actor.get("role"), 64, "actor role", required=False)
        action_text = _short(action, 64, "action", required=True)
        object_type = _short(object.get("type"), 64, "object type", required=True)
        object_id = _short(object.get("id"), 128, "object id", required=True)
        assert action_text is not None and object_type is not None and object_id is not None

        conn = _connection(executor)
        head = self._locked_head(conn)
        seq = head.size
        record: dict[str, Any] = {
            "v": BODY_VERSION,
            "log": self.origin,
            "seq": seq,
            "ts": format_ts(when),
            "prev": head.last_leaf.hex() if seq else GENESIS_PREV,
            "actor": dict(actor),
            "action": action_text,
            "object": dict(object),
        }
        for key, value in (("before", before), ("after", after), ("details", details)):
            if value is not None:
                record[key] = value
        body = canonical_bytes(record)
        leaf = merkle.leaf_hash(body)

        tree = merkle.CompactRange.from_bytes(seq, head.compact_range)
        created = tree.append(leaf)
        entry_row = (
            head.id,
            seq,
            _db_time(conn, when),
            actor_user,
            actor_unit,
            actor_role,
            action_text,
            object_type,
            object_id,
            body,
            leaf,
        )
        nodes = created[1:]
        checkpoint = None
        if self.signer is not None and self.policy.due(
            tree.size, head.checkpoint_size, head.checkpoint_at, when
        ):
            checkpoint = sign_checkpoint(self.signer, self.origin, tree.size, tree.root())
        cur = _cursor(conn)
        try:
            if conn.dialect.name == "postgresql" and checkpoint is None:
                cur.execute(
                    _PG_WRITE_SQL,
                    (
                        *entry_row,
                        head.id,
                        [level for level, _, _ in nodes],
                        [index for _, index, _ in nodes],
                        [h for _, _, h in nodes],
                        tree.size,
                        tree.to_bytes(),
                        leaf,
                        head.id,
                        seq,
                    ),
                )
            else:
                cur.execute(_sql(conn, _ENTRY_SQL), entry_row)
                if nodes:
                    cur.executemany(
                        _sql(conn, _NODE_SQL), [(head.id, lv, ix, h) for lv, ix, h in nodes]
                    )
                if checkpoint is None:
                    cur.execute(
                        _sql(conn, _MOVE_SQL), (tree.size, tree.to_bytes(), leaf, head.id, seq)
                    )
                else:
                    self._insert_checkpoint(conn, head.id, checkpoint, when)
                    cp_at = _db_time(conn, when)
                    moved_to = (tree.size, tree.to_bytes(), leaf, tree.size, cp_at, head.id, seq)
                    cur.execute(_sql(conn, _MOVE_CP_SQL), moved_to)
            moved = cur.rowcount
        finally:
            cur.close()
        if moved != 1:
            raise ConcurrentAppendError(f"log {self.origin} moved past {seq} during an append")
        return AppendedEntry(seq, leaf, body, checkpoint)

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
    def _nodes(conn: Connection, log_id: int, wanted: Sequence[merkle.NodeId]) -> merkle.GetNode:
        """Fetch perfect-subtree hashes in one round trip (leaves live in audit_entry).

        One primary-key lookup per node, joined by UNION ALL: SQLite answers row-value IN
        lists and OR-ed lookups far more slowly (milliseconds, not microseconds)."""
        found: dict[merkle.NodeId, bytes] = {}
        if wanted and conn.dialect.name == "postgresql":
            # One constant statement (psycopg prepares it after a few uses), arrays as input.
            leaves = [index for level, index in wanted if level == 0]
            inner = [(level, index) for level, index in wanted if level > 0]
            rows = conn.exec_driver_sql(
                _PG_NODES_SQL,
                (
                    log_id,
                    leaves,
                    [level for level, _ in inner],
                    [index for _, index in inner],
                    log_id,
                ),
            )
            found = {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}
        elif wanted:
            parts: list[str] = []
            params: list[Any] = []
            for level, index in wanted:
                if level == 0:
                    parts.append(_sql(conn, _LEAF_LOOKUP))
                    params += [log_id, index]
                else:
                    parts.append(_sql(conn, _NODE_LOOKUP))
                    params += [log_id, level, index]
            rows = conn.exec_driver_sql(" UNION ALL ".join(parts), tuple(params))
            found = {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}
        missing = [node for node in wanted if node not in found]
        if missing:
            raise LedgerError(f"the log has no Merkle nodes {missing[:3]}: is the size too large?")
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
        get = self._nodes(conn, log_id, merkle.nodes_for(ranges))
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
        row = conn.execute(
            select(*_ENTRY_COLUMNS).where(audit_entry.c.log_id == head.id, audit_entry.c.seq == seq)
        ).first()
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
        where = [audit_entry.c.log_id == head.id]
        if unit is not None:
            where.append(audit_entry.c.actor_unit == unit)
        if user is not None:
            where.append(audit_entry.c.actor_user == user)
        if action is not None:
            where.append(audit_entry.c.action == action)
        if object_type is not None:
            where.append(audit_entry.c.object_type == object_type)
        if since is not None:
            where.append(audit_entry.c.created_at >= _utc(since))
        if until is not None:
            where.append(audit_entry.c.created_at < _utc(until))
        total = conn.execute(select(func.count()).select_from(audit_entry).where(*where)).scalar()
        rows = conn.execute(
            select(*_ENTRY_COLUMNS)
            .where(*where)
            .order_by(audit_entry.c.seq.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        return Page([_view(r) for r in rows], page, per_page, int(total or 0))


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

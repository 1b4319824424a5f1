"""Audit ledger benchmarks, each against a baseline measured in the same run.

1. append (ledger) vs a bare INSERT + COMMIT of the same bytes, same driver and database
   (SQLite file in WAL mode; PostgreSQL too when a URL is given): ratio of rates, goal >= 0.5;
2. verify of an export of --entries entries vs `sha256sum` over the same entries.jsonl:
   goal < 3x and < 5 s at 1,000,000 entries;
3. an inclusion proof read from the database holding --entries entries: goal < 1 ms (printed
   next to a bare SELECT 1 through the same connection: the round trip alone).

    python bench/audit_bench.py [--entries 1000000] [--appends 2000] [--pg-url URL]

The PostgreSQL URL may also come from CCHC_BENCH_DATABASE_URL; the bench creates and drops
its own databases next to it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, Integer, LargeBinary, MetaData, Table, create_engine, text
from sqlalchemy.engine import make_url

from audit.canonical import canonical_bytes
from audit.checkpoint import NoteSigner, generate_key, sign_checkpoint
from audit.export import CHECKPOINTS_DIR, ENTRIES_FILE, KEY_FILE, checkpoint_filename
from audit.ledger import STORED_NODE_LEVEL, Ledger
from audit.merkle import CompactRange, leaf_hash
from audit.schema import sqlite_entry_key
from audit.verify import verify_export
from workflow.db import make_engine
from workflow.migrate import upgrade

ORIGIN = "bench.cchc.example/phuong-bench"
T0 = datetime(2026, 1, 1, tzinfo=UTC)

plain_meta = MetaData()
plain = Table(
    "bench_plain",
    plain_meta,
    Column("id", Integer, primary_key=True),
    Column("body", LargeBinary, nullable=False),
)


def entry_fields(i: int) -> dict[str, Any]:
    return {
        "ts": T0 + timedelta(seconds=i),
        "actor": {"user": f"user{i % 40}", "unit": f"U{i % 12:02d}", "role": "member"},
        "action": "task.submitted",
        "object": {"type": "task", "id": str(i % 5000)},
        "details": {"reason": "Nộp minh chứng hoàn thành nhiệm vụ", "evidence": "ab" * 32},
    }


# --- 1. append vs bare insert --------------------------------------------------------------------


def bench_append(engine: Engine, count: int, rounds: int = 10) -> tuple[float, float]:
    """Rates of ledger appends and of bare inserts of the same bodies, one committed
    transaction each, measured in alternating rounds so that load on the machine hits both."""
    plain_meta.create_all(engine)
    ledger = Ledger(ORIGIN + "/append")
    with engine.begin() as conn:  # create the head row outside the timing
        ledger.ensure_log(conn)
    stmt = plain.insert()
    append_s = insert_s = 0.0
    per_round = max(1, count // rounds)
    for r in range(rounds):
        bodies: list[bytes] = []
        # The arguments are made before the clock starts, as the baseline's bodies are.
        fields = [entry_fields(i) for i in range(r * per_round, (r + 1) * per_round)]
        start = time.perf_counter()
        for kwargs in fields:
            with engine.begin() as conn:
                bodies.append(ledger.append(conn, **kwargs).body)
        append_s += time.perf_counter() - start
        start = time.perf_counter()
        for body in bodies:
            with engine.begin() as conn:
                conn.execute(stmt, {"body": body})
        insert_s += time.perf_counter() - start
    done = per_round * rounds
    return done / append_s, done / insert_s


# --- 2. verify vs sha256sum ---------------------------------------------------------------------


def synthetic_lines(n: int) -> Iterator[tuple[bytes, bytes]]:
    """(line, leaf hash) of n entries exactly as the ledger writes them, fast: the canonical
    layout is fixed, so bodies are filled into a template (checked against canonical_bytes)."""
    prev = "0" * 64
    for i in range(n):
        f = entry_fields(i)
        ts = f["ts"].strftime("%Y-%m-%dT%H:%M:%SZ")
        unit, user, oid = f["actor"]["unit"], f["actor"]["user"], f["object"]["id"]
        body = (
            f'{{"action":"task.submitted","actor":{{"role":"member","unit":"{unit}",'
            f'"user":"{user}"}},"details":{{"evidence":"{"ab" * 32}",'
            f'"reason":"Nộp minh chứng hoàn thành nhiệm vụ"}},"log":"{ORIGIN}",'
            f'"object":{{"id":"{oid}","type":"task"}},"prev":"{prev}","seq":{i},"ts":"{ts}","v":1}}'
        ).encode()
        if i < 3:
            reference = {
                "v": 1, "log": ORIGIN, "seq": i, "ts": ts, "prev": prev, "actor": f["actor"],
                "action": f["action"], "object": f["object"], "details": f["details"],
            }  # fmt: skip
            assert canonical_bytes(reference) == body, "template drifted from the ledger"
        leaf = leaf_hash(body)
        prev = leaf.hex()
        yield body + b"\n", leaf


def write_export(directory: Path, n: int, signer: NoteSigner, every: int) -> None:
    directory.mkdir(parents=True)
    (directory / CHECKPOINTS_DIR).mkdir()
    tree = CompactRange()
    with (directory / ENTRIES_FILE).open("wb") as fh:
        for line, leaf in synthetic_lines(n):
            fh.write(line)
            tree.append(leaf)
            if tree.size % every == 0 or tree.size == n:
                cp = sign_checkpoint(signer, ORIGIN, tree.size, tree.root())
                (directory / CHECKPOINTS_DIR / checkpoint_filename(tree.size)).write_text(cp.note)
    (directory / KEY_FILE).write_text(signer.verifier().to_text() + "\n")


def bench_verify(directory: Path, verifier_text: str) -> tuple[float, float, int]:
    start = time.perf_counter()
    subprocess.run(["sha256sum", str(directory / ENTRIES_FILE)], check=True, capture_output=True)
    sha_s = time.perf_counter() - start
    start = time.perf_counter()
    report = verify_export(directory, verifier_text)
    verify_s = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"bench export did not verify: {report.problem}")
    return verify_s, sha_s, report.size


# --- 3. inclusion proof from the database ------------------------------------------------------


def bulk_rows(n: int) -> Iterator[tuple[tuple[Any, ...], list[tuple[int, int, bytes]]]]:
    tree = CompactRange()
    for i, (line, leaf) in enumerate(synthetic_lines(n)):
        f = entry_fields(i)
        created = tree.append(leaf)
        entry = (1, i, f["ts"], f["actor"]["user"], f["actor"]["unit"], "member",
                 f["action"], "task", f["object"]["id"], line[:-1], leaf)  # fmt: skip
        yield entry, created[STORED_NODE_LEVEL:]  # the nodes the ledger stores
    bulk_rows.final = tree  # type: ignore[attr-defined]


ENTRY_COLS = ("log_id, seq, created_at, actor_user, actor_unit, actor_role, action, "
              "object_type, object_id, body, leaf_hash")  # fmt: skip


def load_sqlite(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        cur = conn.connection.cursor()
        cur.execute(
            "INSERT INTO audit_log (id, origin, size, compact_range, last_leaf) "
            "VALUES (1, ?, 0, x'', x'')",
            (ORIGIN,),
        )
        entries: list[tuple[Any, ...]] = []
        nodes: list[tuple[int, int, int, bytes]] = []

        def flush() -> None:
            rows = [
                (sqlite_entry_key(*e[:2]), *e[:2], e[2].isoformat(" ", "microseconds")[:26], *e[3:])
                for e in entries
            ]
            marks = ", ".join("?" * 12)
            cur.executemany(
                f"INSERT INTO audit_entry (entry_key, {ENTRY_COLS}) VALUES ({marks})", rows
            )
            cur.executemany("INSERT INTO audit_node VALUES (?, ?, ?, ?)", nodes)
            entries.clear()
            nodes.clear()

        for entry, created in bulk_rows(n):
            entries.append(entry)
            nodes.extend((1, lv, ix, h) for lv, ix, h in created)
            if len(entries) >= 50_000:
                flush()
        flush()
        tree: CompactRange = bulk_rows.final  # type: ignore[attr-defined]
        cur.execute(
            "UPDATE audit_log SET size = ?, compact_range = ?, last_leaf = x'' WHERE id = 1",
            (tree.size, tree.to_bytes()),
        )


def load_postgresql(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(
                "INSERT INTO audit_log (id, origin, size, compact_range, last_leaf) "
                "VALUES (1, %s, 0, '', '')",
                (ORIGIN,),
            )
            nodes: list[tuple[int, int, int, bytes]] = []
            with cur.copy(f"COPY audit_entry ({ENTRY_COLS}) FROM STDIN") as copy:
                for entry, created in bulk_rows(n):
                    copy.write_row(entry)
                    nodes.extend((1, lv, ix, h) for lv, ix, h in created)
            with cur.copy("COPY audit_node FROM STDIN") as copy:
                for row in nodes:
                    copy.write_row(row)
            tree: CompactRange = bulk_rows.final  # type: ignore[attr-defined]
            cur.execute(
                "UPDATE audit_log SET size = %s, compact_range = %s WHERE id = 1",
                (tree.size, tree.to_bytes()),
            )


def bench_proof(engine: Engine, n: int, samples: int = 2000) -> tuple[float, float]:
    """Seconds per inclusion proof of a random entry, and per bare `SELECT 1` through the same
    connection (what the database's round trip alone costs on the machine at that moment)."""
    ledger = Ledger(ORIGIN)
    rng = random.Random(7)
    seqs = [rng.randrange(n) for _ in range(samples)]
    with engine.connect() as conn:
        ledger.inclusion_proof(conn, 0, n)  # warm the statement cache and the log id
        start = time.perf_counter()
        for seq in seqs:
            ledger.inclusion_proof(conn, seq, n)
        proof_s = (time.perf_counter() - start) / samples
        start = time.perf_counter()
        for _ in range(samples):
            conn.exec_driver_sql("SELECT 1").scalar()
        return proof_s, (time.perf_counter() - start) / samples


# --- running -------------------------------------------------------------------------------------


def pg_database(base_url: str) -> tuple[str, Callable[[], None]]:
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"cchc_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def run_backend(label: str, url: str, args: argparse.Namespace) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        ledger_rate, insert_rate = bench_append(engine, args.appends)
        print(f"[{label}] append {ledger_rate:,.0f}/s vs bare INSERT+COMMIT {insert_rate:,.0f}/s: "
              f"ratio {ledger_rate / insert_rate:.2f} (goal >= 0.5)")  # fmt: skip
    finally:
        engine.dispose()


def run_proof(label: str, url: str, n: int, loader: Callable[[Engine, int], None]) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        start = time.perf_counter()
        loader(engine, n)
        load_s = time.perf_counter() - start
        per, trip = bench_proof(engine, n)
        print(f"[{label}] inclusion proof at {n:,} entries: {per * 1000:.3f} ms "
              f"(goal < 1 ms; a bare SELECT 1 took {trip * 1000:.3f} ms; "
              f"bulk load took {load_s:.1f} s)")  # fmt: skip
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--checkpoint-every", type=int, default=10_000)
    parser.add_argument("--pg-url", default=os.environ.get("CCHC_BENCH_DATABASE_URL"))
    parser.add_argument("--skip-proof", action="store_true", help="skip the database load")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cchc-audit-bench-"))
    try:
        print(f"entries: {args.entries:,}; appends: {args.appends:,}; scratch: {work}")
        run_backend("sqlite", f"sqlite:///{work / 'append.sqlite'}", args)
        if args.pg_url:
            url, drop = pg_database(args.pg_url)
            try:
                run_backend("postgresql", url, args)
            finally:
                drop()

        skey, vkey = generate_key("bench.cchc.example")
        start = time.perf_counter()
        write_export(
            work / "export", args.entries, NoteSigner.from_text(skey), args.checkpoint_every
        )
        gen_s = time.perf_counter() - start
        verify_s, sha_s, size = bench_verify(work / "export", vkey)
        mb = (work / "export" / ENTRIES_FILE).stat().st_size / 1e6
        print(f"[export] {size:,} entries, {mb:,.0f} MB (generated in {gen_s:.1f} s)")
        print(f"[verify] {verify_s:.2f} s vs sha256sum {sha_s:.2f} s: ratio {verify_s / sha_s:.2f} "
              f"(goal < 3; < 5 s at 1,000,000)")  # fmt: skip

        if not args.skip_proof:
            run_proof("sqlite", f"sqlite:///{work / 'proof.sqlite'}", args.entries, load_sqlite)
            if args.pg_url:
                url, drop = pg_database(args.pg_url)
                try:
                    run_proof("postgresql", url, args.entries, load_postgresql)
                finally:
                    drop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

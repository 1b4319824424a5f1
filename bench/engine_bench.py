"""Engine benchmark: full audited transitions per second next to a bare baseline, same run.

A full transition is what a request does: a new session, `Engine.fire` (load the instance,
locked on PostgreSQL; check permission and requirements; validate the event against the
lifecycle's transition table; write the change with its version check, its remark and outbox
rows; append the audit entry to the ward's Merkle log) and COMMIT. The baseline is a bare
SELECT + UPDATE + INSERT + COMMIT of one row through the same SQLAlchemy engine and driver
(same pool, same SQLite pragmas and BEGIN IMMEDIATE), in the same database. Both run with
one writer and with --writers concurrent writers (each its own session and connection, each
on its own rows), in alternating rounds so that load on the machine hits both sides, on
SQLite (a file in WAL mode) and on PostgreSQL when a URL is given (the bench creates and
drops its own uniquely named database next to it).

Where a ward's log sits in the database matters on SQLite. Audit entries and their filter
indexes are keyed by log, then seq: the only ward of a database appends at the end of those
B-trees, while with --spread (a database of --writers wards) the one-ward lines write the first
ward's log, in their middle, where full pages split between neighbours. There a transition
wrote 11.9 WAL pages against 9.1 at the end (29/11, 1,000 transitions each); the goal's ratio
falls by a point or two. `make run` serves one ward on SQLite; production runs on PostgreSQL.

A third round, serial, is the baseline plus one UPDATE of a single shared row per ward before
COMMIT: the least any gapless per-ward log costs, since the writers of one ward take that row's
lock in turn and hold it through COMMIT (on PostgreSQL through the WAL flush, so their commits
cannot group). It is the engine's ceiling with several writers in one ward, and reported as such.

A fourth round, peer, is the plain design the issue measured on its machine at 13% (SQLite)
and 35% (PostgreSQL) of this baseline, rebuilt here so that it runs in the same run on the
same machine: a new Session, the row loaded through the ORM (FOR UPDATE on PostgreSQL) with
a version counter, a python-statemachine machine built on it and sent the event, a plain log
row (who, event, from, to, when, details as JSON) added, COMMIT. It checks no permission or
requirement, writes no remark, outbox or hash chain: less than the engine does. Its ratio
shows how far the machine of the day moves a design of that kind (the goal reads as a
margin over it); the verdict stays the goal's. It is our reconstruction from the issue's one
line, not the code the issue ran.

How the concurrent writers run (--concurrency; one writer always runs in the bench's process):

- processes: each writer is an OS process of its own (multiprocessing, "spawn") with its own
  engine, pool and interpreter: what production is, gunicorn sync workers, single-threaded
  processes whose Python runs in parallel up to the machine's cores. The processes start once
  per measurement, outside the timing; a round is the wall time from a common barrier until
  every writer has reported done.
- threads: the writers are threads of one process, sharing its GIL. The engine spends about
  three times the baseline's Python CPU per write, so the GIL caps it here in a way the
  deployment never is; kept for comparison.
- both (the default): the two, one after the other, each on its own line.

The cycle of transitions repeats forever on every instance: instances are prepared (outside
the timing) in `reviewed`, with evidence for every product, then fired through
return_for_rework (the decider) → rework (a member) → submit (the unit's head) → review (a
VHXH reviewer, recommending return) → reviewed again.

Goal (issue 4): the engine at >= 25% of the baseline on SQLite and >= 45% on PostgreSQL.
Then --profile N transitions run under cProfile and the time is broken down by component.

    python bench/engine_bench.py [--transitions 120] [--rounds 40] [--writers 4]
        [--concurrency {processes,threads,both}] [--spread] [--max-seconds 11]
        [--instances 40] [--profile 200] [--pg-url URL] [--no-sqlite]

The PostgreSQL URL may also come from CCHC_BENCH_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import multiprocessing
import os
import pstats
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    selectinload,
    sessionmaker,
)

from definitions.loader import default_plan_path, load_plan, load_units
from workflow.accounts import create_user
from workflow.bootstrap import demo_accounts, initialize_ward
from workflow.clock import FixedClock
from workflow.db import make_engine, session_factory
from workflow.engine import Engine as WorkflowEngine
from workflow.evidence import LocalEvidenceStore
from workflow.lifecycle import machine_for
from workflow.migrate import upgrade
from workflow.models import Organization, TaskInstance, Unit, User
from workflow.trail import SYSTEM, AuditTrail

ORIGIN = "bench.cchc.example/phuong-tran-hung-dao"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 02/03/2026, 09:00 in Hà Nội
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
CYCLE = ("return_for_rework", "rework", "submit", "review")
EVENT_INPUTS: dict[str, dict[str, Any]] = {
    "return_for_rework": {"reason": "Bổ sung phụ lục số liệu theo nhận xét thẩm định"},
    "rework": {},
    "submit": {},
    "review": {"findings": "Thiếu số liệu quý, cần bổ sung", "recommendation": "return"},
}
GOALS = {"sqlite": 0.25, "postgresql": 0.45}
# The plain design's ratios as the issue measured them on its machine (see the peer round).
PEER_IN_ISSUE = {"sqlite": 0.13, "postgresql": 0.35}
BODY = ("Nộp minh chứng hoàn thành nhiệm vụ " * 16).encode()  # ~ an audit entry body

bench_meta = MetaData()
bench_task = Table(
    "bench_task",
    bench_meta,
    Column("id", Integer, primary_key=True),
    Column("state", String(32), nullable=False),
    Column("version", Integer, nullable=False),
)
bench_event = Table(
    "bench_event",
    bench_meta,
    Column("id", Integer, primary_key=True),
    Column("task_id", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
)
bench_serial = Table(
    "bench_serial",
    bench_meta,
    Column("ward", Integer, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),
)


class _PeerBase(DeclarativeBase):
    """The peer round's own tables, outside the application's schema."""


class PeerTask(_PeerBase):
    __tablename__ = "bench_peer_task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's declaration


class PeerLog(_PeerBase):
    __tablename__ = "bench_peer_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("bench_peer_task.id"))
    event: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


# The peer's event is the cycle's next one from the state its row is in, and who fires it.
PEER_NEXT = {"reviewed": "return_for_rework", "returned": "rework", "in_progress": "submit"}
PEER_NEXT["evidence_submitted"] = "review"
PEER_ACTORS = {
    "return_for_rework": "vhxh.truong",
    "rework": "vp.canbo",
    "submit": "vp.truong",
    "review": "vhxh.thamdinh1",
}


# --- the workload ------------------------------------------------------------------------------


@dataclass
class Cycle:
    """One instance going round the cycle, with who fires each event."""

    instance_id: int
    actors: dict[str, User]
    phase: int = 0
    ward: int = 0  # 0: the demo ward; 1..: the other wards of --wards

    def next(self) -> tuple[str, User]:
        event = CYCLE[self.phase]
        self.phase = (self.phase + 1) % len(CYCLE)
        return event, self.actors[event]


@dataclass(frozen=True)
class BareSql:
    """The baseline's statements in the dialect's placeholders; `serial` is the serial round's
    extra UPDATE of the ward's shared row."""

    select: str
    update: str
    insert: str
    serial: str

    @classmethod
    def for_engine(cls, engine: Engine) -> BareSql:
        p = "?" if engine.dialect.name == "sqlite" else "%s"
        return cls(
            select=f"SELECT state, version FROM bench_task WHERE id = {p}",
            update=(
                f"UPDATE bench_task SET state = {p}, version = version + 1 "
                f"WHERE id = {p} AND version = {p}"
            ),
            insert=f"INSERT INTO bench_event (task_id, body) VALUES ({p}, {p})",
            serial=f"UPDATE bench_serial SET n = n + 1 WHERE ward = {p}",
        )


@dataclass
class Bench:
    label: str
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    trail: AuditTrail
    clock: FixedClock
    cycles: list[Cycle]
    sql: BareSql
    rows: list[int] = field(default_factory=list)

    def fire_one(self, cycle: Cycle) -> None:
        """One full audited transition in its own session and transaction."""
        event, actor = cycle.next()
        with self.factory() as session:
            WorkflowEngine(session, self.trail, self.clock).fire(
                cycle.instance_id,
                event,
                actor,
                **EVENT_INPUTS[event],
            )
            session.commit()

    def bare_one(self, row_id: int, step: int, ward: int | None = None) -> None:
        """The baseline: SELECT + UPDATE + INSERT + COMMIT through the same driver; with
        `ward`, the serial round: the ward's shared row updated too, last before COMMIT."""
        with self.engine.begin() as conn:
            _state, version = conn.exec_driver_sql(self.sql.select, (row_id,)).one()
            conn.exec_driver_sql(self.sql.update, (CYCLE[step % 4], row_id, version))
            conn.exec_driver_sql(self.sql.insert, (row_id, BODY))
            if ward is not None:
                conn.exec_driver_sql(self.sql.serial, (ward,))

    def peer_one(self, row_id: int) -> None:
        """The plain design (see the module's docstring): ORM load, machine, log row, COMMIT."""
        now = self.clock.now()
        with self.factory() as session:
            task = session.get(
                PeerTask, row_id, with_for_update=self.engine.dialect.name == "postgresql"
            )
            assert task is not None
            source = task.state
            event = PEER_NEXT[source]
            machine_for(task).send(event)
            task.updated_at = now
            session.add(
                PeerLog(
                    task_id=task.id,
                    event=event,
                    source=source,
                    target=task.state,
                    actor=PEER_ACTORS[event],
                    created_at=now,
                    details=EVENT_INPUTS[event],
                )
            )
            session.commit()


def _add_ward(factory: sessionmaker[Session], trail: AuditTrail, number: int) -> None:
    """Another ward of the same plan in the same database (its own organization, units,
    instances and audit log), with the demo accounts under usernames prefixed "w<number>."."""
    plan_path = default_plan_path()
    catalog = load_units()
    slug = f"bench-ward-{number}"
    with factory() as session:
        initialize_ward(
            session,
            catalog=catalog,
            plan=dataclasses.replace(load_plan(plan_path), organization=slug),
            plan_text=plan_path.read_text(encoding="utf-8"),
            now=T0,
            organization_name=f"Phường thử {number}",
            audit_origin=f"{ORIGIN}-{number}",
            trail=trail,
        )
        org = session.scalars(select(Organization).where(Organization.slug == slug)).one()
        units = {
            u.code: u for u in session.scalars(select(Unit).where(Unit.organization_id == org.id))
        }
        for account in demo_accounts(catalog):
            create_user(
                session,
                org,
                username=f"w{number}.{account.username}",
                full_name=account.full_name,
                unit=units[account.unit] if account.unit else None,
                roles=account.roles,
                password=None,
                actor=SYSTEM,
                now=T0,
                trail=trail,
            )
        session.commit()


def setup(label: str, url: str, scratch: Path, limit: int, wards: int = 1) -> Bench:
    """A migrated database holding the demo ward (and `wards` - 1 more wards of the same plan,
    each with its own log), `limit` dated instances of each ward prepared in `reviewed`, the
    baseline's table of as many rows and the serial round's table of one row per ward."""
    started = time.perf_counter()
    upgrade(url)
    engine = make_engine(url, pool_size=8)
    factory = session_factory(engine)
    trail = AuditTrail()
    clock = FixedClock(T0)
    plan_path = default_plan_path()
    with factory() as session:
        initialize_ward(
            session,
            catalog=load_units(),
            plan=load_plan(plan_path),
            plan_text=plan_path.read_text(encoding="utf-8"),
            now=T0,
            organization_name="Phường Trần Hưng Đạo",
            audit_origin=ORIGIN,
            trail=trail,
            demo=True,
        )
        session.commit()
    for number in range(1, wards):
        _add_ward(factory, trail, number)

    with factory() as session:
        users = {
            u.username: u
            for u in session.scalars(
                select(User).options(selectinload(User.roles), joinedload(User.unit))
            ).unique()
        }
        for user in users.values():
            user.role_names  # noqa: B018 - loaded now, used detached later
        orgs = session.scalars(select(Organization).order_by(Organization.id)).all()
        plan = []
        for number, org in enumerate(orgs):
            instances = session.scalars(
                select(TaskInstance)
                .join(Unit, TaskInstance.unit_id == Unit.id)
                .options(joinedload(TaskInstance.unit), joinedload(TaskInstance.plan_task))
                .where(
                    Unit.organization_id == org.id,
                    TaskInstance.state == "assigned",
                    TaskInstance.due_date.is_not(None),
                )
                .order_by(TaskInstance.id)
                .limit(limit)
            ).all()
            plan += [
                (number, i.id, i.unit.code, [p["name"] for p in i.plan_task.products])
                for i in instances
            ]
        session.expunge_all()

    store = LocalEvidenceStore(scratch / f"evidence-{label}")
    cycles: list[Cycle] = []
    for ward, instance_id, unit, products in plan:
        who = f"w{ward}." if ward else ""
        prefix = who + unit.lower()
        member, head = users[f"{prefix}.canbo"], users[f"{prefix}.truong"]
        reviewer = users[f"{who}vhxh.thamdinh1"]
        decider = users[f"{who}lanhdao"] if unit == "VHXH" else users[f"{who}vhxh.truong"]
        with factory() as session:
            eng = WorkflowEngine(session, trail, clock, store=store)
            eng.fire(instance_id, "start", member)
            for n, product in enumerate(products):
                eng.add_evidence(
                    instance_id,
                    member,
                    data=PDF + f"{instance_id}-{n}".encode(),
                    filename=f"minh-chung-{n}.pdf",
                    product=product,
                )
            eng.fire(instance_id, "submit", head)
            eng.fire(instance_id, "review", reviewer, **EVENT_INPUTS["review"])
            session.commit()
        actors = {"return_for_rework": decider, "rework": member, "submit": head}
        cycles.append(Cycle(instance_id, {**actors, "review": reviewer}, ward=ward))

    home = [c for c in cycles if c.ward == 0]
    bench_meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(bench_task),
            [{"id": i, "state": "reviewed", "version": 1} for i in range(1, 1 + len(home))],
        )
        conn.execute(insert(bench_serial), [{"ward": w, "n": 0} for w in range(wards)])
    _PeerBase.metadata.create_all(engine)
    with factory() as session:
        session.add_all(
            PeerTask(id=i, state="reviewed", version=1, updated_at=T0)
            for i in range(1, 1 + len(home))
        )
        session.commit()
    bench = Bench(
        label=label,
        url=url,
        engine=engine,
        factory=factory,
        trail=trail,
        clock=clock,
        cycles=cycles,
        sql=BareSql.for_engine(engine),
        rows=list(range(1, 1 + len(home))),
    )
    print(
        f"[{label}] setup: {len(cycles)} instances of {wards} ward(s) prepared in `reviewed` "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return bench


# --- measuring ----------------------------------------------------------------------------------

MODES = ("processes", "threads")
KINDS = ("engine", "bare", "serial", "peer")  # the rounds, alternating in this order
STARTUP_TIMEOUT = 180.0  # a writer process: imports, engine, its actors loaded
BARRIER_TIMEOUT = 60.0  # everyone at the start of a round
ROUND_TIMEOUT = 600.0  # one round of every writer
STOP_TIMEOUT = 30.0  # a writer process handing back its phases and exiting


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def _groups(bench: Bench, writers: int, spread: bool) -> tuple[list[list[Cycle]], list[list[int]]]:
    """Each writer's instances (disjoint; in the demo ward, or with `spread` a ward of its
    own) and its baseline rows."""
    if spread:
        cycle_groups = [[c for c in bench.cycles if c.ward == w] for w in range(writers)]
    else:
        cycle_groups = _split([c for c in bench.cycles if c.ward == 0], writers)
    return cycle_groups, _split(bench.rows, writers)


def _go_round(one: Callable[[Any], None], items: list[Any], position: int, count: int) -> int:
    """`count` transitions, `one` of each item, going round `items` from `position` (the
    engine's: its cycles; the peer's: its rows); the next position."""
    for _ in range(count):
        one(items[position % len(items)])
        position += 1
    return position


def _bare_round(
    bench: Bench, rows: list[int], step: int, count: int, ward: int | None = None
) -> int:
    """`count` baseline writes going round `rows` from `step` (with `ward`: serial writes on
    that ward's shared row); the next step."""
    for _ in range(count):
        bench.bare_one(rows[step % len(rows)], step // len(rows), ward)
        step += 1
    return step


def _ward(group: list[Cycle]) -> int:
    """The ward of a writer: its instances' (all in one ward)."""
    return group[0].ward


def _run_writers(jobs: list[Callable[[], None]]) -> float:
    """Run the jobs at once, one thread each; the wall time from a common start."""
    if len(jobs) == 1:
        start = time.perf_counter()
        jobs[0]()
        return time.perf_counter() - start
    barrier = threading.Barrier(len(jobs) + 1)
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:  # reported below: a failing writer fails the bench
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


class _ThreadWriters:
    """The writers as threads of this process, sharing its GIL (one writer: inline)."""

    def __init__(
        self, bench: Bench, cycle_groups: list[list[Cycle]], row_groups: list[list[int]], each: int
    ) -> None:
        self.bench = bench
        self.cycle_groups = cycle_groups
        self.row_groups = row_groups
        self.each = each
        self.positions = [0] * len(cycle_groups)
        self.steps = [0] * len(cycle_groups)
        self.peer_steps = [0] * len(cycle_groups)

    def _engine_job(self, w: int) -> Callable[[], None]:
        def job() -> None:
            self.positions[w] = _go_round(
                self.bench.fire_one, self.cycle_groups[w], self.positions[w], self.each
            )

        return job

    def _bare_job(self, w: int, serial: bool) -> Callable[[], None]:
        ward = _ward(self.cycle_groups[w]) if serial else None

        def job() -> None:
            self.steps[w] = _bare_round(
                self.bench, self.row_groups[w], self.steps[w], self.each, ward
            )

        return job

    def _peer_job(self, w: int) -> Callable[[], None]:
        def job() -> None:
            self.peer_steps[w] = _go_round(
                self.bench.peer_one, self.row_groups[w], self.peer_steps[w], self.each
            )

        return job

    def round(self, kind: str) -> float:
        jobs = {"engine": self._engine_job, "peer": self._peer_job}
        return _run_writers(
            [
                jobs[kind](w) if kind in jobs else self._bare_job(w, kind == "serial")
                for w in range(len(self.cycle_groups))
            ]
        )


class WriterFailed(RuntimeError):
    """A writer process raised, died or hung; the message carries what it reported."""


@dataclass(frozen=True)
class WriterShare:
    """All a writer process is given (picklable): the database, its instances as
    (instance_id, {event: username}, phase, ward), its baseline rows, the baseline's
    statements (the serial round's among them) and how many of each it does per round."""

    url: str
    cycles: list[tuple[int, dict[str, str], int, int]]
    rows: list[int]
    sql: BareSql
    each: int


def _writer_process(index: int, share: WriterShare, conn: Connection, barrier: Barrier) -> None:
    """One writer as its own process, as a gunicorn sync worker is: its own engine and pool,
    trail and clock, its actors loaded detached as `setup` loads them. It answers "ready",
    then per command (one of KINDS) waits at the common barrier, does its share of the
    round and answers "done"; on "stop" it answers with its instances' phases and exits. Any
    exception goes to the parent as a traceback (and breaks the barrier)."""
    engine: Engine | None = None
    try:
        engine = make_engine(share.url)
        factory = session_factory(engine)
        names = {name for _, actors, _, _ in share.cycles for name in actors.values()}
        with factory() as session:
            users = {
                u.username: u
                for u in session.scalars(
                    select(User)
                    .options(selectinload(User.roles), joinedload(User.unit))
                    .where(User.username.in_(names))
                ).unique()
            }
            for user in users.values():
                user.role_names  # noqa: B018 - loaded now, used detached later
            session.expunge_all()
        cycles = [
            Cycle(instance_id, {e: users[n] for e, n in actors.items()}, phase, ward)
            for instance_id, actors, phase, ward in share.cycles
        ]
        bench = Bench(
            label=f"writer {index}",
            url=share.url,
            engine=engine,
            factory=factory,
            trail=AuditTrail(),
            clock=FixedClock(T0),
            cycles=cycles,
            sql=share.sql,
            rows=share.rows,
        )
        conn.send(("ready", None))
        position = step = peer_step = 0
        while True:
            try:
                command = conn.recv()
            except EOFError:  # the parent is gone
                return
            if command == "stop":
                conn.send(("phases", [c.phase for c in cycles]))
                return
            barrier.wait(BARRIER_TIMEOUT)
            if command == "engine":
                position = _go_round(bench.fire_one, cycles, position, share.each)
            elif command == "peer":
                peer_step = _go_round(bench.peer_one, share.rows, peer_step, share.each)
            else:
                ward = _ward(cycles) if command == "serial" else None
                step = _bare_round(bench, share.rows, step, share.each, ward)
            conn.send(("done", None))
    except BaseException:
        with suppress(OSError, ValueError):  # the parent may be gone
            conn.send(("error", traceback.format_exc()))
        barrier.abort()
    finally:
        if engine is not None:
            engine.dispose()
        conn.close()


class _ProcessWriters:
    """The writers as processes ("spawn": no engine crosses a fork), started once for a
    measurement, outside the timing. A round is timed here, from the barrier that the parent
    and every writer pass together until every writer has answered "done"."""

    def __init__(
        self, bench: Bench, cycle_groups: list[list[Cycle]], row_groups: list[list[int]], each: int
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.cycle_groups = cycle_groups
        self.barrier = ctx.Barrier(len(cycle_groups) + 1)
        self.conns: list[Connection] = []
        self.processes: list[BaseProcess] = []
        self.stopped = False
        try:
            for index, (cycles, rows) in enumerate(zip(cycle_groups, row_groups, strict=True)):
                share = WriterShare(
                    url=bench.url,
                    cycles=[
                        (
                            c.instance_id,
                            {e: u.username for e, u in c.actors.items()},
                            c.phase,
                            c.ward,
                        )
                        for c in cycles
                    ],
                    rows=rows,
                    sql=bench.sql,
                    each=each,
                )
                mine, theirs = ctx.Pipe()
                process = ctx.Process(
                    target=_writer_process,
                    args=(index, share, theirs, self.barrier),
                    name=f"engine-bench-writer-{index}",
                    daemon=True,
                )
                process.start()
                theirs.close()  # ours closed: a writer that dies is an EOF here
                self.conns.append(mine)
                self.processes.append(process)
            self._collect("ready", STARTUP_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _collect(self, expected: str, timeout: float) -> list[Any]:
        """One answer from every writer, in writer order; raises WriterFailed with every
        writer's traceback if one failed, died or did not answer in time."""
        answers: dict[int, Any] = {}
        errors: list[str] = []
        pending = set(range(len(self.conns)))
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append(
                    f"writer(s) {sorted(pending)} gave no {expected!r} within {timeout:.0f} s"
                )
                break
            waitables: dict[Any, int] = {}
            for i in pending:
                waitables[self.conns[i]] = i
                waitables[self.processes[i].sentinel] = i
            for ready in wait(list(waitables), remaining):
                i = waitables[ready]
                if i not in pending:
                    continue
                pending.discard(i)
                try:
                    kind, payload = self.conns[i].recv() if self.conns[i].poll() else (None, None)
                except (EOFError, OSError):  # died: nothing more to read
                    kind, payload = None, None
                if kind == expected:
                    answers[i] = payload
                elif kind == "error":
                    errors.append(f"writer {i} failed:\n{payload}")
                elif kind is None:
                    self.processes[i].join(1)
                    errors.append(
                        f"writer {i} exited (code {self.processes[i].exitcode}) without "
                        f"answering {expected!r}"
                    )
                else:
                    errors.append(f"writer {i} answered {kind!r} instead of {expected!r}")
        if errors:
            raise WriterFailed("\n".join(errors))
        return [answers[i] for i in range(len(self.conns))]

    def _send(self, command: str) -> None:
        """The command to every writer; a writer that is gone fails the bench here."""
        for i, (conn, process) in enumerate(zip(self.conns, self.processes, strict=True)):
            try:
                if not process.is_alive():
                    raise BrokenPipeError
                conn.send(command)
            except OSError:
                process.join(1)
                raise WriterFailed(
                    f"writer {i} is gone (exit code {process.exitcode}) before {command!r}"
                ) from None

    def round(self, kind: str) -> float:
        self._send(kind)
        try:
            self.barrier.wait(BARRIER_TIMEOUT)
        except threading.BrokenBarrierError:
            self._collect("done", 10.0)  # raises with the writers' tracebacks
            raise WriterFailed("the writers' common start broke") from None
        start = time.perf_counter()
        self._collect("done", ROUND_TIMEOUT)
        return time.perf_counter() - start

    def stop(self) -> None:
        """End the writers and carry their instances' phases back into the bench's cycles."""
        self.stopped = True
        self._send("stop")
        for group, phases in zip(
            self.cycle_groups, self._collect("phases", STOP_TIMEOUT), strict=True
        ):
            for cycle, phase in zip(group, phases, strict=True):
                cycle.phase = phase

    def close(self) -> None:
        """Stop what still runs (a plain stop first, then terminate) and release the pipes."""
        if not self.stopped:
            for conn in self.conns:
                with suppress(OSError, ValueError):  # that writer may be gone
                    conn.send("stop")
        for process in self.processes:
            process.join(STOP_TIMEOUT if self.stopped else 5.0)
            if process.is_alive():
                process.terminate()
                process.join(5.0)
        for conn in self.conns:
            conn.close()


@contextmanager
def _writers(
    bench: Bench, mode: str, cycle_groups: list[list[Cycle]], row_groups: list[list[int]], each: int
) -> Iterator[_ThreadWriters | _ProcessWriters]:
    if mode == "processes" and len(cycle_groups) > 1:
        pool = _ProcessWriters(bench, cycle_groups, row_groups, each)
        try:
            yield pool
            pool.stop()
        finally:
            pool.close()
    else:
        yield _ThreadWriters(bench, cycle_groups, row_groups, each)


@dataclass
class Measure:
    done: int = 0
    seconds: float = 0.0
    # CPU seconds over the rounds, kept for one writer (run in this process): this process's,
    # and the local PostgreSQL server's (None where it cannot be read: SQLite, another host)
    client_cpu: float = 0.0
    server_cpu: float | None = 0.0

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def cpu_each(self) -> str:
        """CPU per transition, client + server, in ms."""
        each = 1e3 / self.done if self.done else 0.0
        server = "" if self.server_cpu is None else f" + server {self.server_cpu * each:.2f}"
        return f"client {self.client_cpu * each:.2f}{server} ms"


def _server_cpu(url: str) -> float | None:
    """CPU seconds used so far by every local PostgreSQL process (from /proc); None for
    SQLite, a server on another host, or no /proc."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.host not in (
        None,
        "localhost",
        "127.0.0.1",
        "::1",
    ):
        return None
    ticks, seen = 0, False
    try:
        processes = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return None
    for process in processes:
        try:
            if (process / "comm").read_text().strip() != "postgres":
                continue
            fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        seen = True
    return ticks / os.sysconf("SC_CLK_TCK") if seen else None  # None: none readable here


def measure(
    bench: Bench,
    writers: int,
    per_round: int,
    rounds: int,
    budget: float,
    *,
    spread: bool = False,
    mode: str = "threads",
) -> dict[str, Measure]:
    """Alternate the rounds of KINDS until `rounds` or the time budget is used; their
    measures by kind. The writers work in the demo ward, or (`spread`) each in a
    ward of its own; several writers run as threads of this process or (`mode` "processes")
    as processes of their own, one writer always here."""
    cycle_groups, row_groups = _groups(bench, writers, spread)
    each = max(1, per_round // writers)
    measures = {kind: Measure() for kind in KINDS}
    with _writers(bench, mode, cycle_groups, row_groups, each) as pool:
        deadline = time.perf_counter() + budget
        cpu, server = 0.0, None
        for r in range(rounds):
            for kind, m in measures.items():
                if writers == 1:  # the /proc scan outside the client's CPU
                    server = _server_cpu(bench.url)
                    cpu = time.process_time()
                m.seconds += pool.round(kind)
                m.done += each * writers
                if writers == 1:
                    m.client_cpu += time.process_time() - cpu
                    after = _server_cpu(bench.url)
                    if server is None or after is None or m.server_cpu is None:
                        m.server_cpu = None
                    else:
                        m.server_cpu += after - server
            if r >= 1 and time.perf_counter() > deadline:
                break
    return measures


def report(
    label: str,
    writers: int,
    measures: dict[str, Measure],
    where: str = "",
    mode: str | None = None,
) -> float:
    """One configuration's lines: the engine against the baseline (the goal's ratio, returned)
    and against the serial round, the ceiling of a log serialised per ward; then the peer
    design against the same baseline."""
    full, bare, serial, peer = (measures[kind] for kind in KINDS)
    ratio = full.rate / bare.rate
    goal = GOALS[label]
    verdict = "meets" if ratio >= goal else "below"
    if mode and writers > 1:
        where = f" ({mode}){where}"
    print(
        f"[{label}] {writers} writer{'s' if writers > 1 else ' '}{where}: engine {full.rate:8,.0f} "
        f"transitions/s ({full.done:,} in {full.seconds:.2f} s) | baseline SELECT+UPDATE+INSERT"
        f"+COMMIT {bare.rate:8,.0f}/s ({bare.done:,}) | ratio {ratio:6.1%} "
        f"(goal >= {goal:.0%}: {verdict}) | serialised on the ward's row {serial.rate:8,.0f}/s "
        f"(ratio to baseline {serial.rate / bare.rate:6.1%}) | engine at "
        f"{full.rate / serial.rate:6.1%} of it"
    )
    if writers == 1:
        # Where the time goes, on each side: CPU of this process and of the local server.
        print(
            f"[{label}]   CPU a transition: engine {full.cpu_each()} | baseline {bare.cpu_each()}"
        )
    peer_ratio = peer.rate / bare.rate
    in_issue = PEER_IN_ISSUE[label]
    print(
        f"[{label}]   peer design (python-statemachine + ORM, plain log row, no rules): "
        f"{peer.rate:8,.0f}/s, ratio {peer_ratio:6.1%} (the issue measured {in_issue:.0%}) | "
        f"engine's ratio {ratio / peer_ratio:4.2f}x the peer's (the goal is "
        f"{goal / in_issue:4.2f}x the issue's peer)"
    )
    return ratio


def micro(count: int = 2000) -> None:
    """The machine alone: construction and one send, in memory."""

    class Row:
        state = "reviewed"

    rows = [Row() for _ in range(count)]
    start = time.perf_counter()
    machines = [machine_for(r) for r in rows]
    built = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for m in machines:
        m.send("return_for_rework")
    sent = (time.perf_counter() - start) / count
    print(
        f"[machine] python-statemachine in memory: build {built * 1e3:.3f} ms, "
        f"send {sent * 1e3:.3f} ms per transition"
    )


# --- profiling ---------------------------------------------------------------------------------


def _key_functions() -> list[tuple[str, Any]]:
    """(label, function): their cumulative time per transition. They nest (fire contains the
    rest), so they do not add up; the package breakdown below does."""
    from sqlalchemy.orm.strategies import _LazyLoader

    from audit.canonical import canonical_bytes
    from audit.ledger import Ledger
    from workflow import engine as engine_module

    e = WorkflowEngine
    return [
        ("Engine.fire (all but commit)", e.fire),
        ("  read the instance (one SELECT)", engine_module._read_instance),
        ("  Engine._requirements (submit checks)", e._requirements),
        ("  write state, remark, outbox", engine_module._write_change),
        ("  AuditTrail.record", AuditTrail.record),
        ("    Ledger.append (Merkle append)", Ledger.append),
        ("      canonical_bytes", canonical_bytes),
        ("ORM lazy loads (all)", _LazyLoader._load_for_state),
        ("Session.flush (all, incl. autoflush)", Session.flush),
        ("Session.commit", Session.commit),
        ("Session.close", Session.close),
    ]


def _pstats_key(function: Any) -> tuple[str, int, str]:
    code = getattr(function, "__func__", function).__code__
    return (code.co_filename, code.co_firstlineno, code.co_name)


PACKAGES: tuple[tuple[str, str], ...] = (
    ("statemachine/", "python-statemachine"),
    ("sqlalchemy/orm/", "SQLAlchemy ORM"),
    ("sqlalchemy/", "SQLAlchemy Core/engine/pool"),
    ("/audit/", "audit ledger (ours)"),
    ("/workflow/", "workflow engine (ours)"),
    ("psycopg", "psycopg (driver, incl. waiting on the server)"),
    ("blinker", "blinker"),
    ("rfc8785", "rfc8785 (canonical JSON)"),
)


def _package(filename: str, funcname: str) -> str:
    if filename == "~":  # a builtin: name it by what it belongs to
        if "sqlite3" in funcname:
            return "sqlite3 driver (C: execute, commit, fetch)"
        if "psycopg" in funcname or "pq" in funcname:
            return "psycopg (driver, incl. waiting on the server)"
        if "select" in funcname or "poll" in funcname or "wait" in funcname:
            return "waiting on the server"
        return "builtins (other)"
    for needle, name in PACKAGES:
        if needle in filename:
            return name
    return "other (stdlib: json, hashlib, uuid, dataclasses, ...)"


def profile(bench: Bench, count: int) -> None:
    profiler = cProfile.Profile()
    cycles = bench.cycles
    profiler.enable()
    start = time.perf_counter()
    for i in range(count):
        bench.fire_one(cycles[i % len(cycles)])
    elapsed = time.perf_counter() - start
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    print(
        f"[{bench.label}] profile of {count} transitions: {elapsed / count * 1e3:.2f} ms each "
        f"under cProfile ({total / count * 1e3:.2f} ms of profiled time)"
    )
    print(f"[{bench.label}]   cumulative per transition (nested):")
    for label, function in _key_functions():
        row = raw.get(_pstats_key(function))
        nc, ct = (row[1], row[3]) if row else (0, 0.0)
        print(
            f"[{bench.label}]     {label:<48} {ct / count * 1e3:6.3f} ms "
            f"{ct / total:6.1%}  ({nc / count:.1f} calls)"
        )
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _, funcname), (_, _, tt, _, _) in raw.items():
        by_package[_package(filename, funcname)] += tt
    print(f"[{bench.label}]   own time by package:")
    for name, tt in sorted(by_package.items(), key=lambda kv: -kv[1]):
        print(f"[{bench.label}]     {name:<52} {tt / count * 1e3:6.3f} ms {tt / total:6.1%}")
    executes = sum(
        nc
        for (filename, _, funcname), (_, nc, _, _, _) in raw.items()
        if filename.endswith("sqlalchemy/engine/base.py") and funcname == "_execute_context"
    )
    print(
        f"[{bench.label}]   SQL statements through SQLAlchemy per transition: "
        f"{executes / count:.1f} (plus the ledger's own cursor statements)"
    )
    print(f"[{bench.label}]   top functions by own time:")
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:12]
    for (filename, line, funcname), (_, nc, tt, _, _) in top:
        where = "/".join(Path(filename).parts[-2:]) if filename != "~" else ""
        print(
            f"[{bench.label}]     {tt / count * 1e3:6.3f} ms {nc / count:6.1f}x  "
            f"{where}:{line} {funcname}"
        )


# --- running -------------------------------------------------------------------------------------


@contextmanager
def pg_database(base_url: str) -> Iterator[str]:
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"cchc_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_backend(label: str, url: str, args: argparse.Namespace, scratch: Path) -> None:
    wards = args.writers if args.spread else 1
    modes = MODES if args.concurrency == "both" else (args.concurrency,)
    bench = setup(label, url, scratch, args.instances, wards)
    try:
        for writers in sorted({1, args.writers}):
            for mode in modes if writers > 1 else ("threads",):  # one writer: in this process
                measures = measure(
                    bench, writers, args.transitions, args.rounds, args.max_seconds, mode=mode
                )
                report(
                    label,
                    writers,
                    measures,
                    f", one ward of {wards} (the first)" if wards > 1 else "",
                    mode,
                )
        if wards > 1:
            for mode in modes:
                measures = measure(
                    bench,
                    args.writers,
                    args.transitions,
                    args.rounds,
                    args.max_seconds,
                    spread=True,
                    mode=mode,
                )
                report(label, args.writers, measures, ", a ward each", mode)
        if args.profile:
            profile(bench, args.profile)
    finally:
        bench.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--transitions", type=int, default=120, help="per round, all writers together"
    )
    parser.add_argument("--rounds", type=int, default=40, help="at most; at least 2")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument(
        "--concurrency",
        choices=("processes", "threads", "both"),
        default="both",
        help="how several writers run: as processes of their own (as gunicorn sync workers "
        "do), as threads of this process (sharing its GIL), or both, one after the other",
    )
    parser.add_argument(
        "--spread",
        action="store_true",
        help="also run the writers each in a ward of its own (one audit log each), as a "
        "city's deployment does; appends to one ward's log serialise until commit",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=11.0, help="time budget per measurement"
    )
    parser.add_argument("--instances", type=int, default=40, help="instances going round")
    parser.add_argument("--profile", type=int, default=200, help="transitions profiled; 0: none")
    parser.add_argument("--pg-url", default=os.environ.get("CCHC_BENCH_DATABASE_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="cchc-engine-bench-"))
    began = time.perf_counter()
    try:
        print(
            f"transitions per round: {args.transitions:,}; rounds: {args.rounds}; writers: 1 "
            f"and {args.writers} ({args.concurrency}); cycle: {' → '.join(CYCLE)}; "
            f"scratch: {scratch}"
        )
        micro()
        if not args.no_sqlite:
            run_backend("sqlite", f"sqlite:///{scratch / 'engine.sqlite'}", args, scratch)
        if args.pg_url:
            with pg_database(args.pg_url) as url:
                run_backend("postgresql", url, args, scratch)
        else:
            print("[postgresql] skipped: give --pg-url or set CCHC_BENCH_DATABASE_URL")
        print(f"total {time.perf_counter() - began:.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

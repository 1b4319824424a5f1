"""Helpers shared by the engine tests that go beyond the `ward` fixture: a demo ward on a
committed database (for concurrency, atomicity and signal tests), driving an instance to a
state through the engine, a snapshot of everything one instance owns in the database, and an
action run while another transaction holds what it needs (`behind`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine as DbEngine
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.ledger import Ledger
from workflow.amendments import decide_amendment
from workflow.bootstrap import initialize_ward
from workflow.clock import FixedClock
from workflow.db import make_engine
from workflow.engine import Engine
from workflow.errors import DomainError
from workflow.evidence import LocalEvidenceStore
from workflow.models import (
    Evidence,
    Notification,
    Organization,
    PlanTask,
    Remark,
    TaskInstance,
    Unit,
)
from workflow.trail import AuditTrail

from .conftest import _PLAN, _PLAN_TEXT, _UNITS, ORIGIN, T0, Ward

# The lifecycle as the issue describes it, written out independently of workflow/lifecycle.py.
EVENTS = (
    "schedule",
    "start",
    "submit",
    "review",
    "return_for_rework",
    "accept",
    "rework",
    "cancel",
)
STATES = (
    "awaiting_schedule",
    "assigned",
    "in_progress",
    "evidence_submitted",
    "reviewed",
    "accepted",
    "returned",
    "cancelled",
)
OPEN = (
    "awaiting_schedule",
    "assigned",
    "in_progress",
    "evidence_submitted",
    "reviewed",
    "returned",
)

# The lifecycle of the issue: (state, event) -> target. Everything else is invalid_transition.
LIFECYCLE: dict[tuple[str, str], str] = {
    ("awaiting_schedule", "schedule"): "assigned",
    ("assigned", "start"): "in_progress",
    ("in_progress", "submit"): "evidence_submitted",
    ("evidence_submitted", "review"): "reviewed",
    ("evidence_submitted", "return_for_rework"): "returned",
    ("reviewed", "return_for_rework"): "returned",
    ("reviewed", "accept"): "accepted",
    ("returned", "rework"): "in_progress",
    **{(state, "cancel"): "cancelled" for state in OPEN},
}

# Complete, valid inputs for every lifecycle event: with these, the only refusals left are
# the permission and transition rules.
FULL_INPUTS: dict[str, Any] = {
    "reason": "Bổ sung số liệu quý I",
    "assessment": "Hoàn thành đầy đủ, đúng yêu cầu",
    "findings": "Hồ sơ đầy đủ",
    "recommendation": "accept",
    "due": date(2026, 6, 30),
}


def refusal_code(fn: Callable[[], object]) -> str:
    """The DomainError code `fn` raises (fails the test when it raises nothing)."""
    with pytest.raises(DomainError) as info:
        fn()
    return info.value.code


def demo_ward(session: Session, store_dir: Path, clock: FixedClock | None = None) -> Ward:
    """The `ward` fixture's setup on any session (the caller commits or rolls back)."""
    clock = clock or FixedClock(T0)
    trail = AuditTrail()
    initialize_ward(
        session,
        catalog=_UNITS,
        plan=_PLAN,
        plan_text=_PLAN_TEXT,
        now=T0,
        organization_name="Phường Trần Hưng Đạo",
        audit_origin=ORIGIN,
        trail=trail,
        demo=True,
    )
    org = session.scalars(select(Organization)).one()
    engine = Engine(session, trail, clock, store=LocalEvidenceStore(store_dir))
    return Ward(session=session, engine=engine, clock=clock, org=org)


def drive_to_reviewed(
    ward: Ward,
    instance: TaskInstance,
    *,
    member: str = "vp.canbo",
    head: str = "vp.truong",
    reviewer: str = "vhxh.thamdinh1",
) -> None:
    """start → evidence for every product → submit → review (recommending acceptance)."""
    e, u = ward.engine, ward.user
    e.fire(instance.id, "start", u(member))
    ward.fill_evidence(instance, member)
    e.fire(instance.id, "submit", u(head))
    e.fire(instance.id, "review", u(reviewer), findings="Hồ sơ đầy đủ", recommendation="accept")


@dataclass
class CommittedWard:
    """A demo ward committed to its own database, with VP-led instances at `reviewed`."""

    db: DbEngine
    store_dir: Path
    reviewed: list[int]  # instance ids (VP-led, submitted by vp.truong, reviewed by thamdinh1)
    assigned: list[int]  # VP-led instances still at `assigned`

    def session(self) -> Session:
        return Session(self.db, expire_on_commit=False)

    def ward(self, session: Session, clock: FixedClock | None = None) -> Ward:
        """A Ward view (helpers and an Engine) over an already initialised database."""
        org = session.scalars(select(Organization)).one()
        clock = clock or FixedClock(T0)
        engine = Engine(session, AuditTrail(), clock, store=LocalEvidenceStore(self.store_dir))
        return Ward(session=session, engine=engine, clock=clock, org=org)


def committed_ward(url: str, store_dir: Path, *, reviewed: int = 1) -> CommittedWard:
    """Initialise the demo ward on `url`, bring `reviewed` VP-led instances to `reviewed`,
    and commit. The caller disposes `.db`."""
    db = make_engine(url)
    try:
        with Session(db, expire_on_commit=False) as session:
            ward = demo_ward(session, store_dir)
            vp = [
                i
                for i in (ward.instance(n, "VP") for n in _vp_task_numbers(ward))
                if i.state == "assigned"
            ]
            assert len(vp) > reviewed, "the demo plan has too few VP-led tasks"
            for instance in vp[:reviewed]:
                drive_to_reviewed(ward, instance)
            session.commit()
            return CommittedWard(
                db=db,
                store_dir=store_dir,
                reviewed=[i.id for i in vp[:reviewed]],
                assigned=[i.id for i in vp[reviewed:]],
            )
    except BaseException:
        db.dispose()
        raise


def _vp_task_numbers(ward: Ward) -> list[int]:
    return list(
        ward.session.scalars(
            select(PlanTask.number)
            .join(TaskInstance, TaskInstance.plan_task_id == PlanTask.id)
            .join(Unit, TaskInstance.unit_id == Unit.id)
            .where(Unit.code == "VP")
            .distinct()
            .order_by(PlanTask.number)
        )
    )


def snapshot(session: Session, instance_id: int, *, history: bool = True) -> dict[str, Any]:
    """Everything the database holds about one instance, read straight from the tables."""

    def count(model: Any, *where: Any) -> Any:
        return (
            select(func.count())
            .select_from(model)
            .where(model.instance_id == instance_id, *where)
            .scalar_subquery()
        )

    row = session.execute(
        select(
            TaskInstance.state,
            TaskInstance.version,
            TaskInstance.submission_round,
            TaskInstance.submitted_by_id,
            TaskInstance.reviewed_by_id,
            TaskInstance.recommendation,
            TaskInstance.accepted_at,
            TaskInstance.due_date,
            count(Remark),
            count(Notification),
            count(Evidence),
            count(Evidence, Evidence.withdrawn_at.is_not(None)),
        ).where(TaskInstance.id == instance_id)
    ).one()
    ledger = Ledger(ORIGIN)
    out: dict[str, Any] = {"row": tuple(row[:8]), "counts": tuple(row[8:])}
    out["log_size"] = ledger.size(session)
    if history:
        out["history"] = [e.action for e in ledger.history(session, "task_instance", instance_id)]
    return out


# --- an action that waits for another writer's lock -------------------------------------------
# On PostgreSQL a second writer reads before the first commits and then waits on a row lock (the
# instance's, the ward's, the audit log's); whatever it decides must rest on what the first
# committed, not on what its own reads saw before the wait. On SQLite the second cannot read
# before the first has committed (BEGIN IMMEDIATE), so these races do not arise there.

WAIT = 30.0  # seconds the holder waits, at most, to see the other blocked by its locks


def _blocked_by(committed: CommittedWard, holder: int) -> bool:
    """Whether, within WAIT seconds, some backend is seen waiting for a lock `holder` (a
    backend's pid) holds: the proof that the attempt really queued behind the holder."""
    deadline = time.monotonic() + WAIT
    with committed.db.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE %(holder)s = ANY(pg_blocking_pids(pid))",
                {"holder": holder},
            ).scalar_one()
            conn.rollback()  # a new snapshot of the activity at every look
            if waiting:
                return True
            time.sleep(0.01)
    return False


@dataclass
class Waited:
    """What the waiting action did: its result, or the error it raised (rolled back)."""

    result: Any = None
    error: BaseException | None = None


def behind(
    committed: CommittedWard,
    db_url: str,
    hold: Callable[[Ward], object],
    attempt: Callable[[Ward], object],
    *,
    prepare: Callable[[Ward], object] | None = None,
) -> Waited:
    """Run `hold` in a transaction and keep it open; meanwhile run `attempt` in a thread with
    its own session, whose first read comes before `hold` commits. `prepare`, if given, runs
    in that thread's transaction before it waits (what the action read first: the page it
    came from). Commit `hold` once `attempt` is seen waiting; `attempt` commits if it
    succeeds."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serialises whole transactions from their first read")
    waited = Waited()
    started = threading.Event()
    fired_at: list[float] = []

    def run() -> None:
        try:
            with committed.session() as session:
                ward = committed.ward(session)
                if prepare is not None:
                    prepare(ward)
                started.set()
                fired_at.append(time.monotonic())
                try:
                    waited.result = attempt(ward)
                    session.commit()
                except DomainError as err:
                    session.rollback()
                    waited.error = err
        except BaseException as exc:  # reported below
            waited.error = exc

    thread = threading.Thread(target=run)
    with committed.session() as session:
        hold(committed.ward(session))
        session.flush()
        holder = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        thread.start()
        try:
            assert started.wait(timeout=30)
            blocked = _blocked_by(committed, holder)
        finally:
            session.commit()
            released_at = time.monotonic()
            thread.join(timeout=60)
    assert blocked, "the attempt never waited for the transaction holding the lock"
    assert not thread.is_alive()
    assert fired_at and fired_at[0] < released_at
    if waited.error is not None and not isinstance(waited.error, DomainError):
        raise waited.error
    return waited


def started_instance(committed: CommittedWard, *, filled: bool = False) -> tuple[int, int]:
    """A VP-led instance started by vp.canbo (with a file for every product if `filled`),
    committed: its id and version."""
    instance_id = committed.assigned[0]
    with committed.session() as session:
        ward = committed.ward(session)
        ward.engine.fire(instance_id, "start", ward.user("vp.canbo"))
        if filled:
            ward.fill_evidence(session.get_one(TaskInstance, instance_id), "vp.canbo")
        session.commit()
        return instance_id, session.get_one(TaskInstance, instance_id).version


def first_file(committed: CommittedWard, instance_id: int) -> int:
    """The id of the instance's first evidence file."""
    with committed.session() as session:
        first = session.scalars(
            select(Evidence.id).where(Evidence.instance_id == instance_id).order_by(Evidence.id)
        ).first()
    assert first is not None
    return first


def entries_about(session: Any, action: str) -> int:
    return Ledger(ORIGIN).entries(session, action=action).total


def free_lead_unit(session: Session, plan_task_id: int) -> str:
    """A unit that may lead and has no instance of the task (VHXH, the reviewer, left out)."""
    taken = session.scalars(
        select(Unit.code)
        .join(TaskInstance, TaskInstance.unit_id == Unit.id)
        .where(TaskInstance.plan_task_id == plan_task_id)
    ).all()
    code = session.scalars(
        select(Unit.code)
        .where(Unit.can_lead.is_(True), Unit.code.not_in([*taken, "VHXH"]))
        .order_by(Unit.code)
    ).first()
    assert code is not None
    return code


def approval(amendment_id: int) -> Callable[[Ward], object]:
    """The ward leader's approval of an amendment, as an action for `behind`."""
    return lambda ward: decide_amendment(
        ward.session,
        ward.org,
        amendment_id,
        ward.user("lanhdao"),
        approve=True,
        reason="Đồng ý",
        now=ward.clock.now(),
        trail=AuditTrail(),
        today=ward.clock.now().date(),
    )

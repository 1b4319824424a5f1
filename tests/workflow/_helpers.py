"""Helpers shared by the engine tests that go beyond the `ward` fixture: a demo ward on a
committed database (for concurrency, atomicity and signal tests), driving an instance to a
state through the engine, and a snapshot of everything one instance owns in the database."""

from __future__ import annotations

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

"""Fixtures of the engine tests: the demo ward loaded in the per-test transaction, a fixed
clock, an evidence store in a temporary folder, and small helpers to drive a task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from definitions.loader import default_plan_path, load_plan, load_units
from workflow.bootstrap import initialize_ward
from workflow.clock import FixedClock
from workflow.engine import Engine
from workflow.evidence import LocalEvidenceStore
from workflow.models import Organization, PlanTask, TaskInstance, Unit, User
from workflow.trail import AuditTrail

ORIGIN = "test.local/tran-hung-dao"
T0 = datetime(2026, 2, 2, 2, 0, tzinfo=UTC)  # Monday 02/02/2026, 09:00 in Hà Nội time
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

_PLAN_PATH = default_plan_path()
_PLAN = load_plan(_PLAN_PATH)
_PLAN_TEXT = _PLAN_PATH.read_text(encoding="utf-8")
_UNITS = load_units()


@dataclass
class Ward:
    session: Session
    engine: Engine
    clock: FixedClock
    org: Organization

    def user(self, username: str) -> User:
        return self.session.scalars(select(User).where(User.username == username)).one()

    def instance(self, number: int, unit: str | None = None, period: int = 0) -> TaskInstance:
        stmt = (
            select(TaskInstance)
            .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
            .join(Unit, TaskInstance.unit_id == Unit.id)
            .where(PlanTask.number == number)
            .order_by(TaskInstance.due_date, Unit.code)
        )
        if unit is not None:
            stmt = stmt.where(Unit.code == unit)
        return list(self.session.scalars(stmt))[period]

    def products(self, instance: TaskInstance) -> list[str]:
        return [p["name"] for p in instance.plan_task.products]

    def fill_evidence(self, instance: TaskInstance, uploader: str) -> None:
        """One PDF for every product of the task, uploaded by `uploader`."""
        for i, product in enumerate(self.products(instance)):
            self.engine.add_evidence(
                instance.id,
                self.user(uploader),
                data=PDF + str(i).encode(),
                filename=f"minh-chung-{i}.pdf",
                product=product,
            )

    def log_size(self) -> int:
        return AuditTrail().ledger(self.org).size(self.session)


@pytest.fixture
def ward(session: Session, tmp_path: Path) -> Ward:
    clock = FixedClock(T0)
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
    engine = Engine(session, trail, clock, store=LocalEvidenceStore(tmp_path / "evidence"))
    return Ward(session=session, engine=engine, clock=clock, org=org)

"""Read-side queries shared by the pages, the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.models import Organization, Plan, PlanTask, TaskInstance, Unit, User


@dataclass(frozen=True)
class InstanceRow:
    id: int
    number: int
    section: str | None
    content: str
    unit: str
    period: str
    state: str
    due: date | None
    version: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "section": self.section,
            "unit": self.unit,
            "period": self.period,
            "state": self.state,
            "due": self.due.isoformat() if self.due else None,
            "version": self.version,
            "content": self.content,
        }


def list_instances(
    session: Session,
    org: Organization,
    *,
    unit: str | None = None,
    state: str | None = None,
    number: int | None = None,
) -> list[InstanceRow]:
    stmt = (
        select(TaskInstance, PlanTask, Unit)
        .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
        .join(Plan, PlanTask.plan_id == Plan.id)
        .join(Unit, TaskInstance.unit_id == Unit.id)
        .where(Plan.organization_id == org.id)
        .order_by(
            TaskInstance.due_date.is_(None), TaskInstance.due_date, PlanTask.number, Unit.code
        )
    )
    if unit is not None:
        stmt = stmt.where(Unit.code == unit)
    if state is not None:
        stmt = stmt.where(TaskInstance.state == state)
    if number is not None:
        stmt = stmt.where(PlanTask.number == number)
    return [
        InstanceRow(
            id=inst.id,
            number=task.number,
            section=task.section,
            content=task.content,
            unit=u.code,
            period=inst.period_label,
            state=inst.state,
            due=inst.due_date,
            version=inst.version,
        )
        for inst, task, u in session.execute(stmt)
    ]


def list_users(session: Session, org: Organization | None = None) -> list[User]:
    stmt = select(User).order_by(User.username)
    if org is not None:
        stmt = stmt.where(User.organization_id == org.id)
    return list(session.scalars(stmt))


def organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.id)))

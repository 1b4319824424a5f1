"""Read-side queries shared by the pages, the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflow.engine import Engine
from workflow.models import (
    CoordinationRequest,
    Evidence,
    Notification,
    Organization,
    Plan,
    PlanTask,
    Remark,
    TaskInstance,
    Unit,
    User,
)


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


def instance_detail(
    session: Session, engine: Engine, instance: TaskInstance, viewer: User | None
) -> dict[str, Any]:
    """Everything a task page shows: the task, the instance, its evidence, remarks,
    coordination requests, its history from the audit log and what the viewer may do now."""
    task = instance.plan_task
    org = instance.unit.organization
    evidence = session.scalars(
        select(Evidence).where(Evidence.instance_id == instance.id).order_by(Evidence.id)
    ).all()
    remarks = session.scalars(
        select(Remark).where(Remark.instance_id == instance.id).order_by(Remark.id)
    ).all()
    requests = session.execute(
        select(CoordinationRequest, Unit.code)
        .join(Unit, CoordinationRequest.unit_id == Unit.id)
        .where(CoordinationRequest.instance_id == instance.id)
        .order_by(CoordinationRequest.id)
    ).all()
    users = {u.id: u.username for u in session.scalars(select(User))}
    ledger = engine.trail.ledger(org)
    history = ledger.history(session, "task_instance", instance.id)
    for request, _code in requests:
        history += ledger.history(session, "coordination_request", request.id)
    history.sort(key=lambda entry: entry.seq)
    return {
        "id": instance.id,
        "number": task.number,
        "section": task.section,
        "content": task.content,
        "lead": instance.unit.code,
        "lead_text": task.lead_text,
        "coordinators_text": task.coordinators_text,
        "coordinators": list(engine.coordinator_codes(instance)),
        "timeframe": task.timeframe,
        "products": [p["name"] for p in task.products],
        "period": instance.period_label,
        "start": instance.period_start.isoformat(),
        "due": instance.due_date.isoformat() if instance.due_date else None,
        "state": instance.state,
        "version": instance.version,
        "round": instance.submission_round,
        "assignee": users.get(instance.assignee_id) if instance.assignee_id else None,
        "evidence": [
            {
                "id": e.id,
                "product": e.product,
                "filename": e.filename,
                "sha256": e.sha256,
                "size": e.size,
                "media_type": e.media_type,
                "uploader": users.get(e.uploader_id),
                "withdrawn": e.withdrawn_at is not None,
            }
            for e in evidence
        ],
        "remarks": [
            {
                "kind": r.kind,
                "product": r.product,
                "body": r.body,
                "author": users.get(r.author_id),
                "at": r.created_at.isoformat(),
            }
            for r in remarks
        ],
        "contributions": [
            {
                "id": r.id,
                "unit": code,
                "state": r.state,
                "due": r.due_date.isoformat() if r.due_date else None,
                "decline_reason": r.decline_reason,
            }
            for r, code in requests
        ],
        "history": [
            {
                "seq": h.seq,
                "at": h.created_at.isoformat(),
                "user": h.actor_user,
                "role": h.actor_role,
                "action": h.action,
            }
            for h in history
        ],
        "enabled_events": engine.enabled_events(instance, viewer) if viewer else [],
    }


def notifications_for(session: Session, user: User, *, limit: int = 50) -> list[Notification]:
    """A person's in-app notifications, newest first."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.recipient_id == user.id)
            .order_by(Notification.id.desc())
            .limit(limit)
        )
    )


def unread_count(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.recipient_id == user.id, Notification.read_at.is_(None))
        )
        or 0
    )


def mark_read(session: Session, user: User, *, now: datetime) -> int:
    """Mark every unread notification of this person read; how many were."""
    unread = session.scalars(
        select(Notification).where(
            Notification.recipient_id == user.id, Notification.read_at.is_(None)
        )
    ).all()
    for notification in unread:
        notification.read_at = now
    return len(unread)

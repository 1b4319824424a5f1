"""Loading a ward's units and a plan definition into the database, and expanding every task
into its instances: one per lead unit per period."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from definitions.loader import PlanDefinition, TaskDefinition, UnitCatalog
from workflow.models import Organization, Plan, PlanTask, TaskInstance, Unit
from workflow.states import TaskState


@dataclass
class PlanLoadResult:
    plan: Plan
    created_plan: bool
    created_tasks: int = 0
    created_instances: int = 0
    instance_ids: list[int] = field(default_factory=list)


def ensure_organization(
    session: Session, *, slug: str, name: str, audit_origin: str, now: datetime
) -> tuple[Organization, bool]:
    org = session.scalar(select(Organization).where(Organization.slug == slug))
    if org is not None:
        return org, False
    org = Organization(slug=slug, name=name, audit_origin=audit_origin, created_at=now)
    session.add(org)
    session.flush()
    return org, True


def ensure_units(session: Session, org: Organization, catalog: UnitCatalog) -> list[Unit]:
    """Create the catalogue's units that the ward does not have yet; return the new ones."""
    existing = set(session.scalars(select(Unit.code).where(Unit.organization_id == org.id)).all())
    created = []
    for spec in catalog.units.values():
        if spec.code in existing:
            continue
        unit = Unit(
            organization_id=org.id,
            code=spec.code,
            name=spec.name,
            short_name=spec.short_name,
            kind=spec.kind,
            can_lead=spec.can_lead,
            self_inspects=spec.self_inspects,
            active=True,
        )
        session.add(unit)
        created.append(unit)
    session.flush()
    return created


def units_by_code(session: Session, org: Organization) -> dict[str, Unit]:
    rows = session.scalars(select(Unit).where(Unit.organization_id == org.id)).all()
    return {u.code: u for u in rows}


def load_plan(
    session: Session,
    org: Organization,
    definition: PlanDefinition,
    definition_text: str,
    *,
    now: datetime,
) -> PlanLoadResult:
    """Store the plan and its tasks and create the missing task instances.

    Idempotent: loading the same plan again creates nothing. The flush leaves the commit to
    the caller, who records the audit entry in the same transaction.
    """
    plan = session.scalar(
        select(Plan).where(Plan.organization_id == org.id, Plan.code == definition.code)
    )
    result: PlanLoadResult
    if plan is None:
        plan = Plan(
            organization_id=org.id,
            code=definition.code,
            year=definition.year,
            title=definition.title,
            definition_sha256=hashlib.sha256(definition_text.encode("utf-8")).hexdigest(),
            definition_text=definition_text,
            policy={
                "submit_requires_head": definition.policy.submit_requires_head,
                "outstanding_contributions": definition.policy.outstanding_contributions,
            },
            imported_at=now,
        )
        session.add(plan)
        session.flush()
        result = PlanLoadResult(plan=plan, created_plan=True)
    else:
        result = PlanLoadResult(plan=plan, created_plan=False)

    tasks = {
        t.number: t for t in session.scalars(select(PlanTask).where(PlanTask.plan_id == plan.id))
    }
    units = units_by_code(session, org)
    for task_def in definition.tasks:
        task = tasks.get(task_def.number)
        if task is None:
            task = _plan_task(plan, task_def)
            session.add(task)
            session.flush()
            result.created_tasks += 1
        _expand(session, task, task_def, units, now, result)
    session.flush()
    return result


def _plan_task(plan: Plan, task_def: TaskDefinition) -> PlanTask:
    return PlanTask(
        plan_id=plan.id,
        number=task_def.number,
        section=task_def.section,
        content=task_def.content,
        lead_text=task_def.lead_text,
        leads=list(task_def.leads),
        coordinators_text=task_def.coordinators_text,
        coordinators=list(task_def.coordinators),
        timeframe=task_def.timeframe,
        schedule_kind=task_def.schedule.kind,
        products=[{"name": p.name, "kind": p.kind} for p in task_def.products],
        active=True,
    )


def _expand(
    session: Session,
    task: PlanTask,
    task_def: TaskDefinition,
    units: dict[str, Unit],
    now: datetime,
    result: PlanLoadResult,
) -> None:
    existing = {
        (unit_id, label)
        for unit_id, label in session.execute(
            select(TaskInstance.unit_id, TaskInstance.period_label).where(
                TaskInstance.plan_task_id == task.id
            )
        )
    }
    for code in task_def.leads:
        unit = units[code]
        for period in task_def.schedule.periods:
            if (unit.id, period.label) in existing:
                continue
            instance = TaskInstance(
                plan_task_id=task.id,
                unit_id=unit.id,
                period_label=period.label,
                period_start=period.start,
                due_date=period.due,
                state=(
                    TaskState.ASSIGNED if period.due is not None else TaskState.AWAITING_SCHEDULE
                ).value,
                created_at=now,
                updated_at=now,
            )
            session.add(instance)
            session.flush()
            result.created_instances += 1
            result.instance_ids.append(instance.id)

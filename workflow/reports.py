"""Read-side reports as of a date: a unit's work list, VHXH's review queue and the leadership's
dashboard (progress by section and unit, national statuses, overdue work, the plan's targets).

Nothing here writes or reads the wall clock: "today" / "as of" and the working calendar are
parameters (invariant 6), so a report can be reproduced for any past date. Counting follows
workflow.deadlines: an instance is done as of a date when it was accepted on or before it; a
cancelled instance is left out of every count but `cancelled`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, defer, joinedload

from definitions.calendar import WorkingCalendar
from definitions.loader import Kpi, PlanDefinition, PlanDefinitionError, Section, plan_from_data
from workflow.clock import ward_date
from workflow.deadlines import (
    COMPLETED_LATE,
    COMPLETED_ON_TIME,
    DEFAULT_DUE_SOON_DAYS,
    OPEN_LATE,
    OPEN_ON_TIME,
    deadline_status,
    national_status,
    working_days_late,
)
from workflow.models import Organization, Plan, PlanTask, TaskInstance, Unit, User
from workflow.states import TaskState

# The four national statuses in the order reports show them.
NATIONAL_STATUSES: tuple[str, ...] = (COMPLETED_ON_TIME, COMPLETED_LATE, OPEN_ON_TIME, OPEN_LATE)

# Instances waiting for VHXH (review) or for a decision (accept / return), in the queue.
QUEUE_STATES: tuple[str, ...] = (TaskState.EVIDENCE_SUBMITTED.value, TaskState.REVIEWED.value)

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def percent(part: int, whole: int) -> Decimal | None:
    """`part` of `whole` in percent with one decimal, rounded half up in integer arithmetic
    (6 of 7 is 85.7); None when there is nothing to count."""
    if whole <= 0:
        return None
    tenths = (2000 * part + whole) // (2 * whole)
    return Decimal(tenths).scaleb(-1)


# --- the plan definition a ward runs ----------------------------------------------------------


def current_plan(session: Session, org: Organization) -> Plan | None:
    """The ward's plan of the latest year (the one the dashboard reports on). Its definition
    text is loaded only when `plan_definition` has not parsed it yet."""
    return session.scalars(
        select(Plan)
        .where(Plan.organization_id == org.id)
        .options(defer(Plan.definition_text))
        .order_by(Plan.year.desc(), Plan.id.desc())
        .limit(1)
    ).first()


# Parsed definitions by the SHA-256 of their text: every ward running the same plan shares one
# parse (~50 ms). Few distinct texts exist (one per imported plan); the bound is a safeguard.
_DEFINITIONS: dict[str, PlanDefinition | None] = {}
_DEFINITIONS_MAX = 64


def _parse(text: str, sha256: str) -> PlanDefinition | None:
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
        return plan_from_data(data, Path(f"{sha256[:12]}.yaml"))
    except (PlanDefinitionError, yaml.YAMLError):
        return None


def plan_definition(plan: Plan) -> PlanDefinition | None:
    """The plan's definition as imported (sections, targets), or None if it no longer reads
    under the current schema."""
    key = plan.definition_sha256
    if key not in _DEFINITIONS:
        if len(_DEFINITIONS) >= _DEFINITIONS_MAX:
            _DEFINITIONS.clear()
        _DEFINITIONS[key] = _parse(plan.definition_text, key) if plan.definition_text else None
    return _DEFINITIONS[key]


# --- "Việc của đơn vị" ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkItem:
    """One row of a unit's work list, with its deadline status as of the day asked."""

    id: int
    number: int
    section: str | None
    content: str
    unit: str
    period: str
    state: str
    due: date | None
    status: str  # workflow.deadlines: done, cancelled, no_due_date, overdue, due_soon, on_time


def work_list(
    session: Session,
    org: Organization,
    *,
    today: date,
    calendar: WorkingCalendar,
    unit: str | None = None,
    section: str | None = None,
    period: str | None = None,
    state: str | None = None,
    status: str | None = None,
    number: int | None = None,
    due_soon_days: int = DEFAULT_DUE_SOON_DAYS,
) -> list[WorkItem]:
    """The ward's task instances (of one unit, section, period, state, deadline status or task
    number when given) by due date, those without one last."""
    stmt = (
        select(TaskInstance, PlanTask.number, PlanTask.section, PlanTask.content, Unit.code)
        .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
        .join(Unit, TaskInstance.unit_id == Unit.id)
        .where(Unit.organization_id == org.id)
        .order_by(
            TaskInstance.due_date.is_(None),
            TaskInstance.due_date,
            PlanTask.number,
            Unit.code,
            TaskInstance.id,
        )
    )
    if unit is not None:
        stmt = stmt.where(Unit.code == unit)
    if section is not None:
        stmt = stmt.where(PlanTask.section == section)
    if period is not None:
        stmt = stmt.where(TaskInstance.period_label == period)
    if state is not None:
        stmt = stmt.where(TaskInstance.state == state)
    if number is not None:
        stmt = stmt.where(PlanTask.number == number)
    items = [
        WorkItem(
            id=inst.id,
            number=number,
            section=sec,
            content=content,
            unit=code,
            period=inst.period_label,
            state=inst.state,
            due=inst.due_date,
            status=deadline_status(inst, today, calendar, due_soon_days),
        )
        for inst, number, sec, content, code in session.execute(stmt)
    ]
    if status is not None:
        items = [item for item in items if item.status == status]
    return items


def period_labels(session: Session, org: Organization, *, unit: str | None = None) -> list[str]:
    """The period labels of the ward's instances (of one unit when given), earliest first."""
    start = func.min(TaskInstance.period_start)
    stmt = (
        select(TaskInstance.period_label, start)
        .join(Unit, TaskInstance.unit_id == Unit.id)
        .where(Unit.organization_id == org.id)
        .group_by(TaskInstance.period_label)
        .order_by(start, TaskInstance.period_label)
    )
    if unit is not None:
        stmt = stmt.where(Unit.code == unit)
    return [label for label, _ in session.execute(stmt)]


# --- the review queue -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    """An instance waiting for review or decision; `waiting` counts working days since it was
    submitted (0 on the day itself)."""

    instance: TaskInstance
    submitted_by: str | None
    reviewed_by: str | None
    waiting: int


def review_queue(
    session: Session, org: Organization, *, today: date, calendar: WorkingCalendar
) -> list[QueueEntry]:
    """The ward's submitted and reviewed instances, oldest submission first. Each instance comes
    with its unit, ward, task and plan loaded, as the engine's permission checks read them."""
    submitter = aliased(User)
    reviewer = aliased(User)
    stmt = (
        select(TaskInstance, submitter.full_name, reviewer.full_name)
        .join(Unit, TaskInstance.unit_id == Unit.id)
        .outerjoin(submitter, TaskInstance.submitted_by_id == submitter.id)
        .outerjoin(reviewer, TaskInstance.reviewed_by_id == reviewer.id)
        .where(Unit.organization_id == org.id, TaskInstance.state.in_(QUEUE_STATES))
        .options(
            joinedload(TaskInstance.unit).joinedload(Unit.organization),
            joinedload(TaskInstance.plan_task).joinedload(PlanTask.plan),
        )
        .order_by(TaskInstance.submitted_at.is_(None), TaskInstance.submitted_at, TaskInstance.id)
    )
    return [
        QueueEntry(
            instance=inst,
            submitted_by=by,
            reviewed_by=rev,
            waiting=(
                calendar.working_days_between(ward_date(inst.submitted_at), today)
                if inst.submitted_at is not None
                else 0
            ),
        )
        for inst, by, rev in session.execute(stmt).unique()
    ]


# --- the dashboard ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Progress of a group of instances (a section or a unit) as of a date."""

    key: str  # the section's roman numeral or the unit's code
    title: str
    instances: int  # not cancelled
    accepted: int  # accepted on or before the date
    overdue: int  # not accepted and past the due date

    @property
    def completion(self) -> Decimal | None:
        return percent(self.accepted, self.instances)


@dataclass(frozen=True)
class OverdueItem:
    id: int
    number: int
    content: str
    unit: str
    period: str
    state: str
    due: date
    working_days_late: int


@dataclass(frozen=True)
class Overview:
    """The leadership's dashboard as of a date."""

    as_of: date
    instances: int  # not cancelled
    accepted: int
    cancelled: int
    by_section: tuple[Progress, ...]
    by_unit: tuple[Progress, ...]
    national: dict[str, int] = field(default_factory=dict)  # every NATIONAL_STATUSES key
    overdue: tuple[OverdueItem, ...] = ()

    @property
    def completion(self) -> Decimal | None:
        return percent(self.accepted, self.instances)


@dataclass
class _Tally:
    instances: int = 0
    accepted: int = 0
    overdue: int = 0

    def add(self, status: str) -> None:
        self.instances += 1
        if status in (COMPLETED_ON_TIME, COMPLETED_LATE):
            self.accepted += 1
        elif status == OPEN_LATE:
            self.overdue += 1


def _progress(
    keys: Iterable[str], titles: dict[str, str], tallies: dict[str, _Tally]
) -> tuple[Progress, ...]:
    rows = []
    for key in keys:
        tally = tallies.get(key, _Tally())
        rows.append(
            Progress(key, titles.get(key, key), tally.instances, tally.accepted, tally.overdue)
        )
    return tuple(rows)


def overview(
    session: Session,
    org: Organization,
    *,
    as_of: date,
    calendar: WorkingCalendar,
    sections: Sequence[Section] = (),
) -> Overview:
    """Progress by section (every section of `sections`, then any other found) and by unit, the
    national statuses, and the overdue list (most working days late first) as of `as_of`.

    One query: the ward's instances with their task and unit.
    """
    stmt = (
        select(
            TaskInstance,
            PlanTask.number,
            PlanTask.section,
            PlanTask.content,
            Unit.code,
            Unit.short_name,
        )
        .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
        .join(Unit, TaskInstance.unit_id == Unit.id)
        .where(Unit.organization_id == org.id)
        .order_by(TaskInstance.id)
    )
    national = dict.fromkeys(NATIONAL_STATUSES, 0)
    by_section: dict[str, _Tally] = {}
    by_unit: dict[str, _Tally] = {}
    unit_titles: dict[str, str] = {}
    overdue: list[OverdueItem] = []
    cancelled = 0
    for inst, number, section, content, code, short_name in session.execute(stmt):
        status = national_status(inst, as_of)
        if status is None:
            cancelled += 1
            continue
        national[status] += 1
        by_section.setdefault(section or "—", _Tally()).add(status)
        by_unit.setdefault(code, _Tally()).add(status)
        unit_titles[code] = short_name
        if status == OPEN_LATE and inst.due_date is not None:
            overdue.append(
                OverdueItem(
                    id=inst.id,
                    number=number,
                    content=content,
                    unit=code,
                    period=inst.period_label,
                    state=inst.state,
                    due=inst.due_date,
                    working_days_late=working_days_late(inst, as_of, calendar),
                )
            )
    section_titles = {s.number: s.title for s in sections}
    section_keys = [s.number for s in sections]
    section_keys += sorted(key for key in by_section if key not in section_titles)
    overdue.sort(key=lambda o: (-o.working_days_late, o.due, o.number, o.unit, o.id))
    accepted = national[COMPLETED_ON_TIME] + national[COMPLETED_LATE]
    return Overview(
        as_of=as_of,
        instances=sum(national.values()),
        accepted=accepted,
        cancelled=cancelled,
        by_section=_progress(section_keys, section_titles, by_section),
        by_unit=_progress(sorted(by_unit), unit_titles, by_unit),
        national=national,
        overdue=tuple(overdue),
    )


def kpi_targets(definition: PlanDefinition | None) -> tuple[Kpi, ...]:
    """The plan's measurable targets (name, comparator, threshold, unit, task)."""
    return definition.kpis if definition is not None else ()

"""The evaluation of the plan's work as of a date: per unit, per section and for the whole plan,
the plan's KPIs against their thresholds, and each unit's score under the rubric.

Definitions (docs/evaluation.md has them in Vietnamese for the people who read the figures):

- An instance is *led* by its unit; cancelled instances are left out of every figure.
- The four national statuses as of the date come from workflow.deadlines.national_status.
- completion rate = accepted / led; on-time rate = accepted on time / (accepted + open
  overdue): of the work whose outcome is known by the date, the share done in time.
- working days late: for work accepted late, from the due date to the acceptance; for open
  overdue work, to the date. The average is over those instances only.
- returns: how many times the work was returned for rework on or before the date, counted
  from the audit log (action task.return_for_rework), not from mutable columns.
- contributions: requests asked of the unit as a coordinator by the date; provided on time
  when provided by the date and not after the request's due date. The rate's denominator is
  the requests answered by the date plus those unanswered past their due date.

Reproducible: nothing reads the wall clock; every figure is a function of the rows, the date
and the rubric, in a fixed order; the result names the audit tree (size and root) it was
computed at, so it can be recomputed and compared. Numbers are ints and Decimals, never floats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from audit import merkle
from audit.ledger import Ledger
from audit.schema import audit_entry, audit_log
from definitions.calendar import WorkingCalendar
from definitions.loader import Kpi
from definitions.rubric import Criterion, Rubric
from workflow.clock import WARD_TZ, ward_date
from workflow.deadlines import (
    COMPLETED_LATE,
    COMPLETED_ON_TIME,
    OPEN_LATE,
    OPEN_ON_TIME,
    national_status,
    working_days_late,
)
from workflow.errors import DomainError
from workflow.models import (
    CoordinationRequest,
    Evidence,
    KpiMeasurement,
    Organization,
    Plan,
    PlanTask,
    TaskInstance,
    Unit,
)
from workflow.reports import percent, plan_definition
from workflow.states import RequestState

RETURN_ACTION = "task.return_for_rework"


def end_of_day(day: date) -> datetime:
    """The first instant after `day` in Việt Nam (entries before it happened on or before)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=WARD_TZ)


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --- figures ----------------------------------------------------------------------------------


@dataclass
class Figures:
    """The evaluation figures of a group of instances (a unit, a section, the whole plan)."""

    led: int = 0
    accepted_on_time: int = 0
    accepted_late: int = 0
    open_on_time: int = 0
    open_overdue: int = 0
    days_late: int = 0  # summed over the late instances (accepted late or open overdue)
    returns: int = 0
    contributions_asked: int = 0
    contributions_settled: int = 0  # answered by the date, or unanswered past their due date
    contributions_on_time: int = 0

    @property
    def accepted(self) -> int:
        return self.accepted_on_time + self.accepted_late

    @property
    def late(self) -> int:
        return self.accepted_late + self.open_overdue

    @property
    def completion_rate(self) -> Decimal | None:
        return percent(self.accepted, self.led)

    @property
    def on_time_rate(self) -> Decimal | None:
        return percent(self.accepted_on_time, self.accepted + self.open_overdue)

    @property
    def average_days_late(self) -> Decimal | None:
        if self.late == 0:
            return None
        return (Decimal(self.days_late) / self.late).quantize(Decimal("0.1"), ROUND_HALF_UP)

    @property
    def contributions_on_time_rate(self) -> Decimal | None:
        return percent(self.contributions_on_time, self.contributions_settled)

    def metric(self, name: str) -> Decimal | int | None:
        value: Decimal | int | None = getattr(self, name)
        return value

    def add_instance(self, status: str, days_late: int, returns: int) -> None:
        self.led += 1
        if status == COMPLETED_ON_TIME:
            self.accepted_on_time += 1
        elif status == COMPLETED_LATE:
            self.accepted_late += 1
        elif status == OPEN_ON_TIME:
            self.open_on_time += 1
        elif status == OPEN_LATE:
            self.open_overdue += 1
        self.days_late += days_late
        self.returns += returns

    def as_json(self) -> dict[str, Any]:
        return {
            "led": self.led,
            "accepted_on_time": self.accepted_on_time,
            "accepted_late": self.accepted_late,
            "open_on_time": self.open_on_time,
            "open_overdue": self.open_overdue,
            "completion_rate": _decimal_text(self.completion_rate),
            "on_time_rate": _decimal_text(self.on_time_rate),
            "average_working_days_late": _decimal_text(self.average_days_late),
            "returns": self.returns,
            "contributions_asked": self.contributions_asked,
            "contributions_settled": self.contributions_settled,
            "contributions_on_time": self.contributions_on_time,
            "contributions_on_time_rate": _decimal_text(self.contributions_on_time_rate),
        }


@dataclass(frozen=True)
class InstanceFacts:
    """One instance as the evaluation saw it."""

    id: int
    number: int
    section: str | None
    content: str
    unit: str
    period: str
    state: str
    due: date | None
    accepted_on: date | None
    status: str
    working_days_late: int
    returns: int
    product_kinds: frozenset[str]
    evidence: tuple[tuple[str, str], ...] = ()  # (sha256, filename) of current evidence

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "section": self.section,
            "content": self.content,
            "unit": self.unit,
            "period": self.period,
            "state": self.state,
            "due": self.due.isoformat() if self.due else None,
            "accepted_on": self.accepted_on.isoformat() if self.accepted_on else None,
            "national_status": self.status,
            "working_days_late": self.working_days_late,
            "returns": self.returns,
            "evidence": [{"sha256": s, "filename": f} for s, f in self.evidence],
        }


@dataclass(frozen=True)
class CriterionScore:
    code: str
    title: str
    metric: str
    value: Decimal | int | None
    points: Decimal
    max_points: Decimal

    def as_json(self) -> dict[str, Any]:
        value = self.value
        return {
            "code": self.code,
            "title": self.title,
            "metric": self.metric,
            "value": str(value) if isinstance(value, Decimal) else value,
            "points": str(self.points),
            "max_points": str(self.max_points),
        }


@dataclass(frozen=True)
class UnitScore:
    unit: str
    name: str
    criteria: tuple[CriterionScore, ...]
    total: Decimal
    max_points: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "name": self.name,
            "total": str(self.total),
            "max_points": str(self.max_points),
            "criteria": [c.as_json() for c in self.criteria],
        }


@dataclass(frozen=True)
class KpiResult:
    code: str
    name: str
    unit: str
    comparator: str
    threshold: Decimal
    task: int | None
    value: Decimal | None
    measured_on: date | None
    evidence_sha256: str | None
    met: bool | None  # None: not measured by the date

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "unit": self.unit,
            "comparator": self.comparator,
            "threshold": str(self.threshold),
            "task": self.task,
            "value": _decimal_text(self.value),
            "measured_on": self.measured_on.isoformat() if self.measured_on else None,
            "evidence_sha256": self.evidence_sha256,
            "met": self.met,
        }


@dataclass(frozen=True)
class AuditPoint:
    """The audit tree an evaluation was computed at."""

    origin: str
    size: int
    root: str  # hex

    def as_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "tree_size": self.size, "root": self.root}


@dataclass(frozen=True)
class Evaluation:
    year: int
    as_of: date
    plan_code: str
    rubric_code: str
    audit: AuditPoint
    overall: Figures
    by_section: dict[str, Figures]
    by_unit: dict[str, Figures]
    unit_names: dict[str, str]
    scores: tuple[UnitScore, ...]
    kpis: tuple[KpiResult, ...]
    instances: tuple[InstanceFacts, ...] = field(default=())

    def score(self, unit: str) -> UnitScore | None:
        for score in self.scores:
            if score.unit == unit:
                return score
        return None

    def as_json(self, *, instances: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "year": self.year,
            "as_of": self.as_of.isoformat(),
            "plan": self.plan_code,
            "rubric": self.rubric_code,
            "audit": self.audit.as_json(),
            "overall": self.overall.as_json(),
            "by_section": {k: v.as_json() for k, v in self.by_section.items()},
            "by_unit": {
                k: {"name": self.unit_names.get(k, k), **v.as_json()}
                for k, v in self.by_unit.items()
            },
            "scores": [s.as_json() for s in self.scores],
            "kpis": [k.as_json() for k in self.kpis],
        }
        if instances:
            data["instances"] = [i.as_json() for i in self.instances]
        return data


# --- computing it -----------------------------------------------------------------------------


def plan_of_year(session: Session, org: Organization, year: int) -> Plan:
    plan = session.scalars(
        select(Plan)
        .where(Plan.organization_id == org.id, Plan.year == year)
        .order_by(Plan.id.desc())
        .limit(1)
    ).first()
    if plan is None:
        raise DomainError("not_found", f"Phường chưa có kế hoạch cải cách hành chính năm {year}.")
    return plan


def audit_point(session: Session, org: Organization) -> AuditPoint:
    ledger = Ledger(org.audit_origin)
    size = ledger.size(session)
    root = (ledger.root(session) if size else merkle.EMPTY_ROOT).hex()
    return AuditPoint(org.audit_origin, size, root)


def _returns(session: Session, org: Organization, before: datetime, size: int) -> dict[int, int]:
    """Returns for rework per instance id, logged before `before` within the first `size`
    entries of the ward's log."""
    rows = session.execute(
        select(audit_entry.c.object_id)
        .join(audit_log, audit_log.c.id == audit_entry.c.log_id)
        .where(
            audit_log.c.origin == org.audit_origin,
            audit_entry.c.action == RETURN_ACTION,
            audit_entry.c.object_type == "task_instance",
            audit_entry.c.seq < size,
            audit_entry.c.created_at < before,
        )
    )
    counts: dict[int, int] = defaultdict(int)
    for (object_id,) in rows:
        counts[int(object_id)] += 1
    return counts


def _evidence(session: Session, ids: Sequence[int], before: datetime) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = defaultdict(list)
    if not ids:
        return found
    rows = session.execute(
        select(Evidence.instance_id, Evidence.sha256, Evidence.filename, Evidence.withdrawn_at)
        .where(Evidence.instance_id.in_(ids), Evidence.created_at < before)
        .order_by(Evidence.instance_id, Evidence.id)
    )
    for instance_id, sha256, filename, withdrawn in rows:
        if withdrawn is None or withdrawn >= before:
            found[instance_id].append((sha256, filename))
    return found


def _kpi_results(
    session: Session, plan: Plan, kpis: Iterable[Kpi], as_of: date
) -> tuple[KpiResult, ...]:
    latest: dict[str, KpiMeasurement] = {}
    rows = session.scalars(
        select(KpiMeasurement)
        .where(KpiMeasurement.plan_id == plan.id, KpiMeasurement.measured_on <= as_of)
        .order_by(KpiMeasurement.measured_on, KpiMeasurement.id)
    )
    for row in rows:
        latest[row.kpi_code] = row
    results = []
    for kpi in kpis:
        m = latest.get(kpi.code)
        value = Decimal(m.value) if m is not None else None
        results.append(
            KpiResult(
                code=kpi.code,
                name=kpi.name,
                unit=kpi.unit,
                comparator=kpi.comparator,
                threshold=kpi.threshold,
                task=kpi.task,
                value=value,
                measured_on=m.measured_on if m is not None else None,
                evidence_sha256=m.evidence_sha256 if m is not None else None,
                met=None if value is None else kpi.met(value),
            )
        )
    return tuple(results)


def _criterion_figures(
    criterion: Criterion, unit: str, figures: Figures, instances: Sequence[InstanceFacts]
) -> Figures:
    """The unit's figures, restricted to the criterion's product kinds when it names some."""
    if not criterion.product_kinds:
        return figures
    kinds = set(criterion.product_kinds)
    subset = Figures()
    for fact in instances:
        if fact.unit == unit and fact.product_kinds & kinds:
            subset.add_instance(fact.status, fact.working_days_late, fact.returns)
    return subset


def score_unit(
    rubric: Rubric,
    unit: str,
    name: str,
    figures: Figures,
    instances: Sequence[InstanceFacts],
) -> UnitScore:
    """The unit's points per criterion and in total (clamped to 0..the rubric's maximum)."""
    rows = []
    for criterion in rubric.criteria:
        value = _criterion_figures(criterion, unit, figures, instances).metric(criterion.metric)
        rows.append(
            CriterionScore(
                code=criterion.code,
                title=criterion.title,
                metric=criterion.metric,
                value=value,
                points=criterion.points(value),
                max_points=criterion.max_points,
            )
        )
    total = sum((r.points for r in rows), Decimal(0))
    total = min(max(total, Decimal(0)), rubric.max_points)
    return UnitScore(unit, name, tuple(rows), total, rubric.max_points)


def evaluate(
    session: Session,
    org: Organization,
    *,
    year: int,
    as_of: date,
    calendar: WorkingCalendar,
    rubric: Rubric,
) -> Evaluation:
    """Evaluate the ward's plan of `year` as of `as_of` (see the module's definitions)."""
    plan = plan_of_year(session, org, year)
    point = audit_point(session, org)
    before = end_of_day(as_of)
    returns = _returns(session, org, before, point.size)

    units = {u.code: u for u in session.scalars(select(Unit).where(Unit.organization_id == org.id))}
    rows = session.execute(
        select(TaskInstance, PlanTask.number, PlanTask.section, PlanTask.content, PlanTask.products)
        .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
        .where(PlanTask.plan_id == plan.id)
        .order_by(TaskInstance.id)
    ).all()
    unit_code = {u.id: u.code for u in units.values()}
    evidence = _evidence(session, [r[0].id for r in rows], before)

    overall = Figures()
    by_section: dict[str, Figures] = defaultdict(Figures)
    by_unit: dict[str, Figures] = defaultdict(Figures)
    facts: list[InstanceFacts] = []
    section_of: dict[int, str] = {}
    for inst, number, section, content, products in rows:
        status = national_status(inst, as_of)
        section_key = section or "—"
        section_of[inst.id] = section_key
        if status is None:
            continue
        code = unit_code[inst.unit_id]
        late = (
            working_days_late(inst, as_of, calendar) if status in (COMPLETED_LATE, OPEN_LATE) else 0
        )
        returned = returns.get(inst.id, 0)
        accepted = ward_date(inst.accepted_at) if inst.accepted_at is not None else None
        fact = InstanceFacts(
            id=inst.id,
            number=number,
            section=section,
            content=content,
            unit=code,
            period=inst.period_label,
            state=inst.state,
            due=inst.due_date,
            accepted_on=accepted if accepted is not None and accepted <= as_of else None,
            status=status,
            working_days_late=late,
            returns=returned,
            product_kinds=frozenset(str(p.get("kind")) for p in products or ()),
            evidence=tuple(evidence.get(inst.id, ())),
        )
        facts.append(fact)
        for group in (overall, by_section[section_key], by_unit[code]):
            group.add_instance(status, late, returned)

    _count_contributions(
        session, plan, as_of, before, unit_code, section_of, overall, by_section, by_unit
    )

    definition = plan_definition(plan)
    section_order = [s.number for s in definition.sections] if definition else []
    ordered_sections = {k: by_section[k] for k in section_order if k in by_section}
    ordered_sections.update(
        {k: by_section[k] for k in sorted(by_section) if k not in ordered_sections}
    )

    scored = sorted(
        code
        for code, unit in units.items()
        if unit.active and (unit.self_inspects or by_unit[code].led > 0)
    )
    ordered_units = {code: by_unit[code] for code in sorted(set(by_unit) | set(scored))}
    names = {code: units[code].name for code in ordered_units}
    scores = tuple(
        score_unit(rubric, code, names[code], ordered_units[code], facts) for code in scored
    )
    kpis = _kpi_results(session, plan, definition.kpis if definition else (), as_of)
    return Evaluation(
        year=year,
        as_of=as_of,
        plan_code=plan.code,
        rubric_code=rubric.code,
        audit=point,
        overall=overall,
        by_section=ordered_sections,
        by_unit=ordered_units,
        unit_names=names,
        scores=scores,
        kpis=kpis,
        instances=tuple(facts),
    )


def _count_contributions(
    session: Session,
    plan: Plan,
    as_of: date,
    before: datetime,
    unit_code: dict[int, str],
    section_of: dict[int, str],
    overall: Figures,
    by_section: dict[str, Figures],
    by_unit: dict[str, Figures],
) -> None:
    rows = session.execute(
        select(CoordinationRequest)
        .join(TaskInstance, TaskInstance.id == CoordinationRequest.instance_id)
        .join(PlanTask, and_(PlanTask.id == TaskInstance.plan_task_id, PlanTask.plan_id == plan.id))
        .where(CoordinationRequest.requested_at < before)
        .order_by(CoordinationRequest.id)
    ).scalars()
    for req in rows:
        answered = req.responded_at is not None and req.responded_at < before
        answered_on = ward_date(req.responded_at) if answered and req.responded_at else None
        past_due = req.due_date is not None and as_of > req.due_date
        settled = answered or past_due
        on_time = (
            answered
            and req.state == RequestState.PROVIDED
            and answered_on is not None
            and (req.due_date is None or answered_on <= req.due_date)
        )
        code = unit_code.get(req.unit_id)
        groups = [overall, by_section[section_of.get(req.instance_id, "—")]]
        if code is not None:
            groups.append(by_unit[code])
        for group in groups:
            group.contributions_asked += 1
            group.contributions_settled += int(settled)
            group.contributions_on_time += int(on_time)

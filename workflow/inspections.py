"""Inspection (kiểm tra) of at least 20% of the units: the recorded draw, its replay, and one
inspection per sampled unit — plan and team, findings, the conclusion notice (Thông báo kết
luận) and the corrective actions it orders, which run as ordinary task instances of the
inspected unit until accepted.

Every step is one audit entry in the caller's transaction; the draw's entry holds its whole
input and outcome, which `replay` runs again (workflow.sampling).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload
from statemachine import State, StateMachine

from audit.ledger import Ledger, LedgerError
from definitions.calendar import WorkingCalendar
from definitions.rubric import Rubric
from workflow import oversight, sampling
from workflow.clock import ward_date
from workflow.db import hold_ward
from workflow.engine import person_of
from workflow.errors import DomainError
from workflow.evaluation import plan_of_year
from workflow.models import (
    CorrectiveAction,
    Inspection,
    InspectionDraw,
    Organization,
    PlanTask,
    TaskInstance,
    Unit,
    User,
)
from workflow.selfinspection import units_in_scope
from workflow.states import Role, TaskState
from workflow.trail import SYSTEM, AuditTrail

SAMPLE_ACTION = "inspection.sampled"
CORRECTIVE_NUMBER_BASE = 1000  # corrective tasks are numbered 1001, 1002, ... in the plan


class InspectionState(StrEnum):
    PLANNED = "planned"
    FINDINGS_RECORDED = "findings_recorded"
    CONCLUDED = "concluded"
    CLOSED = "closed"


INSPECTION_STATE_LABELS: dict[str, str] = {
    InspectionState.PLANNED: "Đã chọn, đang lập kế hoạch kiểm tra",
    InspectionState.FINDINGS_RECORDED: "Đã ghi nhận kết quả kiểm tra",
    InspectionState.CONCLUDED: "Đã có thông báo kết luận, đang khắc phục",
    InspectionState.CLOSED: "Đã hoàn thành khắc phục",
}


class InspectionLifecycle(StateMachine):
    """planned → findings_recorded (findings may be recorded again) → concluded → closed."""

    planned = State(value=InspectionState.PLANNED.value, initial=True)
    findings_recorded = State(value=InspectionState.FINDINGS_RECORDED.value)
    concluded = State(value=InspectionState.CONCLUDED.value)
    closed = State(value=InspectionState.CLOSED.value, final=True)

    record_findings = planned.to(findings_recorded) | findings_recorded.to(findings_recorded)
    conclude = findings_recorded.to(concluded)
    close = concluded.to(closed)


_TRANSITIONS = oversight.transition_pairs(InspectionLifecycle)


def _wrong_state(record: Inspection) -> DomainError:
    label = INSPECTION_STATE_LABELS.get(record.state, record.state)
    return DomainError(
        "invalid_transition", f"Cuộc kiểm tra đang ở bước “{label}”: không thể làm việc này."
    )


def _move(record: Inspection, event: str, *, check_only: bool = False) -> None:
    """Refuse an event the lifecycle does not allow from the record's state (changing
    nothing), else run it on the record (unless only checking)."""
    if (record.state, event) not in _TRANSITIONS:
        raise _wrong_state(record)
    if not check_only:
        InspectionLifecycle(record, state_field="state").send(event)


# --- the draw ---------------------------------------------------------------------------------


def draws(session: Session, org: Organization, year: int | None = None) -> list[InspectionDraw]:
    stmt = select(InspectionDraw).where(InspectionDraw.organization_id == org.id)
    if year is not None:
        stmt = stmt.where(InspectionDraw.year == year)
    return list(session.scalars(stmt.order_by(InspectionDraw.id)))


def _population(
    session: Session,
    org: Organization,
    year: int,
    weights: str,
    today: date,
    calendar: WorkingCalendar,
    rubric: Rubric,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    units = [u.code for u in units_in_scope(session, org)]
    if weights == "uniform":
        return dict.fromkeys(units, 1), None
    evaluation = oversight.evaluation_for(session, org, year, today, calendar, rubric)
    population = {}
    for code in units:
        score = evaluation.score(code)
        total = score.total if score is not None else rubric.max_points
        population[code] = sampling.risk_weight(total, rubric.max_points)
    basis = {
        "as_of": evaluation.as_of.isoformat(),
        "rubric": evaluation.rubric_code,
        "audit": evaluation.audit.as_json(),
    }
    return population, basis


def _default_seed(
    session: Session, org: Organization, year: int, trail: AuditTrail, now: datetime
) -> tuple[str, dict[str, Any]]:
    ledger = Ledger(org.audit_origin)
    checkpoint = ledger.latest_checkpoint(session)
    if checkpoint is None:
        if trail.signer is None:
            raise DomainError(
                "no_checkpoint",
                "Nhật ký kiểm toán chưa có điểm kiểm tra (checkpoint) có chữ ký để làm hạt giống "
                "chọn mẫu. Hãy tạo khóa ký (cchc audit keygen) và ký điểm kiểm tra "
                "(cchc audit checkpoint), hoặc nêu hạt giống bằng --seed.",
            )
        checkpoint = ledger.checkpoint(session, trail.signer, now=now)
    root = checkpoint.root.hex()
    source = {"kind": "checkpoint", "tree_size": checkpoint.size, "root": root}
    return sampling.checkpoint_seed(org.audit_origin, checkpoint.size, root, year), source


def draw_sample(
    session: Session,
    org: Organization,
    year: int,
    drawer: User | None,
    *,
    now: datetime,
    today: date,
    calendar: WorkingCalendar,
    rubric: Rubric,
    trail: AuditTrail,
    fraction: str = "0.2",
    seed: str | None = None,
    weights: str = "uniform",
    include: Sequence[str] = (),
) -> InspectionDraw:
    """Draw the year's units to inspect, record the draw as one audit entry and open an
    inspection for each unit drawn. One draw per year. `drawer` None: the system draws (an
    operator on the server's command line, as for the daily deadline check). The caller
    commits."""
    who = SYSTEM
    if drawer is not None:
        person = oversight.checked("draw_sample", drawer, org)
        role = oversight.acting_role(person, (Role.WARD_LEADER.value, Role.APPROVER.value, "head"))
        who = oversight.actor(drawer, person, role)
    plan_of_year(session, org, year)  # the year must have a plan
    hold_ward(session, org.id)  # two draws at once: the second sees the first's
    if draws(session, org, year):
        raise DomainError(
            "already_drawn",
            f"Năm {year} đã chọn mẫu kiểm tra; xem lại kết quả hoặc chạy lại bằng “replay”.",
        )
    try:
        share = sampling.parse_fraction(fraction)
        if weights not in sampling.WEIGHT_MODES:
            raise sampling.SamplingError(
                f"Cách tính trọng số “{weights}” không được hỗ trợ (uniform | risk)."
            )
        population, basis = _population(session, org, year, weights, today, calendar, rubric)
        if seed is not None and seed.strip():
            seed_text, source = seed.strip(), {"kind": "given"}
        else:
            seed_text, source = _default_seed(session, org, year, trail, now)
        outcome = sampling.draw(
            seed_text, population, fraction=share, include=list(include), weights=weights
        )
    except sampling.SamplingError as exc:
        raise DomainError("invalid_sample", str(exc)) from exc

    details = {"year": year, **outcome.as_json(), "seed_source": source}
    if basis is not None:
        details["evaluation"] = basis
    entry = trail.record(
        session,
        org,
        now=now,
        actor=who,
        action=SAMPLE_ACTION,
        object_type="inspection_sample",
        object_id=year,
        after={"selected": list(outcome.selected)},
        details=details,
    )
    record = InspectionDraw(
        organization_id=org.id,
        year=year,
        audit_seq=entry.seq,
        seed=seed_text,
        parameters={k: v for k, v in details.items() if k != "selected"},
        selected=list(outcome.selected),
        drawn_by_id=drawer.id if drawer is not None else None,
        drawn_at=now,
    )
    session.add(record)
    oversight.flush(session, "Kết quả chọn mẫu")
    units = {
        u.code: u
        for u in session.scalars(select(Unit).where(Unit.organization_id == org.id))
        if u.code in outcome.selected
    }
    for code in outcome.selected:
        session.add(
            Inspection(
                organization_id=org.id,
                unit_id=units[code].id,
                year=year,
                draw_id=record.id,
                state=InspectionState.PLANNED.value,
                plan_text="",
                team=[],
                findings="",
                created_at=now,
                updated_at=now,
            )
        )
    oversight.flush(session, "Cuộc kiểm tra")
    return record


@dataclass(frozen=True)
class Replay:
    seq: int
    year: int
    recorded: tuple[str, ...]
    recomputed: sampling.Draw

    @property
    def identical(self) -> bool:
        return self.recorded == self.recomputed.selected

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "year": self.year,
            "recorded": list(self.recorded),
            "recomputed": list(self.recomputed.selected),
            "identical": self.identical,
            "draw": self.recomputed.as_json(),
        }


def replay(session: Session, org: Organization, seq: int) -> Replay:
    """Run the draw recorded in audit entry `seq` again from the entry's own bytes."""
    try:
        entry = Ledger(org.audit_origin).entry(session, seq)
    except LedgerError:
        raise DomainError("not_found", f"Nhật ký không có mục số {seq}.") from None
    if entry.action != SAMPLE_ACTION:
        raise DomainError(
            "not_a_draw", f"Mục nhật ký số {seq} không phải là một lần chọn mẫu kiểm tra."
        )
    try:
        details = json.loads(entry.body)["details"]
        recomputed = sampling.redraw(details)
        recorded = tuple(str(u) for u in details["selected"])
        year = int(details["year"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DomainError("invalid_sample", f"Mục nhật ký số {seq}: {exc}") from exc
    return Replay(seq, year, recorded, recomputed)


# --- the inspections ------------------------------------------------------------------------


def inspection_as_dict(record: Inspection) -> dict[str, Any]:
    """An inspection with its corrective actions, as the CLI and the API show it."""
    return {
        "id": record.id,
        "unit": record.unit.code,
        "year": record.year,
        "state": record.state,
        "state_label": INSPECTION_STATE_LABELS[record.state],
        "version": record.version,
        "plan": record.plan_text,
        "team": list(record.team),
        "scheduled_on": record.scheduled_on.isoformat() if record.scheduled_on else None,
        "findings": record.findings,
        "conclusion_number": record.conclusion_number,
        "conclusion": record.conclusion_text,
        "corrective_actions": [
            {
                "instance": a.instance_id,
                "task_number": a.instance.plan_task.number,
                "description": a.description,
                "state": a.instance.state,
                "due": a.instance.due_date.isoformat() if a.instance.due_date else None,
            }
            for a in record.corrective_actions
        ],
    }


def inspections(session: Session, org: Organization, year: int | None = None) -> list[Inspection]:
    stmt = (
        select(Inspection)
        .join(Unit, Inspection.unit_id == Unit.id)
        .where(Inspection.organization_id == org.id)
        .options(
            joinedload(Inspection.unit),
            selectinload(Inspection.corrective_actions).joinedload(CorrectiveAction.instance),
        )
        .order_by(Inspection.year.desc(), Unit.code)
    )
    if year is not None:
        stmt = stmt.where(Inspection.year == year)
    return list(session.scalars(stmt))


def load_inspection(session: Session, org: Organization, inspection_id: int) -> Inspection:
    record = session.get(
        Inspection,
        inspection_id,
        options=[
            joinedload(Inspection.unit),
            selectinload(Inspection.corrective_actions).joinedload(CorrectiveAction.instance),
        ],
    )
    if record is None or record.organization_id != org.id:
        raise DomainError("not_found", f"Không có cuộc kiểm tra số {inspection_id}.")
    return record


def _record(
    session: Session,
    org: Organization,
    trail: AuditTrail,
    record: Inspection,
    user: User,
    role: str,
    action: str,
    now: datetime,
    before: dict[str, Any],
    details: dict[str, Any],
) -> None:
    person = person_of(user)
    trail.record(
        session,
        org,
        now=now,
        actor=oversight.actor(user, person, role),
        action=action,
        object_type="inspection",
        object_id=record.id,
        before=before,
        after={"state": record.state, "version": record.version},
        details=details,
    )


def _staff_role(person: Any) -> str:
    return oversight.acting_role(
        person, (Role.WARD_LEADER.value, Role.APPROVER.value, Role.HEAD.value, "reviewer")
    )


def plan_inspection(
    session: Session,
    org: Organization,
    inspection_id: int,
    user: User,
    *,
    plan_text: str,
    team: Sequence[str],
    scheduled_on: date | None,
    now: datetime,
    trail: AuditTrail,
    expected_version: int | None = None,
) -> Inspection:
    """Set the inspection's plan (nội dung, thời gian) and team while it is being planned."""
    record = load_inspection(session, org, inspection_id)
    person = oversight.checked("plan_inspection", user, org, record.unit.code)
    oversight.check_version(record.version, expected_version, "Cuộc kiểm tra")
    if record.state != InspectionState.PLANNED:
        raise _wrong_state(record)
    members = [oversight.text(m) for m in team if oversight.text(m)]
    body = oversight.text(plan_text)
    if not body or not members:
        raise DomainError(
            "plan_incomplete", "Kế hoạch kiểm tra cần nội dung và ít nhất một thành viên đoàn."
        )
    before = {"state": record.state, "version": record.version}
    record.plan_text, record.team, record.scheduled_on = body, members, scheduled_on
    record.updated_at = now
    oversight.flush(session, "Cuộc kiểm tra")
    details = {
        "plan": body,
        "team": members,
        "scheduled_on": scheduled_on.isoformat() if scheduled_on else None,
    }
    _record(
        session,
        org,
        trail,
        record,
        user,
        _staff_role(person),
        "inspection.planned",
        now,
        before,
        details,
    )
    return record


def record_findings(
    session: Session,
    org: Organization,
    inspection_id: int,
    user: User,
    *,
    findings: str,
    now: datetime,
    trail: AuditTrail,
    expected_version: int | None = None,
) -> Inspection:
    """Record what the team found (after the plan is set); may be recorded again until the
    conclusion is issued."""
    record = load_inspection(session, org, inspection_id)
    person = oversight.checked("record_findings", user, org, record.unit.code)
    oversight.check_version(record.version, expected_version, "Cuộc kiểm tra")
    _move(record, "record_findings", check_only=True)
    text = oversight.text(findings)
    if not text:
        raise DomainError("findings_required", "Cần ghi kết quả kiểm tra.")
    if not record.plan_text or not record.team:
        raise DomainError(
            "plan_incomplete", "Cần lập kế hoạch và đoàn kiểm tra trước khi ghi kết quả."
        )
    before = {"state": record.state, "version": record.version}
    _move(record, "record_findings")
    record.findings = text
    record.updated_at = now
    oversight.flush(session, "Cuộc kiểm tra")
    _record(
        session,
        org,
        trail,
        record,
        user,
        _staff_role(person),
        "inspection.findings_recorded",
        now,
        before,
        {"findings": text},
    )
    return record


@dataclass(frozen=True)
class CorrectiveOrder:
    description: str
    due: date


def _next_number(session: Session, plan_id: int) -> int:
    highest = session.scalar(
        select(func.max(PlanTask.number)).where(
            PlanTask.plan_id == plan_id, PlanTask.number > CORRECTIVE_NUMBER_BASE
        )
    )
    return (highest or CORRECTIVE_NUMBER_BASE) + 1


def conclude_inspection(
    session: Session,
    org: Organization,
    inspection_id: int,
    leader: User,
    *,
    number: str,
    conclusion: str,
    corrective: Sequence[CorrectiveOrder],
    now: datetime,
    trail: AuditTrail,
    expected_version: int | None = None,
) -> Inspection:
    """The ward leader issues the conclusion notice; each corrective action becomes a task of
    the inspected unit (assigned, with its due date), followed through the usual lifecycle."""
    record = load_inspection(session, org, inspection_id)
    person = oversight.checked("conclude_inspection", leader, org, record.unit.code)
    # Two conclusions at once, of one inspection or of two units', queue on the ward's row: the
    # second reads the inspection as the first left it, and numbers its corrective tasks after
    # the first's.
    hold_ward(session, org.id)
    session.refresh(record)
    oversight.check_version(record.version, expected_version, "Cuộc kiểm tra")
    _move(record, "conclude", check_only=True)
    notice_number, text = oversight.text(number), oversight.text(conclusion)
    if not notice_number or not text:
        raise DomainError(
            "conclusion_required", "Thông báo kết luận cần có số hiệu và nội dung kết luận."
        )
    today = ward_date(now)
    orders = [o for o in corrective if oversight.text(o.description)]
    for order in orders:
        if order.due < today:
            raise DomainError(
                "invalid_due_date",
                f"Hạn khắc phục {order.due:%d/%m/%Y} đã qua: cần một ngày từ hôm nay trở đi.",
            )
    plan = plan_of_year(session, org, record.year)
    before = {"state": record.state, "version": record.version}
    _move(record, "conclude")
    record.conclusion_number, record.conclusion_text = notice_number, text
    record.concluded_by_id, record.concluded_at = leader.id, now
    record.updated_at = now
    created: list[tuple[CorrectiveAction, TaskInstance]] = []
    next_number = _next_number(session, plan.id)
    for offset, order in enumerate(orders):
        description = oversight.text(order.description)
        task = PlanTask(
            plan_id=plan.id,
            number=next_number + offset,
            section=None,
            content=f"Khắc phục sau kiểm tra cải cách hành chính năm {record.year}: {description}",
            lead_text=record.unit.name,
            leads=[record.unit.code],
            coordinators_text="",
            coordinators=[],
            timeframe=f"Trước ngày {order.due:%d/%m/%Y}",
            schedule_kind="once",
            products=[{"name": "Báo cáo kết quả khắc phục", "kind": "bao_cao"}],
            active=True,
        )
        session.add(task)
        instance = TaskInstance(
            unit_id=record.unit_id,
            period_label=f"Khắc phục theo {notice_number}",
            period_start=today,
            due_date=order.due,
            state=TaskState.ASSIGNED.value,
            created_at=now,
            updated_at=now,
        )
        instance.plan_task = task
        session.add(instance)
        action = CorrectiveAction(description=description)
        action.instance = instance
        record.corrective_actions.append(action)
        created.append((action, instance))
    oversight.flush(session, "Cuộc kiểm tra")
    for _action, instance in created:
        trail.record(
            session,
            org,
            now=now,
            actor=oversight.actor(leader, person, Role.WARD_LEADER.value),
            action="task.assigned",
            object_type="task_instance",
            object_id=instance.id,
            after={
                "state": instance.state,
                "unit": record.unit.code,
                "task": instance.plan_task.number,
                "due": instance.due_date.isoformat() if instance.due_date else None,
            },
            details={"inspection": record.id, "conclusion": notice_number},
        )
    details = {
        "number": notice_number,
        "conclusion": text,
        "corrective_actions": [
            {"instance": inst.id, "description": act.description, "due": inst.due_date.isoformat()}
            for act, inst in created
            if inst.due_date is not None
        ],
    }
    _record(
        session,
        org,
        trail,
        record,
        leader,
        Role.WARD_LEADER.value,
        "inspection.concluded",
        now,
        before,
        details,
    )
    return record


def open_corrective(record: Inspection) -> list[CorrectiveAction]:
    return [a for a in record.corrective_actions if a.instance.state != TaskState.ACCEPTED]


def close_inspection(
    session: Session,
    org: Organization,
    inspection_id: int,
    user: User,
    *,
    now: datetime,
    trail: AuditTrail,
    expected_version: int | None = None,
) -> Inspection:
    """Close the inspection once every corrective action it ordered is accepted."""
    record = load_inspection(session, org, inspection_id)
    person = oversight.checked("close_inspection", user, org, record.unit.code)
    oversight.check_version(record.version, expected_version, "Cuộc kiểm tra")
    _move(record, "close", check_only=True)
    pending = open_corrective(record)
    if pending:
        numbers = ", ".join(str(a.instance.plan_task.number) for a in pending)
        raise DomainError(
            "corrective_open",
            f"Chưa kết thúc được: còn {len(pending)} việc khắc phục chưa được nghiệm thu "
            f"(nhiệm vụ số {numbers}).",
        )
    before = {"state": record.state, "version": record.version}
    _move(record, "close")
    record.closed_at = now
    record.updated_at = now
    oversight.flush(session, "Cuộc kiểm tra")
    _record(
        session,
        org,
        trail,
        record,
        user,
        _staff_role(person),
        "inspection.closed",
        now,
        before,
        {"corrective_actions": [a.instance_id for a in record.corrective_actions]},
    )
    return record

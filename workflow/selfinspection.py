"""The annual self-inspection (tự kiểm tra) of every unit in scope, and closing the year.

VHXH (or the ward leader) opens the year: one self-inspection per unit that self-inspects
(definitions/data/units.yaml), pre-filled from the evaluation with the unit's figures, its
rubric points and every instance with its evidence. Members of the unit fill in each criterion
of the rubric; the head submits; the approver (head of VHXH; the ward leader for VHXH's own)
acknowledges it or returns it with a reason. The lifecycle is a python-statemachine machine;
permissions come from workflow.permissions; every step is one audit entry in the caller's
transaction, and a refusal changes nothing.

Coverage counts the units in scope that submitted and that were acknowledged; the year can be
closed only at 100% acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from statemachine import State, StateMachine

from definitions.calendar import WorkingCalendar
from definitions.rubric import Rubric
from workflow import oversight
from workflow.clock import ward_date
from workflow.db import hold_ward
from workflow.errors import DomainError
from workflow.evaluation import end_of_day
from workflow.models import Organization, SelfInspection, Unit, User, YearClosure
from workflow.permissions import decider_role_for
from workflow.states import Role
from workflow.trail import AuditTrail


class SelfInspectionState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    RETURNED = "returned"


SELF_INSPECTION_STATE_LABELS: dict[str, str] = {
    SelfInspectionState.DRAFT: "Đang điền",
    SelfInspectionState.SUBMITTED: "Đã gửi, chờ xác nhận",
    SelfInspectionState.ACKNOWLEDGED: "Đã xác nhận",
    SelfInspectionState.RETURNED: "Trả lại để hoàn thiện",
}


class SelfInspectionLifecycle(StateMachine):
    """draft → submitted → acknowledged | returned; returned → submitted again."""

    draft = State(value=SelfInspectionState.DRAFT.value, initial=True)
    submitted = State(value=SelfInspectionState.SUBMITTED.value)
    returned = State(value=SelfInspectionState.RETURNED.value)
    acknowledged = State(value=SelfInspectionState.ACKNOWLEDGED.value, final=True)

    submit = draft.to(submitted) | returned.to(submitted)
    acknowledge = submitted.to(acknowledged)
    return_for_rework = submitted.to(returned)


_TRANSITIONS = oversight.transition_pairs(SelfInspectionLifecycle)


def _require(record: SelfInspection, event: str) -> None:
    """Refuse, changing nothing, an event the lifecycle does not allow from the record's state."""
    if (record.state, event) not in _TRANSITIONS:
        label = SELF_INSPECTION_STATE_LABELS.get(record.state, record.state)
        raise DomainError(
            "invalid_transition",
            f"Phiếu tự kiểm tra đang ở trạng thái “{label}”: không thể làm việc này.",
        )


def _move(record: SelfInspection, event: str) -> None:
    _require(record, event)
    SelfInspectionLifecycle(record, state_field="state").send(event)


# --- answers --------------------------------------------------------------------------------

ANSWER_FIELDS = ("self_score", "evidence", "explanation", "shortcomings", "corrective_actions")


def _clean_evidence(value: Any, code: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DomainError(
            "invalid_answer", f"Tiêu chí {code}: tài liệu kiểm chứng phải là danh sách."
        )
    refs = []
    for item in value:
        if not isinstance(item, Mapping):
            raise DomainError(
                "invalid_answer", f"Tiêu chí {code}: mỗi tài liệu kiểm chứng cần tên và vị trí."
            )
        document = oversight.text(item.get("document"))
        location = oversight.text(item.get("location"))
        if not document and not location:
            continue
        if not document or not location:
            raise DomainError(
                "invalid_answer",
                f"Tiêu chí {code}: tài liệu kiểm chứng phải ghi rõ văn bản và mục/trang "
                "chứng minh.",
            )
        refs.append({"document": document, "location": location})
    return refs


def _clean_answer(rubric: Rubric, code: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    try:
        criterion = rubric.criterion(code)
    except KeyError:
        raise DomainError("invalid_answer", f"Không có tiêu chí mã “{code}”.") from None
    unknown = sorted(set(raw) - set(ANSWER_FIELDS))
    if unknown:
        raise DomainError(
            "invalid_answer", f"Tiêu chí {code}: không có trường {', '.join(unknown)}."
        )
    score_text = oversight.text(str(raw["self_score"])) if raw.get("self_score") is not None else ""
    if score_text:
        try:
            score = Decimal(score_text.replace(",", "."))
        except InvalidOperation:
            raise DomainError(
                "invalid_answer", f"Tiêu chí {code}: điểm tự chấm “{score_text}” không phải là số."
            ) from None
        if not score.is_finite() or not criterion.lowest <= score <= criterion.max_points:
            raise DomainError(
                "invalid_answer",
                f"Tiêu chí {code}: điểm tự chấm phải trong khoảng {criterion.lowest} đến "
                f"{criterion.max_points}.",
            )
        score_text = str(score)
    return {
        "self_score": score_text or None,
        "evidence": _clean_evidence(raw.get("evidence"), code),
        "explanation": oversight.text(raw.get("explanation")),
        "shortcomings": oversight.text(raw.get("shortcomings")),
        "corrective_actions": oversight.text(raw.get("corrective_actions")),
    }


def missing_answers(rubric: Rubric, answers: Mapping[str, Any]) -> list[str]:
    """Why the answers cannot be submitted yet: one Vietnamese line per incomplete criterion."""
    problems = []
    for criterion in rubric.criteria:
        answer = answers.get(criterion.code) or {}
        if not answer.get("self_score"):
            problems.append(f"Tiêu chí “{criterion.title}”: chưa tự chấm điểm.")
        elif not answer.get("evidence") and not answer.get("explanation"):
            problems.append(
                f"Tiêu chí “{criterion.title}”: cần tài liệu kiểm chứng hoặc giải trình."
            )
    return problems


def record_as_dict(record: SelfInspection, *, full: bool = False) -> dict[str, Any]:
    """A self-inspection as the CLI and the API show it (with its pre-filled evaluation and
    answers when `full`)."""
    data: dict[str, Any] = {
        "id": record.id,
        "unit": record.unit.code,
        "year": record.year,
        "state": record.state,
        "state_label": SELF_INSPECTION_STATE_LABELS[record.state],
        "round": record.round,
        "version": record.version,
        "return_reason": record.return_reason,
    }
    if full:
        data["prefill"] = record.prefill
        data["answers"] = record.answers
    return data


# --- the records ----------------------------------------------------------------------------


def units_in_scope(session: Session, org: Organization) -> list[Unit]:
    """The ward's active units that self-inspect (and from which inspections are drawn)."""
    return list(
        session.scalars(
            select(Unit)
            .where(
                Unit.organization_id == org.id, Unit.self_inspects.is_(True), Unit.active.is_(True)
            )
            .order_by(Unit.code)
        )
    )


def _closed(session: Session, org: Organization, year: int) -> YearClosure | None:
    return session.scalars(
        select(YearClosure).where(YearClosure.organization_id == org.id, YearClosure.year == year)
    ).first()


def _check_open_year(session: Session, org: Organization, year: int) -> None:
    closure = _closed(session, org, year)
    if closure is not None:
        raise DomainError(
            "year_closed",
            f"Năm {year} đã khóa sổ ngày {ward_date(closure.closed_at):%d/%m/%Y}: "
            "không thay đổi được kết quả tự kiểm tra.",
        )


def self_inspections(session: Session, org: Organization, year: int) -> list[SelfInspection]:
    return list(
        session.scalars(
            select(SelfInspection)
            .join(Unit, SelfInspection.unit_id == Unit.id)
            .where(SelfInspection.organization_id == org.id, SelfInspection.year == year)
            .options(joinedload(SelfInspection.unit))
            .order_by(Unit.code)
        )
    )


def load_self_inspection(session: Session, org: Organization, record_id: int) -> SelfInspection:
    record = session.get(SelfInspection, record_id, options=[joinedload(SelfInspection.unit)])
    if record is None or record.organization_id != org.id:
        raise DomainError("not_found", f"Không có phiếu tự kiểm tra số {record_id}.")
    return record


def find_self_inspection(
    session: Session, org: Organization, year: int, unit: str
) -> SelfInspection:
    record = session.scalars(
        select(SelfInspection)
        .join(Unit, SelfInspection.unit_id == Unit.id)
        .where(
            SelfInspection.organization_id == org.id, SelfInspection.year == year, Unit.code == unit
        )
    ).first()
    if record is None:
        raise DomainError("not_found", f"Chưa mở phiếu tự kiểm tra năm {year} cho đơn vị {unit}.")
    return record


def _prefill(evaluation: Any, unit: str) -> dict[str, Any]:
    figures = evaluation.by_unit.get(unit)
    score = evaluation.score(unit)
    return {
        "as_of": evaluation.as_of.isoformat(),
        "rubric": evaluation.rubric_code,
        "audit": evaluation.audit.as_json(),
        "figures": figures.as_json() if figures is not None else None,
        "score": score.as_json() if score is not None else None,
        "instances": [f.as_json() for f in evaluation.instances if f.unit == unit],
    }


@dataclass(frozen=True)
class Opened:
    year: int
    created: tuple[str, ...]
    existing: tuple[str, ...]


def open_self_inspections(
    session: Session,
    org: Organization,
    year: int,
    opener: User,
    *,
    now: datetime,
    today: date,
    calendar: WorkingCalendar,
    rubric: Rubric,
    trail: AuditTrail,
) -> Opened:
    """Open the year's self-inspection of every unit in scope that has none yet, pre-filled
    from the evaluation as of `today` (31/12 once the year is over). The caller commits."""
    person = oversight.checked("open_self_inspections", opener, org)
    hold_ward(session, org.id)  # opened twice at once: the second finds the first's records
    _check_open_year(session, org, year)
    existing = {r.unit.code for r in self_inspections(session, org, year)}
    units = [u for u in units_in_scope(session, org) if u.code not in existing]
    if not units:
        return Opened(year, (), tuple(sorted(existing)))
    evaluation = oversight.evaluation_for(session, org, year, today, calendar, rubric)
    who = oversight.actor(opener, person, oversight.acting_role(person, _LEAD_ROLES))
    created = []
    for unit in units:
        record = SelfInspection(
            organization_id=org.id,
            unit_id=unit.id,
            year=year,
            state=SelfInspectionState.DRAFT.value,
            prefill=_prefill(evaluation, unit.code),
            answers={},
            round=0,
            created_at=now,
            updated_at=now,
        )
        record.unit = unit
        session.add(record)
        created.append(record)
    oversight.flush(session, "Phiếu tự kiểm tra")
    for record in created:
        trail.record(
            session,
            org,
            now=now,
            actor=who,
            action="self_inspection.opened",
            object_type="self_inspection",
            object_id=record.id,
            after={"state": record.state, "unit": record.unit.code, "year": year},
            details={
                "as_of": evaluation.as_of.isoformat(),
                "rubric": evaluation.rubric_code,
                "audit": evaluation.audit.as_json(),
            },
        )
    return Opened(year, tuple(r.unit.code for r in created), tuple(sorted(existing)))


def fill_self_inspection(
    session: Session,
    org: Organization,
    record_id: int,
    author: User,
    answers: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime,
    rubric: Rubric,
    trail: AuditTrail,
    expected_version: int | None = None,
) -> SelfInspection:
    """Save answers for some criteria (the others keep theirs) while in draft or returned."""
    record = load_self_inspection(session, org, record_id)
    person = oversight.checked("fill_self_inspection", author, org, record.unit.code)
    _check_open_year(session, org, record.year)
    oversight.check_version(record.version, expected_version, "Phiếu tự kiểm tra")
    if record.state not in (SelfInspectionState.DRAFT, SelfInspectionState.RETURNED):
        label = SELF_INSPECTION_STATE_LABELS[record.state]
        raise DomainError(
            "invalid_transition", f"Phiếu đang ở trạng thái “{label}”: không sửa được nữa."
        )
    if not isinstance(answers, Mapping) or not all(
        isinstance(code, str) and isinstance(raw, Mapping) for code, raw in answers.items()
    ):
        raise DomainError(
            "invalid_answer", "Nội dung trả lời phải là một bảng: mã tiêu chí → các trường."
        )
    cleaned = {code: _clean_answer(rubric, code, raw) for code, raw in answers.items()}
    if not cleaned:
        raise DomainError("invalid_answer", "Không có nội dung nào để lưu.")
    merged = dict(record.answers or {})
    merged.update(cleaned)
    record.answers = merged
    record.updated_at = now
    oversight.flush(session, "Phiếu tự kiểm tra")
    trail.record(
        session,
        org,
        now=now,
        actor=oversight.actor(author, person, oversight.acting_role(person, ("head", "member"))),
        action="self_inspection.filled",
        object_type="self_inspection",
        object_id=record.id,
        after={"version": record.version},
        details={"criteria": cleaned},
    )
    return record


def submit_self_inspection(
    session: Session,
    org: Organization,
    record_id: int,
    head: User,
    *,
    now: datetime,
    rubric: Rubric,
    trail: AuditTrail,
    expected_version: int | None = None,
) -> SelfInspection:
    """The unit head submits: every criterion needs a self-score and evidence or a giải trình."""
    record = load_self_inspection(session, org, record_id)
    person = oversight.checked("submit_self_inspection", head, org, record.unit.code)
    _check_open_year(session, org, record.year)
    oversight.check_version(record.version, expected_version, "Phiếu tự kiểm tra")
    _require(record, "submit")
    problems = missing_answers(rubric, record.answers or {})
    if problems:
        raise DomainError("answers_missing", "Chưa gửi được: " + " ".join(problems))
    before = record.state
    _move(record, "submit")
    record.round += 1
    record.submitted_by_id = head.id
    record.submitted_at = now
    record.return_reason = None
    record.updated_at = now
    oversight.flush(session, "Phiếu tự kiểm tra")
    total = sum((Decimal(a["self_score"]) for a in record.answers.values()), Decimal(0))
    trail.record(
        session,
        org,
        now=now,
        actor=oversight.actor(head, person, Role.HEAD.value),
        action="self_inspection.submitted",
        object_type="self_inspection",
        object_id=record.id,
        before={"state": before},
        after={"state": record.state, "version": record.version},
        details={"round": record.round, "self_score_total": str(total)},
    )
    return record


def decide_self_inspection(
    session: Session,
    org: Organization,
    record_id: int,
    decider: User,
    *,
    acknowledge: bool,
    reason: str = "",
    now: datetime,
    trail: AuditTrail,
    expected_version: int | None = None,
) -> SelfInspection:
    """VHXH's approver (the ward leader for VHXH) acknowledges it, or returns it with a reason."""
    record = load_self_inspection(session, org, record_id)
    person = oversight.checked("decide_self_inspection", decider, org, record.unit.code)
    _check_open_year(session, org, record.year)
    oversight.check_version(record.version, expected_version, "Phiếu tự kiểm tra")
    if record.submitted_by_id == decider.id:
        raise DomainError(
            "self_review", "Bạn đã gửi phiếu này nên không được tự xác nhận hoặc trả lại."
        )
    note = oversight.text(reason)
    event = "acknowledge" if acknowledge else "return_for_rework"
    _require(record, event)
    if not acknowledge and not note:
        raise DomainError("reason_required", "Cần nêu lý do trả lại phiếu tự kiểm tra.")
    before = record.state
    _move(record, event)
    record.decided_by_id = decider.id
    record.decided_at = now
    record.return_reason = None if acknowledge else note
    record.updated_at = now
    oversight.flush(session, "Phiếu tự kiểm tra")
    role = decider_role_for(record.unit.code).value
    trail.record(
        session,
        org,
        now=now,
        actor=oversight.actor(decider, person, role),
        action="self_inspection.acknowledged" if acknowledge else "self_inspection.returned",
        object_type="self_inspection",
        object_id=record.id,
        before={"state": before},
        after={"state": record.state, "version": record.version},
        details={"reason": note} if note else None,
    )
    return record


# --- coverage and closing the year ----------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    year: int
    units: tuple[str, ...]  # in scope
    opened: tuple[str, ...]
    submitted: tuple[str, ...]  # submitted or acknowledged (a returned one must resubmit)
    acknowledged: tuple[str, ...]
    closed_at: datetime | None

    @property
    def complete(self) -> bool:
        return bool(self.units) and set(self.units) <= set(self.acknowledged)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(u for u in self.units if u not in self.acknowledged)

    def as_json(self) -> dict[str, Any]:
        n = len(self.units)
        return {
            "year": self.year,
            "units_in_scope": n,
            "units": list(self.units),
            "opened": len(self.opened),
            "submitted": len(self.submitted),
            "acknowledged": len(self.acknowledged),
            "submitted_units": list(self.submitted),
            "acknowledged_units": list(self.acknowledged),
            "missing_units": list(self.missing),
            "complete": self.complete,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "text": coverage_text(self),
        }


def coverage_text(coverage: Coverage) -> str:
    n = len(coverage.units)
    return (
        f"{len(coverage.submitted)}/{n} đơn vị đã gửi, "
        f"{len(coverage.acknowledged)}/{n} đơn vị đã được xác nhận"
    )


def coverage(
    session: Session, org: Organization, year: int, *, as_of: date | None = None
) -> Coverage:
    """Who of the units in scope submitted and was acknowledged: now, or at the end of
    `as_of` (each record's state then is read from the audit log, as a report of a past date
    needs)."""
    scope = tuple(u.code for u in units_in_scope(session, org))
    records = self_inspections(session, org, year)
    closure = _closed(session, org, year)
    closed_at = closure.closed_at if closure else None
    if as_of is None:
        states = {r.unit.code: r.state for r in records}
    else:
        before = end_of_day(as_of)
        past = oversight.states_as_of(
            session, org, "self_inspection", [r.id for r in records], before
        )
        states = {r.unit.code: past[r.id] for r in records if r.id in past}
        closed_at = closed_at if closed_at is not None and closed_at < before else None
    done = (SelfInspectionState.SUBMITTED, SelfInspectionState.ACKNOWLEDGED)
    return Coverage(
        year=year,
        units=scope,
        opened=tuple(c for c in scope if c in states),
        submitted=tuple(c for c in scope if states.get(c) in done),
        acknowledged=tuple(c for c in scope if states.get(c) == SelfInspectionState.ACKNOWLEDGED),
        closed_at=closed_at,
    )


def close_year(
    session: Session,
    org: Organization,
    year: int,
    leader: User,
    *,
    now: datetime,
    trail: AuditTrail,
) -> YearClosure:
    """The ward leader closes the year, once every unit's self-inspection is acknowledged."""
    person = oversight.checked("close_year", leader, org)
    hold_ward(session, org.id)  # closed twice at once: the second finds the year closed
    _check_open_year(session, org, year)
    cover = coverage(session, org, year)
    if not cover.complete:
        missing = ", ".join(cover.missing) or "—"
        raise DomainError(
            "coverage_incomplete",
            f"Chưa khóa sổ được năm {year}: {coverage_text(cover)}; còn thiếu: {missing}.",
        )
    closure = YearClosure(
        organization_id=org.id,
        year=year,
        closed_by_id=leader.id,
        closed_at=now,
        coverage=cover.as_json(),
    )
    session.add(closure)
    oversight.flush(session, "Năm cải cách hành chính")
    trail.record(
        session,
        org,
        now=now,
        actor=oversight.actor(leader, person, Role.WARD_LEADER.value),
        action="year.closed",
        object_type="year",
        object_id=year,
        after={"closed": True},
        details={"coverage": {k: cover.as_json()[k] for k in ("units_in_scope", "acknowledged")}},
    )
    return closure


_LEAD_ROLES = (Role.WARD_LEADER.value, Role.APPROVER.value, Role.HEAD.value)

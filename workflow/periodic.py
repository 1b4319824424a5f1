"""Periodic reform reports (báo cáo định kỳ CCHC): which period a report covers, the report's
content assembled from the evaluation, and generating a file with its audit entry.

Choices (docs/reports.md explains them):

- The figures are those of `workflow.evaluation.evaluate` as of the report's date, cumulative
  since the start of the plan's year (lũy kế), so the report equals `cchc evaluate --as-of`.
- The as-of date defaults to the earlier of the period's data cut-off end (Nghị định
  09/2019: the 14th of the quarter's last month, 14/12 for the year) and today.
- The document is dated its as-of date; its number is left blank ("Số:    /BC-UBND") for the
  văn thư, who numbers documents when they are issued in the register.
- The difficulties and proposals are a parameter, recorded verbatim in the audit entry.
- Self-inspection coverage and inspections are as they stood at the end of the as-of date:
  their states then are read from the audit log (their tables keep only the current state).

Nothing reads the wall clock: "today" and "now" are parameters (invariant 6).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.ledger import Ledger
from definitions.calendar import WorkingCalendar
from definitions.loader import PlanDefinition, ReportPeriod, Section, Signer
from definitions.rubric import Rubric
from workflow.deadlines import (
    ALERT_ACTIONS,
    ALERT_DUE_SOON,
    ALERT_OVERDUE,
    OPEN_LATE,
    add_alert_notifications,
)
from workflow.engine import person_of
from workflow.errors import DomainError
from workflow.evaluation import Evaluation, InstanceFacts, end_of_day, evaluate, plan_of_year
from workflow.evidence import EvidenceStore
from workflow.inspections import INSPECTION_STATE_LABELS, InspectionState, inspections
from workflow.models import Organization, ReportAlert, Unit, User
from workflow.oversight import states_as_of
from workflow.permissions import VHXH, report_refusal
from workflow.reports import plan_definition
from workflow.selfinspection import Coverage, coverage
from workflow.states import TASK_STATE_LABELS, Role, TaskState
from workflow.trail import SYSTEM, AuditTrail, actor_of

REPORT_KINDS: tuple[str, ...] = ("quarter", "half-year", "year")
GENERATED_ACTION = "report.generated"
REPORT_OBJECT = "report"
ROMAN = ("I", "II", "III", "IV")

FORMATS: dict[str, str] = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}

# Where the ward's report goes (section IV of the plan: the ward reports to the city's
# People's Committee and the Department of Home Affairs); the list ends with the archive line.
RECIPIENTS: tuple[str, ...] = (
    "UBND thành phố Hải Phòng (để báo cáo);",
    "Sở Nội vụ thành phố (để báo cáo);",
    "TT Đảng ủy, TT HĐND phường;",
    "Lãnh đạo UBND phường;",
    "Các phòng, ban, đơn vị có liên quan;",
    "Lưu: VT, VHXH.",
)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def vn_date(day: date) -> str:
    return f"{day:%d/%m/%Y}"


def date_line(place: str, day: date) -> str:
    """ "Trần Hưng Đạo, ngày 05 tháng 01 năm 2026": a leading zero for days under 10 and for
    months 1 and 2 (Nghị định 30/2020, Phụ lục I)."""
    month = f"{day.month:02d}" if day.month <= 2 else str(day.month)
    return nfc(f"{place}, ngày {day.day:02d} tháng {month} năm {day.year}")


# --- the period a report covers ---------------------------------------------------------------


@dataclass(frozen=True)
class PeriodRef:
    """One report of the plan's reporting calendar: its kind, period and deadlines."""

    kind: str
    year: int
    quarter: int | None
    name: str  # the report's name in the plan ("Báo cáo cải cách hành chính quý")
    period: ReportPeriod

    @property
    def key(self) -> str:
        """Stable id of the report period (audit object id, alert rows): 2026/quarter/1."""
        base = f"{self.year}/{self.kind}"
        return f"{base}/{self.quarter}" if self.quarter is not None else base

    @property
    def label(self) -> str:
        return self.period.label

    @property
    def subject(self) -> str:
        """The trích yếu's period words: "quý I năm 2026", "6 tháng đầu năm 2026"."""
        if self.kind == "quarter" and self.quarter is not None:
            return f"quý {ROMAN[self.quarter - 1]} năm {self.year}"
        if self.kind == "half-year":
            return f"6 tháng đầu năm {self.year}"
        return f"năm {self.year}"

    @property
    def slug(self) -> str:
        """For file names: bao-cao-cchc-2026-quy-1."""
        if self.kind == "quarter":
            return f"bao-cao-cchc-{self.year}-quy-{self.quarter}"
        if self.kind == "half-year":
            return f"bao-cao-cchc-{self.year}-6-thang"
        return f"bao-cao-cchc-{self.year}-nam"

    def default_as_of(self, today: date) -> date:
        """The earlier of the period's data cut-off end (else its due date) and today."""
        end = self.period.cutoff_end or self.period.due
        return min(end, today)

    def as_json(self) -> dict[str, Any]:
        p = self.period
        return {
            "key": self.key,
            "kind": self.kind,
            "year": self.year,
            "quarter": self.quarter,
            "name": self.name,
            "label": p.label,
            "due": p.due.isoformat(),
            "due_before": p.due_before.isoformat(),
            "cutoff_start": p.cutoff_start.isoformat() if p.cutoff_start else None,
            "cutoff_end": p.cutoff_end.isoformat() if p.cutoff_end else None,
        }


def report_periods(definition: PlanDefinition) -> list[PeriodRef]:
    """Every period of the periodic reports (quarter, half-year, year) in the plan's calendar."""
    refs: list[PeriodRef] = []
    for report in definition.reporting.reports:
        if report.code not in REPORT_KINDS:
            continue  # e.g. the budget estimate: not a report this module writes
        for i, period in enumerate(report.periods):
            quarter = i + 1 if report.code == "quarter" else None
            refs.append(PeriodRef(report.code, definition.year, quarter, report.name, period))
    return refs


def resolve_period(definition: PlanDefinition, kind: str, quarter: int | None = None) -> PeriodRef:
    """The period of a `kind` report (and `quarter` for a quarterly one), or DomainError."""
    if kind not in REPORT_KINDS:
        raise DomainError(
            "invalid_report_kind",
            f"Loại báo cáo “{kind}” không hợp lệ (quarter, half-year hoặc year).",
        )
    if kind == "quarter" and quarter not in (1, 2, 3, 4):
        raise DomainError("invalid_period", "Báo cáo quý cần chỉ rõ quý (1 đến 4).")
    if kind != "quarter" and quarter is not None:
        raise DomainError("invalid_period", "Chỉ báo cáo quý mới chọn quý.")
    for ref in report_periods(definition):
        if ref.kind == kind and ref.quarter == quarter:
            return ref
    raise DomainError(
        "invalid_period",
        f"Kế hoạch năm {definition.year} không có kỳ báo cáo này trong chế độ báo cáo.",
    )


# --- the report's content ---------------------------------------------------------------------


@dataclass(frozen=True)
class CorrectiveLine:
    description: str
    state: str  # label


@dataclass(frozen=True)
class InspectionLine:
    unit: str
    unit_name: str
    state: str  # label
    conclusion_number: str | None
    conclusion_text: str | None
    corrective: tuple[CorrectiveLine, ...]


@dataclass(frozen=True)
class PeriodicReport:
    """Everything a rendered report shows; renderers read only this."""

    ref: PeriodRef
    as_of: date
    evaluation: Evaluation
    issuer: str  # "Ủy ban nhân dân phường Trần Hưng Đạo"
    place: str  # "Trần Hưng Đạo"
    city: str
    plan_title: str
    signer: Signer
    sections: tuple[Section, ...]
    coverage: Coverage
    coverage_text: str
    inspections: tuple[InspectionLine, ...]
    difficulties: str
    recipients: tuple[str, ...] = RECIPIENTS

    @property
    def title(self) -> str:
        """The trích yếu."""
        return nfc(f"Kết quả thực hiện công tác cải cách hành chính {self.ref.subject}")

    @property
    def date_line(self) -> str:
        return date_line(self.place, self.as_of)

    @property
    def overdue(self) -> tuple[InstanceFacts, ...]:
        """Open work past its due date as of the report's date, most days late first."""
        late = [f for f in self.evaluation.instances if f.status == OPEN_LATE]
        late.sort(key=lambda f: (-f.working_days_late, f.due or date.max, f.number, f.unit))
        return tuple(late)

    def unit_name(self, code: str) -> str:
        return self.evaluation.unit_names.get(code, code)

    def section_title(self, number: str | None) -> str:
        for section in self.sections:
            if section.number == number:
                return section.title
        return number or "—"


def state_label(state: str) -> str:
    try:
        return TASK_STATE_LABELS[TaskState(state)]
    except ValueError:
        return state


def _place(issuer: str) -> str:
    """ "Ủy ban nhân dân phường Trần Hưng Đạo" → "Trần Hưng Đạo"."""
    for word in ("phường ", "xã ", "đặc khu "):
        at = issuer.lower().rfind(word)
        if at >= 0:
            return issuer[at + len(word) :].strip()
    return issuer


def _inspection_lines(
    session: Session, org: Organization, year: int, before: datetime
) -> tuple[InspectionLine, ...]:
    """The year's inspections as they stood just before `before`: their states and those of
    their corrective tasks read from the audit log; a conclusion only once it was issued."""
    records = [r for r in inspections(session, org, year) if r.created_at < before]
    states = states_as_of(session, org, "inspection", [r.id for r in records], before)
    tasks = states_as_of(
        session,
        org,
        "task_instance",
        [a.instance_id for r in records for a in r.corrective_actions],
        before,
    )
    lines = []
    for record in records:
        state = states.get(record.id, InspectionState.PLANNED.value)
        concluded = state in (InspectionState.CONCLUDED, InspectionState.CLOSED)
        corrective = tuple(
            CorrectiveLine(action.description, state_label(tasks[action.instance_id]))
            for action in record.corrective_actions
            if concluded and action.instance_id in tasks
        )
        lines.append(
            InspectionLine(
                unit=record.unit.code,
                unit_name=record.unit.name,
                state=INSPECTION_STATE_LABELS.get(state, state),
                conclusion_number=record.conclusion_number if concluded else None,
                conclusion_text=record.conclusion_text if concluded else None,
                corrective=corrective,
            )
        )
    lines.sort(key=lambda line: line.unit)
    return tuple(lines)


def build_report(
    session: Session,
    org: Organization,
    *,
    kind: str,
    year: int,
    quarter: int | None,
    as_of: date | None,
    today: date,
    difficulties: str,
    calendar: WorkingCalendar,
    rubric: Rubric,
) -> PeriodicReport:
    """The report of `kind` (and `quarter`) of the plan of `year`, as of `as_of` (default: the
    earlier of the period's cut-off end and `today`)."""
    plan = plan_of_year(session, org, year)
    definition = plan_definition(plan)
    if definition is None:
        raise DomainError(
            "plan_unreadable", "Không đọc được định nghĩa kế hoạch để lập báo cáo định kỳ."
        )
    ref = resolve_period(definition, kind, quarter)
    day = as_of or ref.default_as_of(today)
    evaluation = evaluate(session, org, year=year, as_of=day, calendar=calendar, rubric=rubric)
    cover = coverage(session, org, year, as_of=day)
    n = len(cover.units)
    cover_text = (
        f"{len(cover.submitted)}/{n} đơn vị đã gửi báo cáo tự kiểm tra, "
        f"{len(cover.acknowledged)}/{n} đơn vị đã được xác nhận"
    )
    return PeriodicReport(
        ref=ref,
        as_of=day,
        evaluation=evaluation,
        issuer=nfc(definition.issuer),
        place=nfc(_place(definition.issuer)),
        city=nfc(definition.city),
        plan_title=nfc(definition.title),
        signer=definition.signer,
        sections=definition.sections,
        coverage=cover,
        coverage_text=nfc(cover_text),
        inspections=_inspection_lines(session, org, year, end_of_day(day)),
        difficulties=nfc(difficulties.strip()),
    )


# --- generating a file ------------------------------------------------------------------------


Renderer = Callable[[PeriodicReport, str], bytes]


@dataclass(frozen=True)
class GeneratedReport:
    """A generated report file and the audit entry that records it."""

    report: PeriodicReport
    format: str
    filename: str
    data: bytes
    sha256: str
    audit_seq: int

    @property
    def media_type(self) -> str:
        return FORMATS[self.format]

    @property
    def size(self) -> int:
        return len(self.data)

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.report.ref.as_json(),
            "format": self.format,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "as_of": self.report.as_of.isoformat(),
            "evaluation_audit": self.report.evaluation.audit.as_json(),
            "audit_seq": self.audit_seq,
        }


def _acting_role(user: User) -> str:
    names = set(user.role_names)
    for role in (Role.WARD_LEADER, Role.APPROVER, Role.HEAD, Role.REVIEWER, Role.MEMBER):
        if role.value in names:
            return role.value
    return sorted(names)[0] if names else "member"


def generate_report(
    session: Session,
    org: Organization,
    user: User | None,
    *,
    kind: str,
    year: int,
    quarter: int | None,
    fmt: str,
    as_of: date | None,
    today: date,
    now: datetime,
    difficulties: str,
    calendar: WorkingCalendar,
    rubric: Rubric,
    trail: AuditTrail,
    render: Renderer,
    store: EvidenceStore | None = None,
) -> GeneratedReport:
    """Build the report, render it with `render(report, fmt)` and record it in the audit log
    (action report.generated) with the file's SHA-256 and the audit tree the evaluation was
    computed at. `user` None is the system itself (the server's operator, `cchc report`
    without --as). Never commits: the caller commits the entry, or nothing."""
    if user is not None:
        refused = report_refusal("generate_report", person_of(user), org.id)
        if refused is not None:
            raise refused
    if fmt not in FORMATS:
        raise DomainError("invalid_format", f"Định dạng “{fmt}” không hợp lệ (docx, xlsx, pdf).")
    report = build_report(
        session,
        org,
        kind=kind,
        year=year,
        quarter=quarter,
        as_of=as_of,
        today=today,
        difficulties=difficulties,
        calendar=calendar,
        rubric=rubric,
    )
    data = render(report, fmt)
    sha256 = hashlib.sha256(data).hexdigest()
    if store is not None:
        store.store(data)
    filename = f"{report.ref.slug}-{report.as_of:%Y%m%d}.{fmt}"
    entry = trail.record(
        session,
        org,
        now=now,
        actor=actor_of(user, _acting_role(user)) if user is not None else SYSTEM,
        action=GENERATED_ACTION,
        object_type=REPORT_OBJECT,
        object_id=report.ref.key,
        details={
            "kind": kind,
            "year": year,
            "quarter": quarter,
            "period": report.ref.label,
            "format": fmt,
            "filename": filename,
            "sha256": sha256,
            "size": len(data),
            "as_of": report.as_of.isoformat(),
            "plan": report.evaluation.plan_code,
            "rubric": report.evaluation.rubric_code,
            "evaluation_audit": report.evaluation.audit.as_json(),
            "difficulties": report.difficulties,
        },
    )
    return GeneratedReport(report, fmt, filename, data, sha256, entry.seq)


@dataclass(frozen=True)
class GeneratedEntry:
    """A report.generated audit entry, as the reports page lists it."""

    seq: int
    created_at: datetime
    actor: str | None
    key: str
    details: dict[str, Any]


def generated_reports(
    session: Session, org: Organization, *, limit: int = 100
) -> list[GeneratedEntry]:
    """The ward's generated reports, newest first, read from its audit log."""
    page = Ledger(org.audit_origin).entries(
        session, action=GENERATED_ACTION, object_type=REPORT_OBJECT, per_page=limit
    )
    return [
        GeneratedEntry(
            seq=e.seq,
            created_at=e.created_at,
            actor=e.actor_user,
            key=e.object_id,
            details=dict(e.content().get("details") or {}),
        )
        for e in page.items
    ]


# --- report deadlines in the daily check ------------------------------------------------------


@dataclass(frozen=True)
class ReportDeadline:
    """A report period's deadline as of a day, for the work list and the dashboard."""

    ref: PeriodRef
    status: str  # workflow.deadlines: done, overdue, due_soon, on_time
    generated: bool

    @property
    def due(self) -> date:
        return self.ref.period.due


def _generated_keys(
    session: Session, org: Organization, before: datetime | None = None
) -> set[str]:
    from audit.schema import audit_entry, audit_log  # the log's tables, read-only

    stmt = (
        select(audit_entry.c.object_id)
        .join(audit_log, audit_log.c.id == audit_entry.c.log_id)
        .where(
            audit_log.c.origin == org.audit_origin,
            audit_entry.c.action == GENERATED_ACTION,
            audit_entry.c.object_type == REPORT_OBJECT,
        )
    )
    if before is not None:
        stmt = stmt.where(audit_entry.c.created_at < before)
    return {str(key) for (key,) in session.execute(stmt)}


def report_deadlines(
    session: Session,
    org: Organization,
    definition: PlanDefinition | None,
    *,
    today: date,
    calendar: WorkingCalendar,
    due_soon_days: int = 3,
) -> list[ReportDeadline]:
    """Every periodic report of the plan with its deadline status as of `today`: done once a
    report of the period was generated, else overdue / due soon / on time by its due date."""
    if definition is None:
        return []
    done = _generated_keys(session, org, end_of_day(today))
    rows = []
    for ref in report_periods(definition):
        due = ref.period.due
        if ref.key in done:
            status = "done"
        elif today > due:
            status = "overdue"
        elif calendar.working_days_between(today, due) <= due_soon_days:
            status = "due_soon"
        else:
            status = "on_time"
        rows.append(ReportDeadline(ref, status, ref.key in done))
    rows.sort(key=lambda r: (r.due, REPORT_KINDS.index(r.ref.kind)))
    return rows


@dataclass(frozen=True)
class ReportAlertSent:
    key: str
    kind: str  # due_soon | overdue
    due_date: date
    working_days: int
    recipients: int

    def as_json(self) -> dict[str, Any]:
        return {
            "report": self.key,
            "kind": self.kind,
            "due_date": self.due_date.isoformat(),
            "working_days": self.working_days,
            "recipients": self.recipients,
        }


def _alert_message(ref: PeriodRef, kind: str, days: int) -> str:
    name = f"{ref.name} ({ref.label})"
    due = vn_date(ref.period.due)
    if kind == ALERT_OVERDUE:
        if days == 0:
            return f"{name} đã quá hạn gửi: hạn {due}."
        return f"{name} đã quá hạn gửi: hạn {due}, đã quá {days} ngày làm việc."
    if days == 0:
        return f"{name} đến hạn gửi hôm nay: hạn {due}."
    return f"{name} sắp đến hạn gửi: hạn {due}, còn {days} ngày làm việc."


def report_alerts(
    session: Session,
    org: Organization,
    *,
    today: date,
    now: datetime,
    calendar: WorkingCalendar,
    trail: AuditTrail,
    due_soon_days: int,
) -> tuple[ReportAlertSent, ...]:
    """The daily check for report periods (called by workflow.deadlines.tick): alert VHXH's
    staff once per period, kind and due date when a periodic report not yet generated is due
    soon or overdue, with an outbox notification each and one audit entry per alert."""
    from workflow.reports import current_plan

    plan = current_plan(session, org)
    definition = plan_definition(plan) if plan is not None else None
    wanted = [
        d
        for d in report_deadlines(
            session, org, definition, today=today, calendar=calendar, due_soon_days=due_soon_days
        )
        if d.status in ("due_soon", "overdue")
    ]
    if not wanted:
        return ()
    sent = {
        (key, kind, due)
        for key, kind, due in session.execute(
            select(ReportAlert.report_key, ReportAlert.kind, ReportAlert.due_date).where(
                ReportAlert.organization_id == org.id
            )
        )
    }
    recipients = list(
        session.scalars(
            select(User.id)
            .join(Unit, User.unit_id == Unit.id)
            .where(Unit.organization_id == org.id, Unit.code == VHXH, User.active.is_(True))
            .order_by(User.id)
        )
    )
    alerts: list[ReportAlertSent] = []
    for deadline in wanted:
        kind = ALERT_OVERDUE if deadline.status == "overdue" else ALERT_DUE_SOON
        ref, due = deadline.ref, deadline.due
        if (ref.key, kind, due) in sent:
            continue
        days = (
            calendar.working_days_between(due, today)
            if kind == ALERT_OVERDUE
            else calendar.working_days_between(today, due)
        )
        session.add(
            ReportAlert(
                organization_id=org.id, report_key=ref.key, kind=kind, due_date=due, created_at=now
            )
        )
        session.flush()  # a concurrent check conflicts here, before anything else is written
        message = _alert_message(ref, kind, days)
        payload: dict[str, Any] = {
            "kind": kind,
            "report": ref.key,
            "report_kind": ref.kind,
            "period": ref.label,
            "due_date": due.isoformat(),
            "today": today.isoformat(),
            "working_days": days,
        }
        add_alert_notifications(
            session, recipients, kind, instance_id=None, message=message, payload=payload, now=now
        )
        details: dict[str, Any] = {
            "kind": kind,
            "report": ref.kind,
            "period": ref.label,
            "due": due.isoformat(),
            "today": today.isoformat(),
        }
        details["working_days_late" if kind == ALERT_OVERDUE else "working_days_left"] = days
        trail.record(
            session,
            org,
            now=now,
            actor=SYSTEM,
            action=ALERT_ACTIONS[kind],
            object_type="report_period",
            object_id=ref.key,
            details=details,
        )
        alerts.append(ReportAlertSent(ref.key, kind, due, days, len(recipients)))
    session.flush()
    return tuple(alerts)

"""Measured values of the plan's targets (KPIs: satisfaction %, online payment %, disbursement
%, ...), each entered with the file that proves it and recorded in the audit log.

Who may enter one: members of the lead unit of the KPI's task, or VHXH's staff
(workflow.permissions.oversight_refusal, "measure_kpi"). A later measurement does not replace an
earlier one: the evaluation as of a date takes the latest made on or before it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from definitions.loader import Kpi
from workflow import oversight
from workflow.errors import DomainError
from workflow.evaluation import plan_of_year
from workflow.evidence import EvidenceStore, display_name, sniff
from workflow.models import KpiMeasurement, Organization, PlanTask, User
from workflow.reports import plan_definition
from workflow.trail import AuditTrail

# Values are percentages or counts: at most 12 digits, 2 after the point.
_MAX = Decimal("9999999999.99")


def plan_kpis(session: Session, org: Organization, year: int) -> tuple[Kpi, ...]:
    definition = plan_definition(plan_of_year(session, org, year))
    return definition.kpis if definition is not None else ()


def parse_value(text: str) -> Decimal:
    """A measured value as people write it ("96,5", "96.5", "96,5%")."""
    cleaned = text.strip().rstrip("%").strip().replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise DomainError("invalid_value", f"Giá trị “{text}” không phải là số.") from None
    if not value.is_finite() or not Decimal(0) <= value <= _MAX:
        raise DomainError("invalid_value", f"Giá trị “{text}” nằm ngoài khoảng cho phép.")
    if value != value.quantize(Decimal("0.01")):
        raise DomainError("invalid_value", "Giá trị chỉ được có tối đa hai chữ số thập phân.")
    return value.normalize() if value == value.to_integral_value() else value


def lead_unit(session: Session, plan_id: int, kpi: Kpi) -> str | None:
    """The unit whose members may enter the KPI: the sole lead of its task, else None (then
    only VHXH's staff may)."""
    if kpi.task is None:
        return None
    leads = session.scalar(
        select(PlanTask.leads).where(PlanTask.plan_id == plan_id, PlanTask.number == kpi.task)
    )
    return leads[0] if leads and len(leads) == 1 else None


def record_measurement(
    session: Session,
    org: Organization,
    year: int,
    kpi_code: str,
    user: User,
    *,
    value: str,
    measured_on: date,
    data: bytes,
    filename: str,
    note: str = "",
    now: datetime,
    store: EvidenceStore,
    trail: AuditTrail,
) -> KpiMeasurement:
    """Record a measured value of a KPI of the year's plan with its evidence file."""
    if user.organization_id != org.id:
        raise DomainError("not_permitted", "Kế hoạch này thuộc phường khác.")
    plan = plan_of_year(session, org, year)
    kpis = {k.code: k for k in plan_kpis(session, org, year)}
    kpi = kpis.get(kpi_code)
    if kpi is None:
        raise DomainError("not_found", f"Kế hoạch năm {year} không có chỉ tiêu mã “{kpi_code}”.")
    person = oversight.checked("measure_kpi", user, org, lead_unit(session, plan.id, kpi))
    number = parse_value(value)
    if measured_on.year != year:
        raise DomainError(
            "invalid_date", f"Ngày đo {measured_on:%d/%m/%Y} không thuộc năm {year} của kế hoạch."
        )
    if not data:
        raise DomainError(
            "evidence_missing", "Cần tải lên tài liệu kiểm chứng cho kết quả đo chỉ tiêu."
        )
    kind, media_type = sniff(data)
    blob = store.store(data)
    row = KpiMeasurement(
        plan_id=plan.id,
        kpi_code=kpi.code,
        value=str(number),
        measured_on=measured_on,
        note=oversight.text(note),
        evidence_sha256=blob.sha256,
        evidence_size=blob.size,
        evidence_media_type=media_type,
        evidence_filename=display_name(filename, kind),
        entered_by_id=user.id,
        entered_at=now,
    )
    session.add(row)
    oversight.flush(session, "Kết quả đo chỉ tiêu")
    trail.record(
        session,
        org,
        now=now,
        actor=oversight.actor(user, person, oversight.acting_role(person, ("head", "member"))),
        action="kpi.measured",
        object_type="kpi",
        object_id=f"{year}:{kpi.code}",
        after={"value": row.value, "measured_on": measured_on.isoformat()},
        details={
            "measurement": row.id,
            "threshold": f"{kpi.comparator} {kpi.threshold}",
            "note": row.note or None,
            "sha256": blob.sha256,
            "size": blob.size,
            "media_type": media_type,
            "filename": row.evidence_filename,
        },
    )
    return row


def measurements(session: Session, org: Organization, year: int) -> list[KpiMeasurement]:
    plan = plan_of_year(session, org, year)
    return list(
        session.scalars(
            select(KpiMeasurement)
            .where(KpiMeasurement.plan_id == plan.id)
            .order_by(KpiMeasurement.kpi_code, KpiMeasurement.measured_on, KpiMeasurement.id)
        )
    )

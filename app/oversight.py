"""Oversight pages: the evaluation of the plan's work (by section and by unit, down to the
instances, with the KPIs and each unit's score), the annual self-inspection with its coverage,
the inspection sample (draw and replay) and the inspections. Views parse the request, call
workflow/ and render its answer; who may read or do what is decided by workflow.permissions
(the "oversight" area and oversight_refusal), never here."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.clock import SystemClock
from app.dashboard import parse_day, vn_percent, ward_today, working_calendar
from app.database import audit_trail, db_session
from definitions.rubric import Rubric, load_rubric
from workflow import inspections as insp
from workflow import kpis as kpi_records
from workflow import selfinspection as si
from workflow.deadlines import NATIONAL_STATUS_LABELS
from workflow.engine import person_of
from workflow.errors import DomainError
from workflow.evaluation import Evaluation, Figures, evaluate, plan_of_year
from workflow.evidence import LocalEvidenceStore
from workflow.models import Evidence, Inspection, Organization, SelfInspection, Unit, User
from workflow.permissions import Person, area_refusal, oversight_refusal
from workflow.reports import NATIONAL_STATUSES, current_plan, plan_definition

bp = Blueprint("oversight", __name__)

AREA = "oversight"
BLANK_EVIDENCE_ROWS = 3
BLANK_CORRECTIVE_ROWS = 3


@functools.cache
def scoring_rubric() -> Rubric:
    """The rubric kept as data in definitions/, loaded once per process."""
    return load_rubric()


def now() -> datetime:
    """The wall clock, read at the request boundary (tests pin it)."""
    return SystemClock().now()


# --- request helpers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """The signed-in person and their ward, for one request."""

    session: Session
    user: User
    person: Person
    org: Organization

    def refused(self, action: str, unit: str | None = None) -> DomainError | None:
        return oversight_refusal(action, self.person, self.org.id, unit)

    def may(self, action: str, unit: str | None = None) -> bool:
        return self.refused(action, unit) is None


def _visit() -> Visit:
    session = db_session()
    user = current_user.user
    return Visit(
        session, user, person_of(user), session.get_one(Organization, user.organization_id)
    )


def _area_refused(visit: Visit) -> Response | None:
    refused = area_refusal(AREA, visit.person)
    if refused is None:
        return None
    page = render_template("oversight/refused.html", refused=refused.message)
    return Response(page, status=403, mimetype="text/html")


def _year(visit: Visit) -> int:
    """?nam=YYYY, else the year of the ward's current plan, else this year."""
    asked = request.values.get("nam", "").strip()
    if asked.isdigit() and len(asked) == 4:
        return int(asked)
    plan = current_plan(visit.session, visit.org)
    return plan.year if plan is not None else ward_today().year


def _day(value: str | None, what: str) -> date | None:
    """An optional day from a form (dd/mm/yyyy or a date field's yyyy-mm-dd)."""
    if value is None or not value.strip():
        return None
    parsed = parse_day(value)
    if parsed is None:
        raise DomainError("invalid_date", f"{what} “{value}” không phải ngày hợp lệ (dd/mm/yyyy).")
    return parsed


def _version() -> int | None:
    value = request.form.get("version", "")
    return int(value) if value.isdigit() else None


def _commit_or_refuse(back: str, change: Callable[[], str]) -> Response:
    """Run one change through the domain and commit it, or roll back and show its refusal
    (in Vietnamese, as a message on the page we go back to)."""
    session = db_session()
    try:
        message = change()
        session.commit()
        flash(message, "ok")
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(back)


def _store() -> LocalEvidenceStore:
    return LocalEvidenceStore(current_app.config["CCHC_SETTINGS"].evidence_dir)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@bp.app_template_filter("vn_decimal")
def vn_decimal(value: Any) -> str:
    """A number (or one kept as text in JSON: "2.5", 10) the Vietnamese way: "2,5", "8" for
    8.0, "0" for -0; "—" for none."""
    number = _decimal(value)
    if number is None:
        return "—"
    if number == number.to_integral_value():
        return str(int(number))
    return str(number.normalize()).replace(".", ",")


@bp.app_template_filter("vn_percent_text")
def vn_percent_text(value: Any) -> str:
    """A rate kept as text in JSON ("85.7") as "85,7%"."""
    return vn_percent(_decimal(value))


def _unit_names(visit: Visit) -> dict[str, str]:
    units = visit.session.scalars(select(Unit).where(Unit.organization_id == visit.org.id))
    return {u.code: u.name for u in units}


# --- charts: stacked bars of the four national statuses, as inline SVG ----------------------

CHART_WIDTH = 640
CHART_LABEL = 90
CHART_BAR = 380
CHART_ROW = 28
CHART_BAR_HEIGHT = 18

STATUS_FILLS: dict[str, str] = dict(
    zip(NATIONAL_STATUSES, ("#1d7a35", "#b7791f", "#2b6cb0", "#a50e0e"), strict=True)
)


@dataclass(frozen=True)
class Segment:
    x: int
    width: int
    fill: str
    title: str


@dataclass(frozen=True)
class StackedBar:
    label: str
    href: str
    title: str
    value_text: str
    y: int
    segments: tuple[Segment, ...]

    @property
    def text_y(self) -> int:
        return self.y + CHART_BAR_HEIGHT - 4


@dataclass(frozen=True)
class StackedChart:
    title: str
    bars: tuple[StackedBar, ...]
    width: int = CHART_WIDTH
    label_width: int = CHART_LABEL
    bar_width: int = CHART_BAR
    bar_height: int = CHART_BAR_HEIGHT

    @property
    def height(self) -> int:
        return max(1, len(self.bars)) * CHART_ROW + 4

    @property
    def value_x(self) -> int:
        return self.label_width + self.bar_width + 8


def _status_counts(figures: Figures) -> tuple[int, ...]:
    return (
        figures.accepted_on_time,
        figures.accepted_late,
        figures.open_on_time,
        figures.open_overdue,
    )


def status_chart(
    title: str,
    groups: Mapping[str, Figures],
    names: Mapping[str, str],
    link: Callable[[str], str],
) -> StackedChart:
    """One bar per group, split into the four national statuses; the label links down to the
    group's instances."""
    bars = []
    for row, (key, figures) in enumerate(groups.items()):
        segments, done = [], 0
        for status, count in zip(NATIONAL_STATUSES, _status_counts(figures), strict=True):
            start = CHART_LABEL + (done * CHART_BAR // figures.led if figures.led else 0)
            done += count
            end = CHART_LABEL + (done * CHART_BAR // figures.led if figures.led else 0)
            if end > start:
                label = NATIONAL_STATUS_LABELS[status]
                segments.append(
                    Segment(start, end - start, STATUS_FILLS[status], f"{label}: {count}")
                )
        rate = vn_percent(figures.completion_rate)
        bars.append(
            StackedBar(
                label=key,
                href=link(key),
                title=f"{key} — {names.get(key, key)}: {figures.accepted}/{figures.led} ({rate})",
                value_text=f"{figures.accepted}/{figures.led} · {rate}",
                y=row * CHART_ROW + 4,
                segments=tuple(segments),
            )
        )
    return StackedChart(title, tuple(bars))


# --- evaluation ---------------------------------------------------------------------------------


def _as_of(year: int) -> tuple[date, str | None]:
    """?as_of=dd/mm/yyyy, else today (31/12 once the year is over); an error when unreadable."""
    default = min(ward_today(), date(year, 12, 31))
    asked = request.args.get("as_of", "").strip()
    if not asked:
        return default, None
    parsed = parse_day(asked)
    if parsed is None:
        return (
            default,
            f"“{asked}” không phải ngày hợp lệ (dd/mm/yyyy); đang tính đến ngày mặc định.",
        )
    return parsed, None


def _evaluate(visit: Visit, year: int, as_of: date) -> Evaluation:
    return evaluate(
        visit.session,
        visit.org,
        year=year,
        as_of=as_of,
        calendar=working_calendar(),
        rubric=scoring_rubric(),
    )


def _section_titles(visit: Visit, year: int) -> dict[str, str]:
    definition = plan_definition(plan_of_year(visit.session, visit.org, year))
    return {s.number: s.title for s in definition.sections} if definition is not None else {}


@bp.route("/danh-gia")
@login_required  # type: ignore[untyped-decorator]
def evaluation() -> Any:
    visit = _visit()
    refused = _area_refused(visit)
    if refused is not None:
        return refused
    year = _year(visit)
    as_of, error = _as_of(year)
    try:
        result = _evaluate(visit, year, as_of)
        sections = _section_titles(visit, year)
        plan = plan_of_year(visit.session, visit.org, year)
        measured = kpi_records.measurements(visit.session, visit.org, year)
        measurable = [
            k
            for k in kpi_records.plan_kpis(visit.session, visit.org, year)
            # the unit a KPI belongs to, as the domain reads it (the lead of its task)
            if visit.may("measure_kpi", kpi_records.lead_unit(visit.session, plan.id, k))
        ]
    except DomainError as exc:
        page = render_template("oversight/evaluation.html", missing=exc.message, year=year)
        return page, 404

    def drill(name: str) -> Callable[[str], str]:
        def link(value: str) -> str:
            args: dict[str, Any] = {"nam": year, "as_of": as_of.strftime("%d/%m/%Y"), name: value}
            return url_for("oversight.instances", **args)

        return link

    page = render_template(
        "oversight/evaluation.html",
        missing=None,
        error=error,
        year=year,
        today=ward_today(),
        ev=result,
        sections=sections,
        national_labels=NATIONAL_STATUS_LABELS,
        statuses=NATIONAL_STATUSES,
        fills=STATUS_FILLS,
        section_chart=status_chart(
            "Theo lĩnh vực (I–VII): bốn trạng thái theo dõi",
            result.by_section,
            sections,
            drill("linh_vuc"),
        ),
        unit_chart=status_chart(
            "Theo đơn vị chủ trì: bốn trạng thái theo dõi",
            result.by_unit,
            result.unit_names,
            drill("don_vi"),
        ),
        criteria=scoring_rubric().criteria,
        measurements=measured,
        measurable=measurable,
    )
    return page, 400 if error else 200


@bp.route("/danh-gia/nhiem-vu")
@login_required  # type: ignore[untyped-decorator]
def instances() -> Any:
    """The instances behind a row of the evaluation: one unit's (?don_vi=) or one section's
    (?linh_vuc=), or all of them."""
    visit = _visit()
    refused = _area_refused(visit)
    if refused is not None:
        return refused
    year = _year(visit)
    as_of, error = _as_of(year)
    unit = request.args.get("don_vi", "").strip() or None
    section = request.args.get("linh_vuc", "").strip() or None
    try:
        result = _evaluate(visit, year, as_of)
        sections = _section_titles(visit, year)
    except DomainError as exc:
        page = render_template("oversight/instances.html", missing=exc.message, year=year)
        return page, 404
    rows = [
        fact
        for fact in result.instances
        if (unit is None or fact.unit == unit)
        and (section is None or (fact.section or "—") == section)
    ]
    if unit is not None:
        figures, heading = (
            result.by_unit.get(unit),
            f"Đơn vị {unit} — {result.unit_names.get(unit, '')}",
        )
    elif section is not None:
        figures, heading = (
            result.by_section.get(section),
            f"Lĩnh vực {section} — {sections.get(section, '')}",
        )
    else:
        figures, heading = result.overall, "Toàn bộ Kế hoạch"
    page = render_template(
        "oversight/instances.html",
        missing=None,
        error=error,
        year=year,
        ev=result,
        rows=rows,
        figures=figures,
        heading=heading,
        national_labels=NATIONAL_STATUS_LABELS,
    )
    return page, 400 if error else (200 if figures is not None else 404)


@bp.route("/danh-gia/chi-tieu", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def measure() -> Response:
    visit = _visit()
    year = _year(visit)
    file = request.files.get("file")

    def change() -> str:
        measured_on = _day(request.form.get("measured_on"), "Ngày đo")
        if measured_on is None:
            raise DomainError("invalid_date", "Cần ghi ngày đo (dd/mm/yyyy).")
        row = kpi_records.record_measurement(
            visit.session,
            visit.org,
            year,
            request.form.get("kpi", ""),
            visit.user,
            value=request.form.get("value", ""),
            measured_on=measured_on,
            data=file.read() if file is not None else b"",
            filename=(file.filename or "") if file is not None else "",
            note=request.form.get("note", ""),
            now=now(),
            store=_store(),
            trail=audit_trail(),
        )
        return f"Đã ghi kết quả đo chỉ tiêu: {row.value} (ngày {row.measured_on:%d/%m/%Y})."

    return _commit_or_refuse(url_for("oversight.evaluation", nam=year), change)


@bp.route("/danh-gia/chi-tieu/<int:year>/<sha256>")
@login_required  # type: ignore[untyped-decorator]
def measurement_file(year: int, sha256: str) -> Any:
    """The evidence file of a KPI measurement of this ward's plan."""
    visit = _visit()
    refused = _area_refused(visit)
    if refused is not None:
        return refused
    try:
        rows = kpi_records.measurements(visit.session, visit.org, year)
    except DomainError:
        abort(404)
    row = next((r for r in rows if r.evidence_sha256 == sha256), None)
    if row is None:
        abort(404)
    return send_file(
        _store().open(row.evidence_sha256),
        mimetype=row.evidence_media_type,
        as_attachment=True,
        download_name=row.evidence_filename,
    )


# --- self-inspection ----------------------------------------------------------------------------


@bp.route("/tu-kiem-tra")
@login_required  # type: ignore[untyped-decorator]
def self_inspection_list() -> Any:
    visit = _visit()
    refused = _area_refused(visit)
    if refused is not None:
        return refused
    year = _year(visit)
    cover = si.coverage(visit.session, visit.org, year)
    records = {r.unit.code: r for r in si.self_inspections(visit.session, visit.org, year)}
    return render_template(
        "oversight/self_inspections.html",
        year=year,
        cover=cover,
        text=si.coverage_text(cover),
        records=records,
        names=_unit_names(visit),
        labels=si.SELF_INSPECTION_STATE_LABELS,
        may_open=visit.may("open_self_inspections"),
        may_close=visit.may("close_year"),
    )


@bp.route("/tu-kiem-tra/cua-don-vi")
@login_required  # type: ignore[untyped-decorator]
def own_self_inspection() -> Any:
    """The signed-in person's own unit's self-inspection of the year (to fill it in)."""
    visit = _visit()
    refused = visit.refused("fill_self_inspection", visit.person.unit)
    if refused is not None or visit.person.unit is None:
        message = refused.message if refused is not None else "Bạn không thuộc đơn vị nào."
        return render_template("oversight/refused.html", refused=message), 403
    year = _year(visit)
    try:
        record = si.find_self_inspection(visit.session, visit.org, year, visit.person.unit)
    except DomainError as exc:
        return render_template("oversight/refused.html", refused=exc.message, notice=True)
    return redirect(url_for("oversight.self_inspection", record_id=record.id))


def _self_inspection_or_404(visit: Visit, record_id: int) -> SelfInspection:
    try:
        return si.load_self_inspection(visit.session, visit.org, record_id)
    except DomainError:
        abort(404)


def _may_read_record(visit: Visit, record: SelfInspection) -> DomainError | None:
    """Readers of the oversight area, and the people who fill the record in."""
    refused = area_refusal(AREA, visit.person)
    if refused is None or visit.may("fill_self_inspection", record.unit.code):
        return None
    return refused


def _evidence_ids(session: Session, instances: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Evidence row ids by "instance:sha256", to link the prefilled evidence to its download."""
    ids = [int(i["id"]) for i in instances]
    if not ids:
        return {}
    rows = session.execute(
        select(Evidence.id, Evidence.instance_id, Evidence.sha256)
        .where(Evidence.instance_id.in_(ids))
        .order_by(Evidence.id)
    )
    return {f"{instance_id}:{sha}": ev_id for ev_id, instance_id, sha in rows}


@bp.route("/tu-kiem-tra/<int:record_id>")
@login_required  # type: ignore[untyped-decorator]
def self_inspection(record_id: int) -> Any:
    visit = _visit()
    record = _self_inspection_or_404(visit, record_id)
    refused = _may_read_record(visit, record)
    if refused is not None:
        return render_template("oversight/refused.html", refused=refused.message), 403
    unit = record.unit.code
    prefill = record.prefill or {}
    cover = si.coverage(visit.session, visit.org, record.year)
    open_states = (si.SelfInspectionState.DRAFT, si.SelfInspectionState.RETURNED)
    editable = record.state in open_states and cover.closed_at is None
    rubric = scoring_rubric()
    answers = record.answers or {}
    return render_template(
        "oversight/self_inspection.html",
        r=record,
        prefill=prefill,
        cover_text=si.coverage_text(cover),
        closed_at=cover.closed_at,
        criteria=rubric.criteria,
        answers=answers,
        blank_rows=BLANK_EVIDENCE_ROWS,
        missing=si.missing_answers(rubric, answers) if editable else [],
        evidence_ids=_evidence_ids(visit.session, prefill.get("instances", [])),
        labels=si.SELF_INSPECTION_STATE_LABELS,
        national_labels=NATIONAL_STATUS_LABELS,
        may_fill=editable and visit.may("fill_self_inspection", unit),
        may_submit=editable and visit.may("submit_self_inspection", unit),
        may_decide=(
            record.state == si.SelfInspectionState.SUBMITTED
            and cover.closed_at is None
            and visit.may("decide_self_inspection", unit)
            and record.submitted_by_id != visit.user.id
        ),
    )


@bp.route("/tu-kiem-tra/mo", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def open_year() -> Response:
    visit = _visit()
    year = _year(visit)

    def change() -> str:
        opened = si.open_self_inspections(
            visit.session,
            visit.org,
            year,
            visit.user,
            now=now(),
            today=ward_today(),
            calendar=working_calendar(),
            rubric=scoring_rubric(),
            trail=audit_trail(),
        )
        if not opened.created:
            return f"Năm {year}: mọi đơn vị đã có phiếu tự kiểm tra, không mở thêm phiếu nào."
        return f"Đã mở phiếu tự kiểm tra năm {year} cho: {', '.join(opened.created)}."

    return _commit_or_refuse(url_for("oversight.self_inspection_list", nam=year), change)


@bp.route("/tu-kiem-tra/khoa-so", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def close_year() -> Response:
    visit = _visit()
    year = _year(visit)

    def change() -> str:
        si.close_year(visit.session, visit.org, year, visit.user, now=now(), trail=audit_trail())
        return f"Đã khóa sổ năm cải cách hành chính {year}."

    return _commit_or_refuse(url_for("oversight.self_inspection_list", nam=year), change)


def _answer_from_form() -> dict[str, Any]:
    documents = request.form.getlist("document")
    locations = request.form.getlist("location")
    return {
        "self_score": request.form.get("self_score", ""),
        "evidence": [
            {"document": d, "location": loc} for d, loc in zip(documents, locations, strict=False)
        ],
        "explanation": request.form.get("explanation", ""),
        "shortcomings": request.form.get("shortcomings", ""),
        "corrective_actions": request.form.get("corrective_actions", ""),
    }


@bp.route("/tu-kiem-tra/<int:record_id>/tieu-chi", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def fill(record_id: int) -> Response:
    visit = _visit()
    _self_inspection_or_404(visit, record_id)
    code = request.form.get("code", "")

    def change() -> str:
        si.fill_self_inspection(
            visit.session,
            visit.org,
            record_id,
            visit.user,
            {code: _answer_from_form()},
            now=now(),
            rubric=scoring_rubric(),
            trail=audit_trail(),
            expected_version=_version(),
        )
        return "Đã lưu nội dung tự kiểm tra của tiêu chí."

    back = url_for("oversight.self_inspection", record_id=record_id) + f"#tieu-chi-{code}"
    return _commit_or_refuse(back, change)


@bp.route("/tu-kiem-tra/<int:record_id>/gui", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def submit(record_id: int) -> Response:
    visit = _visit()
    _self_inspection_or_404(visit, record_id)

    def change() -> str:
        si.submit_self_inspection(
            visit.session,
            visit.org,
            record_id,
            visit.user,
            now=now(),
            rubric=scoring_rubric(),
            trail=audit_trail(),
            expected_version=_version(),
        )
        return "Đã gửi báo cáo tự kiểm tra."

    return _commit_or_refuse(url_for("oversight.self_inspection", record_id=record_id), change)


@bp.route("/tu-kiem-tra/<int:record_id>/xac-nhan", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def decide(record_id: int) -> Response:
    visit = _visit()
    _self_inspection_or_404(visit, record_id)
    acknowledge = request.form.get("decision") == "acknowledge"

    def change() -> str:
        si.decide_self_inspection(
            visit.session,
            visit.org,
            record_id,
            visit.user,
            acknowledge=acknowledge,
            reason=request.form.get("reason", ""),
            now=now(),
            trail=audit_trail(),
            expected_version=_version(),
        )
        return (
            "Đã xác nhận kết quả tự kiểm tra." if acknowledge else "Đã trả lại phiếu tự kiểm tra."
        )

    return _commit_or_refuse(url_for("oversight.self_inspection", record_id=record_id), change)


# --- sampling -----------------------------------------------------------------------------------


@bp.route("/chon-mau")
@login_required  # type: ignore[untyped-decorator]
def sampling() -> Any:
    """The year's draw (or the form to make it) and, with ?phat_lai=SEQ, the replay of the
    draw recorded in that audit entry."""
    visit = _visit()
    refused = _area_refused(visit)
    if refused is not None:
        return refused
    year = _year(visit)
    recorded = insp.draws(visit.session, visit.org, year)
    replayed, replay_error, status = None, None, 200
    asked = request.args.get("phat_lai", "").strip()
    if asked:
        try:
            if not asked.isdigit():
                raise DomainError("not_found", f"“{asked}” không phải số thứ tự mục nhật ký.")
            replayed = insp.replay(visit.session, visit.org, int(asked))
        except DomainError as exc:
            replay_error, status = exc.message, 404
    cover = si.coverage(visit.session, visit.org, year)
    page = render_template(
        "oversight/sampling.html",
        year=year,
        draws=recorded,
        replayed=replayed,
        replay_error=replay_error,
        units=cover.units,
        names=_unit_names(visit),
        may_draw=visit.may("draw_sample") and not recorded,
    )
    return page, status


@bp.route("/chon-mau", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def draw() -> Response:
    visit = _visit()
    year = _year(visit)

    def change() -> str:
        record = insp.draw_sample(
            visit.session,
            visit.org,
            year,
            visit.user,
            now=now(),
            today=ward_today(),
            calendar=working_calendar(),
            rubric=scoring_rubric(),
            trail=audit_trail(),
            fraction=request.form.get("fraction", "").strip() or "0.2",
            seed=request.form.get("seed") or None,
            weights=request.form.get("weights", "uniform"),
            include=request.form.getlist("include"),
        )
        return (
            f"Đã chọn mẫu kiểm tra năm {year}: {', '.join(record.selected)} "
            f"(mục nhật ký số {record.audit_seq})."
        )

    return _commit_or_refuse(url_for("oversight.sampling", nam=year), change)


# --- inspections --------------------------------------------------------------------------------


@bp.route("/kiem-tra")
@login_required  # type: ignore[untyped-decorator]
def inspection_list() -> Any:
    visit = _visit()
    refused = _area_refused(visit)
    if refused is not None:
        return refused
    year = _year(visit)
    return render_template(
        "oversight/inspections.html",
        year=year,
        records=insp.inspections(visit.session, visit.org, year),
        draws=insp.draws(visit.session, visit.org, year),
        labels=insp.INSPECTION_STATE_LABELS,
        open_corrective=insp.open_corrective,
    )


def _inspection_or_404(visit: Visit, inspection_id: int) -> Inspection:
    try:
        return insp.load_inspection(visit.session, visit.org, inspection_id)
    except DomainError:
        abort(404)


@bp.route("/kiem-tra/<int:inspection_id>")
@login_required  # type: ignore[untyped-decorator]
def inspection(inspection_id: int) -> Any:
    visit = _visit()
    record = _inspection_or_404(visit, inspection_id)
    refused = _area_refused(visit)
    if refused is not None:
        return refused
    unit = record.unit.code
    state = insp.InspectionState
    return render_template(
        "oversight/inspection.html",
        r=record,
        labels=insp.INSPECTION_STATE_LABELS,
        blank_rows=BLANK_CORRECTIVE_ROWS,
        may_plan=record.state == state.PLANNED and visit.may("plan_inspection", unit),
        may_findings=(
            record.state in (state.PLANNED, state.FINDINGS_RECORDED)
            and visit.may("record_findings", unit)
        ),
        may_conclude=(
            record.state == state.FINDINGS_RECORDED and visit.may("conclude_inspection", unit)
        ),
        may_close=record.state == state.CONCLUDED and visit.may("close_inspection", unit),
    )


def _inspection_change(inspection_id: int, change: Callable[[Visit], str]) -> Response:
    visit = _visit()
    _inspection_or_404(visit, inspection_id)
    back = url_for("oversight.inspection", inspection_id=inspection_id)
    return _commit_or_refuse(back, lambda: change(visit))


@bp.route("/kiem-tra/<int:inspection_id>/ke-hoach", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def plan(inspection_id: int) -> Response:
    def change(visit: Visit) -> str:
        insp.plan_inspection(
            visit.session,
            visit.org,
            inspection_id,
            visit.user,
            plan_text=request.form.get("plan_text", ""),
            team=request.form.get("team", "").splitlines(),
            scheduled_on=_day(request.form.get("scheduled_on"), "Ngày kiểm tra"),
            now=now(),
            trail=audit_trail(),
            expected_version=_version(),
        )
        return "Đã lưu kế hoạch và đoàn kiểm tra."

    return _inspection_change(inspection_id, change)


@bp.route("/kiem-tra/<int:inspection_id>/ket-qua", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def findings(inspection_id: int) -> Response:
    def change(visit: Visit) -> str:
        insp.record_findings(
            visit.session,
            visit.org,
            inspection_id,
            visit.user,
            findings=request.form.get("findings", ""),
            now=now(),
            trail=audit_trail(),
            expected_version=_version(),
        )
        return "Đã ghi kết quả kiểm tra."

    return _inspection_change(inspection_id, change)


def _corrective_orders() -> list[insp.CorrectiveOrder]:
    orders = []
    rows = zip(request.form.getlist("description"), request.form.getlist("due"), strict=False)
    for position, (description, due_text) in enumerate(rows, start=1):
        if not description.strip():
            continue
        due = _day(due_text, f"Hạn khắc phục của việc thứ {position}")
        if due is None:
            raise DomainError(
                "invalid_due_date", f"Việc khắc phục thứ {position} cần có hạn (dd/mm/yyyy)."
            )
        orders.append(insp.CorrectiveOrder(description, due))
    return orders


@bp.route("/kiem-tra/<int:inspection_id>/ket-luan", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def conclude(inspection_id: int) -> Response:
    def change(visit: Visit) -> str:
        record = insp.conclude_inspection(
            visit.session,
            visit.org,
            inspection_id,
            visit.user,
            number=request.form.get("number", ""),
            conclusion=request.form.get("conclusion", ""),
            corrective=_corrective_orders(),
            now=now(),
            trail=audit_trail(),
            expected_version=_version(),
        )
        count = len(record.corrective_actions)
        return (
            f"Đã ban hành Thông báo kết luận số {record.conclusion_number}; "
            f"{count} việc khắc phục đã được giao cho {record.unit.code}."
        )

    return _inspection_change(inspection_id, change)


@bp.route("/kiem-tra/<int:inspection_id>/ket-thuc", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def close(inspection_id: int) -> Response:
    def change(visit: Visit) -> str:
        insp.close_inspection(
            visit.session,
            visit.org,
            inspection_id,
            visit.user,
            now=now(),
            trail=audit_trail(),
            expected_version=_version(),
        )
        return "Đã kết thúc cuộc kiểm tra."

    return _inspection_change(inspection_id, change)

"""The leadership's dashboard (/dieu-hanh): progress by section and by unit, the four national
statuses, the overdue list and the plan's targets as of a day, with bar charts drawn as inline
SVG (no script, no outside service). The numbers come from workflow.reports."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from app.clock import SystemClock
from app.database import db_session
from definitions.calendar import WorkingCalendar, load_calendar
from workflow import periodic, reports, selfinspection
from workflow.clock import ward_date
from workflow.deadlines import (
    COMPLETED_LATE,
    COMPLETED_ON_TIME,
    NATIONAL_STATUS_LABELS,
    OPEN_LATE,
    OPEN_ON_TIME,
)
from workflow.engine import Engine
from workflow.models import Organization
from workflow.reports import NATIONAL_STATUSES, Progress, percent

bp = Blueprint("dashboard", __name__)


@functools.cache
def working_calendar() -> WorkingCalendar:
    """The working calendar (the holidays package under the override table), loaded once."""
    return load_calendar()


def ward_today() -> date:
    """Today in Việt Nam, read from the wall clock at the request boundary."""
    return ward_date(SystemClock().now())


def parse_day(value: str) -> date | None:
    """A day typed as dd/mm/yyyy (or sent as yyyy-mm-dd by a date field); None if neither."""
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
    return None


# --- charts: geometry for inline SVG ----------------------------------------------------------

CHART_WIDTH = 640
LABEL_WIDTH = 90  # room for a unit code or a section numeral
BAR_WIDTH = 380  # a full bar
ROW_HEIGHT = 28
BAR_HEIGHT = 18

# Fill colours, as SVG presentation attributes (the CSP forbids style attributes).
DONE_FILL = "#1d7a35"
TRACK_FILL = "#e6e6e6"
NATIONAL_FILLS: dict[str, str] = {
    COMPLETED_ON_TIME: "#1d7a35",
    COMPLETED_LATE: "#b7791f",
    OPEN_ON_TIME: "#2b6cb0",
    OPEN_LATE: "#a50e0e",
}


@dataclass(frozen=True)
class Bar:
    label: str  # at the left of the bar
    title: str  # the tooltip (SVG <title>)
    value_text: str  # at the right of the bar
    y: int
    width: int  # of the filled part, 0..BAR_WIDTH
    fill: str

    @property
    def text_y(self) -> int:
        return self.y + BAR_HEIGHT - 4


@dataclass(frozen=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    width: int = CHART_WIDTH
    label_width: int = LABEL_WIDTH
    bar_width: int = BAR_WIDTH
    bar_height: int = BAR_HEIGHT

    @property
    def height(self) -> int:
        return max(1, len(self.bars)) * ROW_HEIGHT + 4

    @property
    def value_x(self) -> int:
        return self.label_width + self.bar_width + 8


def vn_percent(value: Any) -> str:
    """85.7 → "85,7%"; a whole number without decimals ("100%"); "—" when there is none."""
    if value is None:
        return "—"
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return text.replace(".", ",") + "%"


def _scaled(part: int, whole: int) -> int:
    return part * BAR_WIDTH // whole if whole > 0 else 0


def progress_chart(title: str, rows: Sequence[Progress]) -> Chart:
    """One bar per row: the share of its instances accepted."""
    bars = []
    for i, row in enumerate(rows):
        done = vn_percent(row.completion)
        bars.append(
            Bar(
                label=row.key,
                title=f"{row.key} — {row.title}: {row.accepted}/{row.instances} ({done})",
                value_text=f"{row.accepted}/{row.instances} · {done}",
                y=i * ROW_HEIGHT + 4,
                width=_scaled(row.accepted, row.instances),
                fill=DONE_FILL,
            )
        )
    return Chart(title, tuple(bars))


def national_chart(counts: dict[str, int]) -> Chart:
    """One bar per national status, scaled to all instances counted."""
    total = sum(counts.values())
    bars = []
    for i, status in enumerate(NATIONAL_STATUSES):
        count = counts.get(status, 0)
        share = vn_percent(percent(count, total))
        label = NATIONAL_STATUS_LABELS[status]
        bars.append(
            Bar(
                label=str(i + 1),
                title=f"{label}: {count} ({share})",
                value_text=f"{count} · {share}",
                y=i * ROW_HEIGHT + 4,
                width=_scaled(count, total),
                fill=NATIONAL_FILLS[status],
            )
        )
    return Chart("Bốn trạng thái theo dõi nhiệm vụ", tuple(bars), label_width=30)


# --- the page ---------------------------------------------------------------------------------


@bp.route("/dieu-hanh")
@login_required  # type: ignore[untyped-decorator]
def overview() -> Any:
    user = current_user.user
    refused = Engine.may_open("dashboard", user)
    if refused is not None:
        return render_template("dashboard.html", refused=refused.message), 403
    session = db_session()
    org = session.get_one(Organization, user.organization_id)
    today = ward_today()
    as_of, error, status = today, None, 200
    asked = request.args.get("as_of", "").strip()
    if asked:
        parsed = parse_day(asked)
        if parsed is None:
            error = f"“{asked}” không phải ngày hợp lệ (dd/mm/yyyy); đang hiển thị số liệu hôm nay."
            status = 400
        else:
            as_of = parsed
    plan = reports.current_plan(session, org)
    definition = reports.plan_definition(plan) if plan is not None else None
    report = reports.overview(
        session,
        org,
        as_of=as_of,
        calendar=working_calendar(),
        sections=definition.sections if definition is not None else (),
    )
    page = render_template(
        "dashboard.html",
        refused=None,
        error=error,
        org=org,
        plan=plan,
        today=today,
        report=report,
        kpis=reports.kpi_targets(definition),
        national_labels=NATIONAL_STATUS_LABELS,
        national_fills=NATIONAL_FILLS,
        statuses=NATIONAL_STATUSES,
        section_chart=progress_chart("Tiến độ theo lĩnh vực (I–VII)", report.by_section),
        unit_chart=progress_chart("Tiến độ theo đơn vị chủ trì", report.by_unit),
        national_chart=national_chart(report.national),
        coverage=(
            selfinspection.coverage(session, org, plan.year).as_json() if plan is not None else None
        ),
        report_deadlines=periodic.report_deadlines(
            session, org, definition, today=today, calendar=working_calendar()
        ),
    )
    return page, status

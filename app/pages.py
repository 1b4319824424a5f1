"""Simple pages: the work list of the signed-in person's unit, notifications, the menu."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.clock import SystemClock
from app.dashboard import vn_percent, ward_today, working_calendar
from app.database import db_session
from workflow.clock import WARD_TZ
from workflow.deadlines import DEADLINE_STATUS_LABELS
from workflow.engine import Engine
from workflow.models import Organization
from workflow.periodic import report_deadlines
from workflow.queries import mark_read, notifications_for, unread_count
from workflow.reports import current_plan, period_labels, plan_definition, work_list
from workflow.states import REMARK_KIND_LABELS, TASK_STATE_LABELS, RemarkKind, TaskState

bp = Blueprint("pages", __name__)


def register_filters(app: Flask) -> None:
    @app.template_filter("vn_date")
    def vn_date(value: date | None) -> str:
        return value.strftime("%d/%m/%Y") if value else "—"

    @app.template_filter("vn_time")
    def vn_time(value: datetime | None) -> str:
        return value.astimezone(WARD_TZ).strftime("%H:%M %d/%m/%Y") if value else "—"

    @app.template_filter("iso_vn_date")
    def iso_vn_date(value: str | None) -> str:
        return vn_date(date.fromisoformat(value)) if value else "chưa xác định"

    @app.template_filter("iso_vn_time")
    def iso_vn_time(value: str) -> str:
        return vn_time(datetime.fromisoformat(value))

    @app.template_filter("vn_datetime")
    def vn_datetime(value: datetime | None) -> str:
        """dd/mm/yyyy HH:MM in Asia/Ho_Chi_Minh."""
        return value.astimezone(WARD_TZ).strftime("%d/%m/%Y %H:%M") if value else "—"

    @app.template_filter("vn_number")
    def vn_number(value: Decimal | int | None) -> str:
        """95 → "95", Decimal("95.5") → "95,5", 1200 → "1.200" (Vietnamese separators)."""
        if value is None:
            return "—"
        whole, _, fraction = f"{value:,}".partition(".")
        whole = whole.replace(",", ".")
        return f"{whole},{fraction}" if fraction else whole

    app.add_template_filter(vn_percent, "vn_percent")

    @app.template_filter("deadline_label")
    def deadline_label(value: str) -> str:
        return DEADLINE_STATUS_LABELS.get(value, value)

    @app.template_filter("comparator")
    def comparator(value: str) -> str:
        return {">=": "≥", "<=": "≤"}.get(value, value)

    @app.template_filter("remark_kind")
    def remark_kind(value: str) -> str:
        return REMARK_KIND_LABELS.get(RemarkKind(value), value)

    @app.template_filter("state_label")
    def state_label(value: str) -> str:
        return TASK_STATE_LABELS.get(TaskState(value), value)


@bp.route("/")
@login_required  # type: ignore[untyped-decorator]
def index() -> Any:
    """The unit's work by due date, coloured by deadline status, filtered by section, period,
    state and deadline status (GET parameters; an unknown value filters nothing)."""
    user = current_user.user
    session = db_session()
    org = session.get_one(Organization, user.organization_id)
    unit_filter = request.args.get("unit") or (user.unit.code if user.unit else None)
    if unit_filter == "all":
        unit_filter = None
    plan = current_plan(session, org)
    definition = plan_definition(plan) if plan is not None else None
    sections = list(definition.sections) if definition is not None else []
    periods = period_labels(session, org, unit=unit_filter)
    chosen = {
        "section": _choice("section", {s.number for s in sections}),
        "period": _choice("period", set(periods)),
        "state": _choice("state", {s.value for s in TaskState}),
        "status": _choice("status", set(DEADLINE_STATUS_LABELS)),
    }
    number_arg = request.args.get("number", "")
    number = int(number_arg) if number_arg.isdigit() and len(number_arg) < 6 else None
    rows = work_list(
        session,
        org,
        today=ward_today(),
        calendar=working_calendar(),
        unit=unit_filter,
        section=chosen["section"],
        period=chosen["period"],
        state=chosen["state"],
        status=chosen["status"],
        number=number,
    )
    counts = Counter(row.status for row in rows)
    # The periodic reports are the work of the unit they go through (VHXH): their deadlines
    # stand with that unit's task deadlines.
    via = definition.reporting.via if definition is not None else None
    reports_due = (
        [
            r
            for r in report_deadlines(
                session, org, definition, today=ward_today(), calendar=working_calendar()
            )
            if not r.generated
        ]
        if definition is not None and unit_filter in (None, via)
        else []
    )
    return render_template(
        "index.html",
        rows=rows,
        unit=unit_filter,
        org=org,
        sections=sections,
        periods=periods,
        states=TASK_STATE_LABELS,
        status_labels=DEADLINE_STATUS_LABELS,
        chosen=chosen,
        number=number,
        counts=counts,
        reports_due=reports_due,
    )


def _choice(name: str, allowed: set[str]) -> str | None:
    value = request.args.get(name) or None
    return value if value in allowed else None


@bp.route("/thong-bao", methods=["GET", "POST"])
@login_required  # type: ignore[untyped-decorator]
def notifications() -> Any:
    """The person's notifications; POST marks them all read."""
    user = current_user.user
    session = db_session()
    if request.method == "POST":
        mark_read(session, user, now=SystemClock().now())
        session.commit()
        return redirect(url_for("pages.notifications"))
    return render_template("notifications.html", items=notifications_for(session, user))


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    """The unread count and `can(area)` for the menu: the engine decides, the menu obeys."""
    if not current_user.is_authenticated:
        return {"unread": 0, "can": lambda _area: False}
    user = current_user.user
    return {
        "unread": unread_count(db_session(), user),
        "can": lambda area: Engine.may_open(area, user) is None,
    }

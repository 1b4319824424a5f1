"""Simple pages: the task list of the signed-in person's unit (the web issue builds the rest)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.clock import SystemClock
from app.database import db_session
from workflow.clock import WARD_TZ
from workflow.models import Organization
from workflow.queries import list_instances, mark_read, notifications_for, unread_count
from workflow.states import TASK_STATE_LABELS, TaskState

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

    @app.template_filter("state_label")
    def state_label(value: str) -> str:
        return TASK_STATE_LABELS.get(TaskState(value), value)


@bp.route("/")
@login_required  # type: ignore[untyped-decorator]
def index() -> Any:
    user = current_user.user
    session = db_session()
    org = session.get_one(Organization, user.organization_id)
    unit_filter = request.args.get("unit") or (user.unit.code if user.unit else None)
    if unit_filter == "all":
        unit_filter = None
    rows = list_instances(session, org, unit=unit_filter)
    return render_template("index.html", rows=rows, unit=unit_filter, org=org)


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
def _unread() -> dict[str, Any]:
    if not current_user.is_authenticated:
        return {"unread": 0}
    return {"unread": unread_count(db_session(), current_user.user)}

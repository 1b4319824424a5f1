"""Simple pages: the task list of the signed-in person's unit (the web issue builds the rest)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Flask, render_template, request
from flask_login import current_user, login_required

from app.database import db_session
from workflow.models import Organization
from workflow.queries import list_instances
from workflow.states import TASK_STATE_LABELS, TaskState

bp = Blueprint("pages", __name__)


def register_filters(app: Flask) -> None:
    @app.template_filter("vn_date")
    def vn_date(value: date | None) -> str:
        return value.strftime("%d/%m/%Y") if value else "—"

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

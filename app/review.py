"""VHXH's review queue (/tham-dinh): the submitted and reviewed work of the ward, oldest
submission first, each row saying what this person may do on it now (the engine decides; the
review and decision forms are on the task page)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from app.clock import SystemClock
from app.dashboard import ward_today, working_calendar
from app.database import audit_trail, db_session
from workflow.engine import Engine
from workflow.lifecycle import EVENT_LABELS
from workflow.models import Organization
from workflow.reports import review_queue

bp = Blueprint("review", __name__)


@bp.route("/tham-dinh")
@login_required  # type: ignore[untyped-decorator]
def queue() -> Any:
    user = current_user.user
    refused = Engine.may_open("review_queue", user)
    if refused is not None:
        return render_template("review_queue.html", refused=refused.message), 403
    session = db_session()
    org = session.get_one(Organization, user.organization_id)
    engine = Engine(session, audit_trail(), SystemClock())
    entries = review_queue(session, org, today=ward_today(), calendar=working_calendar())
    rows = [(entry, engine.enabled_events(entry.instance, user)) for entry in entries]
    mine = request.args.get("cua_toi") == "1"
    actionable = sum(1 for _, events in rows if events)
    if mine:
        rows = [(entry, events) for entry, events in rows if events]
    return render_template(
        "review_queue.html",
        refused=None,
        rows=rows,
        total=len(entries),
        actionable=actionable,
        mine=mine,
        labels=EVENT_LABELS,
    )

"""The signed-in person's profile: their API tokens for programs. Creating and revoking go
through workflow.tokens, which checks and audits them; the view parses the form and commits
once. A new token's secret appears in the response that created it and nowhere else."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.api_support import ward_day_end
from app.clock import SystemClock
from app.dashboard import parse_day
from app.database import audit_trail, db_session
from workflow.clock import WARD_TZ
from workflow.errors import DomainError
from workflow.models import ApiToken, Organization
from workflow.tokens import NAME_MAX_LENGTH, create_token, revoke_token, tokens_of

bp = Blueprint("profile", __name__, url_prefix="/ho-so")


def _last_day(expires_at: datetime) -> date:
    """The last ward day a token works: expiries are set to the start of the following day."""
    return (expires_at - timedelta(microseconds=1)).astimezone(WARD_TZ).date()


def _render(now: datetime, *, new_token: str | None = None, status: int = 200) -> Response:
    user = current_user.user
    rows: list[ApiToken] = tokens_of(db_session(), user)
    page = render_template(
        "profile.html",
        person=user,
        tokens=rows,
        now=now,
        new_token=new_token,
        name_max=NAME_MAX_LENGTH,
        last_day=_last_day,
    )
    response = make_response(page, status)
    # the page may carry a secret shown once: no cache keeps a copy of it
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("")
@login_required  # type: ignore[untyped-decorator]
def show() -> Response:
    return _render(SystemClock().now())


@bp.route("/ma-truy-cap", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def create() -> Any:
    user = current_user.user
    session = db_session()
    now = SystemClock().now()
    try:
        expires_at = None
        typed = request.form.get("expires_on", "").strip()
        if typed:
            day = parse_day(typed)
            if day is None:
                raise DomainError("invalid_date", f"“{typed}” không phải ngày hợp lệ (dd/mm/yyyy).")
            expires_at = ward_day_end(day)
        _token, plaintext = create_token(
            session,
            session.get_one(Organization, user.organization_id),
            user,
            name=request.form.get("name", ""),
            now=now,
            trail=audit_trail(),
            expires_at=expires_at,
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("profile.show"))
    # Rendered here rather than redirected: the secret must not travel in the session cookie.
    return _render(now, new_token=plaintext, status=201)


@bp.route("/ma-truy-cap/<int:token_id>/thu-hoi", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def revoke(token_id: int) -> Response:
    session = db_session()
    try:
        token = revoke_token(
            session,
            token_id,
            actor=current_user.user,
            now=SystemClock().now(),
            trail=audit_trail(),
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        if exc.code == "not_found":
            return make_response(render_template("profile_missing.html", message=exc.message), 404)
        flash(exc.message, "error")
        return redirect(url_for("profile.show"))
    flash(f"Đã thu hồi mã truy cập “{token.name}”.", "ok")
    return redirect(url_for("profile.show"))

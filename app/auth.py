"""Signing in and out (flask-login). Password checks and their audit entries are the domain's."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from werkzeug.wrappers import Response

from app.clock import SystemClock
from app.database import audit_trail, db_session
from workflow.login import sign_in, sign_out
from workflow.models import User

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Vui lòng đăng nhập để tiếp tục."


class SessionUser(UserMixin):  # type: ignore[misc]
    """What flask-login keeps of a person: the id. Everything else is read per request."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = str(user.id)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)


@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(user_id: str) -> SessionUser | None:
    user = db_session().get(User, int(user_id))
    if user is None or not user.active:
        return None
    return SessionUser(user)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        session = db_session()
        outcome = sign_in(
            session,
            request.form.get("username", ""),
            request.form.get("password", ""),
            now=SystemClock().now(),
            trail=audit_trail(),
        )
        session.commit()  # a failed attempt is audited and counted too
        if outcome.user is not None:
            login_user(SessionUser(outcome.user))
            return redirect(url_for("pages.index"))
        flash(outcome.message, "error")
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
@login_required  # type: ignore[untyped-decorator]
def logout() -> Response:
    session = db_session()
    sign_out(
        session,
        current_user.user,
        now=SystemClock().now(),
        trail=audit_trail(),
    )
    session.commit()
    logout_user()
    return redirect(url_for("auth.login"))

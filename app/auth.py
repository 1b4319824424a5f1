"""Signing in and out (flask-login). Password checks and their audit entries are the domain's."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
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


def _password_stamp(user: User) -> str:
    """A keyed fingerprint of the person's current password hash: a session remembers it, so
    setting or resetting the password ends every other session (as deactivation does)."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(key, (user.password_hash or "").encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


class SessionUser(UserMixin):  # type: ignore[misc]
    """What flask-login keeps of a person: the id and the password's stamp ("<id>:<stamp>").
    Everything else is read per request."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = f"{user.id}:{_password_stamp(user)}"


def init_app(app: Flask) -> None:
    login_manager.init_app(app)


@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(session_id: str) -> SessionUser | None:
    number, _, stamp = session_id.partition(":")
    if not number.isdigit() or not stamp:
        return None  # a session from before stamps, or a forged one: sign in again
    user = db_session().get(User, int(number))
    if user is None or not user.active:
        return None
    if not hmac.compare_digest(stamp, _password_stamp(user)):
        return None  # the password changed since this session signed in
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

"""The administrator's pages: the ward's units, its people and their roles, activation and
password resets. Every change goes through workflow.accounts, which audits it; the view
parses the form and commits once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from app.auth import login_manager
from app.clock import SystemClock
from app.database import audit_trail, db_session
from workflow.accounts import (
    MIN_PASSWORD_LENGTH,
    create_user,
    reset_password,
    set_active,
    set_email,
    set_roles,
)
from workflow.engine import Engine
from workflow.errors import DomainError
from workflow.models import Organization, Unit, User
from workflow.queries import list_users
from workflow.states import ROLE_LABELS, Role
from workflow.trail import Actor, actor_of

bp = Blueprint("admin", __name__, url_prefix="/quan-tri")

ROLE_CHOICES = [(role.value, ROLE_LABELS[role]) for role in Role]


@bp.before_request
def _admins_only() -> Any:
    """Every page here: signed in, and the engine lets this person open administration."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    refusal = Engine.may_open("admin", current_user.user)
    if refusal is not None:
        return render_template("admin_refused.html", message=refusal.message), 403
    return None


def _ward() -> Organization:
    return db_session().get_one(Organization, current_user.user.organization_id)


def _actor() -> Actor:
    return actor_of(current_user.user, Role.ADMIN.value)


def _units(org: Organization) -> list[Unit]:
    return list(
        db_session().scalars(select(Unit).where(Unit.organization_id == org.id).order_by(Unit.code))
    )


def _person(user_id: int) -> User:
    """Someone of the administrator's own ward (404 for anyone else)."""
    user = db_session().get(User, user_id)
    if user is None or user.organization_id != current_user.user.organization_id:
        abort(404)
    return user


def _role_label(name: str) -> str:
    try:
        return ROLE_LABELS[Role(name)]
    except ValueError:
        return name


def _role_labels(user: User) -> list[str]:
    return [_role_label(r) for r in user.role_names]


# --- reading ----------------------------------------------------------------------------------


@bp.route("/nguoi-dung")
def users() -> Any:
    org = _ward()
    people = list_users(db_session(), org)
    return render_template(
        "admin_users.html",
        org=org,
        people=[{"user": u, "roles": _role_labels(u)} for u in people],
        units=_units(org),
        role_choices=ROLE_CHOICES,
        min_length=MIN_PASSWORD_LENGTH,
    )


@bp.route("/don-vi")
def units() -> Any:
    org = _ward()
    rows = db_session().execute(
        select(User.unit_id, func.count())
        .where(User.organization_id == org.id, User.active.is_(True))
        .group_by(User.unit_id)
    )
    counts = {unit_id: int(count) for unit_id, count in rows}
    return render_template("admin_units.html", org=org, units=_units(org), counts=counts)


@bp.route("/nguoi-dung/<int:user_id>")
def user(user_id: int) -> Any:
    person = _person(user_id)
    org = _ward()
    history = audit_trail().ledger(org).history(db_session(), "user", person.username)
    return render_template(
        "admin_user.html",
        person=person,
        roles=_role_labels(person),
        role_choices=ROLE_CHOICES,
        min_length=MIN_PASSWORD_LENGTH,
        history=list(reversed(history[-30:])),
        is_me=person.id == current_user.user.id,
    )


# --- changing (each one audited by workflow.accounts) -------------------------------------------


@bp.route("/nguoi-dung/them", methods=["POST"])
def create() -> Response:
    session = db_session()
    org = _ward()
    form = request.form
    try:
        unit = None
        code = form.get("unit", "").strip()
        if code:
            unit = next((u for u in _units(org) if u.code == code), None)
            if unit is None:
                raise DomainError("unknown_unit", f"Không có đơn vị mã “{code}”.")
        roles = form.getlist("roles")
        if not roles:
            raise DomainError("roles_required", "Hãy chọn ít nhất một vai trò.")
        full_name = form.get("full_name", "").strip()
        if not full_name:
            raise DomainError("full_name_required", "Hãy nhập họ và tên.")
        person = create_user(
            session,
            org,
            username=form.get("username", ""),
            full_name=full_name,
            unit=unit,
            roles=roles,
            password=form.get("password", ""),
            actor=_actor(),
            now=SystemClock().now(),
            trail=audit_trail(),
            email=form.get("email", ""),
        )
        session.commit()
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.users"))
    flash(f"Đã tạo tài khoản “{person.username}”.", "ok")
    return redirect(url_for("admin.user", user_id=person.id))


@bp.route("/nguoi-dung/<int:user_id>/vai-tro", methods=["POST"])
def roles(user_id: int) -> Response:
    session = db_session()
    person = _person(user_id)
    try:
        set_roles(
            session,
            _ward(),
            person,
            request.form.getlist("roles"),
            actor=_actor(),
            now=SystemClock().now(),
            trail=audit_trail(),
        )
        session.commit()
        flash(f"Đã cập nhật vai trò của “{person.username}”.", "ok")
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/nguoi-dung/<int:user_id>/thu-dien-tu", methods=["POST"])
def email(user_id: int) -> Response:
    session = db_session()
    person = _person(user_id)
    try:
        set_email(
            session,
            _ward(),
            person,
            request.form.get("email", ""),
            actor=_actor(),
            now=SystemClock().now(),
            trail=audit_trail(),
        )
        session.commit()
        flash(f"Đã cập nhật thư điện tử của “{person.username}”.", "ok")
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/nguoi-dung/<int:user_id>/trang-thai", methods=["POST"])
def activation(user_id: int) -> Response:
    session = db_session()
    person = _person(user_id)
    wanted = request.form.get("active")
    if wanted not in ("0", "1"):
        abort(400)
    try:
        set_active(
            session,
            _ward(),
            person,
            wanted == "1",
            actor=_actor(),
            now=SystemClock().now(),
            trail=audit_trail(),
        )
        session.commit()
        done = "kích hoạt lại" if wanted == "1" else "ngừng kích hoạt"
        flash(f"Đã {done} tài khoản “{person.username}”.", "ok")
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/nguoi-dung/<int:user_id>/mat-khau", methods=["POST"])
def password(user_id: int) -> Response:
    session = db_session()
    person = _person(user_id)
    new = request.form.get("password", "")
    try:
        if new != request.form.get("confirm", ""):
            raise DomainError("password_mismatch", "Mật khẩu nhập lại không khớp.")
        reset_password(
            session,
            _ward(),
            person,
            new,
            actor=_actor(),
            now=SystemClock().now(),
            trail=audit_trail(),
        )
        session.commit()
        flash(f"Đã đặt lại mật khẩu cho “{person.username}”.", "ok")
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.user", user_id=user_id))

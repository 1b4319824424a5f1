"""People and their roles: creating accounts, setting passwords, checking them; all audited."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflow.db import hold_ward
from workflow.errors import DomainError
from workflow.models import Organization, Unit, User, UserRole
from workflow.states import Role
from workflow.trail import Actor, AuditTrail

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(unicodedata.normalize("NFC", password))


def password_matches(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return _hasher.verify(user.password_hash, unicodedata.normalize("NFC", password))
    except (VerificationError, InvalidHashError):
        return False


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(
            "weak_password",
            f"Mật khẩu phải có ít nhất {MIN_PASSWORD_LENGTH} ký tự.",
        )


def _roles(names: Iterable[str]) -> list[str]:
    valid = {r.value for r in Role}
    roles = sorted(set(names))
    unknown = [r for r in roles if r not in valid]
    if unknown:
        raise DomainError(
            "unknown_role",
            f"Vai trò không tồn tại: {', '.join(unknown)}. "
            f"Các vai trò hợp lệ: {', '.join(sorted(valid))}.",
        )
    return roles


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def clean_email(value: str | None) -> str | None:
    """An address to e-mail notifications to (lower-cased domain), None when empty; refuses
    what is not one."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > 255 or not _EMAIL.match(text):
        raise DomainError("invalid_email", f"“{text}” không phải địa chỉ thư điện tử hợp lệ.")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def _new_password_hash(password: str) -> str:
    """The hash of a new password, its length rule checked. Hashing is slow on purpose, so it
    runs before the account's row is locked."""
    _check_password(password)
    return hash_password(password)


def _replace_password(user: User, password_hash: str) -> None:
    """Set the new password's hash and lift the sign-in throttle."""
    user.password_hash = password_hash
    user.failed_logins = 0
    user.locked_until = None


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def _taken(org: Organization, username: str, holder: User) -> DomainError:
    """The refusal of a taken username. Names are unique across every ward of the database,
    so an administrator who finds no such account in their own ward is told it is in another
    (not which one)."""
    if holder.organization_id != org.id:
        return DomainError(
            "username_taken",
            f"Tên đăng nhập “{username}” đã được một tài khoản ở phường khác sử dụng "
            "(tên đăng nhập không được trùng trong toàn hệ thống). Vui lòng chọn tên khác.",
        )
    return DomainError("username_taken", f"Tên đăng nhập “{username}” đã được sử dụng.")


def create_user(
    session: Session,
    org: Organization,
    *,
    username: str,
    full_name: str,
    unit: Unit | None,
    roles: Iterable[str],
    password: str | None,
    actor: Actor,
    now: datetime,
    trail: AuditTrail,
    email: str | None = None,
) -> User:
    """Create an account; refuses a taken username. The caller commits."""
    username = username.strip().lower()
    if not username:
        raise DomainError("invalid_username", "Tên đăng nhập không được để trống.")
    holder = find_user(session, username)
    if holder is not None:
        raise _taken(org, username, holder)
    role_names = _roles(roles)
    if not role_names:
        raise DomainError("role_required", "Mỗi tài khoản cần ít nhất một vai trò.")
    if not full_name.strip():
        raise DomainError("name_required", "Cần nhập họ và tên.")
    if password is not None:
        _check_password(password)
    address = clean_email(email)
    user = User(
        organization_id=org.id,
        username=username,
        full_name=unicodedata.normalize("NFC", full_name),
        email=address,
        unit_id=unit.id if unit else None,
        password_hash=hash_password(password) if password is not None else None,
        active=True,
        failed_logins=0,
        created_at=now,
    )
    user.roles = [UserRole(role=r) for r in role_names]
    try:
        # Names are unique across wards: one taken by another request meanwhile, in this ward
        # or another, is refused like one taken before, not failed on the constraint.
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        holder = find_user(session, username)
        if holder is None:
            raise
        raise _taken(org, username, holder) from None
    trail.record(
        session,
        org,
        now=now,
        actor=actor,
        action="user.created",
        object_type="user",
        object_id=username,
        after={
            "unit": unit.code if unit else None,
            "roles": role_names,
            "full_name": user.full_name,
            "email": address,
        },
    )
    return user


def set_email(
    session: Session,
    org: Organization,
    user: User,
    email: str | None,
    *,
    actor: Actor,
    now: datetime,
    trail: AuditTrail,
) -> None:
    """Record (or clear, with an empty value) where the person's notifications are e-mailed.
    Audited; the caller commits."""
    _held(session, org, user)
    address = clean_email(email)
    if address == user.email:
        raise DomainError("unchanged", "Địa chỉ thư điện tử không thay đổi.")
    before = user.email
    user.email = address
    session.flush()
    trail.record(
        session,
        org,
        now=now,
        actor=actor,
        action="user.email_set",
        object_type="user",
        object_id=user.username,
        before={"email": before},
        after={"email": address},
    )


def set_password(
    session: Session,
    org: Organization,
    user: User,
    password: str,
    *,
    actor: Actor,
    now: datetime,
    trail: AuditTrail,
) -> None:
    """The person changes their own password (the same length rule). Audited; the caller
    commits."""
    _in_ward(org, user)
    password_hash = _new_password_hash(password)
    _read_again_locked(session, user)
    _replace_password(user, password_hash)
    session.flush()
    # The log records that the password changed, never the password or its hash.
    trail.record(
        session,
        org,
        now=now,
        actor=actor,
        action="user.password_set",
        object_type="user",
        object_id=user.username,
    )


# --- administration: roles, activation, password resets (each one audit entry) ------------


def _in_ward(org: Organization, user: User) -> None:
    if user.organization_id != org.id:
        raise DomainError("unknown_user", f"Không có tài khoản “{user.username}” trong phường này.")


def _held(session: Session, org: Organization, user: User) -> None:
    """The account, in this ward, read again under its row lock: of two changes at once (a
    double click, two administrators), the second sees what the first committed, so that it
    is refused as unchanged rather than logged twice, or logs the roles it really replaced."""
    _in_ward(org, user)
    _read_again_locked(session, user)


def _read_again_locked(session: Session, user: User) -> None:
    """`_held` once the ward is checked (a password change checks it before hashing)."""
    session.flush()  # a refresh would drop changes not yet flushed
    session.refresh(user, with_for_update={"key_share": True})


def _keep_an_admin(session: Session, org: Organization, user: User) -> None:
    """Refuse a change that would leave the ward without an active administrator (nobody
    could then manage accounts from the web). Two such changes at once queue on the ward's
    row, so that the second counts the administrators the first left."""
    hold_ward(session, org.id)
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(
            User.organization_id == org.id,
            User.active.is_(True),
            User.id != user.id,
            UserRole.role == Role.ADMIN.value,
        )
    )
    if not others:
        raise DomainError(
            "last_admin",
            "Phường phải còn ít nhất một tài khoản quản trị hệ thống đang hoạt động: "
            "không thể bỏ vai trò quản trị hoặc ngừng kích hoạt tài khoản này.",
        )


def _role_key(role: UserRole) -> str:
    return role.role


def set_roles(
    session: Session,
    org: Organization,
    user: User,
    roles: Iterable[str],
    *,
    actor: Actor,
    now: datetime,
    trail: AuditTrail,
) -> None:
    """Replace a person's roles (at least one); refuses an unchanged set and the removal of
    the ward's last active administrator. The caller commits."""
    _held(session, org, user)
    new = _roles(roles)
    if not new:
        raise DomainError("roles_required", "Hãy chọn ít nhất một vai trò.")
    old = sorted(user.role_names)
    if new == old:
        raise DomainError("unchanged", f"Vai trò của “{user.username}” không thay đổi.")
    if Role.ADMIN.value in old and Role.ADMIN.value not in new and user.active:
        _keep_an_admin(session, org, user)
    # Rows of the roles that stay are kept: deleting and re-inserting the same key in one
    # flush would collide.
    kept = [r for r in user.roles if r.role in new]
    have = {r.role for r in kept}
    user.roles = sorted(kept + [UserRole(role=r) for r in new if r not in have], key=_role_key)
    session.flush()
    trail.record(
        session,
        org,
        now=now,
        actor=actor,
        action="user.roles_changed",
        object_type="user",
        object_id=user.username,
        before={"roles": old},
        after={"roles": new},
    )


def set_active(
    session: Session,
    org: Organization,
    user: User,
    active: bool,
    *,
    actor: Actor,
    now: datetime,
    trail: AuditTrail,
) -> None:
    """Deactivate an account (it can no longer sign in; its history stays) or activate it
    again. Nobody deactivates their own account or the ward's last active administrator."""
    _held(session, org, user)
    if user.active == active:
        state = "đang hoạt động" if active else "đã ngừng hoạt động"
        raise DomainError("unchanged", f"Tài khoản “{user.username}” {state}.")
    if not active:
        if actor.user == user.username:
            raise DomainError(
                "self_deactivation", "Không thể tự ngừng kích hoạt tài khoản của chính mình."
            )
        if Role.ADMIN.value in user.role_names:
            _keep_an_admin(session, org, user)
    user.active = active
    session.flush()
    trail.record(
        session,
        org,
        now=now,
        actor=actor,
        action="user.activated" if active else "user.deactivated",
        object_type="user",
        object_id=user.username,
        before={"active": not active},
        after={"active": active},
    )


def reset_password(
    session: Session,
    org: Organization,
    user: User,
    password: str,
    *,
    actor: Actor,
    now: datetime,
    trail: AuditTrail,
) -> None:
    """An administrator sets a new password for someone (same length rule as always); the
    sign-in throttle is cleared. The log records the reset, never the password."""
    _in_ward(org, user)
    password_hash = _new_password_hash(password)
    # Read under the lock: a lock-out committed meanwhile is then seen, logged and lifted (the
    # ORM writes only what differs from what it read).
    _read_again_locked(session, user)
    was_locked = user.locked_until is not None and user.locked_until > now
    _replace_password(user, password_hash)
    session.flush()
    trail.record(
        session,
        org,
        now=now,
        actor=actor,
        action="user.password_reset",
        object_type="user",
        object_id=user.username,
        details={"unlocked": was_locked},
    )

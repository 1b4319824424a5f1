"""People and their roles: creating accounts, setting passwords, checking them; all audited."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

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


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


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
) -> User:
    """Create an account; refuses a taken username. The caller commits."""
    username = username.strip().lower()
    if not username:
        raise DomainError("invalid_username", "Tên đăng nhập không được để trống.")
    if find_user(session, username) is not None:
        raise DomainError("username_taken", f"Tên đăng nhập “{username}” đã được sử dụng.")
    role_names = _roles(roles)
    if password is not None:
        _check_password(password)
    user = User(
        organization_id=org.id,
        username=username,
        full_name=unicodedata.normalize("NFC", full_name),
        unit_id=unit.id if unit else None,
        password_hash=hash_password(password) if password is not None else None,
        active=True,
        failed_logins=0,
        created_at=now,
    )
    user.roles = [UserRole(role=r) for r in role_names]
    session.add(user)
    session.flush()
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
        },
    )
    return user


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
    _check_password(password)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
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

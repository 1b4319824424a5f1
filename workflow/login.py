"""Signing in: password check, throttling after repeated failures, and the audit entries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from workflow.accounts import find_user, password_matches
from workflow.models import Organization, User
from workflow.trail import Actor, AuditTrail

log = logging.getLogger(__name__)

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
BAD_CREDENTIALS = "Tên đăng nhập hoặc mật khẩu không đúng."


@dataclass(frozen=True)
class SignInOutcome:
    user: User | None
    message: str


def _actor(user: User) -> Actor:
    return Actor(user=user.username, unit=user.unit.code if user.unit else None, role="user")


def _locked_out(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def sign_in(
    session: Session, username: str, password: str, *, now: datetime, trail: AuditTrail
) -> SignInOutcome:
    """Check a password. Failures and successes of known accounts are audited; the caller
    commits either way so that failed attempts count."""
    user = find_user(session, username.strip().lower())
    if user is None or not user.active:
        # An unknown name belongs to no ward's log; the server log keeps it.
        log.info("sign-in refused for unknown or inactive account %r", username)
        return SignInOutcome(None, BAD_CREDENTIALS)
    # The slow hash first, on the copy just read, so that the account's row is not held
    # locked while it runs (none for an account locked out: a guess there is not even tried).
    matches = None if _locked_out(user, now) else password_matches(user, password)
    seen = user.password_hash
    # The account's row, read again under its lock: two attempts at once count one after the
    # other, and each sees a deactivation, a lock-out or a new password committed meanwhile.
    session.refresh(user, with_for_update={"key_share": True})
    if not user.active:
        log.info("sign-in refused for account %r, deactivated meanwhile", username)
        return SignInOutcome(None, BAD_CREDENTIALS)
    org = session.get_one(Organization, user.organization_id)
    if _locked_out(user, now):
        assert user.locked_until is not None
        trail.record(
            session,
            org,
            now=now,
            actor=_actor(user),
            action="login.refused_locked",
            object_type="user",
            object_id=user.username,
        )
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return SignInOutcome(
            None,
            f"Tài khoản tạm khóa do đăng nhập sai nhiều lần. Vui lòng thử lại sau {minutes} phút.",
        )
    if matches is None or user.password_hash != seen:
        matches = password_matches(user, password)
    if not matches:
        user.failed_logins += 1
        details: dict[str, object] = {"failed_attempts": user.failed_logins}
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            details["locked_until"] = user.locked_until.isoformat()
        trail.record(
            session,
            org,
            now=now,
            actor=_actor(user),
            action="login.failed",
            object_type="user",
            object_id=user.username,
            details=details,
        )
        return SignInOutcome(None, BAD_CREDENTIALS)
    user.failed_logins = 0
    user.locked_until = None
    trail.record(
        session,
        org,
        now=now,
        actor=_actor(user),
        action="login.succeeded",
        object_type="user",
        object_id=user.username,
    )
    return SignInOutcome(user, "")


def sign_out(session: Session, user: User, *, now: datetime, trail: AuditTrail) -> None:
    org = session.get_one(Organization, user.organization_id)
    trail.record(
        session,
        org,
        now=now,
        actor=_actor(user),
        action="logout",
        object_type="user",
        object_id=user.username,
    )

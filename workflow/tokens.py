"""API tokens for programs: a random secret shown once, kept only as its SHA-256, revocable;
creating and revoking one is audited in the ward's log.

A token is `cchc_` followed by 32 random bytes (URL-safe base64). With that much entropy a
plain SHA-256 is enough to store it: there is nothing to brute-force, so a slow password
hash would only slow down every API request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import unicodedata
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.errors import DomainError
from workflow.models import ApiToken, Organization, User
from workflow.states import Role
from workflow.trail import Actor, AuditTrail

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cchc_"  # noqa: S105 - a public marker that starts every token, not a secret
SECRET_BYTES = 32
NAME_MAX_LENGTH = 100
SHOWN_CHARACTERS = 12  # of the token, kept in clear to tell tokens apart in a list
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
_SHAPE = re.compile(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{43}}")


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("ascii")).hexdigest()


def _own_actor(user: User) -> Actor:
    return Actor(user=user.username, unit=user.unit.code if user.unit else None, role="user")


def create_token(
    session: Session,
    org: Organization,
    user: User,
    *,
    name: str,
    now: datetime,
    trail: AuditTrail,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user` and its plaintext, which exists only in the return value.

    `actor` is who the log records as creating it: the user themself by default, or e.g. the
    operator at the console (`cchc token create`). The caller commits.
    """
    if user.organization_id != org.id:
        raise DomainError("not_permitted", "Người dùng này thuộc phường khác.")
    if not user.active:
        raise DomainError("inactive_user", f"Tài khoản “{user.username}” đã bị khóa.")
    label = unicodedata.normalize("NFC", name).strip()
    if not label:
        raise DomainError(
            "name_required", "Cần đặt tên cho mã truy cập (ví dụ: tên chương trình sử dụng mã)."
        )
    if len(label) > NAME_MAX_LENGTH:
        raise DomainError("name_too_long", f"Tên mã truy cập dài tối đa {NAME_MAX_LENGTH} ký tự.")
    if expires_at is not None and expires_at <= now:
        raise DomainError("invalid_expiry", "Thời hạn của mã truy cập phải sau thời điểm hiện tại.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = ApiToken(
        user_id=user.id,
        name=label,
        prefix=plaintext[:SHOWN_CHARACTERS],
        token_hash=_digest(plaintext),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    trail.record(
        session,
        org,
        now=now,
        actor=actor or _own_actor(user),
        action="token.created",
        object_type="api_token",
        object_id=token.id,
        after={
            "user": user.username,
            "name": label,
            "prefix": token.prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, plaintext


def revoke_token(
    session: Session,
    token_id: int,
    *,
    actor: User | Actor,
    now: datetime,
    trail: AuditTrail,
) -> ApiToken:
    """Revoke a token. A person (User) revokes their own tokens, or any token of their ward as
    its administrator; anyone else's token is "not found" to them. An `Actor` is the operator
    at the console (the CLI), who may revoke any token. The caller commits."""
    # Under the token's row lock, read again: of two revocations at once the second is
    # refused as already revoked instead of logged twice.
    token = session.get(
        ApiToken, token_id, with_for_update={"key_share": True}, populate_existing=True
    )
    missing = DomainError("not_found", f"Không tìm thấy mã truy cập số {token_id}.")
    if token is None:
        raise missing
    owner = token.user
    if isinstance(actor, User):
        own = actor.id == owner.id
        ward_admin = (
            actor.organization_id == owner.organization_id and Role.ADMIN.value in actor.role_names
        )
        if not (own or ward_admin):
            raise missing
        logged = Actor(
            user=actor.username,
            unit=actor.unit.code if actor.unit else None,
            role="user" if own else Role.ADMIN.value,
        )
    else:
        logged = actor
    if token.revoked_at is not None:
        raise DomainError("already_revoked", f"Mã truy cập “{token.name}” đã bị thu hồi trước đó.")
    token.revoked_at = now
    session.flush()
    trail.record(
        session,
        session.get_one(Organization, owner.organization_id),
        now=now,
        actor=logged,
        action="token.revoked",
        object_type="api_token",
        object_id=token.id,
        before={"revoked": False},
        after={"revoked": True},
        details={"user": owner.username, "name": token.name, "prefix": token.prefix},
    )
    return token


def authenticate(session: Session, plaintext: str, now: datetime) -> User | None:
    """The active person a token belongs to, if it is a live token (neither revoked nor
    expired); None otherwise. Reads only."""
    if _SHAPE.fullmatch(plaintext) is None:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(plaintext)))
    if token is None:
        log.info("API token refused: unknown token %s…", plaintext[:SHOWN_CHARACTERS])
        return None
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        log.info("API token refused: token %d is revoked or expired", token.id)
        return None
    user = token.user
    return user if user.active else None


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    """A person's tokens, newest first (revoked ones included, for the record)."""
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )

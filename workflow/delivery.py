"""E-mail delivery of the notification outbox through a pluggable sender.

The engine and the deadline check write `notification` rows inside their transactions (the
outbox); `deliver_pending` sends the unsent ones afterwards and marks them sent. Delivery is
at least once: a message sent just before a failed commit is sent again by the next run.

Addresses: users have no e-mail column yet, so the default address of a recipient is their
username (a placeholder that FileSender writes as is; a real SMTP server will refuse it and
the message stays unsent). Pass `address_of` to resolve real addresses once an e-mail column
exists.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.models import Notification, User

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[CCHC]"

SUBJECTS: dict[str, str] = {
    "task.schedule": "Nhiệm vụ đã có thời hạn",
    "task.submit": "Nhiệm vụ chờ thẩm định",
    "task.review": "Nhiệm vụ chờ quyết định nghiệm thu",
    "task.return_for_rework": "Nhiệm vụ bị trả lại để hoàn thiện",
    "task.accept": "Nhiệm vụ đã được nghiệm thu",
    "task.cancel": "Nhiệm vụ đã bị hủy",
    "task.reassigned": "Nhiệm vụ được giao lại",
    "contribution.requested": "Đề nghị phối hợp thực hiện nhiệm vụ",
    "contribution.provided": "Đơn vị phối hợp đã gửi nội dung phối hợp",
    "contribution.declined": "Đơn vị phối hợp từ chối phối hợp",
    "deadline.approaching": "Nhiệm vụ sắp đến hạn",
    "deadline.overdue": "Nhiệm vụ đã quá hạn",
}
DEFAULT_SUBJECT = "Thông báo từ hệ thống theo dõi cải cách hành chính"

FOOTER = (
    "\n\n--\nThư này được gửi tự động từ hệ thống theo dõi Kế hoạch cải cách hành chính "
    "của phường. Vui lòng không trả lời thư này."
)


class Sender(Protocol):
    """Sends one message; raises on failure (the message then stays unsent)."""

    def send(self, recipient: str, subject: str, body: str) -> None: ...


# Any SMTP server accepts 7-bit messages; 8BITMIME and SMTPUTF8 support cannot be assumed.
_SEVEN_BIT = policy.default.clone(cte_type="7bit")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def compose(
    from_addr: str, recipient: str, subject: str, body: str, *, smtputf8: bool = False
) -> EmailMessage:
    """A plain-text UTF-8 message. With `smtputf8` the headers and body are written as raw
    UTF-8 (readable files); otherwise encoded for any SMTP server (RFC 2047, base64/QP)."""
    message = EmailMessage(policy=policy.SMTPUTF8 if smtputf8 else _SEVEN_BIT)
    message["From"] = from_addr
    message["To"] = recipient
    message["Subject"] = _nfc(subject)
    if smtputf8:
        message.set_content(_nfc(body), charset="utf-8", cte="8bit")
    else:
        message.set_content(_nfc(body), charset="utf-8")  # base64 or QP, whichever is shorter
    return message


class FileSender:
    """For development: every message becomes one UTF-8 .eml file in `directory`."""

    def __init__(self, directory: str | Path, *, from_addr: str = "cchc@localhost") -> None:
        self.directory = Path(directory)
        self.from_addr = from_addr
        self.written: list[Path] = []  # the files this sender wrote, in order

    def send(self, recipient: str, subject: str, body: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        message = compose(self.from_addr, recipient, subject, body, smtputf8=True)
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in recipient)[:64]
        path = self.directory / f"{safe or 'recipient'}-{uuid.uuid4().hex}.eml"
        with path.open("xb") as fh:  # never overwrite
            fh.write(message.as_bytes())
        self.written.append(path)


@dataclass(frozen=True)
class SmtpSender:
    """Sends through an SMTP server, one connection per message. `use_tls` upgrades the
    connection with STARTTLS (port 587) and verifies the server's certificate; the login is
    skipped when `username` is empty."""

    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    from_addr: str
    timeout: float = 30.0

    def send(self, recipient: str, subject: str, body: str) -> None:
        message = compose(self.from_addr, recipient, subject, body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.use_tls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def subject_for(event: str) -> str:
    return f"{SUBJECT_PREFIX} {SUBJECTS.get(event, DEFAULT_SUBJECT)}"


MAX_ATTEMPTS = 5  # failed sends of one message before it stays in-app only
NO_ADDRESS = "Người nhận chưa có địa chỉ thư điện tử: chỉ thông báo trong phần mềm."


def email_address(user: User) -> str | None:
    """The person's e-mail address, if the administrator recorded one."""
    return user.email


def deliver_pending(
    session: Session,
    sender: Sender,
    *,
    now: datetime,
    limit: int = 100,
    address_of: Callable[[User], str | None] = email_address,
) -> int:
    """Send up to `limit` unsent notifications, those tried least first, then oldest, and
    mark each one sent at `now`.

    Returns how many were sent. A message that fails to send (any exception from the sender)
    stays unsent with one more attempt and the error recorded, and the others go on; after
    MAX_ATTEMPTS it is no longer tried. A message whose recipient has no address is not tried
    at all (it stays an in-app notification), so neither kind holds up the rest. Never
    commits: the caller commits. On PostgreSQL the rows are locked with SKIP LOCKED, so two
    deliverers running at once do not pick the same messages.
    """
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware instant")
    if limit <= 0:
        return 0
    rows = session.execute(
        select(Notification, User)
        .join(User, Notification.recipient_id == User.id)
        .where(Notification.sent_at.is_(None), Notification.attempts < MAX_ATTEMPTS)
        .order_by(Notification.attempts, Notification.id)
        .limit(limit)
        .with_for_update(of=Notification, skip_locked=True)
    ).all()
    sent = 0
    for notification, user in rows:
        address = address_of(user)
        if not address:
            notification.attempts = MAX_ATTEMPTS
            notification.last_error = NO_ADDRESS
            continue
        try:
            sender.send(address, subject_for(notification.event), notification.message + FOOTER)
        except Exception as exc:  # one bad message must not stop the others: retried next run
            log.warning("notification %s to %s not sent", notification.id, address, exc_info=True)
            notification.attempts += 1
            notification.last_error = f"{type(exc).__name__}: {exc}"[:500]
            continue
        notification.sent_at = now
        sent += 1
    session.flush()
    return sent

"""Delivering the notification outbox: the file sender, SMTP through a fake smtplib, failures."""

from __future__ import annotations

import email
import smtplib
import unicodedata
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from definitions.calendar import load_calendar
from workflow import delivery
from workflow.bootstrap import demo_email
from workflow.deadlines import tick
from workflow.delivery import FileSender, SmtpSender, deliver_pending, subject_for
from workflow.models import Notification
from workflow.trail import AuditTrail

from .conftest import Ward

NOW = datetime(2026, 1, 12, 1, 0, tzinfo=UTC)
VHXH_PEOPLE = ("vhxh.canbo", "vhxh.thamdinh1", "vhxh.thamdinh2", "vhxh.truong")


def _alert_task_1(ward: Ward) -> list[Notification]:
    """Four outbox rows: task 1 (VHXH) is due soon on Monday 12/01/2026."""
    tick(
        ward.session,
        ward.org,
        today=date(2026, 1, 12),
        now=NOW,
        calendar=load_calendar(),
        trail=AuditTrail(),
    )
    return list(ward.session.scalars(select(Notification).order_by(Notification.id)))


def _alert_again(ward: Ward) -> list[Notification]:
    """New outbox rows: the overdue alerts of the next day's check (task 1 due 14/01)."""
    seen = {n.id for n in ward.session.scalars(select(Notification))}
    tick(
        ward.session,
        ward.org,
        today=date(2026, 1, 15),
        now=NOW,
        calendar=load_calendar(),
        trail=AuditTrail(),
    )
    return [n for n in ward.session.scalars(select(Notification)) if n.id not in seen]


def _unsent(ward: Ward) -> list[Notification]:
    return [n for n in ward.session.scalars(select(Notification)) if n.sent_at is None]


class Recorder:
    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail_for = fail_for or set()

    def send(self, recipient: str, subject: str, body: str) -> None:
        if recipient in self.fail_for:
            raise smtplib.SMTPRecipientsRefused({recipient: (550, b"no such user")})
        self.sent.append((recipient, subject, body))


@pytest.mark.db
def test_file_sender_writes_one_utf8_eml_per_message(ward: Ward, tmp_path: Path) -> None:
    notes = _alert_task_1(ward)
    assert len(notes) == 4
    sender = FileSender(tmp_path / "outbox")
    delivered_at = datetime(2026, 1, 12, 2, 0, tzinfo=UTC)

    assert deliver_pending(ward.session, sender, now=delivered_at) == 4
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 4 and sorted(sender.written) == files
    assert all(n.sent_at == delivered_at for n in notes)

    parsed = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert sorted(str(m["To"]) for m in parsed) == sorted(demo_email(u) for u in VHXH_PEOPLE)
    for message in parsed:
        assert isinstance(message, EmailMessage)
        assert message["Subject"] == "[CCHC] Nhiệm vụ sắp đến hạn"
        assert message.get_content_charset() == "utf-8"
        body = message.get_content()
        assert body.startswith(
            "Nhiệm vụ 1 (VHXH, Trước ngày 15/01/2026) sắp đến hạn: hạn hoàn thành 14/01/2026"
        )
        assert unicodedata.is_normalized("NFC", body)
    # the file is readable UTF-8 text, not encoded words
    assert "sắp đến hạn" in files[0].read_text(encoding="utf-8")

    # nothing is sent twice
    assert deliver_pending(ward.session, sender, now=delivered_at) == 0
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 4


@pytest.mark.db
def test_a_failed_message_stays_unsent_and_the_others_go(ward: Ward) -> None:
    _alert_task_1(ward)
    sender = Recorder(fail_for={demo_email("vhxh.thamdinh1")})
    assert deliver_pending(ward.session, sender, now=NOW) == 3
    assert sorted(r for r, _, _ in sender.sent) == [
        demo_email(u) for u in ("vhxh.canbo", "vhxh.thamdinh2", "vhxh.truong")
    ]
    unsent = _unsent(ward)
    assert [n.recipient_id for n in unsent] == [ward.user("vhxh.thamdinh1").id]
    assert unsent[0].attempts == 1
    assert unsent[0].last_error is not None and "SMTPRecipientsRefused" in unsent[0].last_error

    # the next run retries it
    sender.fail_for.clear()
    assert deliver_pending(ward.session, sender, now=NOW) == 1
    assert _unsent(ward) == []


@pytest.mark.db
def test_a_message_that_keeps_failing_is_given_up_and_does_not_hold_up_the_rest(
    ward: Ward,
) -> None:
    notes = _alert_task_1(ward)
    failing = demo_email("vhxh.canbo")
    sender = Recorder(fail_for={failing})
    for _ in range(delivery.MAX_ATTEMPTS):
        deliver_pending(ward.session, sender, now=NOW)
    stuck = next(n for n in notes if n.recipient_id == ward.user("vhxh.canbo").id)
    assert (stuck.sent_at, stuck.attempts) == (None, delivery.MAX_ATTEMPTS)
    tried = len(sender.sent)
    sender.fail_for.clear()
    assert deliver_pending(ward.session, sender, now=NOW) == 0  # not tried again
    assert len(sender.sent) == tried

    # a later message goes first, ahead of anything that failed before
    more = _alert_again(ward)
    assert more
    assert deliver_pending(ward.session, Recorder(), now=NOW, limit=len(more)) == len(more)


@pytest.mark.db
def test_limit_and_order(ward: Ward) -> None:
    notes = _alert_task_1(ward)
    sender = Recorder()
    assert deliver_pending(ward.session, sender, now=NOW, limit=3) == 3
    assert [n.sent_at is not None for n in notes] == [True, True, True, False]
    assert deliver_pending(ward.session, sender, now=NOW, limit=0) == 0
    assert deliver_pending(ward.session, sender, now=NOW, limit=3) == 1


@pytest.mark.db
def test_a_recipient_without_address_is_left_unsent(ward: Ward) -> None:
    _alert_task_1(ward)
    sender = Recorder()

    def address(user: Any) -> str | None:
        return None if user.username == "vhxh.canbo" else f"{user.username}@example.vn"

    assert deliver_pending(ward.session, sender, now=NOW, address_of=address) == 3
    assert all(r.endswith("@example.vn") for r, _, _ in sender.sent)
    (left,) = _unsent(ward)
    assert (left.attempts, left.last_error) == (delivery.MAX_ATTEMPTS, delivery.NO_ADDRESS)
    # it stays an in-app notification and is not looked at again
    assert deliver_pending(ward.session, sender, now=NOW, address_of=address) == 0


@pytest.mark.db
def test_by_default_the_users_email_is_the_address(ward: Ward) -> None:
    _alert_task_1(ward)
    ward.user("vhxh.canbo").email = None  # no address recorded
    sender = Recorder()
    assert deliver_pending(ward.session, sender, now=NOW) == 3
    assert demo_email("vhxh.canbo") not in [r for r, _, _ in sender.sent]


@pytest.mark.db
def test_deliver_needs_an_aware_instant(ward: Ward) -> None:
    with pytest.raises(ValueError, match="naive"):
        deliver_pending(ward.session, Recorder(), now=datetime(2026, 1, 12, 8, 0))


def test_subjects() -> None:
    assert subject_for("deadline.overdue") == "[CCHC] Nhiệm vụ đã quá hạn"
    assert subject_for("task.submit") == "[CCHC] Nhiệm vụ chờ thẩm định"
    assert subject_for("something.new").startswith("[CCHC] Thông báo")


# --- SMTP, against a fake smtplib -----------------------------------------------------------


class FakeSMTP:
    instances: ClassVar[list[FakeSMTP]] = []
    refuse: ClassVar[set[str]] = set()

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.calls: list[str] = []
        self.messages: list[EmailMessage] = []
        FakeSMTP.instances.append(self)

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append("quit")

    def starttls(self, context: Any) -> None:
        self.calls.append("starttls")

    def login(self, username: str, password: str) -> None:
        self.calls.append(f"login:{username}:{password}")

    def send_message(self, message: EmailMessage) -> None:
        if str(message["To"]) in FakeSMTP.refuse:
            raise smtplib.SMTPRecipientsRefused({str(message["To"]): (550, b"unknown")})
        self.calls.append("send")
        self.messages.append(message)


@pytest.fixture
def fake_smtp(monkeypatch: pytest.MonkeyPatch) -> type[FakeSMTP]:
    FakeSMTP.instances = []
    FakeSMTP.refuse = set()
    monkeypatch.setattr(delivery.smtplib, "SMTP", FakeSMTP)
    return FakeSMTP


def test_smtp_sender_uses_starttls_login_and_encodes_vietnamese(fake_smtp: type[FakeSMTP]) -> None:
    sender = SmtpSender(
        host="smtp.example.vn",
        port=587,
        username="cchc",
        password="s3cret",
        use_tls=True,
        from_addr="cchc@tranhungdao.example.vn",
    )
    sender.send("vp.canbo@example.vn", "[CCHC] Nhiệm vụ đã quá hạn", "Nhiệm vụ 1 đã quá hạn.")
    (smtp,) = fake_smtp.instances
    assert (smtp.host, smtp.port) == ("smtp.example.vn", 587)
    assert smtp.calls == ["starttls", "login:cchc:s3cret", "send", "quit"]
    (message,) = smtp.messages
    raw = message.as_bytes()
    raw.decode("ascii")  # encoded for any server: RFC 2047 headers, base64/QP body
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "[CCHC] Nhiệm vụ đã quá hạn"
    assert parsed["From"] == "cchc@tranhungdao.example.vn"
    assert parsed.get_content().strip() == "Nhiệm vụ 1 đã quá hạn."


def test_smtp_sender_without_tls_or_login(fake_smtp: type[FakeSMTP]) -> None:
    sender = SmtpSender("localhost", 25, None, None, False, "cchc@localhost")
    sender.send("a@example.vn", "Chủ đề", "Nội dung")
    assert fake_smtp.instances[0].calls == ["send", "quit"]


@pytest.mark.db
def test_deliver_through_smtp_with_one_refusal(ward: Ward, fake_smtp: type[FakeSMTP]) -> None:
    _alert_task_1(ward)
    fake_smtp.refuse = {"vhxh.truong@example.vn"}
    sender = SmtpSender("smtp.example.vn", 587, "cchc", "x", True, "cchc@example.vn")
    sent = deliver_pending(
        ward.session, sender, now=NOW, address_of=lambda u: f"{u.username}@example.vn"
    )
    assert sent == 3
    assert len(fake_smtp.instances) == 4  # one connection per message
    assert [n.recipient_id for n in _unsent(ward)] == [ward.user("vhxh.truong").id]

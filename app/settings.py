"""Configuration from the environment, with defaults that run the embedded demo."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from audit.checkpoint import load_signer
from audit.ledger import CheckpointPolicy
from workflow.db import default_database_url
from workflow.delivery import FileSender, Sender, SmtpSender
from workflow.trail import AuditTrail

ORGANIZATION_NAME = "Phường Trần Hưng Đạo"
AUDIT_ORIGIN_PREFIX = "cchc.haiphong.gov.vn"
AUDIT_KEY_NAME = AUDIT_ORIGIN_PREFIX


@dataclass(frozen=True)
class Settings:
    instance_dir: Path
    database_url: str
    signing_key_path: Path
    evidence_dir: Path
    max_upload_bytes: int
    checkpoint_every_entries: int
    checkpoint_every_minutes: int
    # Send the session cookie over HTTPS only: on behind TLS (production), off for the
    # embedded demo served over plain http://127.0.0.1.
    secure_cookies: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        instance = Path(os.environ.get("CCHC_INSTANCE_DIR", Path.cwd() / "instance")).resolve()
        return cls(
            instance_dir=instance,
            database_url=default_database_url(instance),
            signing_key_path=Path(
                os.environ.get("CCHC_SIGNING_KEY", instance / "keys" / "audit-signing.key")
            ),
            evidence_dir=Path(os.environ.get("CCHC_EVIDENCE_DIR", instance / "evidence")),
            max_upload_bytes=int(os.environ.get("CCHC_MAX_UPLOAD_MB", "20")) * 1024 * 1024,
            checkpoint_every_entries=int(os.environ.get("CCHC_CHECKPOINT_EVERY", "256")),
            checkpoint_every_minutes=int(os.environ.get("CCHC_CHECKPOINT_MINUTES", "60")),
            secure_cookies=os.environ.get("CCHC_SECURE_COOKIES", "0").lower()
            in ("1", "true", "yes"),
        )

    def secret_key(self) -> str:
        """CCHC_SECRET_KEY, or a random key kept in the instance folder across restarts."""
        env = os.environ.get("CCHC_SECRET_KEY")
        if env:
            return env
        path = self.instance_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    @property
    def verifier_key_path(self) -> Path:
        return self.signing_key_path.with_suffix(".pub")

    def audit_trail(self) -> AuditTrail:
        """The trail with this deployment's signer when its key exists (automatic checkpoints
        every N entries or T minutes), without one otherwise."""
        signer = load_signer(self.signing_key_path) if self.signing_key_path.exists() else None
        policy = CheckpointPolicy(
            every_entries=self.checkpoint_every_entries,
            interval=timedelta(minutes=self.checkpoint_every_minutes),
        )
        return AuditTrail(signer=signer, policy=policy)

    def notification_sender(self, directory: Path | None = None) -> Sender:
        """SMTP when CCHC_SMTP_HOST is set (and no directory is asked for), files otherwise."""
        host = os.environ.get("CCHC_SMTP_HOST")
        if host and directory is None:
            return SmtpSender(
                host=host,
                port=int(os.environ.get("CCHC_SMTP_PORT", "587")),
                username=os.environ.get("CCHC_SMTP_USERNAME") or None,
                password=os.environ.get("CCHC_SMTP_PASSWORD") or None,
                use_tls=os.environ.get("CCHC_SMTP_TLS", "1") not in ("0", "false", "no"),
                from_addr=os.environ.get("CCHC_SMTP_FROM", "cchc@localhost"),
            )
        return FileSender(directory or self.instance_dir / "outbox")


def audit_origin(slug: str) -> str:
    return f"{AUDIT_ORIGIN_PREFIX}/{slug}"

"""Recording a domain action in the ward's audit log, inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from audit.checkpoint import NoteSigner
from audit.ledger import AppendedEntry, CheckpointPolicy, Ledger, PendingEntry
from workflow.models import Organization, User


@dataclass(frozen=True)
class Actor:
    """Who did something, as the log records it: a username (or "system"), unit and role."""

    user: str
    unit: str | None
    role: str

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.user, "unit": self.unit, "role": self.role}


SYSTEM = Actor(user="system", unit=None, role="system")


def actor_of(user: User, role: str) -> Actor:
    return Actor(user=user.username, unit=user.unit.code if user.unit else None, role=role)


@dataclass(frozen=True)
class AuditTrail:
    """How this deployment writes its logs: the checkpoint signer (None: no automatic
    checkpoints) and when to sign. One per process; every ward has its own log."""

    signer: NoteSigner | None = None
    policy: CheckpointPolicy | None = None

    def ledger(self, org: Organization) -> Ledger:
        return Ledger(org.audit_origin, signer=self.signer, policy=self.policy)

    def record(
        self,
        session: Session | Connection,
        org: Organization,
        *,
        now: datetime,
        actor: Actor,
        action: str,
        object_type: str,
        object_id: str | int,
        before: Any = None,
        after: Any = None,
        details: dict[str, Any] | None = None,
        at_commit: bool = False,
    ) -> AppendedEntry | PendingEntry:
        """Append one entry to the ward's log; it commits (or not) with the caller's change.
        `session` may be the session's own connection (the same transaction). With
        `at_commit`, a caller about to commit lets the append go with the COMMIT
        (`Ledger.append_at_commit`); its entry is then known once committed."""
        ledger = self.ledger(org)
        append = ledger.append_at_commit if at_commit else ledger.append
        return append(
            session,
            ts=now,
            actor=actor.as_dict(),
            action=action,
            object={"type": object_type, "id": str(object_id)},
            before=before,
            after=after,
            details=details,
        )

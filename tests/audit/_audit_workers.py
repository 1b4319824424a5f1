"""Worker functions for the multi-process append test (spawned processes import this module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from audit.ledger import Ledger
from workflow.db import make_engine


def append_many(
    url: str, origin: str, worker: int, count: int, at_commit: bool = False
) -> list[int]:
    """Append `count` entries, one committed transaction each (with `at_commit`, through
    `Ledger.append_at_commit`); return their seqs, read once committed."""
    engine = make_engine(url)
    ledger = Ledger(origin)
    append = ledger.append_at_commit if at_commit else ledger.append
    seqs = []
    try:
        for i in range(count):
            with Session(engine) as session, session.begin():
                entry = append(
                    session,
                    ts=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
                    actor={"user": f"worker{worker}", "unit": "U", "role": "member"},
                    action="stress.append",
                    object={"type": "worker", "id": worker},
                    details={"i": i},
                )
            seqs.append(entry.seq)
    finally:
        engine.dispose()
    return seqs

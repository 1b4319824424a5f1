"""Fixtures of the audit tests: the shared RFC 6962 vectors, a key pair, small logs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.checkpoint import NoteSigner, NoteVerifier, generate_key
from audit.ledger import AppendedEntry, CheckpointPolicy, Executor, Ledger

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


class Keys:
    def __init__(self, name: str = "test.cchc.example") -> None:
        self.signer_text, self.verifier_text = generate_key(name)
        self.signer = NoteSigner.from_text(self.signer_text)
        self.verifier = NoteVerifier.from_text(self.verifier_text)


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def other_keys() -> Keys:
    return Keys("intruder.example")


def append_n(
    executor: Executor, ledger: Ledger, n: int, *, start: int = 0, **overrides: Any
) -> list[AppendedEntry]:
    """Append n varied entries (three units, two users, a few actions)."""
    out = []
    for i in range(start, start + n):
        fields: dict[str, Any] = {
            "ts": T0 + timedelta(minutes=i),
            "actor": {"user": f"user{i % 2}", "unit": f"U{i % 3}", "role": "member"},
            "action": ("task.submitted", "task.accepted", "evidence.added")[i % 3],
            "object": {"type": "task", "id": str(i % 4)},
            "details": {"note": f"Lần {i}: nộp minh chứng"},
        }
        fields.update(overrides)
        out.append(ledger.append(executor, **fields))
    return out


@pytest.fixture
def dense_ledger(keys: Keys) -> Callable[[str], Ledger]:
    """A ledger factory that signs a checkpoint after every entry."""

    def make(origin: str) -> Ledger:
        return Ledger(
            origin, signer=keys.signer, policy=CheckpointPolicy(every_entries=1, interval=None)
        )

    return make


@pytest.fixture
def append() -> Callable[..., list[AppendedEntry]]:
    """append(executor, ledger, n, start=0, **overrides): n varied entries."""
    return append_n


@pytest.fixture
def t0() -> datetime:
    return T0

"""The wall clock, read only at the boundary (web request, CLI command) and passed inward."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

"""Time as a parameter: the domain asks a Clock, never the wall clock (invariant 6)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

WARD_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


def ward_date(instant: datetime) -> date:
    """The calendar date in Việt Nam at an instant (deadlines are Vietnamese dates)."""
    return instant.astimezone(WARD_TZ).date()


@dataclass
class FixedClock:
    """A clock that says what it is told: for tests, replays and evaluations 'as of' a date."""

    instant: datetime

    def __post_init__(self) -> None:
        if self.instant.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware instant")
        self.instant = self.instant.astimezone(UTC)

    def now(self) -> datetime:
        return self.instant

    def advance_to(self, instant: datetime) -> None:
        self.instant = instant.astimezone(UTC)

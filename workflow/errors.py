"""Domain errors: a stable code for programs and a Vietnamese message for people."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refused action. Nothing was changed when this is raised."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

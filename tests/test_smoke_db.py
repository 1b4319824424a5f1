"""The database fixtures themselves: a migrated schema, and per-test rollback."""

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflow.models import Organization


def _add_org(session: Session, slug: str) -> None:
    session.add(
        Organization(
            slug=slug,
            name="Phường thử",
            audit_origin=f"test/{slug}",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    session.commit()


def test_commit_inside_test_is_visible(session: Session) -> None:
    _add_org(session, "a")
    assert session.scalar(select(func.count()).select_from(Organization)) == 1


def test_previous_test_was_rolled_back(session: Session) -> None:
    assert session.scalar(select(func.count()).select_from(Organization)) == 0
    _add_org(session, "b")

"""What the evaluation, self-inspection and inspection modules share: the acting person, the
ward's current evaluation for a year, and a flush that turns a lost update into a refusal."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from statemachine import StateMachine

from audit.schema import audit_entry, audit_log
from definitions.calendar import WorkingCalendar
from definitions.rubric import Rubric
from workflow.engine import person_of
from workflow.errors import DomainError
from workflow.evaluation import Evaluation, evaluate
from workflow.models import Organization, User
from workflow.permissions import Person, oversight_refusal
from workflow.trail import Actor


def checked(action: str, user: User, org: Organization, unit: str | None = None) -> Person:
    """The person, once the rules allow `action`; the refusal otherwise."""
    person = person_of(user)
    refused = oversight_refusal(action, person, org.id, unit)
    if refused is not None:
        raise refused
    return person


def actor(user: User, person: Person, role: str) -> Actor:
    return Actor(user.username, person.unit, role)


def acting_role(person: Person, preferred: tuple[str, ...]) -> str:
    """The first of `preferred` roles the person holds (the role the log records)."""
    for role in preferred:
        if role in person.roles:
            return role
    return sorted(person.roles)[0] if person.roles else "member"


def flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise DomainError(
            "stale_version", f"{what} vừa được người khác cập nhật. Vui lòng tải lại rồi thử lại."
        ) from exc


def check_version(actual: int, expected: int | None, what: str) -> None:
    if expected is not None and expected != actual:
        raise DomainError(
            "stale_version", f"{what} vừa được người khác cập nhật. Vui lòng tải lại rồi thử lại."
        )


def transition_pairs(machine: type[StateMachine]) -> frozenset[tuple[str, str]]:
    """Every (stored state, event) a python-statemachine class allows, read once from the
    class: refusals are checked against it before anything changes."""
    return frozenset(
        (str(state.value), str(event))
        for state in machine.states
        for transition in state.transitions
        for event in transition.events
    )


def states_as_of(
    session: Session, org: Organization, object_type: str, ids: Iterable[int], before: datetime
) -> dict[int, str]:
    """The state each object had just before `before`, read from the ward's audit log (the
    `after.state` of its latest entry that records one), for tables that keep no history.
    Objects with no such entry yet are missing from the answer."""
    wanted = {str(i) for i in ids}
    if not wanted:
        return {}
    rows = session.execute(
        select(audit_entry.c.object_id, audit_entry.c.body)
        .join(audit_log, audit_log.c.id == audit_entry.c.log_id)
        .where(
            audit_log.c.origin == org.audit_origin,
            audit_entry.c.object_type == object_type,
            audit_entry.c.object_id.in_(wanted),
            audit_entry.c.created_at < before,
        )
        .order_by(audit_entry.c.seq)
    )
    states: dict[int, str] = {}
    for object_id, body in rows:
        after = json.loads(bytes(body)).get("after")
        if isinstance(after, dict) and isinstance(after.get("state"), str):
            states[int(object_id)] = after["state"]
    return states


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def year_end(year: int) -> date:
    return date(year, 12, 31)


def evaluation_for(
    session: Session,
    org: Organization,
    year: int,
    today: date,
    calendar: WorkingCalendar,
    rubric: Rubric,
) -> Evaluation:
    """The year's evaluation as of `today`, or as of 31/12 once the year is over."""
    return evaluate(
        session,
        org,
        year=year,
        as_of=min(today, year_end(year)),
        calendar=calendar,
        rubric=rubric,
    )

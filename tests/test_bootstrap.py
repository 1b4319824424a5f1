"""Loading the ward and its 2026 plan: units, tasks, instances by the expansion rules, demo
accounts; idempotent and audited."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from definitions.loader import default_plan_path, load_plan, load_units
from workflow.bootstrap import demo_accounts, initialize_ward
from workflow.models import Organization, PlanTask, TaskInstance, Unit, User
from workflow.queries import list_instances
from workflow.trail import AuditTrail

NOW = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


def _init(session: Session, *, demo: bool = True):  # type: ignore[no-untyped-def]
    path = default_plan_path()
    return initialize_ward(
        session,
        catalog=load_units(),
        plan=load_plan(path),
        plan_text=path.read_text(encoding="utf-8"),
        now=NOW,
        organization_name="Phường Trần Hưng Đạo",
        audit_origin="test.local/tran-hung-dao",
        trail=AuditTrail(),
        demo=demo,
    )


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def _audit_size(session: Session) -> int:
    from audit.ledger import Ledger

    return Ledger("test.local/tran-hung-dao").size(session)


@pytest.mark.db
def test_init_is_idempotent_and_audited(session: Session) -> None:
    first = _init(session)
    assert first.organization_created and first.plan_created
    assert first.tasks_created == 48
    counts = {m: _count(session, m) for m in (Organization, Unit, PlanTask, TaskInstance, User)}
    log_size = _audit_size(session)
    # organization + units + plan import + one entry per instance + one per account
    assert log_size == 1 + counts[Unit] + 1 + counts[TaskInstance] + counts[User]

    second = _init(session)
    assert not second.organization_created and not second.plan_created
    assert second.tasks_created == second.instances_created == 0
    assert second.units_created == second.users_created == []
    assert {m: _count(session, m) for m in counts} == counts
    assert _audit_size(session) == log_size


@pytest.mark.db
def test_instances_follow_the_expansion_rules(session: Session) -> None:
    _init(session, demo=False)
    org = session.scalars(select(Organization)).one()
    rows = list_instances(session, org)
    by_task = Counter(r.number for r in rows)

    # Group leads: one copy per department (tasks 20, 24-26), each per quarter (Thường xuyên).
    for number in (20, 24, 25, 26):
        units = {r.unit for r in rows if r.number == number}
        assert units == {"VP", "KTHTDT", "VHXH"}, number
        assert by_task[number] == 12, number
    # "Trước ngày 10 của tháng cuối quý": four quarterly reports, due before the 10th.
    dues = sorted(r.due for r in rows if r.number == 2)
    assert dues == [date(2026, 3, 9), date(2026, 6, 9), date(2026, 9, 9), date(2026, 12, 9)]
    # "Trước ngày 15/01/2026": strictly before, on a working day.
    (task1,) = [r for r in rows if r.number == 1]
    assert task1.due == date(2026, 1, 14) and task1.state == "assigned"
    # Dates set by an outside event wait for a due date.
    for number in (4, 9):
        (row,) = [r for r in rows if r.number == number]
        assert row.due is None and row.state == "awaiting_schedule"
    # "Thường xuyên": due before the 5th of the quarter's last month.
    assert sorted(r.due for r in rows if r.number == 19) == [
        date(2026, 3, 4),
        date(2026, 6, 4),
        date(2026, 9, 4),
        date(2026, 12, 4),
    ]
    # "Hàng quý": due at the quarter's end (last working day).
    assert sorted(r.due for r in rows if r.number == 29) == [
        date(2026, 3, 31),
        date(2026, 6, 30),
        date(2026, 9, 30),
        date(2026, 12, 31),
    ]
    assert set(by_task) == set(range(1, 49))


@pytest.mark.db
def test_demo_accounts_cover_every_role(session: Session) -> None:
    _init(session)
    users = {u.username: u for u in session.scalars(select(User))}
    expected = {a.username for a in demo_accounts(load_units())}
    assert set(users) == expected
    roles = Counter(r for u in users.values() for r in u.role_names)
    assert roles["reviewer"] >= 2
    assert roles["approver"] == 1 and users["vhxh.truong"].role_names == [
        "approver",
        "head",
        "member",
    ]
    assert roles["ward_leader"] == 1 and roles["auditor"] == 1 and roles["admin"] == 1
    for unit in session.scalars(select(Unit).where(Unit.kind != "leadership")):
        members = [u for u in users.values() if u.unit_id == unit.id]
        assert any("head" in u.role_names for u in members), unit.code
        assert any(u.role_names == ["member"] for u in members), unit.code

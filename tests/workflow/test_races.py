"""Checks made before a write, outside the lifecycle: two requests at once must not both pass
a check that one of them should fail (one sample draw a year, an account's throttle, the
ward's last administrator, an unchanged account or token, a year's records opened or closed
once). Each runs the two through `behind` (PostgreSQL; SQLite serialises whole transactions)
and fails without the lock that orders them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from audit.ledger import Ledger
from workflow import inspections, sampling
from workflow.accounts import create_user, reset_password, set_active, set_roles
from workflow.amendments import propose_amendment
from workflow.bootstrap import DEMO_PASSWORD
from workflow.errors import DomainError
from workflow.login import MAX_FAILURES, sign_in
from workflow.models import (
    Inspection,
    InspectionDraw,
    Plan,
    PlanTask,
    SelfInspection,
    Unit,
    User,
    UserRole,
)
from workflow.selfinspection import units_in_scope
from workflow.tokens import create_token, revoke_token
from workflow.trail import Actor, AuditTrail

from ._helpers import ORIGIN, CommittedWard, approval, behind, committed_ward, entries_about
from .conftest import Ward
from .test_amendments import NEW_TASK
from .test_inspections import Steps as InspectionSteps
from .test_selfinspection import IN_SCOPE as SELF_INSPECTED
from .test_selfinspection import Steps as SelfInspectionSteps
from .test_selfinspection import units_heads

ADMIN = Actor("quantri", None, "admin")


@pytest.fixture
def committed(fresh_db_url: str, tmp_path: Path) -> Iterator[CommittedWard]:
    cw = committed_ward(fresh_db_url, tmp_path / "files")
    yield cw
    cw.db.dispose()


def deactivate_member(ward: Ward) -> object:
    """The administrator deactivates vp.canbo's account."""
    return set_active(
        ward.session,
        ward.org,
        ward.user("vp.canbo"),
        False,
        actor=ADMIN,
        now=ward.clock.now(),
        trail=AuditTrail(),
    )


def refused_behind(
    committed: CommittedWard,
    db_url: str,
    action: Callable[[Ward], object],
    code: str,
    logged_as: str,
) -> None:
    """`action` twice at once: the second must be refused with `code`, and the log must hold
    one entry `logged_as` more than before."""
    with committed.session() as session:
        logged = entries_about(session, logged_as)
    waited = behind(committed, db_url, action, action)
    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == code
    with committed.session() as session:
        assert entries_about(session, logged_as) == logged + 1


@pytest.mark.db
def test_two_sample_draws_at_once_record_one(committed: CommittedWard, db_url: str) -> None:
    """Two draws of one year's inspection sample at once, with seeds that pick different
    units: one per year is recorded (one draw, one inspection.sampled entry, its inspections);
    the other is refused with already_drawn."""
    with committed.session() as session:
        units = [u.code for u in units_in_scope(session, committed.ward(session).org)]
        logged = entries_about(session, "inspection.sampled")
    population = dict.fromkeys(units, 1)
    share = sampling.parse_fraction("0.2")
    picks = {
        seed: set(sampling.draw(seed, population, fraction=share).selected)
        for seed in (f"hạt-{i}" for i in range(50))
    }
    first, second = next((a, b) for a in picks for b in picks if not picks[a] & picks[b])

    def draw(seed: str) -> Callable[[Ward], object]:
        return lambda ward: InspectionSteps(ward).draw(seed=seed)

    waited = behind(committed, db_url, draw(first), draw(second))

    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == "already_drawn"
    with committed.session() as session:
        draws = session.scalars(select(InspectionDraw)).all()
        assert [d.seed for d in draws] == [first]
        assert entries_about(session, "inspection.sampled") == logged + 1
        sampled = session.scalars(select(Unit.code).join(Inspection)).all()
        assert set(sampled) == picks[first]


@pytest.mark.db
def test_two_wrong_passwords_at_once_both_count(committed: CommittedWard, db_url: str) -> None:
    """Two sign-ins with a wrong password for one account at once: both failures count
    towards the lock-out, as they are both logged."""

    def fail(ward: Ward) -> object:
        return sign_in(
            ward.session, "vp.canbo", "sai-mat-khau", now=ward.clock.now(), trail=AuditTrail()
        )

    with committed.session() as session:
        before = committed.ward(session).user("vp.canbo").failed_logins
        logged = entries_about(session, "login.failed")

    behind(committed, db_url, fail, fail)

    with committed.session() as session:
        assert committed.ward(session).user("vp.canbo").failed_logins == before + 2
        assert entries_about(session, "login.failed") == logged + 2


@pytest.mark.db
def test_two_administrators_leaving_at_once_leave_one(
    committed: CommittedWard, db_url: str
) -> None:
    """The ward's two administrators each give up the role at once: the second must be
    refused (last_admin), so that someone can still manage accounts from the web."""
    with committed.session() as session:
        ward = committed.ward(session)
        set_roles(
            session,
            ward.org,
            ward.user("kiemtoan"),
            ["auditor", "admin"],
            actor=ADMIN,
            now=ward.clock.now(),
            trail=AuditTrail(),
        )
        session.commit()

    def leave(name: str) -> Callable[[Ward], object]:
        return lambda ward: set_roles(
            ward.session,
            ward.org,
            ward.user(name),
            ["auditor"],
            actor=Actor(name, None, "admin"),
            now=ward.clock.now(),
            trail=AuditTrail(),
        )

    waited = behind(committed, db_url, leave("quantri"), leave("kiemtoan"))

    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == "last_admin"
    with committed.session() as session:
        admins = session.scalars(
            select(User.username).join(UserRole).where(UserRole.role == "admin")
        ).all()
        assert admins == ["kiemtoan"]


@pytest.mark.db
def test_an_account_deactivated_twice_at_once_is_logged_once(
    committed: CommittedWard, db_url: str
) -> None:
    refused_behind(
        committed,
        db_url,
        deactivate_member,
        "unchanged",
        "user.deactivated",
    )


@pytest.mark.db
def test_an_account_created_twice_at_once_is_created_once(
    committed: CommittedWard, db_url: str
) -> None:
    def create(ward: Ward) -> object:
        return create_user(
            ward.session,
            ward.org,
            username="vp.canbo2",
            full_name="Nguyễn Văn Mới",
            unit=ward.session.scalars(select(Unit).where(Unit.code == "VP")).one(),
            roles=["member"],
            password=None,
            actor=ADMIN,
            now=ward.clock.now(),
            trail=AuditTrail(),
        )

    refused_behind(committed, db_url, create, "username_taken", "user.created")

    with committed.session() as session:
        named = session.scalars(select(User).where(User.username == "vp.canbo2")).all()
        assert len(named) == 1


@pytest.mark.db
def test_a_token_revoked_twice_at_once_is_logged_once(
    committed: CommittedWard, db_url: str
) -> None:
    with committed.session() as session:
        ward = committed.ward(session)
        token, _ = create_token(
            session,
            ward.org,
            ward.user("vp.canbo"),
            name="Bảng tổng hợp",
            now=ward.clock.now(),
            trail=AuditTrail(),
        )
        session.commit()
        token_id = token.id

    refused_behind(
        committed,
        db_url,
        lambda ward: revoke_token(
            ward.session,
            token_id,
            actor=ward.user("vp.canbo"),
            now=ward.clock.now(),
            trail=AuditTrail(),
        ),
        "already_revoked",
        "token.revoked",
    )


@pytest.mark.db
def test_self_inspections_opened_twice_at_once_are_opened_once(
    committed: CommittedWard, db_url: str
) -> None:
    """A double click on "open the year's self-inspections": the second opens nothing (every
    unit has its record), neither fails nor duplicates one."""

    def open_year(ward: Ward) -> object:
        return SelfInspectionSteps(ward).open()

    waited = behind(committed, db_url, open_year, open_year)

    assert waited.error is None, waited
    assert waited.result.created == ()
    with committed.session() as session:
        units = [u.code for u in units_in_scope(session, committed.ward(session).org)]
        opened = session.scalars(select(Unit.code).join(SelfInspection)).all()
        assert sorted(opened) == sorted(units)


@pytest.mark.db
def test_two_NEW_TASKs_of_one_number_approved_at_once_add_one(
    committed: CommittedWard, db_url: str
) -> None:
    """Two proposals to add a task, both given the plan's next number, approved at once: the
    second is refused (number_taken) with its message, not failed on the table's constraint."""
    with committed.session() as session:
        ward = committed.ward(session)
        proposals = [
            propose_amendment(
                session,
                ward.org,
                session.scalars(select(Plan)).one(),
                ward.user("vhxh.truong"),
                kind="add_task",
                changes={**NEW_TASK, "content": content},
                reason="Bổ sung nhiệm vụ",
                now=ward.clock.now(),
                trail=AuditTrail(),
            )
            for content in (NEW_TASK["content"], "Số hóa sổ hộ tịch")
        ]
        session.commit()
        ids = [p.id for p in proposals]
        assert proposals[0].task_number == proposals[1].task_number

    waited = behind(committed, db_url, approval(ids[0]), approval(ids[1]))

    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == "number_taken"
    with committed.session() as session:
        number = proposals[0].task_number
        added = session.scalars(select(PlanTask.content).where(PlanTask.number == number)).all()
        assert added == [NEW_TASK["content"]]


@pytest.mark.db
def test_a_sign_in_that_waited_for_a_deactivation_is_refused(
    committed: CommittedWard, db_url: str
) -> None:
    """The right password, while an administrator deactivates the account: once the
    deactivation commits, the sign-in that waited for it must be refused, not let in."""
    with committed.session() as session:
        logged = entries_about(session, "login.succeeded")

    waited = behind(
        committed,
        db_url,
        deactivate_member,
        lambda ward: sign_in(
            ward.session, "vp.canbo", DEMO_PASSWORD, now=ward.clock.now(), trail=AuditTrail()
        ),
    )

    assert waited.error is None, waited
    assert waited.result.user is None
    with committed.session() as session:
        assert entries_about(session, "login.succeeded") == logged


def inspections_ready(committed: CommittedWard, units: list[str]) -> list[int]:
    """The year's sample drawn with `units` in it, their inspections planned and their
    findings recorded (ready to be concluded), committed: their ids, in `units`' order."""
    with committed.session() as session:
        ward = committed.ward(session)
        args = {"now": ward.clock.now(), "trail": AuditTrail()}
        InspectionSteps(ward).draw(seed="x", include=units)
        records = {r.unit.code: r for r in inspections.inspections(session, ward.org, 2026)}
        reviewer = ward.user("vhxh.thamdinh1")
        for code in units:
            inspections.plan_inspection(
                session,
                ward.org,
                records[code].id,
                reviewer,
                plan_text="Kiểm tra hồ sơ",
                team=["Công chức VHXH"],
                scheduled_on=date(2026, 12, 1),
                **args,
            )
            inspections.record_findings(
                session, ward.org, records[code].id, reviewer, findings="Chậm tiến độ.", **args
            )
        session.commit()
        return [records[code].id for code in units]


def conclusion(inspection_id: int) -> Callable[[Ward], object]:
    return lambda ward: inspections.conclude_inspection(
        ward.session,
        ward.org,
        inspection_id,
        ward.user("lanhdao"),
        number="15/TB-UBND",
        conclusion="Đơn vị cần khắc phục.",
        corrective=[inspections.CorrectiveOrder("Hoàn thiện hồ sơ", date(2026, 12, 20))],
        now=ward.clock.now(),
        trail=AuditTrail(),
    )


@pytest.mark.db
def test_one_inspection_concluded_twice_at_once_is_concluded_once(
    committed: CommittedWard, db_url: str
) -> None:
    (inspection_id,) = inspections_ready(committed, ["VP"])
    waited = behind(committed, db_url, conclusion(inspection_id), conclusion(inspection_id))
    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == "invalid_transition"
    with committed.session() as session:
        corrective = session.scalars(
            select(PlanTask.number).where(PlanTask.number > inspections.CORRECTIVE_NUMBER_BASE)
        ).all()
        assert corrective == [inspections.CORRECTIVE_NUMBER_BASE + 1]


@pytest.mark.db
def test_two_inspections_concluded_at_once_number_their_tasks_apart(
    committed: CommittedWard, db_url: str
) -> None:
    first, second = inspections_ready(committed, ["VP", "KTHTDT"])
    waited = behind(committed, db_url, conclusion(first), conclusion(second))
    assert waited.error is None, waited
    with committed.session() as session:
        corrective = session.scalars(
            select(PlanTask.number)
            .where(PlanTask.number > inspections.CORRECTIVE_NUMBER_BASE)
            .order_by(PlanTask.number)
        ).all()
        base = inspections.CORRECTIVE_NUMBER_BASE
        assert corrective == [base + 1, base + 2]


@pytest.mark.db
def test_a_year_closed_twice_at_once_is_closed_once(committed: CommittedWard, db_url: str) -> None:
    """A double click on "close the year", once every unit's self-inspection is acknowledged:
    the second is refused as closed, not failed on the table's constraint."""
    with committed.session() as session:
        steps = SelfInspectionSteps(committed.ward(session))
        steps.open()
        for unit in SELF_INSPECTED:
            steps.fill(unit, f"{unit.lower()}.canbo")
            steps.submit(unit, units_heads(unit))
            steps.decide(unit, "lanhdao" if unit == "VHXH" else "vhxh.truong")
        session.commit()

    def close(ward: Ward) -> object:
        SelfInspectionSteps(ward).close()
        return None

    refused_behind(committed, db_url, close, "year_closed", "year.closed")


@pytest.mark.db
def test_a_reset_that_waited_for_a_lock_out_logs_the_unlocking(
    committed: CommittedWard, db_url: str
) -> None:
    """An administrator resets a password while wrong passwords lock the account out: the
    reset, read before the lock-out and run after it, must clear it and log that it did."""

    def lock_out(ward: Ward) -> object:
        for _ in range(MAX_FAILURES):
            sign_in(
                ward.session, "vp.canbo", "sai-mat-khau", now=ward.clock.now(), trail=AuditTrail()
            )
        return None

    def reset(ward: Ward) -> object:
        return reset_password(
            ward.session,
            ward.org,
            ward.user("vp.canbo"),
            "mat-khau-moi-2026",
            actor=ADMIN,
            now=ward.clock.now(),
            trail=AuditTrail(),
        )

    waited = behind(
        committed,
        db_url,
        lock_out,
        reset,
        prepare=lambda ward: ward.user("vp.canbo"),  # the page the administrator came from
    )

    assert waited.error is None, waited
    with committed.session() as session:
        user = committed.ward(session).user("vp.canbo")
        assert user.failed_logins == 0
        assert user.locked_until is None
        [entry] = Ledger(ORIGIN).entries(session, action="user.password_reset").items
        assert entry.content()["details"] == {"unlocked": True}

"""Invariant 3: of two concurrent decisions on one instance exactly one wins; the other gets
stale_version and changes nothing, and the log holds one entry for the decision.

Each decision runs in its own thread with its own Session (its own connection), on a committed
database. Both read the instance's version (the page they looked at) in a short transaction
before a barrier; then both fire with expected_version=that version. The winner holds its
transaction open a moment before committing, so the other is really waiting on it: on
PostgreSQL at the engine's SELECT ... FOR NO KEY UPDATE, on SQLite at BEGIN IMMEDIATE.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from audit.ledger import Ledger
from workflow.amendments import propose_amendment
from workflow.clock import FixedClock
from workflow.engine import Engine, Outcome
from workflow.errors import DomainError
from workflow.models import (
    CoordinationRequest,
    Evidence,
    Plan,
    Remark,
    TaskInstance,
    Unit,
    User,
)
from workflow.trail import AuditTrail

from ._helpers import (
    CommittedWard,
    approval,
    behind,
    committed_ward,
    entries_about,
    first_file,
    free_lead_unit,
    refusal_code,
    started_instance,
)
from .conftest import ORIGIN, PDF, T0, Ward

HOLD = 0.2  # seconds the winner keeps its transaction open after firing
DECISIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "accept": ("vhxh.truong", {"assessment": "Hoàn thành tốt"}),
    "return_for_rework": ("vhxh.truong", {"reason": "Bổ sung phụ lục"}),
}
ROUNDS = 3  # instances decided concurrently, one after another, per test


@pytest.fixture
def committed(fresh_db_url: str, tmp_path: Path) -> Iterator[CommittedWard]:
    ward = committed_ward(fresh_db_url, tmp_path / "evidence", reviewed=ROUNDS)
    try:
        yield ward
    finally:
        ward.db.dispose()


@dataclass
class Attempt:
    event: str
    seen_version: int = 0
    fired_at: float = 0.0
    committed_at: float | None = None
    outcome: Outcome | None = None
    error: BaseException | None = field(default=None)


def decide(
    cw: CommittedWard,
    instance_id: int,
    attempt: Attempt,
    barrier: threading.Barrier,
    *,
    read_in_same_transaction: bool,
) -> None:
    actor_name, inputs = DECISIONS[attempt.event]
    try:
        with cw.session() as session:
            actor = session.scalars(select(User).where(User.username == actor_name)).one()
            attempt.seen_version = session.get_one(TaskInstance, instance_id).version
            if not read_in_same_transaction:
                session.rollback()  # the page was rendered; its read transaction ended
            barrier.wait(timeout=30)
            engine = Engine(session, AuditTrail(), FixedClock(T0 + timedelta(days=1)))
            attempt.fired_at = time.monotonic()
            try:
                attempt.outcome = engine.fire(
                    instance_id,
                    attempt.event,
                    actor,
                    expected_version=attempt.seen_version,
                    **inputs,
                )
            except DomainError as err:
                session.rollback()
                attempt.error = err
                return
            time.sleep(HOLD)
            session.commit()
            attempt.committed_at = time.monotonic()
    except BaseException as exc:  # reported by the main thread
        attempt.error = exc


def race(
    cw: CommittedWard, instance_id: int, events: tuple[str, str], *, same_transaction: bool
) -> tuple[Attempt, Attempt]:
    barrier = threading.Barrier(2)
    attempts = [Attempt(event) for event in events]
    threads = [
        threading.Thread(
            target=decide,
            args=(cw, instance_id, a, barrier),
            kwargs={"read_in_same_transaction": same_transaction},
        )
        for a in attempts
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a decision never finished (deadlock?)"
    for a in attempts:
        if a.error is not None and not isinstance(a.error, DomainError):
            raise a.error
    winners = [a for a in attempts if a.outcome is not None]
    losers = [a for a in attempts if a.outcome is None]
    assert len(winners) == 1, f"exactly one decision wins: {attempts}"
    return winners[0], losers[0]


def check_race(
    cw: CommittedWard, instance_id: int, events: tuple[str, str], *, same_transaction: bool
) -> None:
    with cw.session() as session:
        version = session.get_one(TaskInstance, instance_id).version
        size = Ledger(ORIGIN).size(session)
        remarks = len(
            session.scalars(select(Remark).where(Remark.instance_id == instance_id)).all()
        )

    winner, loser = race(cw, instance_id, events, same_transaction=same_transaction)

    assert winner.seen_version == loser.seen_version == version
    assert isinstance(loser.error, DomainError) and loser.error.code == "stale_version"
    assert loser.error.message  # says why, in Vietnamese
    # They really overlapped: the loser fired before the winner committed.
    assert winner.committed_at is not None and loser.fired_at < winner.committed_at
    assert winner.outcome is not None
    target = {"accept": "accepted", "return_for_rework": "returned"}[winner.event]
    assert (winner.outcome.after, winner.outcome.version) == (target, version + 1)

    with cw.session() as session:
        inst = session.get_one(TaskInstance, instance_id)
        assert (inst.state, inst.version) == (target, version + 1)
        ledger = Ledger(ORIGIN)
        assert ledger.size(session) == size + 1
        entry = ledger.entry(session, size)
        assert (entry.action, entry.object_id) == (f"task.{winner.event}", str(instance_id))
        decisions = [
            e.action
            for e in ledger.history(session, "task_instance", instance_id)
            if e.action in ("task.accept", "task.return_for_rework")
        ]
        assert decisions == [f"task.{winner.event}"]
        # Only the winner's decision remark exists.
        after = session.scalars(select(Remark).where(Remark.instance_id == instance_id)).all()
        assert len(after) == remarks + 1


@pytest.mark.db
def test_two_concurrent_accepts(committed: CommittedWard) -> None:
    for instance_id in committed.reviewed:
        check_race(committed, instance_id, ("accept", "accept"), same_transaction=False)


@pytest.mark.db
def test_concurrent_accept_and_return(committed: CommittedWard) -> None:
    for instance_id in committed.reviewed:
        check_race(committed, instance_id, ("accept", "return_for_rework"), same_transaction=False)


@pytest.mark.db
def test_concurrent_decisions_read_in_the_deciding_transaction(
    committed: CommittedWard, db_url: str
) -> None:
    """Each side read the instance inside the transaction that then decides, so the loser's
    session already holds the row it read before the winner committed: its locked load must
    refresh it (or the version column catch its write) and the loser get stale_version.
    PostgreSQL only: on SQLite the first read already takes the write lock (BEGIN IMMEDIATE),
    so both cannot have read."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serialises whole transactions from their first read")
    for instance_id in committed.reviewed:
        check_race(committed, instance_id, ("accept", "return_for_rework"), same_transaction=True)


@pytest.mark.db
def test_a_decision_after_the_other_committed_is_stale(committed: CommittedWard) -> None:
    """No overlap at all: the second decision comes strictly after the first committed."""
    instance_id = committed.reviewed[0]
    with committed.session() as first, committed.session() as second:
        seen = second.get_one(TaskInstance, instance_id).version
        second.rollback()
        ward = committed.ward(first)
        ward.engine.fire(instance_id, "accept", ward.user("vhxh.truong"), assessment="Tốt")
        first.commit()
        late = committed.ward(second)
        size = late.log_size()
        code = refusal_code(
            lambda: late.engine.fire(
                instance_id,
                "return_for_rework",
                late.user("vhxh.truong"),
                expected_version=seen,
                reason="Chưa đạt",
            )
        )
        assert code == "stale_version"
        second.commit()
        assert late.log_size() == size
    with committed.session() as session:
        assert session.get_one(TaskInstance, instance_id).state == "accepted"


# --- a submission covers what the submitter saw --------------------------------------------


@pytest.mark.db
@pytest.mark.parametrize("later", [True, False], ids=["a-minute-later", "same-instant"])
def test_every_evidence_change_makes_an_older_view_stale(ward: Ward, later: bool) -> None:
    """Adding, withdrawing or explaining evidence moves the version, even when the clock gives
    the instant already stored (a fixed clock, a coarse one, a replay), so a submission made
    on an older view is refused as stale."""
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    ward.fill_evidence(inst, "vp.canbo")
    product = ward.products(inst)[0]

    def tick() -> None:
        if later:
            ward.clock.advance_to(ward.clock.now() + timedelta(minutes=1))

    def changes() -> Iterator[str]:
        tick()
        extra = e.add_evidence(
            inst.id, u("vp.canbo"), data=PDF + b"v2", filename="bo-sung.pdf", product=product
        )
        yield "add_evidence"
        tick()
        e.withdraw_evidence(extra.id, u("vp.canbo"))
        yield "withdraw_evidence"
        tick()
        e.explain_missing(inst.id, u("vp.canbo"), product=product, text="Bản gốc đang trình ký")
        yield "explain_missing"

    seen = inst.version
    for change in changes():
        assert inst.version == seen + 1, f"{change} did not bump the version"
        stale = refusal_code(
            lambda seen=seen: e.fire(inst.id, "submit", u("vp.truong"), expected_version=seen)
        )
        assert stale == "stale_version", change
        seen = inst.version


# --- an action that waits for another writer's lock (see _helpers.behind) -----------------


def refused_submission_behind(
    committed: CommittedWard,
    db_url: str,
    hold: Callable[[Ward], object],
    instance_id: int,
    version: int,
    code: str,
) -> None:
    """The head submits `instance_id` (in progress at `version`) without a version while
    `hold` holds it locked; once `hold` commits, the submission must be refused with `code`,
    the instance left in progress with its version moved once (by `hold`)."""
    waited = behind(
        committed,
        db_url,
        hold,
        lambda ward: ward.engine.fire(instance_id, "submit", ward.user("vp.truong")),
    )
    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == code
    with committed.session() as session:
        inst = session.get_one(TaskInstance, instance_id)
        assert (inst.state, inst.version) == ("in_progress", version + 1)


@pytest.mark.db
def test_a_submission_that_waited_for_a_withdrawal_sees_it(
    committed: CommittedWard, db_url: str
) -> None:
    """The head submits without a version (as a script or the API may) while a member's
    withdrawal of a product's only file holds the instance locked. Once the withdrawal commits,
    the submission must judge the evidence as committed, not as its statement's snapshot saw it
    before it waited: refused with evidence_missing, nothing written."""
    instance_id, version = started_instance(committed, filled=True)
    first = first_file(committed, instance_id)

    refused_submission_behind(
        committed,
        db_url,
        lambda ward: ward.engine.withdraw_evidence(first, ward.user("vp.canbo")),
        instance_id,
        version,
        "evidence_missing",
    )


@pytest.mark.db
@pytest.mark.parametrize(
    ("uploader", "expected"),
    [("new", None), ("old", "not_permitted")],
    ids=["new-unit-member", "old-unit-member"],
)
def test_evidence_that_waited_for_a_reassignment_follows_it(
    committed: CommittedWard, db_url: str, uploader: str, expected: str | None
) -> None:
    """A member uploads evidence while VHXH's head, holding the instance locked, hands the task
    to another unit. Once the reassignment commits, the upload must be judged on the unit that
    now leads: allowed for a member of the new unit, refused (not_permitted) for one of the old
    unit; never "not found" because the instance's unit changed while the upload waited."""
    instance_id, _ = started_instance(committed)
    with committed.session() as session:
        ward = committed.ward(session)
        instance = session.get_one(TaskInstance, instance_id)
        product = ward.products(instance)[0]
        target = free_lead_unit(session, instance.plan_task_id)
    who = f"{target.lower()}.canbo" if uploader == "new" else "vp.canbo"

    waited = behind(
        committed,
        db_url,
        lambda ward: ward.engine.reassign(
            instance_id, ward.user("vhxh.truong"), to_unit=target, reason="Đúng chức năng"
        ),
        lambda ward: ward.engine.add_evidence(
            instance_id, ward.user(who), data=PDF, filename="bien-ban.pdf", product=product
        ),
    )

    with committed.session() as session:
        assert session.get_one(TaskInstance, instance_id).unit.code == target
        files = session.scalars(select(Evidence).where(Evidence.instance_id == instance_id)).all()
    if expected is None:
        assert waited.error is None, waited
        assert [f.id for f in files] == [waited.result.id]
    else:
        assert isinstance(waited.error, DomainError), waited
        assert waited.error.code == expected
        assert files == []


@pytest.mark.db
def test_a_withdrawal_that_waited_for_the_same_withdrawal_is_refused(
    committed: CommittedWard, db_url: str
) -> None:
    """The uploader withdraws a file twice at once (a double click, two tabs): the second,
    which found the file still in place before it waited, must be refused once the first has
    committed, and the log must hold one withdrawal."""
    instance_id, version = started_instance(committed, filled=True)
    first = first_file(committed, instance_id)
    with committed.session() as session:
        logged = entries_about(session, "evidence.withdrawn")

    waited = behind(
        committed,
        db_url,
        lambda ward: ward.engine.withdraw_evidence(first, ward.user("vp.canbo")),
        lambda ward: ward.engine.withdraw_evidence(first, ward.user("vp.canbo")),
        prepare=lambda ward: ward.session.get_one(Evidence, first),  # the page showed it
    )

    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == "not_found"
    with committed.session() as session:
        assert session.get_one(TaskInstance, instance_id).version == version + 1
        assert entries_about(session, "evidence.withdrawn") == logged + 1


@pytest.mark.db
@pytest.mark.parametrize("second", ["provide", "decline"])
def test_an_answer_that_waited_for_another_answer_is_refused(
    committed: CommittedWard, db_url: str, second: str
) -> None:
    """Two members of the asked unit answer one request at once: the one that waited must be
    refused as already answered once the other has committed, whatever each answered, and
    the log must hold one answer."""
    instance_id, _ = started_instance(committed)
    with committed.session() as session:
        ward = committed.ward(session)
        instance = session.get_one(TaskInstance, instance_id)
        asked = ward.engine.coordinator_codes(instance)[0]
        request = ward.engine.request_contribution(
            instance_id, ward.user("vp.canbo"), unit_code=asked, message="Số liệu quý"
        )
        session.commit()
        request_id = request.id
        logged = entries_about(session, "contribution.provided") + entries_about(
            session, "contribution.declined"
        )
    member = f"{asked.lower()}.canbo"
    answers = {
        "provide": {"provide": True, "note": "Đã gửi số liệu"},
        "decline": {"provide": False, "reason": "Không thuộc chức năng"},
    }

    waited = behind(
        committed,
        db_url,
        lambda ward: ward.engine.respond_contribution(
            request_id, ward.user(member), **answers["provide"]
        ),
        lambda ward: ward.engine.respond_contribution(
            request_id, ward.user(f"{asked.lower()}.truong"), **answers[second]
        ),
        prepare=lambda ward: ward.session.get_one(CoordinationRequest, request_id),
    )

    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == "already_answered"
    with committed.session() as session:
        assert session.get_one(CoordinationRequest, request_id).state == "provided"
        answered = entries_about(session, "contribution.provided") + entries_about(
            session, "contribution.declined"
        )
        assert answered == logged + 1


@pytest.mark.db
def test_a_submission_that_waited_for_a_request_sees_it(
    committed: CommittedWard, db_url: str
) -> None:
    """The head submits, without an explanation, while a member's request to a coordinating
    unit holds the instance locked. Once the request commits, the submission must see it
    outstanding: refused with explanation_required (the demo plan's policy), as it would be had
    it come a moment later."""
    instance_id, version = started_instance(committed, filled=True)
    with committed.session() as session:
        ward = committed.ward(session)
        asked = ward.engine.coordinator_codes(session.get_one(TaskInstance, instance_id))[0]

    refused_submission_behind(
        committed,
        db_url,
        lambda ward: ward.engine.request_contribution(
            instance_id, ward.user("vp.canbo"), unit_code=asked, message="Số liệu quý"
        ),
        instance_id,
        version,
        "explanation_required",
    )


@pytest.mark.db
def test_a_submission_that_waited_for_an_amendment_sees_its_products(
    committed: CommittedWard, db_url: str
) -> None:
    """The head submits while the ward leader's approval of an amendment adding a product to
    the task holds its instances locked. Once the approval commits, the submission must be
    judged on the amended products: the new one has no file, evidence_missing."""
    instance_id, version = started_instance(committed, filled=True)
    with committed.session() as session:
        ward = committed.ward(session)
        inst = session.get_one(TaskInstance, instance_id)
        amendment = propose_amendment(
            session,
            ward.org,
            session.scalars(select(Plan)).one(),
            ward.user("vhxh.truong"),
            kind="change_task",
            task_number=inst.plan_task.number,
            changes={"products": [*ward.products(inst), "Báo cáo bổ sung số liệu"]},
            reason="Bổ sung sản phẩm",
            now=ward.clock.now(),
            trail=AuditTrail(),
        )
        session.commit()
        amendment_id = amendment.id

    refused_submission_behind(
        committed,
        db_url,
        approval(amendment_id),
        instance_id,
        version,
        "evidence_missing",
    )


@pytest.mark.db
def test_two_instances_handed_to_one_unit_at_once_are_refused_once(
    committed: CommittedWard, db_url: str
) -> None:
    """Two lead units' instances of one task and period are handed to the same third unit at
    once, each reassignment holding only its own instance: the second must be refused
    (duplicate_assignment), as it would be a moment later, not fail on the table's
    constraint."""
    with committed.session() as session:
        pairs = session.execute(
            select(TaskInstance.plan_task_id, TaskInstance.period_label)
            .join(Unit, TaskInstance.unit_id == Unit.id)
            .where(TaskInstance.state == "assigned", Unit.code != "VHXH")
            .group_by(TaskInstance.plan_task_id, TaskInstance.period_label)
            .having(func.count() >= 2)
            .order_by(TaskInstance.plan_task_id)
        ).first()
        assert pairs is not None, "the demo plan has no task with two lead units"
        task_id, period = pairs
        instances = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.plan_task_id == task_id, TaskInstance.period_label == period)
            .order_by(TaskInstance.id)
        ).all()
        target = free_lead_unit(session, task_id)
        first, second = (i.id for i in instances[:2])

    def hand(instance_id: int) -> Callable[[Ward], object]:
        return lambda ward: ward.engine.reassign(
            instance_id, ward.user("vhxh.truong"), to_unit=target, reason="Đúng chức năng"
        )

    waited = behind(committed, db_url, hand(first), hand(second))

    assert isinstance(waited.error, DomainError), waited
    assert waited.error.code == "duplicate_assignment"
    with committed.session() as session:
        moved = session.scalars(
            select(TaskInstance.id)
            .join(Unit, TaskInstance.unit_id == Unit.id)
            .where(TaskInstance.plan_task_id == task_id, Unit.code == target)
        ).all()
        assert moved == [first]

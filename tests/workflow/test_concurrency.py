"""Invariant 3: of two concurrent decisions on one instance exactly one wins; the other gets
stale_version and changes nothing, and the log holds one entry for the decision.

Each decision runs in its own thread with its own Session (its own connection), on a committed
database. Both read the instance's version (the page they looked at) in a short transaction
before a barrier; then both fire with expected_version=that version. The winner holds its
transaction open a moment before committing, so the other is really waiting on it: on
PostgreSQL at the engine's SELECT ... FOR UPDATE, on SQLite at BEGIN IMMEDIATE.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from audit.ledger import Ledger
from workflow.clock import FixedClock
from workflow.engine import Engine, Outcome
from workflow.errors import DomainError
from workflow.models import Evidence, Remark, TaskInstance, User
from workflow.trail import AuditTrail

from ._helpers import CommittedWard, committed_ward, refusal_code
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


@pytest.mark.db
def test_a_submission_that_waited_for_a_withdrawal_sees_it(
    committed: CommittedWard, db_url: str
) -> None:
    """The head submits without a version (as a script or the API may) while a member's
    withdrawal of a product's only file holds the instance locked. Once the withdrawal commits,
    the submission must judge the evidence as committed, not as its statement's snapshot saw it
    before it waited: refused with evidence_missing, nothing written. PostgreSQL only: on
    SQLite the submission cannot read before the withdrawal has committed (BEGIN IMMEDIATE)."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite serialises whole transactions from their first read")
    instance_id = committed.assigned[0]
    with committed.session() as session:
        ward = committed.ward(session)
        ward.engine.fire(instance_id, "start", ward.user("vp.canbo"))
        ward.fill_evidence(session.get_one(TaskInstance, instance_id), "vp.canbo")
        session.commit()
        first = session.scalars(
            select(Evidence).where(Evidence.instance_id == instance_id).order_by(Evidence.id)
        ).first()
        assert first is not None
        version = session.get_one(TaskInstance, instance_id).version

    submission = Attempt("submit")
    started = threading.Event()

    def submit() -> None:
        try:
            with committed.session() as session:
                ward = committed.ward(session)
                head = ward.user("vp.truong")
                started.set()
                submission.fired_at = time.monotonic()
                try:
                    submission.outcome = ward.engine.fire(instance_id, "submit", head)
                    session.commit()
                except DomainError as err:
                    session.rollback()
                    submission.error = err
        except BaseException as exc:  # reported below
            submission.error = exc

    with committed.session() as session:
        ward = committed.ward(session)
        ward.engine.withdraw_evidence(first.id, ward.user("vp.canbo"))  # locks the instance
        session.flush()
        thread = threading.Thread(target=submit)
        thread.start()
        assert started.wait(timeout=30)
        time.sleep(HOLD)  # the submission is now waiting on the instance's lock
        assert thread.is_alive(), "the submission did not wait for the withdrawal"
        session.commit()
        withdrawn_at = time.monotonic()
    thread.join(timeout=60)
    assert not thread.is_alive()

    assert submission.fired_at < withdrawn_at
    assert isinstance(submission.error, DomainError), submission
    assert submission.error.code == "evidence_missing"
    with committed.session() as session:
        inst = session.get_one(TaskInstance, instance_id)
        assert (inst.state, inst.version) == ("in_progress", version + 1)

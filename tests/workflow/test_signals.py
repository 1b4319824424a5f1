"""The blinker signals announce a change only after it committed, and never a change that was
rolled back or refused (workflow/signals.py: "sent when the session commits, dropped on
rollback")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from blinker import NamedSignal
from sqlalchemy import select

from workflow import signals
from workflow.models import TaskInstance

from ._helpers import CommittedWard, committed_ward, refusal_code


@pytest.fixture
def committed(fresh_db_url: str, tmp_path: Path) -> Iterator[CommittedWard]:
    ward = committed_ward(fresh_db_url, tmp_path / "evidence", reviewed=1)
    try:
        yield ward
    finally:
        ward.db.dispose()


@dataclass
class Heard:
    """Every signal received, with the instance's state that another connection saw then."""

    cw: CommittedWard
    calls: list[tuple[str, Any, dict[str, Any], str | None]] = field(default_factory=list)
    # Read the state through another connection when a signal arrives. Off where a signal
    # might arrive while the writer still holds SQLite's write lock (the read would wait).
    look: bool = True

    def receiver(self, name: str):  # type: ignore[no-untyped-def]
        def receive(sender: Any, **kwargs: Any) -> None:
            seen = None
            if self.look:
                with self.cw.db.connect() as conn:
                    seen = conn.execute(
                        select(TaskInstance.state).where(TaskInstance.id == sender)
                    ).scalar_one()
                    conn.rollback()
            self.calls.append((name, sender, kwargs, seen))

        return receive

    def names(self) -> list[str]:
        return [name for name, *_ in self.calls]


@pytest.fixture
def heard(committed: CommittedWard) -> Iterator[Heard]:
    h = Heard(committed)
    wanted: dict[str, NamedSignal] = {
        "accepted": signals.task_accepted,
        "returned": signals.task_returned,
        "started": signals.task_started,
    }
    with ExitStack() as stack:
        for name, signal in wanted.items():
            stack.enter_context(signal.connected_to(h.receiver(name)))
        yield h


@pytest.mark.db
def test_task_accepted_is_sent_after_the_commit(committed: CommittedWard, heard: Heard) -> None:
    instance_id = committed.reviewed[0]
    with committed.session() as session:
        ward = committed.ward(session)
        ward.engine.fire(instance_id, "accept", ward.user("vhxh.truong"), assessment="Tốt")
        session.flush()
        assert heard.calls == []  # changed and flushed, not committed: nothing announced
        session.commit()
    assert heard.calls == [
        (
            "accepted",
            instance_id,
            {"event": "accept", "actor": "vhxh.truong", "state": "accepted"},
            "accepted",  # another connection already sees the committed state
        )
    ]


@pytest.mark.db
def test_nothing_is_sent_for_a_rollback_or_a_refusal(
    committed: CommittedWard, heard: Heard
) -> None:
    reviewed, assigned = committed.reviewed[0], committed.assigned[0]
    with committed.session() as session:
        ward = committed.ward(session)
        e, u = ward.engine, ward.user
        e.fire(reviewed, "accept", u("vhxh.truong"), assessment="Tốt")
        session.rollback()
        assert heard.calls == []
        # The dropped signal does not come back with the session's next commit, and a
        # refusal queues nothing.
        assert refusal_code(lambda: e.fire(reviewed, "accept", u("vp.truong"))) == ("not_permitted")
        e.fire(assigned, "start", u("vp.canbo"))
        session.commit()
    assert [(name, sender) for name, sender, *_ in heard.calls] == [("started", assigned)]
    with committed.session() as session:
        assert session.get_one(TaskInstance, reviewed).state == "reviewed"


@pytest.mark.db
def test_a_change_rolled_back_to_a_savepoint_is_not_announced(
    committed: CommittedWard, heard: Heard
) -> None:
    reviewed = committed.reviewed[0]
    with committed.session() as session:
        ward = committed.ward(session)
        savepoint = session.begin_nested()
        ward.engine.fire(reviewed, "accept", ward.user("vhxh.truong"), assessment="Tốt")
        savepoint.rollback()
        session.commit()
    assert heard.calls == []


@pytest.mark.db
def test_a_savepoint_rollback_keeps_the_signals_of_the_outer_change(
    committed: CommittedWard, heard: Heard
) -> None:
    """Rolling back a savepoint drops only the signals queued inside it: the changes made
    before it still commit, and so are still announced."""
    reviewed, assigned = committed.reviewed[0], committed.assigned[0]
    with committed.session() as session:
        ward = committed.ward(session)
        e, u = ward.engine, ward.user
        e.fire(assigned, "start", u("vp.canbo"))  # the outer change: it commits
        savepoint = session.begin_nested()
        e.fire(reviewed, "accept", u("vhxh.truong"), assessment="Tốt")
        savepoint.rollback()  # only the accept is undone
        session.commit()
    with committed.session() as session:
        assert session.get_one(TaskInstance, assigned).state == "in_progress"
        assert session.get_one(TaskInstance, reviewed).state == "reviewed"
    assert [(name, sender) for name, sender, *_ in heard.calls] == [("started", assigned)]


@pytest.mark.db
def test_a_released_savepoint_is_announced_once_with_the_commit(
    committed: CommittedWard, heard: Heard
) -> None:
    heard.look = False
    reviewed = committed.reviewed[0]
    with committed.session() as session:
        ward = committed.ward(session)
        savepoint = session.begin_nested()
        ward.engine.fire(reviewed, "accept", ward.user("vhxh.truong"), assessment="Tốt")
        savepoint.commit()
        session.commit()
    assert [(name, sender) for name, sender, *_ in heard.calls] == [("accepted", reviewed)]


@pytest.mark.db
def test_a_released_savepoint_announces_nothing_before_the_commit(
    committed: CommittedWard, heard: Heard
) -> None:
    heard.look = False
    reviewed = committed.reviewed[0]
    with committed.session() as session:
        ward = committed.ward(session)
        savepoint = session.begin_nested()
        ward.engine.fire(reviewed, "accept", ward.user("vhxh.truong"), assessment="Tốt")
        savepoint.commit()  # released into the enclosing transaction, not committed
        assert heard.calls == [], "announced before the commit"
        session.rollback()
    with committed.session() as session:
        assert session.get_one(TaskInstance, reviewed).state == "reviewed"
    assert heard.calls == []


@pytest.mark.db
def test_closing_the_session_drops_its_signals(committed: CommittedWard, heard: Heard) -> None:
    reviewed, assigned = committed.reviewed[0], committed.assigned[0]
    session = committed.session()
    try:
        ward = committed.ward(session)
        ward.engine.fire(reviewed, "accept", ward.user("vhxh.truong"), assessment="Tốt")
        session.close()  # the transaction ends without a commit: the accept is gone
        ward = committed.ward(session)
        ward.engine.fire(assigned, "start", ward.user("vp.canbo"))
        session.commit()
    finally:
        session.close()
    with committed.session() as check:
        assert check.get_one(TaskInstance, reviewed).state == "reviewed"
    assert [(name, sender) for name, sender, *_ in heard.calls] == [("started", assigned)]


@pytest.mark.db
def test_a_failing_receiver_neither_fails_the_commit_nor_silences_the_others(
    committed: CommittedWard, heard: Heard, caplog: pytest.LogCaptureFixture
) -> None:
    """The change is committed when the receivers run: one that raises is logged, the commit
    returns, and every other receiver still hears this signal and the ones after it."""
    reviewed, assigned = committed.reviewed[0], committed.assigned[0]

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("mail server down")

    with (
        signals.task_accepted.connected_to(broken),
        caplog.at_level("ERROR", logger="workflow.signals"),
        committed.session() as session,
    ):
        ward = committed.ward(session)
        ward.engine.fire(reviewed, "accept", ward.user("vhxh.truong"), assessment="Tốt")
        ward.engine.fire(assigned, "start", ward.user("vp.canbo"))
        session.commit()  # does not raise
    assert [(name, sender) for name, sender, *_ in heard.calls] == [
        ("accepted", reviewed),
        ("started", assigned),
    ]
    [record] = caplog.records
    assert "task-accepted" in record.getMessage() and record.exc_info is not None
    assert "mail server down" in str(record.exc_info[1])
    with committed.session() as session:
        assert session.get_one(TaskInstance, reviewed).state == "accepted"
        assert session.get_one(TaskInstance, assigned).state == "in_progress"

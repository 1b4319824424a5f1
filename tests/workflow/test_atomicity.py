"""Invariant 1: the state change, its audit entry and its outbox rows commit together or not
at all; invariant 5: a refusal leaves nothing, even when the caller then commits.

Runs on a committed database (`fresh_db_url`); every check reads it back through a new
session, so nothing is taken from an identity map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from audit.ledger import Ledger
from workflow.engine import Engine
from workflow.models import Evidence, Notification, Remark, TaskInstance
from workflow.trail import AuditTrail

from ._helpers import CommittedWard, committed_ward, refusal_code, snapshot
from .conftest import ORIGIN, PDF, Ward


class Injected(RuntimeError):
    """The failure a test injects between the state change and the commit."""


@pytest.fixture
def committed(fresh_db_url: str, tmp_path: Path) -> Iterator[CommittedWard]:
    ward = committed_ward(fresh_db_url, tmp_path / "evidence", reviewed=1)
    try:
        yield ward
    finally:
        ward.db.dispose()


def boundary(cw: CommittedWard, work: Callable[[Ward], Any]) -> None:
    """A request's unit of work: commit on success, roll back on any exception."""
    with cw.session() as session:
        ward = cw.ward(session)
        try:
            work(ward)
            session.commit()
        except BaseException:
            session.rollback()
            raise


def totals(session: Session) -> tuple[int, ...]:
    counts = [
        session.scalar(select(func.count()).select_from(model))
        for model in (TaskInstance, Remark, Notification, Evidence)
    ]
    return (*counts, Ledger(ORIGIN).size(session))


def read_back(cw: CommittedWard, *instance_ids: int) -> tuple[Any, ...]:
    with cw.session() as session:
        return (totals(session), *(snapshot(session, i) for i in instance_ids))


def stored_files(cw: CommittedWard) -> list[Path]:
    return sorted(p for p in cw.store_dir.rglob("*") if p.is_file())


def after_calling(cls: type, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    """Patch cls.name to do its work and then fail."""

    def install(monkeypatch: pytest.MonkeyPatch) -> None:
        original = getattr(cls, name)

        def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
            original(self, *args, **kwargs)
            raise Injected(f"after {cls.__name__}.{name}")

        monkeypatch.setattr(cls, name, failing)

    return install


INJECTIONS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    # the state moved (version-checked UPDATE), its remark and outbox rows are written,
    # nothing appended yet
    "after the state, remark and outbox rows": after_calling(Engine, "_write"),
    # the audit entry is appended (in the same transaction)
    "after the audit entry": after_calling(AuditTrail, "record"),
    # everything is written and the session's copy of the instance is brought up to date
    "after the identity map is updated": after_calling(Engine, "_refresh_mapped"),
}


@contextmanager
def failing_commit(session: Session) -> Iterator[None]:
    def refuse(_session: Session) -> None:
        raise Injected("before commit")

    event.listen(session, "before_commit", refuse)
    try:
        yield
    finally:
        event.remove(session, "before_commit", refuse)


@pytest.mark.db
def test_an_exception_before_commit_leaves_neither_state_nor_entry(
    committed: CommittedWard, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = committed.reviewed[0]
    before = read_back(committed, instance_id)
    assert before[1]["row"][0] == "reviewed"

    def accept(ward: Ward) -> None:
        ward.engine.fire(instance_id, "accept", ward.user("vhxh.truong"), assessment="Tốt")

    for where, install in INJECTIONS.items():
        with monkeypatch.context() as patch:
            install(patch)
            with pytest.raises(Injected):
                boundary(committed, accept)
        assert read_back(committed, instance_id) == before, where

    # The commit itself fails, after everything was flushed.
    with committed.session() as session:
        ward = committed.ward(session)
        accept(ward)
        session.flush()
        with failing_commit(session), pytest.raises(Injected):
            session.commit()
        session.rollback()
    assert read_back(committed, instance_id) == before, "a failing commit"

    # The same action without an injected failure does commit its change and its entry.
    boundary(committed, accept)
    after = read_back(committed, instance_id)
    assert after[1]["row"][0] == "accepted"
    assert after[1]["history"] == [*before[1]["history"], "task.accept"]
    assert after[0][-1] == before[0][-1] + 1


@pytest.mark.db
def test_an_exception_after_adding_evidence_leaves_neither_file_row_nor_entry(
    committed: CommittedWard, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id = committed.assigned[0]
    boundary(committed, lambda w: w.engine.fire(instance_id, "start", w.user("vp.canbo")))
    before = read_back(committed, instance_id)

    def add(ward: Ward) -> None:
        product = ward.products(ward.session.get_one(TaskInstance, instance_id))[0]
        ward.engine.add_evidence(
            instance_id, ward.user("vp.canbo"), data=PDF, filename="a.pdf", product=product
        )

    with monkeypatch.context() as patch:
        after_calling(AuditTrail, "record")(patch)
        with pytest.raises(Injected):
            boundary(committed, add)
    assert read_back(committed, instance_id) == before


@pytest.mark.db
def test_a_refusal_writes_nothing_even_when_the_caller_commits(committed: CommittedWard) -> None:
    reviewed, assigned, working = committed.reviewed[0], *committed.assigned[:2]
    boundary(committed, lambda w: w.engine.fire(working, "start", w.user("vp.canbo")))
    before = read_back(committed, reviewed, assigned, working)
    files_before = stored_files(committed)

    codes = []
    with committed.session() as session:
        ward = committed.ward(session)
        e, u = ward.engine, ward.user
        product = ward.products(session.get_one(TaskInstance, working))[0]
        attempts: list[Callable[[], object]] = [
            lambda: e.fire(reviewed, "accept", u("vp.truong"), assessment="Tốt"),
            lambda: e.fire(reviewed, "accept", u("vhxh.truong")),
            lambda: e.fire(reviewed, "return_for_rework", u("vhxh.truong"), reason="  "),
            lambda: e.fire(reviewed, "review", u("vhxh.thamdinh1"), findings="x"),
            lambda: e.fire(
                reviewed, "accept", u("vhxh.truong"), assessment="Tốt", expected_version=1
            ),
            lambda: e.fire(reviewed, "approve", u("vhxh.truong")),
            lambda: e.fire(assigned, "start", u("kthtdt.canbo")),
            lambda: e.fire(working, "submit", u("vp.truong")),
            lambda: e.add_evidence(
                reviewed, u("vp.canbo"), data=PDF, filename="a.pdf", product=product
            ),
            lambda: e.add_evidence(
                working, u("vp.canbo"), data=b"MZ\x90\x00", filename="a.pdf", product=product
            ),
            lambda: e.add_evidence(
                working, u("kthtdt.canbo"), data=PDF, filename="a.pdf", product=product
            ),
            lambda: e.explain_missing(working, u("vp.canbo"), product=product, text="   "),
            lambda: e.explain_missing(working, u("vp.canbo"), product="Không có", text="Lý do"),
        ]
        for attempt in attempts:
            codes.append(refusal_code(attempt))
        session.commit()

    assert codes == [
        "not_permitted",
        "assessment_required",
        "reason_required",
        "invalid_transition",
        "stale_version",
        "unknown_event",
        "not_permitted",
        "evidence_missing",
        "invalid_state",
        "file_type_not_allowed",
        "not_permitted",
        "explanation_required",
        "unknown_product",
    ]
    assert read_back(committed, reviewed, assigned, working) == before
    # Nothing reached the evidence store either: every refusal came before storing.
    assert stored_files(committed) == files_before

"""The annual self-inspection of every unit in scope: who may do what, what a submission needs,
coverage, and closing the year only at 100%."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.ledger import Ledger
from definitions.calendar import load_calendar
from definitions.rubric import load_rubric
from workflow import selfinspection as si
from workflow.clock import ward_date
from workflow.errors import DomainError
from workflow.models import SelfInspection
from workflow.permissions import Person, oversight_refusal
from workflow.trail import AuditTrail

from ._helpers import CommittedWard, committed_ward
from .conftest import ORIGIN, Ward

pytestmark = pytest.mark.db

RUBRIC = load_rubric()
CALENDAR = load_calendar()
IN_SCOPE = ["KTHTDT", "TTDVSNC", "TTPVHCC", "VHXH", "VP"]  # units.yaml: self_inspects


def full_answers() -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    for i, criterion in enumerate(RUBRIC.criteria):
        answer: dict[str, Any] = {"self_score": str(criterion.max_points)}
        if i % 2 == 0:
            answer["evidence"] = [{"document": "Báo cáo số 12/BC-UBND", "location": "mục II.1"}]
        else:
            answer["explanation"] = "Không có văn bản riêng; kết quả thể hiện trong báo cáo năm."
        answers[criterion.code] = answer
    return answers


class Steps:
    def __init__(self, ward: Ward) -> None:
        self.ward = ward
        self.trail = AuditTrail()

    def open(self, who: str = "vhxh.truong") -> si.Opened:
        return si.open_self_inspections(
            self.ward.session,
            self.ward.org,
            2026,
            self.ward.user(who),
            now=self.ward.clock.now(),
            today=date(2026, 11, 30),
            calendar=CALENDAR,
            rubric=RUBRIC,
            trail=self.trail,
        )

    def record(self, unit: str) -> SelfInspection:
        return si.find_self_inspection(self.ward.session, self.ward.org, 2026, unit)

    def fill(self, unit: str, who: str, answers: dict[str, Any] | None = None) -> SelfInspection:
        return si.fill_self_inspection(
            self.ward.session,
            self.ward.org,
            self.record(unit).id,
            self.ward.user(who),
            answers if answers is not None else full_answers(),
            now=self.ward.clock.now(),
            rubric=RUBRIC,
            trail=self.trail,
        )

    def submit(self, unit: str, who: str) -> SelfInspection:
        return si.submit_self_inspection(
            self.ward.session,
            self.ward.org,
            self.record(unit).id,
            self.ward.user(who),
            now=self.ward.clock.now(),
            rubric=RUBRIC,
            trail=self.trail,
        )

    def decide(self, unit: str, who: str, ok: bool = True, reason: str = "") -> SelfInspection:
        return si.decide_self_inspection(
            self.ward.session,
            self.ward.org,
            self.record(unit).id,
            self.ward.user(who),
            acknowledge=ok,
            reason=reason,
            now=self.ward.clock.now(),
            trail=self.trail,
        )

    def close(self, who: str = "lanhdao") -> None:
        si.close_year(
            self.ward.session,
            self.ward.org,
            2026,
            self.ward.user(who),
            now=self.ward.clock.now(),
            trail=self.trail,
        )

    def refused(self, code: str, action: Any, *args: Any, **kwargs: Any) -> None:
        """The action is refused with `code`, and neither the log nor the rows change."""
        size = self.ward.log_size()
        before = {
            r.id: (r.state, r.version)
            for r in si.self_inspections(self.ward.session, self.ward.org, 2026)
        }
        with pytest.raises(DomainError) as caught:
            action(*args, **kwargs)
        assert caught.value.code == code, caught.value
        self.ward.session.expire_all()
        after = {
            r.id: (r.state, r.version)
            for r in si.self_inspections(self.ward.session, self.ward.org, 2026)
        }
        assert (self.ward.log_size(), after) == (size, before)


def units_heads(unit: str) -> str:
    return f"{unit.lower()}.truong"


def test_opening_creates_one_prefilled_record_per_unit_in_scope(ward: Ward) -> None:
    steps = Steps(ward)
    steps.refused("not_permitted", steps.open, "vp.truong")
    size = ward.log_size()
    opened = steps.open()
    assert sorted(opened.created) == IN_SCOPE
    assert ward.log_size() == size + len(IN_SCOPE)  # one entry per record
    vp = steps.record("VP")
    assert vp.state == "draft"
    assert vp.prefill["as_of"] == "2026-11-30"
    assert vp.prefill["figures"]["led"] == len(vp.prefill["instances"]) > 0
    assert [c["code"] for c in vp.prefill["score"]["criteria"]] == [c.code for c in RUBRIC.criteria]
    assert vp.prefill["audit"]["tree_size"] == size  # computed before the opening's entries
    # Opening again creates nothing.
    assert steps.open().created == ()


def test_submission_needs_every_criterion_scored_with_evidence_or_explanation(ward: Ward) -> None:
    steps = Steps(ward)
    steps.open()
    first = RUBRIC.criteria[0].code
    steps.refused("not_permitted", steps.fill, "VP", "kthtdt.canbo")
    steps.refused("invalid_answer", steps.fill, "VP", "vp.canbo", {first: {"self_score": "99"}})
    steps.refused(
        "invalid_answer",
        steps.fill,
        "VP",
        "vp.canbo",
        {first: {"self_score": "5", "evidence": [{"document": "Báo cáo"}]}},
    )
    steps.fill("VP", "vp.canbo", {first: {"self_score": "5"}})
    steps.refused("answers_missing", steps.submit, "VP", "vp.truong")
    steps.fill("VP", "vp.canbo")
    steps.refused("not_permitted", steps.submit, "VP", "vp.canbo")  # the head submits
    size = ward.log_size()
    record = steps.submit("VP", "vp.truong")
    assert (record.state, record.round, ward.log_size()) == ("submitted", 1, size + 1)
    steps.refused("invalid_transition", steps.fill, "VP", "vp.canbo")


def test_who_acknowledges_or_returns(ward: Ward) -> None:
    steps = Steps(ward)
    steps.open()
    for unit in ("VP", "VHXH"):
        steps.fill(unit, f"{unit.lower()}.canbo")
        steps.submit(unit, units_heads(unit))
    steps.refused("not_permitted", steps.decide, "VP", "vhxh.thamdinh1")
    steps.refused("not_permitted", steps.decide, "VP", "lanhdao")
    steps.refused("reason_required", steps.decide, "VP", "vhxh.truong", False)
    returned = steps.decide("VP", "vhxh.truong", False, "Thiếu tài liệu kiểm chứng tiêu chí 2.")
    assert (returned.state, returned.return_reason) == (
        "returned",
        "Thiếu tài liệu kiểm chứng tiêu chí 2.",
    )
    steps.fill("VP", "vp.canbo")
    assert steps.submit("VP", "vp.truong").round == 2
    assert steps.decide("VP", "vhxh.truong").state == "acknowledged"
    # Nobody decides on their own unit's self-inspection: VHXH's goes to the ward leader.
    steps.refused("not_permitted", steps.decide, "VHXH", "vhxh.truong")
    steps.refused("not_permitted", steps.decide, "VHXH", "vhxh.thamdinh1")
    assert steps.decide("VHXH", "lanhdao").state == "acknowledged"


def test_coverage_reaches_100_percent_only_when_every_unit_is_acknowledged(ward: Ward) -> None:
    steps = Steps(ward)
    session, org = ward.session, ward.org
    assert si.coverage(session, org, 2026).as_json()["text"] == (
        "0/5 đơn vị đã gửi, 0/5 đơn vị đã được xác nhận"
    )
    steps.open()
    for unit in IN_SCOPE:
        steps.fill(unit, f"{unit.lower()}.canbo")
        steps.submit(unit, units_heads(unit))
    cover = si.coverage(session, org, 2026)
    assert (len(cover.submitted), len(cover.acknowledged), cover.complete) == (5, 0, False)
    for i, unit in enumerate(IN_SCOPE):
        steps.refused("coverage_incomplete", steps.close)
        steps.decide(unit, "lanhdao" if unit == "VHXH" else "vhxh.truong")
        cover = si.coverage(session, org, 2026)
        assert len(cover.acknowledged) == i + 1
        assert cover.complete is (i + 1 == len(IN_SCOPE))
    steps.refused("not_permitted", steps.close, "vhxh.truong")
    size = ward.log_size()
    steps.close()
    assert ward.log_size() == size + 1
    assert si.coverage(session, org, 2026).closed_at is not None
    steps.refused("year_closed", steps.close)
    steps.refused("year_closed", steps.open)


def test_a_returned_record_counts_as_not_submitted(ward: Ward) -> None:
    steps = Steps(ward)
    steps.open()
    steps.fill("KTHTDT", "kthtdt.canbo")
    steps.submit("KTHTDT", "kthtdt.truong")
    steps.decide("KTHTDT", "vhxh.truong", False, "Bổ sung minh chứng.")
    cover = si.coverage(ward.session, ward.org, 2026)
    assert "KTHTDT" not in cover.submitted and "KTHTDT" in cover.opened


def test_a_stale_version_is_refused(ward: Ward) -> None:
    steps = Steps(ward)
    steps.open()
    record = steps.record("VP")
    old = record.version
    steps.fill("VP", "vp.canbo")
    steps.refused(
        "stale_version",
        si.fill_self_inspection,
        ward.session,
        ward.org,
        record.id,
        ward.user("vp.canbo"),
        full_answers(),
        now=ward.clock.now(),
        rubric=RUBRIC,
        trail=steps.trail,
        expected_version=old,
    )


def test_another_wards_people_cannot_touch_it() -> None:
    """Unit codes repeat in every ward: a VP head elsewhere is nobody here."""
    elsewhere = Person(
        id=1, username="x", unit="VP", roles=frozenset({"member", "head"}), organization_id=2
    )
    for action in ("fill_self_inspection", "submit_self_inspection"):
        assert oversight_refusal(action, elsewhere, 2, "VP") is None
        refused = oversight_refusal(action, elsewhere, 1, "VP")
        assert refused is not None and refused.code == "not_permitted"


# --- invariant 3 on a self-inspection: two concurrent decisions, one winner -----------------


@pytest.fixture
def committed(fresh_db_url: str, tmp_path: Path) -> Iterator[CommittedWard]:
    ward = committed_ward(fresh_db_url, tmp_path / "evidence", reviewed=1)
    try:
        yield ward
    finally:
        ward.db.dispose()


def test_of_two_concurrent_decisions_exactly_one_wins(committed: CommittedWard) -> None:
    with committed.session() as session:
        steps = Steps(committed.ward(session))
        steps.open()
        steps.fill("VP", "vp.canbo")
        record_id = steps.submit("VP", "vp.truong").id
        session.commit()
        size = Ledger(ORIGIN).size(session)

    barrier = threading.Barrier(2)
    outcomes: dict[bool, object] = {}

    def decide(acknowledge: bool) -> None:
        try:
            with committed.session() as session:
                ward = committed.ward(session)
                seen = si.load_self_inspection(session, ward.org, record_id).version
                session.rollback()  # the page was rendered; its read transaction ended
                barrier.wait(timeout=30)
                si.decide_self_inspection(
                    session,
                    ward.org,
                    record_id,
                    ward.user("vhxh.truong"),
                    acknowledge=acknowledge,
                    reason="" if acknowledge else "Bổ sung",
                    now=ward.clock.now(),
                    trail=AuditTrail(),
                    expected_version=seen,
                )
                time.sleep(0.2)  # hold the transaction so the other really waits on it
                session.commit()
                outcomes[acknowledge] = "won"
        except DomainError as err:
            outcomes[acknowledge] = err.code
        except BaseException as exc:  # reported below
            outcomes[acknowledge] = exc

    threads = [threading.Thread(target=decide, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert sorted(map(str, outcomes.values())) == ["stale_version", "won"], outcomes
    with committed.session() as session:
        record = session.get_one(SelfInspection, record_id)
        winner = next(flag for flag, result in outcomes.items() if result == "won")
        assert record.state == ("acknowledged" if winner else "returned")
        assert Ledger(ORIGIN).size(session) == size + 1  # one decision entry


def test_coverage_as_of_a_past_date_reads_the_audit_log(ward: Ward) -> None:
    """A report of a past date shows the coverage of that date, not of today."""
    steps = Steps(ward)
    opened_on = ward_date(ward.clock.now())
    steps.open()
    steps.fill("VP", "vp.canbo")
    steps.submit("VP", "vp.truong")
    ward.clock.advance_to(ward.clock.now() + timedelta(days=10))
    steps.decide("VP", "vhxh.truong")
    session, org = ward.session, ward.org
    before = si.coverage(session, org, 2026, as_of=opened_on - timedelta(days=1))
    assert (before.opened, before.submitted, before.acknowledged) == ((), (), ())
    then = si.coverage(session, org, 2026, as_of=opened_on)
    assert (len(then.opened), then.submitted, then.acknowledged) == (5, ("VP",), ())
    now = si.coverage(session, org, 2026, as_of=opened_on + timedelta(days=10))
    assert (now.submitted, now.acknowledged) == (("VP",), ("VP",))
    assert now.as_json() == si.coverage(session, org, 2026).as_json()

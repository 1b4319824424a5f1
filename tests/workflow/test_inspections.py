"""Inspection of at least 20% of units: the draw (pure and recorded), its replay from the audit
entry, and one inspection through plan, findings, conclusion and corrective work."""

from __future__ import annotations

import math
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.checkpoint import NoteSigner, generate_key
from audit.ledger import Ledger
from definitions.calendar import load_calendar
from definitions.rubric import load_rubric
from workflow import inspections as insp
from workflow import periodic, sampling
from workflow.clock import ward_date
from workflow.errors import DomainError
from workflow.trail import AuditTrail

from .conftest import Ward

RUBRIC = load_rubric()
CALENDAR = load_calendar()
IN_SCOPE = ["KTHTDT", "TTDVSNC", "TTPVHCC", "VHXH", "VP"]

# --- the pure draw ----------------------------------------------------------------------------


def test_a_given_seed_always_draws_the_same_units() -> None:
    """Pinned: recorded draws are replayed years later, so the algorithm must never drift."""
    population = {f"U{i:02d}": 1 for i in range(12)}
    first = sampling.draw("kiểm tra 2026", population, fraction=Fraction(1, 4))
    # Worked out independently: h_r = SHA-256("kiểm tra 2026" 0x00 r) mod the units left.
    assert first.selected == ("U00", "U05", "U01")
    assert first == sampling.draw(
        "kiểm tra 2026", dict(reversed(population.items())), fraction=Fraction(1, 4)
    )
    assert sampling.redraw(first.as_json()) == first


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=60),
    fraction=st.fractions(min_value=Fraction(1, 100), max_value=1),
    seed=st.text(min_size=1, max_size=20),
    weights=st.lists(st.integers(min_value=1, max_value=50), min_size=60, max_size=60),
    forced=st.integers(min_value=0, max_value=5),
)
def test_no_draw_returns_fewer_than_a_fifth(
    n: int, fraction: Fraction, seed: str, weights: list[int], forced: int
) -> None:
    population = {f"U{i:02d}": weights[i] for i in range(n)}
    include = [f"U{i:02d}" for i in range(min(forced, n))]
    result = sampling.draw(seed, population, fraction=fraction, include=include, weights="risk")
    assert len(result.selected) >= math.ceil(0.2 * n)
    assert len(result.selected) >= min(n, math.ceil(fraction * n))
    assert len(set(result.selected)) == len(result.selected)
    assert set(include) <= set(result.selected) <= set(population)
    assert sampling.redraw(result.as_json()).selected == result.selected


def test_risk_weights_favour_low_scores_without_excluding_anyone() -> None:
    assert sampling.risk_weight(RUBRIC.max_points, RUBRIC.max_points) == 10
    assert sampling.risk_weight(0, RUBRIC.max_points) == 10 + 10 * int(RUBRIC.max_points)
    population = {"LOW": sampling.risk_weight(0, RUBRIC.max_points), "HIGH": 10}
    tally = {"LOW": 0, "HIGH": 0}
    for i in range(400):
        tally[sampling.draw(f"s{i}", population, fraction=Fraction(1, 2)).selected[0]] += 1
    assert tally["LOW"] > 3 * tally["HIGH"] > 0


@pytest.mark.parametrize("bad", ["0", "1.5", "abc", "-0.2"])
def test_a_bad_fraction_is_refused_in_vietnamese(bad: str) -> None:
    with pytest.raises(sampling.SamplingError, match="Tỷ lệ chọn mẫu"):
        sampling.parse_fraction(bad)


# --- recorded draws ---------------------------------------------------------------------------


class Steps:
    def __init__(self, ward: Ward, signer: NoteSigner | None = None) -> None:
        self.ward = ward
        self.trail = AuditTrail(signer=signer)

    def draw(self, who: str = "vhxh.truong", **kwargs: Any) -> Any:
        return insp.draw_sample(
            self.ward.session,
            self.ward.org,
            2026,
            self.ward.user(who),
            now=self.ward.clock.now(),
            today=date(2026, 11, 30),
            calendar=CALENDAR,
            rubric=RUBRIC,
            trail=self.trail,
            **kwargs,
        )

    def refused(self, code: str, action: Any, *args: Any, **kwargs: Any) -> None:
        size = self.ward.log_size()
        with pytest.raises(DomainError) as caught:
            action(*args, **kwargs)
        assert caught.value.code == code, caught.value
        assert self.ward.log_size() == size


@pytest.mark.db
def test_a_recorded_draw_equals_the_pure_draw_and_replays(ward: Ward) -> None:
    steps = Steps(ward)
    steps.refused("not_permitted", steps.draw, "vp.truong", seed="abc")
    size = ward.log_size()
    record = steps.draw(seed="Hội nghị 15/11/2026", fraction="0.5")
    assert ward.log_size() == size + 1  # the draw is one entry
    expected = sampling.draw(
        "Hội nghị 15/11/2026", dict.fromkeys(IN_SCOPE, 1), fraction=Fraction(1, 2)
    )
    assert tuple(record.selected) == expected.selected
    assert len(record.selected) == 3
    entry = Ledger(ward.org.audit_origin).entry(ward.session, record.audit_seq)
    assert entry.action == "inspection.sampled"
    replayed = insp.replay(ward.session, ward.org, record.audit_seq)
    assert replayed.identical and replayed.recomputed.selected == expected.selected
    assert {i.unit.code for i in insp.inspections(ward.session, ward.org, 2026)} == set(
        record.selected
    )
    steps.refused("already_drawn", steps.draw, seed="again")
    with pytest.raises(DomainError) as caught:
        insp.replay(ward.session, ward.org, 0)
    assert caught.value.code == "not_a_draw"


@pytest.mark.db
def test_the_default_seed_comes_from_the_signed_checkpoint(ward: Ward) -> None:
    Steps(ward).refused("no_checkpoint", Steps(ward).draw)
    signer = NoteSigner.from_text(generate_key("test.cchc.example")[0])
    steps = Steps(ward, signer)
    record = steps.draw(weights="risk", include=["VHXH"])
    source = record.parameters["seed_source"]
    checkpoint = Ledger(ward.org.audit_origin).latest_checkpoint(ward.session)
    assert checkpoint is not None
    assert source == {
        "kind": "checkpoint",
        "tree_size": checkpoint.size,
        "root": checkpoint.root.hex(),
    }
    assert record.seed == sampling.checkpoint_seed(
        ward.org.audit_origin, checkpoint.size, checkpoint.root.hex(), 2026
    )
    assert record.selected[0] == "VHXH"
    assert len(record.selected) == 1  # ceil(0.2 × 5), VHXH included by hand
    weights = {p["unit"]: p["weight"] for p in record.parameters["population"]}
    assert set(weights) == set(IN_SCOPE) and min(weights.values()) >= 10
    assert insp.replay(ward.session, ward.org, record.audit_seq).identical


# --- one inspection to the end ----------------------------------------------------------------


@pytest.mark.db
def test_an_inspection_runs_until_its_corrective_work_is_accepted(ward: Ward) -> None:
    steps = Steps(ward)
    steps.draw(seed="x", include=["VP"])
    record = next(i for i in insp.inspections(ward.session, ward.org, 2026) if i.unit.code == "VP")
    s, org, now, trail = ward.session, ward.org, ward.clock.now(), steps.trail

    def plan(who: str) -> Any:
        return insp.plan_inspection(
            s,
            org,
            record.id,
            ward.user(who),
            plan_text="Kiểm tra hồ sơ",
            team=["Trưởng phòng VHXH", "Công chức VHXH"],
            scheduled_on=date(2026, 12, 1),
            now=now,
            trail=trail,
        )

    def findings(who: str) -> Any:
        return insp.record_findings(
            s,
            org,
            record.id,
            ward.user(who),
            findings="Hai nhiệm vụ chậm tiến độ.",
            now=now,
            trail=trail,
        )

    def conclude(who: str) -> Any:
        return insp.conclude_inspection(
            s,
            org,
            record.id,
            ward.user(who),
            number="15/TB-UBND",
            conclusion="Đơn vị cần khắc phục.",
            corrective=[insp.CorrectiveOrder("Hoàn thiện hồ sơ nhiệm vụ 12", date(2026, 12, 20))],
            now=now,
            trail=trail,
        )

    def close(who: str) -> Any:
        return insp.close_inspection(s, org, record.id, ward.user(who), now=now, trail=trail)

    steps.refused("plan_incomplete", findings, "vhxh.thamdinh1")
    steps.refused("not_permitted", plan, "vp.truong")
    plan("vhxh.thamdinh1")
    steps.refused("invalid_transition", conclude, "lanhdao")
    findings("vhxh.thamdinh1")
    steps.refused("not_permitted", conclude, "vhxh.truong")
    size = ward.log_size()
    conclude("lanhdao")
    assert ward.log_size() == size + 2  # the corrective task's assignment and the conclusion
    (action,) = record.corrective_actions
    instance = action.instance
    assert (instance.state, instance.unit.code, instance.due_date) == (
        "assigned",
        "VP",
        date(2026, 12, 20),
    )
    assert instance.plan_task.number == insp.CORRECTIVE_NUMBER_BASE + 1
    steps.refused("corrective_open", close, "vhxh.truong")

    engine = ward.engine
    engine.fire(instance.id, "start", ward.user("vp.canbo"))
    ward.fill_evidence(instance, "vp.canbo")
    engine.fire(instance.id, "submit", ward.user("vp.truong"))
    engine.fire(
        instance.id, "review", ward.user("vhxh.thamdinh1"), findings="Đạt", recommendation="accept"
    )
    engine.fire(instance.id, "accept", ward.user("vhxh.truong"), assessment="Đạt yêu cầu")
    assert close("vhxh.truong").state == "closed"


@pytest.mark.db
def test_nobody_inspects_their_own_unit(ward: Ward) -> None:
    steps = Steps(ward)
    steps.draw(seed="y", include=["VHXH"])
    record = next(i for i in insp.inspections(ward.session, ward.org) if i.unit.code == "VHXH")
    steps.refused(
        "not_permitted",
        insp.plan_inspection,
        ward.session,
        ward.org,
        record.id,
        ward.user("vhxh.thamdinh1"),
        plan_text="Kế hoạch",
        team=["A"],
        scheduled_on=None,
        now=ward.clock.now(),
        trail=steps.trail,
    )
    done = insp.plan_inspection(
        ward.session,
        ward.org,
        record.id,
        ward.user("lanhdao"),
        plan_text="Kế hoạch",
        team=["Lãnh đạo UBND"],
        scheduled_on=None,
        now=ward.clock.now(),
        trail=steps.trail,
    )
    assert done.team == ["Lãnh đạo UBND"]


@pytest.mark.db
def test_a_report_of_an_earlier_date_shows_the_inspection_as_it_stood(ward: Ward) -> None:
    steps = Steps(ward)
    steps.draw(seed="z", include=["VP"])
    record = next(i for i in insp.inspections(ward.session, ward.org) if i.unit.code == "VP")
    s, org, trail = ward.session, ward.org, steps.trail
    drawn_on = ward_date(ward.clock.now())
    insp.plan_inspection(
        s,
        org,
        record.id,
        ward.user("vhxh.thamdinh1"),
        plan_text="Kế hoạch",
        team=["A"],
        scheduled_on=None,
        now=ward.clock.now(),
        trail=trail,
    )
    insp.record_findings(
        s,
        org,
        record.id,
        ward.user("vhxh.thamdinh1"),
        findings="Chậm",
        now=ward.clock.now(),
        trail=trail,
    )
    ward.clock.advance_to(ward.clock.now() + timedelta(days=7))
    insp.conclude_inspection(
        s,
        org,
        record.id,
        ward.user("lanhdao"),
        number="15/TB-UBND",
        conclusion="Khắc phục",
        corrective=[insp.CorrectiveOrder("Hoàn thiện hồ sơ", date(2026, 12, 20))],
        now=ward.clock.now(),
        trail=trail,
    )

    def line(day: date) -> Any:
        report = periodic.build_report(
            s,
            org,
            kind="year",
            year=2026,
            quarter=None,
            as_of=day,
            today=day,
            difficulties="",
            calendar=CALENDAR,
            rubric=RUBRIC,
        )
        return next(x for x in report.inspections if x.unit == "VP")

    earlier = line(drawn_on)
    assert earlier.state == insp.INSPECTION_STATE_LABELS["findings_recorded"]
    assert (earlier.conclusion_number, earlier.corrective) == (None, ())
    later = line(drawn_on + timedelta(days=7))
    assert later.state == insp.INSPECTION_STATE_LABELS["concluded"]
    assert later.conclusion_number == "15/TB-UBND"
    assert [c.description for c in later.corrective] == ["Hoàn thiện hồ sơ"]

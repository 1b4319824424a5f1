"""The evaluation on a small ward whose work is known, against figures computed by hand.

The fixture writes rows directly (not through the engine) so that every date is chosen: the
figures below were worked out on paper from this table, as of Tuesday 30/06/2026.

  id  unit    section  due          accepted     returns (logged)       products
  A   VP      I        31/03        20/03        -                      bao_cao
  B   VP      I        31/03        07/04        25/03                  bao_cao
  C   VP      II       15/06        open         01/06, 10/07 (later)   ke_hoach
  D   VP      II       31/12        open         -                      ke_hoach
  E   KTHTDT  I        29/05        29/05        -                      ke_hoach
  F   KTHTDT  II       30/04        cancelled    -                      ke_hoach
  G   KTHTDT  II       31/08        10/07 (later) -                     ke_hoach

Working days late: B from 31/03 to 07/04 = 01, 02, 03, 06, 07/04 = 5; C from 15/06 to 30/06 =
16–19, 22–26, 29, 30/06 = 11.

Coordination requests (asked unit, on instance, asked, due, answer):
  KTHTDT on A: 01/03, due 10/03, provided 09/03        -> settled, on time
  KTHTDT on C: 01/06, due 10/06, provided 12/06        -> settled, late
  KTHTDT on D: 20/06, due 10/07, no answer             -> not settled yet
  VP     on E: 01/05, due 10/05, no answer             -> settled (past due), not on time
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session

from audit.ledger import Ledger
from definitions.calendar import load_calendar
from definitions.loader import default_plan_path, load_units
from definitions.rubric import load_rubric, rubric_from_data
from workflow.clock import WARD_TZ
from workflow.evaluation import Evaluation, evaluate
from workflow.models import (
    CoordinationRequest,
    KpiMeasurement,
    Organization,
    Plan,
    PlanTask,
    TaskInstance,
    User,
)
from workflow.planning import ensure_organization, ensure_units, units_by_code
from workflow.trail import SYSTEM, AuditTrail

pytestmark = pytest.mark.db

AS_OF = date(2026, 6, 30)
CALENDAR = load_calendar()
PLAN_TEXT = default_plan_path().read_text(encoding="utf-8")


def at(day: int, month: int, hour: int = 10) -> datetime:
    """A Vietnamese wall-clock time on a 2026 date, as a UTC instant."""
    return datetime.combine(date(2026, month, day), time(hour), tzinfo=WARD_TZ).astimezone(UTC)


@dataclass
class Known:
    session: Session
    org: Organization
    ids: dict[str, int]


@pytest.fixture
def known(session: Session) -> Known:
    now = at(2, 1)
    trail = AuditTrail()
    org, _ = ensure_organization(
        session, slug="known-ward", name="Phường thử", audit_origin="test.local/known", now=now
    )
    ensure_units(session, org, load_units())
    units = units_by_code(session, org)
    trail.record(
        session,
        org,
        now=now,
        actor=SYSTEM,
        action="organization.created",
        object_type="organization",
        object_id=org.slug,
    )
    user = User(
        organization_id=org.id,
        username="known.user",
        full_name="Người thử",
        unit_id=units["VHXH"].id,
        created_at=now,
    )
    plan = Plan(
        organization_id=org.id,
        code="known-2026",
        year=2026,
        title="Kế hoạch thử",
        definition_sha256=hashlib.sha256(PLAN_TEXT.encode()).hexdigest(),
        definition_text=PLAN_TEXT,
        policy={},
        imported_at=now,
    )
    session.add_all([user, plan])
    session.flush()

    def task(number: int, section: str, kind: str) -> PlanTask:
        row = PlanTask(
            plan_id=plan.id,
            number=number,
            section=section,
            content=f"Nhiệm vụ {number}",
            lead_text="",
            leads=[],
            coordinators_text="",
            coordinators=[],
            timeframe="",
            schedule_kind="once",
            products=[{"name": f"Sản phẩm {number}", "kind": kind}],
        )
        session.add(row)
        return row

    tasks = {
        "I-report": task(1, "I", "bao_cao"),
        "I-plan": task(2, "I", "ke_hoach"),
        "II-plan": task(3, "II", "ke_hoach"),
    }
    session.flush()
    table = {
        # key: (task, unit, due, state, accepted)
        "A": ("I-report", "VP", date(2026, 3, 31), "accepted", at(20, 3)),
        "B": ("I-report", "VP", date(2026, 3, 31), "accepted", at(7, 4)),
        "C": ("II-plan", "VP", date(2026, 6, 15), "in_progress", None),
        "D": ("II-plan", "VP", date(2026, 12, 31), "assigned", None),
        "E": ("I-plan", "KTHTDT", date(2026, 5, 29), "accepted", at(29, 5, 16)),
        "F": ("II-plan", "KTHTDT", date(2026, 4, 30), "cancelled", None),
        "G": ("II-plan", "KTHTDT", date(2026, 8, 31), "accepted", at(10, 7)),
    }
    instances = {}
    for key, (task_key, unit, due, state, accepted) in table.items():
        inst = TaskInstance(
            plan_task_id=tasks[task_key].id,
            unit_id=units[unit].id,
            period_label=f"Kỳ {key}",
            period_start=date(2026, 1, 1),
            due_date=due,
            state=state,
            accepted_at=accepted,
            created_at=now,
            updated_at=now,
        )
        session.add(inst)
        instances[key] = inst
    session.flush()
    ids = {key: inst.id for key, inst in instances.items()}

    for key, when in (("B", at(25, 3)), ("C", at(1, 6)), ("C", at(10, 7))):
        trail.record(
            session,
            org,
            now=when,
            actor=SYSTEM,
            action="task.return_for_rework",
            object_type="task_instance",
            object_id=ids[key],
        )
    # A return of another ward's instance with the same id must not count here.
    other, _ = ensure_organization(
        session, slug="other", name="Phường khác", audit_origin="test.local/other", now=now
    )
    trail.record(
        session,
        other,
        now=at(2, 3),
        actor=SYSTEM,
        action="task.return_for_rework",
        object_type="task_instance",
        object_id=ids["A"],
    )

    def request(unit: str, on: str, asked: datetime, due: date, answer: datetime | None) -> None:
        session.add(
            CoordinationRequest(
                instance_id=ids[on],
                unit_id=units[unit].id,
                state="provided" if answer else "requested",
                due_date=due,
                message="",
                requested_by_id=user.id,
                requested_at=asked,
                responded_at=answer,
                responded_by_id=user.id if answer else None,
            )
        )

    request("KTHTDT", "A", at(1, 3), date(2026, 3, 10), at(9, 3))
    request("KTHTDT", "C", at(1, 6), date(2026, 6, 10), at(12, 6))
    request("KTHTDT", "D", at(20, 6), date(2026, 7, 10), None)
    request("VP", "E", at(1, 5), date(2026, 5, 10), None)

    def measure(code: str, value: str, day: date) -> None:
        session.add(
            KpiMeasurement(
                plan_id=plan.id,
                kpi_code=code,
                value=value,
                measured_on=day,
                note="",
                evidence_sha256="0" * 64,
                evidence_size=1,
                evidence_media_type="application/pdf",
                evidence_filename="kq.pdf",
                entered_by_id=user.id,
                entered_at=now,
            )
        )

    measure("sipas_satisfaction", "96.5", date(2026, 6, 15))
    measure("sipas_satisfaction", "94", date(2026, 7, 15))  # after the date: not used
    measure("online_payment", "85", date(2026, 6, 1))
    session.flush()
    return Known(session, org, ids)


def run(known: Known, rubric_path: Path | None = None) -> Evaluation:
    return evaluate(
        known.session,
        known.org,
        year=2026,
        as_of=AS_OF,
        calendar=CALENDAR,
        rubric=load_rubric(rubric_path),
    )


def test_unit_figures_equal_the_hand_computed_ones(known: Known) -> None:
    ev = run(known)
    vp = ev.by_unit["VP"].as_json()
    assert vp == {
        "led": 4,
        "accepted_on_time": 1,
        "accepted_late": 1,
        "open_on_time": 1,
        "open_overdue": 1,
        "completion_rate": "50.0",
        "on_time_rate": "33.3",
        "average_working_days_late": "8.0",
        "returns": 2,
        "contributions_asked": 1,
        "contributions_settled": 1,
        "contributions_on_time": 0,
        "contributions_on_time_rate": "0.0",
    }
    kthtdt = ev.by_unit["KTHTDT"].as_json()
    assert kthtdt == {
        "led": 2,
        "accepted_on_time": 1,
        "accepted_late": 0,
        "open_on_time": 1,
        "open_overdue": 0,
        "completion_rate": "50.0",
        "on_time_rate": "100.0",
        "average_working_days_late": None,
        "returns": 0,
        "contributions_asked": 3,
        "contributions_settled": 2,
        "contributions_on_time": 1,
        "contributions_on_time_rate": "50.0",
    }


def test_section_and_plan_figures_equal_the_hand_computed_ones(known: Known) -> None:
    ev = run(known)
    assert list(ev.by_section) == ["I", "II"]
    one, two, overall = ev.by_section["I"], ev.by_section["II"], ev.overall
    assert (one.led, one.accepted_on_time, one.accepted_late, one.open_overdue) == (3, 2, 1, 0)
    assert (one.completion_rate, one.on_time_rate) == (Decimal("100.0"), Decimal("66.7"))
    assert (one.average_days_late, one.returns) == (Decimal("5.0"), 1)
    assert (two.led, two.open_on_time, two.open_overdue) == (3, 2, 1)
    assert (two.completion_rate, two.on_time_rate) == (Decimal("0.0"), Decimal("0.0"))
    assert (two.average_days_late, two.returns) == (Decimal("11.0"), 1)
    assert (overall.led, overall.accepted, overall.open_overdue, overall.returns) == (6, 3, 1, 2)
    assert (overall.completion_rate, overall.on_time_rate) == (Decimal("50.0"), Decimal("50.0"))
    assert overall.average_days_late == Decimal("8.0")
    # Requests on section I instances: A (KTHTDT) and E (VP); section II: C and D.
    assert (one.contributions_asked, one.contributions_settled) == (2, 2)
    assert (two.contributions_asked, two.contributions_settled, two.contributions_on_time) == (
        2,
        1,
        0,
    )


def test_instance_facts_and_kpis(known: Known) -> None:
    ev = run(known)
    facts = {f.id: f for f in ev.instances}
    assert known.ids["F"] not in facts  # cancelled
    g = facts[known.ids["G"]]
    assert (g.status, g.accepted_on) == ("chua_hoan_thanh_trong_han", None)
    b = facts[known.ids["B"]]
    assert (b.status, b.working_days_late, b.returns) == ("hoan_thanh_qua_han", 5, 1)
    kpis = {k.code: k for k in ev.kpis}
    assert (kpis["sipas_satisfaction"].value, kpis["sipas_satisfaction"].met) == (
        Decimal("96.5"),
        True,
    )
    assert (kpis["online_payment"].value, kpis["online_payment"].met) == (Decimal("85"), False)
    assert kpis["public_investment_disbursement"].met is None


def test_scores_follow_the_rubric(known: Known) -> None:
    ev = run(known)
    scored = {s.unit for s in ev.scores}
    # Units that self-inspect, plus any unit leading work; Công an phường does neither here.
    assert scored == {"VHXH", "VP", "KTHTDT", "TTPVHCC", "TTDVSNC"}
    kthtdt = ev.score("KTHTDT")
    assert kthtdt is not None
    points = {c.code: c.points for c in kthtdt.criteria}
    # completion 50% -> 0; no report among its work -> 2; on time 100% -> 4;
    # coordination 50% -> 1; nothing overdue, nothing returned.
    assert points == {
        "plan_completion": 0,
        "reports_on_time": 2,
        "work_on_time": 4,
        "coordination_on_time": 1,
        "overdue_deduction": 0,
        "returned_deduction": 0,
    }
    assert (kthtdt.total, kthtdt.max_points) == (Decimal(7), Decimal(18))
    vp = ev.score("VP")
    assert vp is not None
    vp_points = {c.code: c.points for c in vp.criteria}
    assert vp_points["overdue_deduction"] == Decimal(-1)
    assert vp_points["returned_deduction"] == Decimal("-1.0")
    assert vp.total == 0  # -2 in all, never below zero
    vhxh = ev.score("VHXH")
    assert vhxh is not None and vhxh.total == Decimal(18)  # nothing to count: no deduction


def test_editing_the_rubric_file_changes_the_scores(known: Known, tmp_path: Path) -> None:
    data = yaml.safe_load(Path("definitions/data/rubric.yaml").read_text(encoding="utf-8"))
    data["criteria"][0]["bands"] = [{"when": ">= 50", "points": 6}, {"when": "< 50", "points": 0}]
    edited = tmp_path / "rubric.yaml"
    edited.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rubric_from_data(data)  # valid
    kthtdt = run(known, edited).score("KTHTDT")
    assert kthtdt is not None and kthtdt.total == Decimal(13)


def test_the_same_data_and_date_give_the_same_evaluation(known: Known) -> None:
    first = run(known).as_json(instances=True)
    second = run(known).as_json(instances=True)
    assert first == second
    ledger = Ledger("test.local/known")
    assert first["audit"] == {
        "origin": "test.local/known",
        "tree_size": ledger.size(known.session),
        "root": ledger.root(known.session).hex(),
    }
    assert first["audit"]["tree_size"] == 4  # organization + three returns


def test_an_earlier_date_sees_less(known: Known) -> None:
    ev = evaluate(
        known.session,
        known.org,
        year=2026,
        as_of=date(2026, 3, 31),
        calendar=CALENDAR,
        rubric=load_rubric(),
    )
    vp = ev.by_unit["VP"]
    # As of 31/03: A accepted on time; B not yet accepted and due that day (on time); C, D open.
    assert (vp.accepted_on_time, vp.accepted_late, vp.open_on_time, vp.open_overdue) == (1, 0, 3, 0)
    assert vp.returns == 1
    assert {k.code: k.value for k in ev.kpis}["sipas_satisfaction"] is None

"""Plan amendments: VHXH proposes, the ward leader decides, and an approved change reaches open
work and future periods without rewriting history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from audit.schema import audit_entry
from definitions.calendar import load_calendar
from definitions.timeframe import parse_timeframe
from workflow.accounts import create_user
from workflow.amendments import (
    AmendmentKind,
    AmendmentState,
    amendment_as_dict,
    amendments_of,
    decide_amendment,
    propose_amendment,
)
from workflow.errors import DomainError
from workflow.models import Plan, PlanAmendment, PlanTask, Remark, TaskInstance, Unit
from workflow.planning import units_by_code
from workflow.trail import SYSTEM

from .conftest import Ward

pytestmark = pytest.mark.db

TODAY = date(2026, 5, 4)  # a Monday in the second quarter
NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
REASON = "Theo chỉ đạo của UBND thành phố về điều chỉnh kế hoạch"
CALENDAR = load_calendar()


def _due(timeframe: str) -> list[date | None]:
    return [p.due for p in parse_timeframe(timeframe, 2026, CALENDAR).periods]


def _plan(ward: Ward) -> Plan:
    return ward.session.scalars(select(Plan)).one()


def _task(ward: Ward, number: int) -> PlanTask:
    return ward.session.scalars(select(PlanTask).where(PlanTask.number == number)).one()


def _propose(ward: Ward, username: str = "vhxh.truong", **kwargs: Any) -> PlanAmendment:
    kwargs.setdefault("reason", REASON)
    return propose_amendment(
        ward.session,
        ward.org,
        _plan(ward),
        ward.user(username),
        now=NOW,
        trail=ward.engine.trail,
        **kwargs,
    )


def _decide(
    ward: Ward,
    amendment: PlanAmendment,
    username: str = "lanhdao",
    *,
    approve: bool = True,
    reason: str = "Đồng ý",
    today: date = TODAY,
) -> PlanAmendment:
    return decide_amendment(
        ward.session,
        ward.org,
        amendment.id,
        ward.user(username),
        approve=approve,
        reason=reason,
        now=NOW,
        trail=ward.engine.trail,
        today=today,
    )


def _instances(ward: Ward, number: int) -> list[TaskInstance]:
    return list(
        ward.session.scalars(
            select(TaskInstance)
            .join(PlanTask, TaskInstance.plan_task_id == PlanTask.id)
            .join(Unit, TaskInstance.unit_id == Unit.id)
            .where(PlanTask.number == number)
            .order_by(Unit.code, TaskInstance.period_start, TaskInstance.id)
        )
    )


def _shape(ward: Ward, number: int) -> list[tuple[str, str, str, date | None]]:
    return [(i.unit.code, i.period_label, i.state, i.due_date) for i in _instances(ward, number)]


def _refused(fn: Callable[[], object]) -> DomainError:
    with pytest.raises(DomainError) as info:
        fn()
    return info.value


def _log(ward: Ward) -> list[tuple[int, bytes, bytes]]:
    ledger = ward.engine.trail.ledger(ward.org)
    size = ledger.size(ward.session)
    rows = ward.session.execute(
        select(audit_entry.c.seq, audit_entry.c.body, audit_entry.c.leaf_hash).order_by(
            audit_entry.c.seq
        )
    ).all()
    entries = [(int(r.seq), bytes(r.body), bytes(r.leaf_hash)) for r in rows]
    assert len(entries) == size
    return entries


def _new_entries(ward: Ward, since: int) -> list[dict[str, Any]]:
    ledger = ward.engine.trail.ledger(ward.org)
    return [ledger.entry(ward.session, seq).content() for seq in range(since, ward.log_size())]


def _accept(ward: Ward, instance: TaskInstance, member: str, head: str) -> None:
    """Drive an instance to accepted (VHXH's own work is decided by the ward leader)."""
    e, u = ward.engine, ward.user
    e.fire(instance.id, "start", u(member))
    ward.fill_evidence(instance, member)
    e.fire(instance.id, "submit", u(head))
    e.fire(instance.id, "review", u("vhxh.thamdinh1"), findings="Đạt", recommendation="accept")
    decider = "lanhdao" if instance.unit.code == "VHXH" else "vhxh.truong"
    e.fire(instance.id, "accept", u(decider), assessment="Hoàn thành")


# --- proposing ------------------------------------------------------------------------------


def test_a_proposal_is_recorded_and_changes_nothing_else(ward: Ward) -> None:
    before = _shape(ward, 11)
    size0 = ward.log_size()
    amendment = _propose(
        ward, kind="change_task", task_number=11, changes={"timeframe": " Hàng quý "}
    )
    assert amendment.state == AmendmentState.PROPOSED
    assert amendment.changes == {"timeframe": "Hàng quý"}
    assert amendment.decided_at is None and amendment.decided_by_id is None
    assert _task(ward, 11).timeframe == "Cả năm 2026"
    assert _shape(ward, 11) == before
    [entry] = _new_entries(ward, size0)
    assert entry["action"] == "plan.amendment_proposed"
    assert entry["actor"] == {"user": "vhxh.truong", "unit": "VHXH", "role": "head"}
    assert entry["object"] == {"type": "plan_amendment", "id": str(amendment.id)}
    assert entry["after"]["changes"] == {"timeframe": "Hàng quý"}
    assert entry["details"]["current"] == {"timeframe": "Cả năm 2026"}
    assert entry["details"]["reason"] == REASON
    listed = [amendment_as_dict(a) for a in amendments_of(ward.session, ward.org, state="proposed")]
    assert [(a["id"], a["kind"], a["task"], a["proposed_by"]) for a in listed] == [
        (amendment.id, "change_task", 11, "vhxh.truong")
    ]


def test_the_stored_change_is_plain_json_normalised(ward: Ward) -> None:
    amendment = _propose(
        ward,
        "vhxh.thamdinh1",
        kind="change_task",
        task_number=19,
        changes={
            "lead": ["Văn phòng HĐND và UBND phường"],  # a name, resolved to its code
            "coordinators": ["Trung tâm Phục vụ hành chính công", "related_units"],
            "products": "Báo cáo kết quả công khai; Thông báo niêm yết",
            "content": "  Công khai thủ tục hành chính tại Trung tâm  ",
        },
    )
    assert amendment.changes == {
        "content": "Công khai thủ tục hành chính tại Trung tâm",
        "leads": ["VP"],
        "coordinators": ["TTPVHCC", "related_units"],
        "products": [
            {"name": "Báo cáo kết quả công khai", "kind": "bao_cao"},
            {"name": "Thông báo niêm yết", "kind": "thong_bao"},
        ],
    }
    ward.session.expire(amendment)
    assert ward.session.get_one(PlanAmendment, amendment.id).changes["leads"] == ["VP"]


@pytest.mark.parametrize(
    ("username", "allowed"),
    [
        ("vhxh.truong", True),
        ("vhxh.thamdinh1", True),
        ("vhxh.canbo", False),
        ("vp.truong", False),
        ("lanhdao", False),
    ],
)
def test_only_vhxh_proposes(ward: Ward, username: str, allowed: bool) -> None:
    size0 = ward.log_size()

    def propose() -> PlanAmendment:
        return _propose(ward, username, kind="cancel_task", task_number=10)

    if allowed:
        assert propose().state == "proposed"
        assert ward.log_size() == size0 + 1
    else:
        error = _refused(propose)
        assert error.code == "not_permitted"
        assert "Văn hóa - Xã hội" in error.message
        assert ward.log_size() == size0
        assert ward.session.scalars(select(PlanAmendment)).all() == []


@pytest.mark.parametrize(
    ("kwargs", "code", "named"),
    [
        ({"kind": "rename_task", "task_number": 11}, "unknown_kind", "rename_task"),
        ({"kind": "cancel_task", "task_number": 11, "reason": "  "}, "reason_required", None),
        ({"kind": "cancel_task", "task_number": 999}, "unknown_task", "999"),
        ({"kind": "change_task", "changes": {"content": "Mới"}}, "unknown_task", None),
        (
            {"kind": "change_task", "task_number": 11, "changes": {"timeframe": "Sớm nhất có thể"}},
            "invalid_timeframe",
            "“Sớm nhất có thể”",
        ),
        (
            {"kind": "change_task", "task_number": 11, "changes": {"leads": ["XYZ"]}},
            "unknown_unit",
            "“XYZ”",
        ),
        (
            {"kind": "change_task", "task_number": 11, "changes": {"coordinators": ["Hội ABC"]}},
            "unknown_unit",
            "“Hội ABC”",
        ),
        (
            {"kind": "change_task", "task_number": 11, "changes": {"leads": ["MTTQ"]}},
            "cannot_lead",
            None,
        ),
        (
            {"kind": "change_task", "task_number": 11, "changes": {"products": ["Tổng hợp"]}},
            "unknown_product_kind",
            "“Tổng hợp”",
        ),
        (
            {"kind": "change_task", "task_number": 11, "changes": {"section": "I"}},
            "invalid_change",
            "“section”",
        ),
        ({"kind": "change_task", "task_number": 11, "changes": {}}, "no_change", None),
        (
            {"kind": "change_task", "task_number": 11, "changes": {"timeframe": "Cả năm 2026"}},
            "no_change",
            None,
        ),
        (
            {"kind": "cancel_task", "task_number": 11, "changes": {"content": "x"}},
            "invalid_change",
            None,
        ),
    ],
)
def test_proposal_refusals_change_nothing(
    ward: Ward, kwargs: dict[str, Any], code: str, named: str | None
) -> None:
    size0 = ward.log_size()
    error = _refused(lambda: _propose(ward, **kwargs))
    assert error.code == code
    if named is not None:
        assert named in error.message
    assert ward.log_size() == size0
    assert ward.session.scalars(select(PlanAmendment)).all() == []


def test_a_cancelled_task_is_not_amended_again(ward: Ward) -> None:
    _decide(ward, _propose(ward, kind="cancel_task", task_number=10))
    error = _refused(
        lambda: _propose(ward, kind="change_task", task_number=10, changes={"content": "Khác"})
    )
    assert error.code == "task_cancelled"


# --- deciding -------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["vhxh.truong", "vp.truong", "vhxh.thamdinh2"])
def test_only_the_ward_leader_decides(ward: Ward, username: str) -> None:
    amendment = _propose(ward, kind="cancel_task", task_number=10)
    size0 = ward.log_size()
    error = _refused(lambda: _decide(ward, amendment, username))
    assert error.code == "not_permitted"
    assert "Lãnh đạo UBND phường" in error.message
    assert amendment.state == "proposed" and ward.log_size() == size0
    assert _task(ward, 10).active


def test_rejection_needs_a_reason_and_applies_nothing(ward: Ward) -> None:
    amendment = _propose(ward, kind="cancel_task", task_number=10)
    before = _shape(ward, 10)
    size0 = ward.log_size()
    assert _refused(lambda: _decide(ward, amendment, approve=False, reason=" ")).code == (
        "reason_required"
    )
    assert ward.log_size() == size0 and amendment.state == "proposed"

    _decide(ward, amendment, approve=False, reason="Nhiệm vụ vẫn cần thực hiện")
    assert amendment.state == AmendmentState.REJECTED
    assert amendment.decision_reason == "Nhiệm vụ vẫn cần thực hiện"
    assert _task(ward, 10).active and _shape(ward, 10) == before
    [entry] = _new_entries(ward, size0)
    assert entry["action"] == "plan.amendment_rejected"
    assert entry["before"] == {"state": "proposed"} and entry["after"] == {"state": "rejected"}
    assert entry["actor"]["role"] == "ward_leader"


def test_a_decision_is_taken_once(ward: Ward) -> None:
    amendment = _propose(ward, kind="cancel_task", task_number=10)
    _decide(ward, amendment)
    size0 = ward.log_size()
    for approve in (True, False):
        error = _refused(lambda approve=approve: _decide(ward, amendment, approve=approve))
        assert error.code == "already_decided"
        assert "đã được phê duyệt ngày 04/05/2026" in error.message
    assert ward.log_size() == size0 and amendment.state == "approved"


def test_nobody_decides_their_own_proposal(ward: Ward) -> None:
    # Someone of VHXH who is also a ward leader may propose, but not approve what they proposed.
    both = create_user(
        ward.session,
        ward.org,
        username="vhxh.kiemnhiem",
        full_name="Trưởng phòng kiêm Lãnh đạo",
        unit=units_by_code(ward.session, ward.org)["VHXH"],
        roles=["member", "head", "ward_leader"],
        password=None,
        actor=SYSTEM,
        now=NOW,
        trail=ward.engine.trail,
    )
    amendment = _propose(ward, both.username, kind="cancel_task", task_number=10)
    size0 = ward.log_size()
    error = _refused(lambda: _decide(ward, amendment, both.username))
    assert error.code == "self_review"
    assert ward.log_size() == size0 and amendment.state == "proposed"
    _decide(ward, amendment, "lanhdao")
    assert amendment.state == "approved"


def test_an_unknown_amendment_is_not_found(ward: Ward) -> None:
    error = _refused(
        lambda: decide_amendment(
            ward.session,
            ward.org,
            12345,
            ward.user("lanhdao"),
            approve=True,
            reason="",
            now=NOW,
            trail=ward.engine.trail,
            today=TODAY,
        )
    )
    assert error.code == "not_found"


# --- applying: timeframe --------------------------------------------------------------------


def test_new_timeframe_redates_open_work_and_history_is_not_rewritten(ward: Ward) -> None:
    q1, q2, q3, q4 = _instances(ward, 2)  # VHXH's quarterly report, due before the 10th
    _accept(ward, q1, "vhxh.canbo", "vhxh.truong")
    ward.engine.fire(q2.id, "start", ward.user("vhxh.canbo"))
    accepted = (q1.id, q1.state, q1.due_date, q1.version, q1.period_label)
    old_log = _log(ward)
    ledger = ward.engine.trail.ledger(ward.org)
    root0 = ledger.root(ward.session)
    q1_history = [e.body for e in ledger.history(ward.session, "task_instance", q1.id)]

    amendment = _propose(ward, kind="change_task", task_number=2, changes={"timeframe": "Hàng quý"})
    _decide(ward, amendment)

    task = _task(ward, 2)
    assert (task.timeframe, task.schedule_kind) == ("Hàng quý", "recurring")
    # The accepted quarter keeps its due date, state and version: history is not rewritten.
    assert (q1.id, q1.state, q1.due_date, q1.version, q1.period_label) == accepted
    new_dues = _due("Hàng quý")
    assert [(i.id, i.state, i.due_date) for i in (q2, q3, q4)] == [
        (q2.id, "in_progress", new_dues[1]),
        (q3.id, "assigned", new_dues[2]),
        (q4.id, "assigned", new_dues[3]),
    ]
    assert new_dues[1] == date(2026, 6, 30)
    assert len(_instances(ward, 2)) == 4  # every period existed: nothing created

    # The log only grew: the entries before the amendment are byte for byte the same.
    assert _log(ward)[: len(old_log)] == old_log
    assert ledger.root(ward.session, len(old_log)) == root0
    q1_after = [e.body for e in ledger.history(ward.session, "task_instance", q1.id)]
    assert q1_after == q1_history

    entries = _new_entries(ward, len(old_log))
    assert [e["action"] for e in entries] == [
        "plan.amendment_proposed",
        "plan.amendment_approved",
        "task.amended",
        "task.amended",
        "task.amended",
    ]
    approved = entries[1]
    assert approved["before"]["task"]["timeframe"] == "Trước ngày 10 của tháng cuối quý"
    assert approved["after"]["task"]["timeframe"] == "Hàng quý"
    q2_entry = entries[2]
    assert q2_entry["object"] == {"type": "task_instance", "id": str(q2.id)}
    assert q2_entry["before"]["due"] == "2026-06-09" and q2_entry["after"]["due"] == "2026-06-30"
    assert q2_entry["details"]["amendment"] == amendment.id


def test_new_periods_get_instances_from_today_and_vanished_periods_are_cancelled(
    ward: Ward,
) -> None:
    [year] = _instances(ward, 11)  # VP, "Cả năm 2026"
    size0 = ward.log_size()
    _decide(
        ward, _propose(ward, kind="change_task", task_number=11, changes={"timeframe": "Hàng quý"})
    )

    dues = _due("Hàng quý")
    assert _shape(ward, 11) == [
        ("VP", "Năm 2026", "cancelled", date(2026, 12, 31)),
        # Quý I was due on 31/03, before the approval day: not a future period.
        ("VP", "Quý II/2026", "assigned", dues[1]),
        ("VP", "Quý III/2026", "assigned", dues[2]),
        ("VP", "Quý IV/2026", "assigned", dues[3]),
    ]
    actions = [e["action"] for e in _new_entries(ward, size0)]
    assert (
        actions
        == ["plan.amendment_proposed", "plan.amendment_approved", "task.cancel"]
        + ["task.assigned"] * 3
    )
    [remark] = ward.session.scalars(select(Remark).where(Remark.instance_id == year.id)).all()
    assert remark.kind == "decision" and REASON in remark.body


def test_a_moved_deadline_keeps_its_instance(ward: Ward) -> None:
    [inst] = _instances(ward, 18)  # TTPVHCC, "Quý I năm 2026"
    ward.engine.fire(inst.id, "start", ward.user("ttpvhcc.canbo"))
    _decide(
        ward,
        _propose(ward, kind="change_task", task_number=18, changes={"timeframe": "Quý II/2026"}),
    )
    assert _shape(ward, 18) == [("TTPVHCC", "Quý II/2026", "in_progress", date(2026, 6, 30))]
    assert _instances(ward, 18)[0].id == inst.id
    assert inst.period_start == date(2026, 4, 1)


def test_a_date_for_work_awaiting_one_schedules_it(ward: Ward) -> None:
    [inst] = _instances(ward, 9)  # "Khi thành phố triển khai KH tổ chức": no date yet
    assert (inst.state, inst.due_date) == ("awaiting_schedule", None)
    _decide(
        ward,
        _propose(ward, kind="change_task", task_number=9, changes={"timeframe": "Quý III/2026"}),
    )
    assert (inst.state, inst.due_date, inst.period_label) == (
        "assigned",
        date(2026, 9, 30),
        "Quý III/2026",
    )


# --- applying: leads ------------------------------------------------------------------------


def test_a_new_lead_takes_over_work_not_yet_submitted(ward: Ward) -> None:
    q1, q2, q3, q4 = _instances(ward, 19)  # TTPVHCC, "Thường xuyên", one per quarter
    e, u = ward.engine, ward.user
    e.fire(q1.id, "start", u("ttpvhcc.canbo"))
    ward.fill_evidence(q1, "ttpvhcc.canbo")
    e.fire(q1.id, "submit", u("ttpvhcc.truong"))
    e.fire(q2.id, "start", u("ttpvhcc.canbo"))
    q2.assignee_id = u("ttpvhcc.canbo").id
    ward.session.flush()
    size0 = ward.log_size()

    _decide(ward, _propose(ward, kind="change_task", task_number=19, changes={"leads": ["VP"]}))

    task = _task(ward, 19)
    assert task.leads == ["VP"] and task.lead_text == "Văn phòng HĐND và UBND"
    # The submitted quarter stays with the unit that submitted it; the rest moves, and VP gets
    # no second Quý I.
    assert [(i.id, i.unit.code, i.state) for i in (q1, q2, q3, q4)] == [
        (q1.id, "TTPVHCC", "evidence_submitted"),
        (q2.id, "VP", "in_progress"),
        (q3.id, "VP", "assigned"),
        (q4.id, "VP", "assigned"),
    ]
    assert q2.assignee_id is None
    assert len(_instances(ward, 19)) == 4
    entries = _new_entries(ward, size0)[2:]
    assert [(e["action"], e["before"]["unit"], e["after"]["unit"]) for e in entries] == [
        ("task.amended", "TTPVHCC", "VP")
    ] * 3
    assert e.enabled_events(q3, u("vp.canbo")) == ["start"]
    assert e.enabled_events(q3, u("ttpvhcc.canbo")) == []


def test_an_added_lead_gets_instances_and_a_removed_one_loses_open_work(ward: Ward) -> None:
    _decide(
        ward,
        _propose(ward, kind="change_task", task_number=11, changes={"leads": ["VP", "KTHTDT"]}),
    )
    assert _shape(ward, 11) == [
        ("KTHTDT", "Năm 2026", "assigned", date(2026, 12, 31)),
        ("VP", "Năm 2026", "assigned", date(2026, 12, 31)),
    ]

    # Task 20 is led by VP, KTHTDT and VHXH, one instance per quarter each.
    vhxh_q1 = next(i for i in _instances(ward, 20) if i.unit.code == "VHXH")
    _accept(ward, vhxh_q1, "vhxh.canbo", "vhxh.truong")
    _decide(
        ward,
        _propose(ward, kind="change_task", task_number=20, changes={"leads": ["VP", "KTHTDT"]}),
    )
    states = [(code, label, state) for code, label, state, _ in _shape(ward, 20) if code == "VHXH"]
    assert states == [
        ("VHXH", "Quý I/2026", "accepted"),
        ("VHXH", "Quý II/2026", "cancelled"),
        ("VHXH", "Quý III/2026", "cancelled"),
        ("VHXH", "Quý IV/2026", "cancelled"),
    ]
    assert {s for c, _, s, _ in _shape(ward, 20) if c != "VHXH"} == {"assigned"}


# --- applying: products, cancellation, new task ---------------------------------------------


def test_new_products_are_what_the_next_submission_needs(ward: Ward) -> None:
    [inst] = _instances(ward, 11)
    _decide(
        ward,
        _propose(
            ward,
            kind="change_task",
            task_number=11,
            changes={"products": ["Văn bản hướng dẫn", "Báo cáo kết quả rà soát"]},
        ),
    )
    assert ward.products(inst) == ["Văn bản hướng dẫn", "Báo cáo kết quả rà soát"]
    assert [p["kind"] for p in _task(ward, 11).products] == ["van_ban", "bao_cao"]


def test_cancelling_a_task_cancels_open_work_only(ward: Ward) -> None:
    q1, q2, _q3, _q4 = _instances(ward, 2)
    _accept(ward, q1, "vhxh.canbo", "vhxh.truong")
    ward.engine.fire(q2.id, "start", ward.user("vhxh.canbo"))
    size0 = ward.log_size()
    amendment = _propose(ward, kind="cancel_task", task_number=2)
    _decide(ward, amendment)

    assert not _task(ward, 2).active
    assert [s for _, _, s, _ in _shape(ward, 2)] == ["accepted"] + ["cancelled"] * 3
    entries = _new_entries(ward, size0)
    assert [e["action"] for e in entries[2:]] == ["task.cancel"] * 3
    assert entries[2]["before"]["state"] == "in_progress"
    assert entries[2]["after"]["state"] == "cancelled"
    assert entries[1]["after"]["task"]["active"] is False
    error = _refused(lambda: ward.engine.fire(q2.id, "submit", ward.user("vhxh.truong")))
    assert error.code == "invalid_transition"


NEW_TASK = {
    "section": "VII",
    "content": "Số hóa hồ sơ lưu trữ của UBND phường",
    "leads": ["Văn phòng HĐND và UBND"],
    "coordinators": ["related_units"],
    "timeframe": "Hàng quý",
    "products": ["Báo cáo kết quả số hóa"],
}


def test_adding_a_task_creates_it_and_its_future_instances(ward: Ward) -> None:
    size0 = ward.log_size()
    amendment = _propose(ward, kind="add_task", changes=NEW_TASK)
    assert amendment.task_number == 49 and amendment.plan_task_id is None
    assert amendment.changes["leads"] == ["VP"]
    _decide(ward, amendment)

    task = _task(ward, 49)
    assert amendment.plan_task_id == task.id
    assert (task.section, task.content, task.leads, task.lead_text) == (
        "VII",
        NEW_TASK["content"],
        ["VP"],
        "Văn phòng HĐND và UBND",
    )
    assert task.coordinators == ["related_units"]
    assert task.coordinators_text == "Các phòng, ban, đơn vị có liên quan"
    assert task.products == [{"name": "Báo cáo kết quả số hóa", "kind": "bao_cao"}]
    assert (task.timeframe, task.schedule_kind, task.active) == ("Hàng quý", "recurring", True)
    assert [(c, label, s) for c, label, s, _ in _shape(ward, 49)] == [
        ("VP", "Quý II/2026", "assigned"),
        ("VP", "Quý III/2026", "assigned"),
        ("VP", "Quý IV/2026", "assigned"),
    ]
    entries = _new_entries(ward, size0)
    assert entries[1]["before"]["task"] is None
    assert entries[1]["after"]["task"]["number"] == 49
    assert [e["action"] for e in entries[2:]] == ["task.assigned"] * 3
    assert all("before" not in e for e in entries[2:])  # a new instance has no before


@pytest.mark.parametrize(
    ("changes", "code", "named"),
    [
        ({**NEW_TASK, "number": 50}, "invalid_number", "49"),
        ({**NEW_TASK, "number": 49.0}, "invalid_number", "49"),
        ({**NEW_TASK, "section": "IX"}, "unknown_section", "“IX”"),
        ({k: v for k, v in NEW_TASK.items() if k != "products"}, "invalid_change", "sản phẩm"),
        ({**NEW_TASK, "timeframe": "Tuần tới"}, "invalid_timeframe", "“Tuần tới”"),
        ({**NEW_TASK, "leads": ["Hội Nông dân"]}, "unknown_unit", "“Hội Nông dân”"),
    ],
)
def test_new_task_refusals(ward: Ward, changes: dict[str, Any], code: str, named: str) -> None:
    size0 = ward.log_size()
    error = _refused(lambda: _propose(ward, kind="add_task", changes=changes))
    assert (error.code, named in error.message) == (code, True)
    assert ward.log_size() == size0


def test_two_new_tasks_cannot_both_take_the_next_number(ward: Ward) -> None:
    first = _propose(ward, kind="add_task", changes=NEW_TASK)
    second = _propose(ward, kind="add_task", changes={**NEW_TASK, "content": "Nhiệm vụ khác"})
    _decide(ward, first)
    size0 = ward.log_size()
    error = _refused(lambda: _decide(ward, second))
    assert error.code == "number_taken" and "50" in error.message
    assert ward.log_size() == size0 and second.state == "proposed"
    _decide(ward, second, approve=False, reason="Đề xuất lại với số 50")
    assert second.state == "rejected"


def test_approval_checks_the_task_again(ward: Ward) -> None:
    change = _propose(ward, kind="change_task", task_number=10, changes={"content": "Mới"})
    _decide(ward, _propose(ward, kind="cancel_task", task_number=10))
    size0 = ward.log_size()
    assert _refused(lambda: _decide(ward, change)).code == "task_cancelled"
    assert ward.log_size() == size0 and change.state == "proposed"


# --- storage --------------------------------------------------------------------------------


def test_the_enums_match_the_check_constraints() -> None:
    table = PlanAmendment.__table__
    checks = {c.name: str(c.sqltext) for c in table.constraints if c.name and "ck_" in c.name}
    assert checks["ck_plan_amendment_kind"] == "kind IN ({})".format(
        ", ".join(f"'{k.value}'" for k in AmendmentKind)
    )
    assert checks["ck_plan_amendment_state"] == "state IN ({})".format(
        ", ".join(f"'{s.value}'" for s in AmendmentState)
    )


@pytest.mark.parametrize(
    "values",
    [
        {"state": "pending"},
        {"kind": "merge_tasks"},
        {"state": "approved"},  # approved without a decider
    ],
)
def test_the_database_refuses_an_impossible_amendment(ward: Ward, values: dict[str, str]) -> None:
    row = {
        "plan_id": _plan(ward).id,
        "kind": "cancel_task",
        "task_number": 10,
        "changes": {},
        "reason": REASON,
        "state": "proposed",
        "proposed_by_id": ward.user("vhxh.truong").id,
        "proposed_at": NOW,
        **values,
    }
    savepoint = ward.session.begin_nested()
    with pytest.raises(IntegrityError):
        ward.session.add(PlanAmendment(**row))
        ward.session.flush()
    savepoint.rollback()


@pytest.mark.db
def test_an_approval_makes_only_submissions_to_come_stale(ward: Ward) -> None:
    """Approved products move the version of the task's instances in progress (what their
    submission must cover changed) and of no other: a reviewer's open page stays good. A change
    that no transition reads (the content) moves none."""
    e, u = ward.engine, ward.user
    number, working, submitted = next(
        (n, *found[:2])
        for n in range(1, 49)
        if len(found := [i for i in _instances(ward, n) if i.unit.code != "VHXH"]) >= 2
    )
    e.fire(working.id, "start", u(f"{working.unit.code.lower()}.canbo"))
    member = f"{submitted.unit.code.lower()}.canbo"
    e.fire(submitted.id, "start", u(member))
    ward.fill_evidence(submitted, member)
    e.fire(submitted.id, "submit", u(f"{submitted.unit.code.lower()}.truong"))
    ward.session.flush()
    seen = {i.id: i.version for i in (working, submitted)}

    products = [p["name"] for p in _task(ward, number).products]
    _decide(
        ward, _propose(ward, kind="change_task", task_number=number, changes={"content": "Mới"})
    )
    ward.session.flush()
    assert {i.id: i.version for i in (working, submitted)} == seen
    _decide(
        ward,
        _propose(
            ward,
            kind="change_task",
            task_number=number,
            changes={"products": [*products, "Báo cáo bổ sung số liệu"]},
        ),
    )
    ward.session.flush()
    assert (working.version, submitted.version) == (seen[working.id] + 1, seen[submitted.id])
    review = e.fire(
        submitted.id,
        "review",
        u("vhxh.thamdinh1"),
        expected_version=seen[submitted.id],
        findings="Đạt",
        recommendation="accept",
    )
    assert review.after == "reviewed"

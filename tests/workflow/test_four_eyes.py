"""Four eyes: nobody reviews or decides on a submission they made or gave evidence for
(self_review), and the reviewer and the decider of one submission are two people
(same_reviewer). The demo accounts never combine these roles, so some tests create people who
do, through workflow.accounts.create_user."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from sqlalchemy import select

from workflow.accounts import create_user
from workflow.models import Evidence, TaskInstance, Unit, User
from workflow.trail import SYSTEM, AuditTrail

from ._helpers import refusal_code
from .conftest import PDF, T0, Ward

FINDINGS = {"findings": "Hồ sơ đầy đủ", "recommendation": "accept"}


def person(ward: Ward, username: str, unit: str, roles: Iterable[str]) -> User:
    unit_row = ward.session.scalars(select(Unit).where(Unit.code == unit)).one()
    return create_user(
        ward.session,
        ward.org,
        username=username,
        full_name=f"Người thử {username}",
        unit=unit_row,
        roles=roles,
        password=None,
        actor=SYSTEM,
        now=T0,
        trail=AuditTrail(),
    )


def refused(ward: Ward, inst: TaskInstance, event: str, user: User, code: str, **inputs) -> None:  # type: ignore[no-untyped-def]
    """`user` firing `event` is refused with `code`, and nothing changes."""
    state, version, size = inst.state, inst.version, ward.log_size()
    assert event not in ward.engine.enabled_events(inst, user)
    assert refusal_code(lambda: ward.engine.fire(inst.id, event, user, **inputs)) == code
    assert (inst.state, inst.version, ward.log_size()) == (state, version, size)


def submitted_vhxh_task(ward: Ward, *, uploader: str, submitter: str) -> TaskInstance:
    """VHXH's own task (its decider is the ward leader), submitted."""
    inst = ward.instance(1, "VHXH")
    ward.engine.fire(inst.id, "start", ward.user(uploader))
    ward.fill_evidence(inst, uploader)
    ward.engine.fire(inst.id, "submit", ward.user(submitter))
    return inst


@pytest.mark.db
def test_a_reviewer_who_gave_evidence_does_not_review_it(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    # A VHXH reviewer is a VHXH member: they may work on VHXH's own task ...
    inst = submitted_vhxh_task(ward, uploader="vhxh.thamdinh1", submitter="vhxh.truong")
    # ... but then neither review it nor return it as incomplete.
    assert e.enabled_events(inst, u("vhxh.thamdinh1")) == []
    refused(ward, inst, "review", u("vhxh.thamdinh1"), "self_review", **FINDINGS)
    refused(ward, inst, "return_for_rework", u("vhxh.thamdinh1"), "self_review", reason="Thiếu")
    # The other reviewer may.
    assert e.enabled_events(inst, u("vhxh.thamdinh2")) == ["review", "return_for_rework"]
    assert e.fire(inst.id, "review", u("vhxh.thamdinh2"), **FINDINGS).after == "reviewed"


@pytest.mark.db
def test_one_file_is_enough_to_count_as_giving_evidence(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(1, "VHXH")
    e.fire(inst.id, "start", u("vhxh.canbo"))
    ward.fill_evidence(inst, "vhxh.canbo")
    product = ward.products(inst)[0]
    e.add_evidence(
        inst.id, u("vhxh.thamdinh1"), data=PDF + b"x", filename="phu-luc.pdf", product=product
    )
    e.fire(inst.id, "submit", u("vhxh.truong"))
    refused(ward, inst, "review", u("vhxh.thamdinh1"), "self_review", **FINDINGS)


@pytest.mark.db
def test_a_reviewer_who_wrote_a_giai_trinh_does_not_review_it(ward: Ward) -> None:
    """A written explanation for a missing product is part of the submission, as a file is."""
    e, u = ward.engine, ward.user
    inst = ward.instance(1, "VHXH")
    e.fire(inst.id, "start", u("vhxh.canbo"))
    ward.fill_evidence(inst, "vhxh.canbo")
    product = ward.products(inst)[0]
    for evidence in e.session.scalars(select(Evidence).where(Evidence.instance_id == inst.id)):
        if evidence.product == product:
            e.withdraw_evidence(evidence.id, u("vhxh.canbo"))
    e.explain_missing(inst.id, u("vhxh.thamdinh1"), product=product, text="Chưa ban hành.")
    e.fire(inst.id, "submit", u("vhxh.truong"))
    refused(ward, inst, "review", u("vhxh.thamdinh1"), "self_review", **FINDINGS)
    refused(ward, inst, "return_for_rework", u("vhxh.thamdinh1"), "self_review", reason="Thiếu")
    assert e.fire(inst.id, "review", u("vhxh.thamdinh2"), **FINDINGS).after == "reviewed"


@pytest.mark.db
def test_withdrawn_evidence_is_not_part_of_the_submission(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(1, "VHXH")
    e.fire(inst.id, "start", u("vhxh.canbo"))
    product = ward.products(inst)[0]
    mine = e.add_evidence(
        inst.id, u("vhxh.thamdinh1"), data=PDF + b"draft", filename="nhap.pdf", product=product
    )
    e.withdraw_evidence(mine.id, u("vhxh.thamdinh1"))
    ward.fill_evidence(inst, "vhxh.canbo")
    e.fire(inst.id, "submit", u("vhxh.truong"))
    assert e.enabled_events(inst, u("vhxh.thamdinh1")) == ["review", "return_for_rework"]
    assert e.fire(inst.id, "review", u("vhxh.thamdinh1"), **FINDINGS).after == "reviewed"


@pytest.mark.db
def test_a_reviewer_who_submitted_does_not_review_it(ward: Ward) -> None:
    deputy = person(ward, "vhxh.phophong", "VHXH", ["member", "head", "reviewer"])
    inst = submitted_vhxh_task(ward, uploader="vhxh.canbo", submitter="vhxh.phophong")
    assert inst.submitted_by_id == deputy.id
    refused(ward, inst, "review", deputy, "self_review", **FINDINGS)
    refused(ward, inst, "return_for_rework", deputy, "self_review", reason="Thiếu số liệu")
    assert ward.engine.fire(inst.id, "review", ward.user("vhxh.thamdinh1"), **FINDINGS)


@pytest.mark.db
def test_a_decider_who_submitted_does_not_decide(ward: Ward) -> None:
    # Someone who heads VHXH and is also a ward leader: VHXH's task comes to them to decide.
    both = person(ward, "vhxh.kiemnhiem", "VHXH", ["member", "head", "ward_leader"])
    inst = submitted_vhxh_task(ward, uploader="vhxh.canbo", submitter="vhxh.kiemnhiem")
    ward.engine.fire(inst.id, "review", ward.user("vhxh.thamdinh1"), **FINDINGS)
    refused(ward, inst, "accept", both, "self_review", assessment="Tốt")
    refused(ward, inst, "return_for_rework", both, "self_review", reason="Chưa đạt")
    assert ward.engine.fire(inst.id, "accept", ward.user("lanhdao"), assessment="Tốt")


@pytest.mark.db
def test_a_decider_who_gave_evidence_does_not_decide(ward: Ward) -> None:
    both = person(ward, "vhxh.lanhdao2", "VHXH", ["member", "ward_leader"])
    inst = ward.instance(1, "VHXH")
    ward.engine.fire(inst.id, "start", both)
    ward.fill_evidence(inst, "vhxh.lanhdao2")
    ward.engine.fire(inst.id, "submit", ward.user("vhxh.truong"))
    ward.engine.fire(inst.id, "review", ward.user("vhxh.thamdinh1"), **FINDINGS)
    refused(ward, inst, "accept", both, "self_review", assessment="Tốt")
    refused(ward, inst, "return_for_rework", both, "self_review", reason="Chưa đạt")
    assert ward.engine.fire(inst.id, "accept", ward.user("lanhdao"), assessment="Tốt")


@pytest.mark.db
def test_the_reviewer_does_not_also_decide_as_approver(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    both = person(ward, "vhxh.kiemduyet", "VHXH", ["member", "reviewer", "approver"])
    inst = ward.instance(11, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    ward.fill_evidence(inst, "vp.canbo")
    e.fire(inst.id, "submit", u("vp.truong"))
    assert e.enabled_events(inst, both) == ["review", "return_for_rework"]
    e.fire(inst.id, "review", both, **FINDINGS)
    assert e.enabled_events(inst, both) == []
    refused(ward, inst, "accept", both, "same_reviewer", assessment="Tốt")
    refused(ward, inst, "return_for_rework", both, "same_reviewer", reason="Chưa đạt")
    assert e.enabled_events(inst, u("vhxh.truong")) == ["return_for_rework", "accept"]
    assert e.fire(inst.id, "accept", u("vhxh.truong"), assessment="Tốt").after == "accepted"


@pytest.mark.db
def test_the_reviewer_does_not_also_decide_as_ward_leader(ward: Ward) -> None:
    both = person(ward, "ld.thamdinh", "LDUBND", ["ward_leader", "reviewer"])
    inst = submitted_vhxh_task(ward, uploader="vhxh.canbo", submitter="vhxh.truong")
    ward.engine.fire(inst.id, "review", both, **FINDINGS)
    refused(ward, inst, "accept", both, "same_reviewer", assessment="Tốt")
    refused(ward, inst, "return_for_rework", both, "same_reviewer", reason="Chưa đạt")
    assert ward.engine.fire(inst.id, "accept", ward.user("lanhdao"), assessment="Tốt")


@pytest.mark.db
def test_four_eyes_apply_per_submission(ward: Ward) -> None:
    """The reviewer of the first submission may decide on the second, reviewed by another."""
    e, u = ward.engine, ward.user
    both = person(ward, "vhxh.kiemduyet", "VHXH", ["member", "reviewer", "approver"])
    inst = ward.instance(11, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    ward.fill_evidence(inst, "vp.canbo")
    e.fire(inst.id, "submit", u("vp.truong"))
    e.fire(inst.id, "review", both, findings="Thiếu phụ lục", recommendation="return")
    e.fire(inst.id, "return_for_rework", u("vhxh.truong"), reason="Bổ sung phụ lục")
    e.fire(inst.id, "rework", u("vp.canbo"))
    e.fire(inst.id, "submit", u("vp.truong"))
    assert inst.reviewed_by_id is None and inst.submission_round == 2
    e.fire(inst.id, "review", u("vhxh.thamdinh2"), **FINDINGS)
    assert e.fire(inst.id, "accept", both, assessment="Đạt").after == "accepted"


@pytest.mark.db
def test_an_approver_does_not_decide_on_their_own_units_work(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    insider = person(ward, "vp.pheduyet", "VP", ["member", "approver"])
    inst = ward.instance(11, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    ward.fill_evidence(inst, "vp.canbo")
    e.fire(inst.id, "submit", u("vp.truong"))
    e.fire(inst.id, "review", u("vhxh.thamdinh1"), **FINDINGS)
    refused(ward, inst, "accept", insider, "not_permitted", assessment="Tốt")
    refused(ward, inst, "return_for_rework", insider, "not_permitted", reason="Chưa đạt")

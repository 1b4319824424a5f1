"""Coordinating units: requests and answers, and what submit does with outstanding ones;
reassignment within a unit and to another unit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from workflow.errors import DomainError
from workflow.models import Plan

from .conftest import PDF, Ward


def _code(fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        fn()
    return info.value.code


def _set_policy(ward: Ward, outstanding: str) -> None:
    plan = ward.session.scalars(select(Plan)).one()
    plan.policy = {"submit_requires_head": True, "outstanding_contributions": outstanding}
    ward.session.flush()


@pytest.mark.db
def test_request_provide_and_decline(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")
    assert "VHXH" in e.coordinator_codes(inst) and "VP" not in e.coordinator_codes(inst)
    assert _code(lambda: e.request_contribution(inst.id, u("kthtdt.canbo"), unit_code="VHXH")) == (
        "not_permitted"
    )
    assert _code(lambda: e.request_contribution(inst.id, u("vp.canbo"), unit_code="YTE")) == (
        "not_a_coordinator"
    )
    size0 = ward.log_size()
    asked = e.request_contribution(inst.id, u("vp.canbo"), unit_code="kthtdt", message="Số liệu")
    declined = e.request_contribution(inst.id, u("vp.canbo"), unit_code="TTPVHCC")
    assert _code(lambda: e.request_contribution(inst.id, u("vp.canbo"), unit_code="KTHTDT")) == (
        "already_requested"
    )
    assert (
        _code(lambda: e.respond_contribution(asked.id, u("vp.canbo"), provide=True, note="x"))
        == "not_permitted"
    )
    assert (
        _code(lambda: e.respond_contribution(declined.id, u("ttpvhcc.canbo"), provide=False))
        == "reason_required"
    )
    e.respond_contribution(
        asked.id,
        u("kthtdt.canbo"),
        provide=True,
        note="Đã gửi số liệu",
        files=[("so-lieu.pdf", PDF)],
    )
    e.respond_contribution(
        declined.id, u("ttpvhcc.truong"), provide=False, reason="Không thuộc lĩnh vực"
    )
    assert (asked.state, declined.state) == ("provided", "declined")
    assert (
        _code(
            lambda: e.respond_contribution(asked.id, u("kthtdt.canbo"), provide=True, note="again")
        )
        == "already_answered"
    )
    assert ward.log_size() == size0 + 4


@pytest.mark.db
def test_outstanding_contributions_block_or_need_an_explanation(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(12, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    ward.fill_evidence(inst, "vp.canbo")
    e.request_contribution(inst.id, u("vp.canbo"), unit_code="KTHTDT")

    _set_policy(ward, "block")
    assert _code(lambda: e.fire(inst.id, "submit", u("vp.truong"))) == "contributions_outstanding"
    _set_policy(ward, "explain")
    assert _code(lambda: e.fire(inst.id, "submit", u("vp.truong"))) == "explanation_required"
    out = e.fire(inst.id, "submit", u("vp.truong"), explanation="KTHTDT gửi bổ sung sau")
    assert out.after == "evidence_submitted"


@pytest.mark.db
def test_a_missing_product_can_be_explained_instead(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(6, "VHXH")  # three products: Kế hoạch, Thông báo kết luận, Báo cáo
    products = ward.products(inst)
    assert len(products) == 3
    e.fire(inst.id, "start", u("vhxh.canbo"))
    e.add_evidence(inst.id, u("vhxh.canbo"), data=PDF, filename="kh.pdf", product=products[0])
    with pytest.raises(DomainError) as info:
        e.fire(inst.id, "submit", u("vhxh.truong"))
    assert info.value.code == "evidence_missing" and products[1] in info.value.message
    for product in products[1:]:
        e.explain_missing(inst.id, u("vhxh.canbo"), product=product, text="Chưa đến kỳ kiểm tra")
    assert e.fire(inst.id, "submit", u("vhxh.truong")).after == "evidence_submitted"


@pytest.mark.db
def test_evidence_rules(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")
    product = ward.products(inst)[0]
    assert (
        _code(
            lambda: e.add_evidence(
                inst.id, u("vp.canbo"), data=PDF, filename="a.pdf", product=product
            )
        )
        == "invalid_state"
    )
    e.fire(inst.id, "start", u("vp.canbo"))
    assert _code(
        lambda: e.add_evidence(
            inst.id, u("vp.canbo"), data=b"MZ\x90\x00", filename="a.pdf", product=product
        )
    ) == ("file_type_not_allowed")
    assert (
        _code(
            lambda: e.add_evidence(
                inst.id, u("vp.canbo"), data=PDF, filename="a.pdf", product="Không có"
            )
        )
        == "unknown_product"
    )
    assert (
        _code(
            lambda: e.add_evidence(
                inst.id, u("kthtdt.canbo"), data=PDF, filename="a.pdf", product=product
            )
        )
        == "not_permitted"
    )
    ev = e.add_evidence(
        inst.id, u("vp.canbo"), data=PDF, filename="../../etc/x.pdf", product=product
    )
    assert ev.filename == "x.pdf" and len(ev.sha256) == 64 and ev.media_type == "application/pdf"
    assert _code(lambda: e.withdraw_evidence(ev.id, u("vp.truong"))) == "not_permitted"
    e.withdraw_evidence(ev.id, u("vp.canbo"))
    assert _code(lambda: e.fire(inst.id, "submit", u("vp.truong"))) == "evidence_missing"


@pytest.mark.db
def test_reassignment(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")
    size0 = ward.log_size()
    assert _code(lambda: e.reassign(inst.id, u("vp.canbo"), to_user=u("vp.canbo"))) == (
        "not_permitted"
    )
    assert _code(lambda: e.reassign(inst.id, u("vp.truong"), to_user=u("kthtdt.canbo"))) == (
        "not_a_member"
    )
    e.reassign(inst.id, u("vp.truong"), to_user=u("vp.canbo"))
    assert inst.assignee_id == u("vp.canbo").id
    assert _code(lambda: e.reassign(inst.id, u("vp.truong"), to_unit="KTHTDT", reason="x")) == (
        "not_permitted"
    )
    assert _code(lambda: e.reassign(inst.id, u("vhxh.truong"), to_unit="KTHTDT")) == (
        "reason_required"
    )
    e.reassign(inst.id, u("vhxh.truong"), to_unit="KTHTDT", reason="Đúng chức năng KTHTDT")
    assert inst.unit.code == "KTHTDT" and inst.assignee_id is None
    assert ward.log_size() == size0 + 2


@pytest.mark.db
def test_a_request_makes_only_a_submission_to_come_stale(ward: Ward) -> None:
    """A request changes what a submission must cover: in progress, the instance's version
    moves (a page opened before, or a submission that waited for the request, is stale). Once
    submitted, nothing that is decided reads requests, so a reviewer's open page stays good."""
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")
    e.fire(inst.id, "start", u("vp.canbo"))
    seen = inst.version
    e.request_contribution(inst.id, u("vp.canbo"), unit_code="KTHTDT")
    ward.session.flush()
    assert inst.version == seen + 1

    e.respond_contribution(
        e.request_contribution(inst.id, u("vp.canbo"), unit_code="TTPVHCC").id,
        u("ttpvhcc.truong"),
        provide=False,
        reason="Không thuộc lĩnh vực",
    )
    e.explain_missing(inst.id, u("vp.canbo"), product=ward.products(inst)[0], text="Đang chờ")
    ward.fill_evidence(inst, "vp.canbo")
    e.fire(inst.id, "submit", u("vp.truong"), explanation="KTHTDT chưa gửi số liệu")
    seen = inst.version
    e.request_contribution(inst.id, u("vp.canbo"), unit_code="VHXH")
    ward.session.flush()
    assert inst.version == seen
    review = e.fire(
        inst.id,
        "review",
        u("vhxh.thamdinh1"),
        expected_version=seen,
        findings="Đủ hồ sơ",
        recommendation="accept",
    )
    assert review.after == "reviewed"

"""The whole lifecycle of one task through the engine, with the demo accounts."""

from __future__ import annotations

import pytest

from workflow.errors import DomainError
from workflow.models import Notification

from .conftest import Ward


def _codes(fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        fn()
    return info.value.code


@pytest.mark.db
def test_start_submit_review_return_rework_accept(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(11, "VP")  # VP's task: VHXH reviews, its head approves
    size0 = ward.log_size()

    e.fire(inst.id, "start", u("vp.canbo"))
    assert _codes(lambda: e.fire(inst.id, "submit", u("vp.truong"))) == "evidence_missing"
    ward.fill_evidence(inst, "vp.canbo")
    assert _codes(lambda: e.fire(inst.id, "submit", u("vp.canbo"))) == "not_permitted"
    e.fire(inst.id, "submit", u("vp.truong"))
    assert e.enabled_events(inst, u("vhxh.thamdinh1")) == ["review", "return_for_rework"]
    assert e.enabled_events(inst, u("vp.truong")) == []
    e.fire(
        inst.id, "review", u("vhxh.thamdinh1"), findings="Thiếu phụ lục", recommendation="return"
    )
    assert (
        _codes(lambda: e.fire(inst.id, "return_for_rework", u("vhxh.truong"))) == "reason_required"
    )
    e.fire(inst.id, "return_for_rework", u("vhxh.truong"), reason="Bổ sung phụ lục số liệu")
    e.fire(inst.id, "rework", u("vp.canbo"))
    e.fire(inst.id, "submit", u("vp.truong"))
    e.fire(inst.id, "review", u("vhxh.thamdinh2"), findings="Đạt", recommendation="accept")
    assert _codes(lambda: e.fire(inst.id, "accept", u("vhxh.thamdinh2"))) == "not_permitted"
    out = e.fire(inst.id, "accept", u("vhxh.truong"), assessment="Hoàn thành tốt")
    assert out.after == "accepted" and inst.submission_round == 2

    # 8 transitions + one evidence entry per product, nothing for the refusals
    assert ward.log_size() == size0 + 8 + len(ward.products(inst))
    assert ward.session.query(Notification).filter_by(instance_id=inst.id).count() > 0


@pytest.mark.db
def test_vhxh_own_task_is_decided_by_the_ward_leader(ward: Ward) -> None:
    e, u = ward.engine, ward.user
    inst = ward.instance(1, "VHXH")
    e.fire(inst.id, "start", u("vhxh.canbo"))
    ward.fill_evidence(inst, "vhxh.canbo")
    e.fire(inst.id, "submit", u("vhxh.truong"))
    e.fire(inst.id, "review", u("vhxh.thamdinh1"), findings="Đạt", recommendation="accept")
    # the approver is VHXH's head: VHXH's own work goes to the ward leader
    assert _codes(lambda: e.fire(inst.id, "accept", u("vhxh.truong"), assessment="Tốt")) == (
        "not_permitted"
    )
    e.fire(inst.id, "accept", u("lanhdao"), assessment="Tốt")
    assert inst.state == "accepted"

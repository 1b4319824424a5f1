"""Several wards in one database: unit codes repeat in every ward, and nobody acts on, or
reads, another ward's work."""

from __future__ import annotations

import pytest

from definitions.loader import load_units
from workflow.accounts import create_user
from workflow.amendments import propose_amendment
from workflow.errors import DomainError
from workflow.models import Plan, User
from workflow.planning import ensure_organization, ensure_units, units_by_code
from workflow.trail import SYSTEM, AuditTrail

from .conftest import T0, Ward


def _other_ward_user(ward: Ward, username: str, unit: str, roles: tuple[str, ...]) -> User:
    org, _ = ensure_organization(
        ward.session,
        slug="le-chan",
        name="Phường Lê Chân",
        audit_origin="test.local/le-chan",
        now=T0,
    )
    ensure_units(ward.session, org, load_units())
    return create_user(
        ward.session,
        org,
        username=username,
        full_name=username,
        unit=units_by_code(ward.session, org)[unit],
        roles=roles,
        password=None,
        actor=SYSTEM,
        now=T0,
        trail=AuditTrail(),
    )


def _code(fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        fn()
    return info.value.code


@pytest.mark.db
def test_another_wards_staff_cannot_act_or_read(ward: Ward) -> None:
    e = ward.engine
    inst = ward.instance(11, "VP")
    outsider = _other_ward_user(ward, "lc.vp.truong", "VP", ("member", "head"))
    size = ward.log_size()
    assert _code(lambda: e.fire(inst.id, "start", outsider)) == "not_permitted"
    assert e.enabled_events(inst, outsider) == []
    assert _code(lambda: e.load_visible(inst.id, outsider)) == "not_found"
    assert e.load_visible(inst.id, ward.user("kiemtoan")).id == inst.id

    e.fire(inst.id, "start", ward.user("vp.canbo"))
    request = e.request_contribution(inst.id, ward.user("vp.canbo"), unit_code="KTHTDT")
    lc_kthtdt = _other_ward_user(ward, "lc.kthtdt", "KTHTDT", ("member",))
    assert (
        _code(lambda: e.respond_contribution(request.id, lc_kthtdt, provide=True, note="x"))
        == "not_permitted"
    )
    assert (
        _code(
            lambda: e.reassign(
                inst.id,
                ward.user("vp.truong"),
                to_user=_other_ward_user(ward, "lc.vp", "VP", ("member",)),
            )
        )
        == "not_a_member"
    )
    lc_vhxh = _other_ward_user(ward, "lc.vhxh.truong", "VHXH", ("member", "head", "approver"))
    plan = ward.session.query(Plan).one()
    assert (
        _code(
            lambda: propose_amendment(
                ward.session,
                ward.org,
                plan,
                lc_vhxh,
                kind="cancel_task",
                task_number=11,
                reason="x",
                now=T0,
                trail=AuditTrail(),
            )
        )
        == "not_permitted"
    )
    assert ward.log_size() == size + 2  # only the start and the request


@pytest.mark.db
def test_a_username_of_another_ward_is_refused_as_such(ward: Ward) -> None:
    """Usernames are unique across the database: an administrator who cannot find the name in
    their own ward is told it is used in another one, without being told which."""
    with pytest.raises(DomainError) as elsewhere:
        _other_ward_user(ward, "vp.canbo", "VP", ("member",))
    assert elsewhere.value.code == "username_taken"
    assert "phường khác" in elsewhere.value.message
    assert "Trần Hưng Đạo" not in elsewhere.value.message

    with pytest.raises(DomainError) as here:
        create_user(
            ward.session,
            ward.org,
            username="VP.Canbo",
            full_name="X",
            unit=None,
            roles=("member",),
            password=None,
            actor=SYSTEM,
            now=T0,
            trail=AuditTrail(),
        )
    assert here.value.code == "username_taken"
    assert here.value.message == "Tên đăng nhập “vp.canbo” đã được sử dụng."

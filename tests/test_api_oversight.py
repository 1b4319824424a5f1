"""The oversight part of /api/v1: the evaluation, the self-inspection coverage, the inspection
draw and its replay — the same answers as the domain, the same refusals in the one shape."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from typing import Any

import pytest
from flask import Flask

from app.database import db_session
from definitions.calendar import load_calendar
from definitions.rubric import load_rubric
from workflow import sampling
from workflow.evaluation import evaluate
from workflow.models import Organization

from .test_api import API, bearer, other_ward_user, refused, web  # noqa: F401 - fixture by name

IN_SCOPE = ["KTHTDT", "TTDVSNC", "TTPVHCC", "VHXH", "VP"]


@pytest.mark.db
def test_evaluation_answers_what_the_domain_computes(web: Flask) -> None:  # noqa: F811
    client = web.test_client()
    leader = bearer(web, "lanhdao")
    got = client.get(f"{API}/evaluation?year=2026&as_of=2026-06-30", headers=leader)
    assert got.status_code == 200, got.get_json()
    with web.app_context():
        session = db_session()
        org = session.query(Organization).one()
        expected = evaluate(
            session,
            org,
            year=2026,
            as_of=date(2026, 6, 30),
            calendar=load_calendar(),
            rubric=load_rubric(),
        ).as_json()
    assert got.get_json() == expected
    with_instances = client.get(
        f"{API}/evaluation?year=2026&as_of=2026-06-30&instances=true", headers=leader
    ).get_json()
    assert len(with_instances["instances"]) == expected["overall"]["led"]

    member = bearer(web, "vp.canbo")
    refused = client.get(f"{API}/evaluation?year=2026", headers=member)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_permitted"
    assert client.get(f"{API}/evaluation?year=1999", headers=leader).status_code == 400
    missing = client.get(f"{API}/evaluation?year=2030", headers=leader)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.get(f"{API}/evaluation?year=2026").status_code == 401


@pytest.mark.db
def test_coverage_draw_and_replay(web: Flask) -> None:  # noqa: F811
    client = web.test_client()
    approver = bearer(web, "vhxh.truong")
    cover = client.get(f"{API}/self-inspections?year=2026", headers=approver).get_json()
    assert cover["coverage"]["text"] == "0/5 đơn vị đã gửi, 0/5 đơn vị đã được xác nhận"
    assert cover["records"] == []

    body = {"year": 2026, "fraction": "0.4", "seed": "họp giao ban", "include": ["vp"]}
    refused = client.post(f"{API}/inspections/sample", json=body, headers=bearer(web, "vp.truong"))
    assert refused.status_code == 403
    bad = client.post(f"{API}/inspections/sample", json={**body, "include": "VP"}, headers=approver)
    assert bad.status_code == 400
    drawn = client.post(f"{API}/inspections/sample", json=body, headers=approver)
    assert drawn.status_code == 201, drawn.get_json()
    draw = drawn.get_json()
    expected = sampling.draw(
        "họp giao ban", dict.fromkeys(IN_SCOPE, 1), fraction=Fraction(2, 5), include=["VP"]
    )
    assert tuple(draw["selected"]) == expected.selected
    again = client.post(f"{API}/inspections/sample", json=body, headers=approver)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_drawn"

    replay = client.get(f"{API}/inspections/replay/{draw['audit_seq']}", headers=approver)
    assert replay.status_code == 200 and replay.get_json()["identical"] is True
    assert client.get(f"{API}/inspections/replay/0", headers=approver).status_code == 404
    listed = client.get(f"{API}/inspections?year=2026", headers=approver).get_json()
    assert [d["audit_seq"] for d in listed["draws"]] == [draw["audit_seq"]]
    assert sorted(i["unit"] for i in listed["items"]) == sorted(draw["selected"])


@pytest.mark.db
def test_the_self_inspection_round_and_an_inspection_through_the_api(web: Flask) -> None:  # noqa: F811
    client = web.test_client()
    approver, leader = bearer(web, "vhxh.truong"), bearer(web, "lanhdao")
    member, head = bearer(web, "vp.canbo"), bearer(web, "vp.truong")
    refused = client.post(f"{API}/self-inspections/open", json={"year": 2026}, headers=member)
    assert refused.status_code == 403
    opened = client.post(f"{API}/self-inspections/open", json={"year": 2026}, headers=approver)
    assert opened.status_code == 201 and sorted(opened.get_json()["created"]) == IN_SCOPE
    records = client.get(f"{API}/self-inspections?year=2026", headers=approver).get_json()
    rid = next(r["id"] for r in records["records"] if r["unit"] == "VP")

    shown = client.get(f"{API}/self-inspections/{rid}", headers=member)  # its own unit's
    assert shown.status_code == 200 and shown.get_json()["prefill"]["figures"]["led"] > 0
    other = client.get(f"{API}/self-inspections/{rid}", headers=bearer(web, "kthtdt.canbo"))
    assert other.status_code == 404

    bad = client.post(
        f"{API}/self-inspections/{rid}/answers", json={"answers": {"x": 1}}, headers=member
    )
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid_answer"
    answers = {
        c.code: {"self_score": "0", "explanation": "Chưa có tài liệu."}
        for c in load_rubric().criteria
    }
    filled = client.post(
        f"{API}/self-inspections/{rid}/answers", json={"answers": answers}, headers=member
    )
    assert filled.status_code == 200, filled.get_json()
    version = filled.get_json()["version"]
    stale = client.post(
        f"{API}/self-inspections/{rid}/submit", json={"expected_version": version - 1}, headers=head
    )
    assert stale.status_code == 409
    submitted = client.post(
        f"{API}/self-inspections/{rid}/submit", json={"expected_version": version}, headers=head
    )
    assert submitted.status_code == 200 and submitted.get_json()["state"] == "submitted"
    decided = client.post(
        f"{API}/self-inspections/{rid}/decision", json={"acknowledge": True}, headers=approver
    )
    assert decided.get_json()["state"] == "acknowledged"
    closing = client.post(f"{API}/years/2026/close", headers=leader)
    assert closing.status_code == 422
    assert closing.get_json()["error"]["code"] == "coverage_incomplete"

    client.post(
        f"{API}/inspections/sample",
        json={"year": 2026, "seed": "s", "include": ["VP"]},
        headers=approver,
    )
    listed = client.get(f"{API}/inspections?year=2026", headers=approver).get_json()
    iid = next(i["id"] for i in listed["items"] if i["unit"] == "VP")
    reviewer = bearer(web, "vhxh.thamdinh1")
    planned = client.post(
        f"{API}/inspections/{iid}/plan",
        json={"plan": "Kiểm tra hồ sơ", "team": ["A", "B"]},
        headers=reviewer,
    )
    assert planned.status_code == 200 and planned.get_json()["team"] == ["A", "B"]
    found = client.post(
        f"{API}/inspections/{iid}/findings", json={"findings": "Chậm"}, headers=reviewer
    )
    assert found.get_json()["state"] == "findings_recorded"
    body = {
        "number": "15/TB-UBND",
        "conclusion": "Khắc phục",
        "corrective": [{"description": "Hoàn thiện hồ sơ", "due": "2099-12-20"}],
    }
    assert (
        client.post(f"{API}/inspections/{iid}/conclusion", json=body, headers=approver).status_code
        == 403
    )
    concluded = client.post(f"{API}/inspections/{iid}/conclusion", json=body, headers=leader)
    assert concluded.status_code == 200, concluded.get_json()
    (action,) = concluded.get_json()["corrective_actions"]
    assert (action["task_number"], action["state"]) == (1001, "assigned")
    still_open = client.post(f"{API}/inspections/{iid}/close", json={}, headers=approver)
    assert still_open.get_json()["error"]["code"] == "corrective_open"


# --- who may call what --------------------------------------------------------------------

WARD = (
    "vp.canbo",
    "vp.truong",
    "yte.canbo",
    "kthtdt.truong",
    "vhxh.thamdinh1",
    "vhxh.truong",
    "lanhdao",
    "kiemtoan",
    "quantri",
)
OUTSIDER = "lc.vp.truong"  # head of VP in another ward
READERS = {"vp.truong", "kthtdt.truong", "vhxh.thamdinh1", "vhxh.truong", "lanhdao", "kiemtoan"}


@pytest.mark.db
def test_every_oversight_endpoint_by_every_role(web: Flask) -> None:  # noqa: F811
    """Everyone not allowed is refused (403, or 404 for what is not theirs to see) in the one
    error shape, and the audit log does not move; someone allowed succeeds."""
    other_ward_user(web, OUTSIDER, "VP", ("member", "head"))
    client = web.test_client()
    token = {name: bearer(web, name) for name in (*WARD, OUTSIDER)}

    def log_size() -> int:
        page = client.get(f"{API}/audit/entries?per_page=1", headers=token["kiemtoan"])
        return int(page.get_json()["total"])

    def check(call: Any, allowed: set[str], succeed_as: str | None = None, ok: int = 200) -> Any:
        before = log_size()
        for name in (*WARD, OUTSIDER):
            if name in allowed:
                continue
            response = call(token[name])
            assert response.status_code in (403, 404), (name, response.get_json())
            refused(response, response.status_code, response.get_json()["error"]["code"])
        assert log_size() == before
        if succeed_as is None:
            return None
        response = call(token[succeed_as])
        assert response.status_code == ok, (succeed_as, response.get_json())
        return response.get_json()

    for path in ("/evaluation?year=2026", "/self-inspections?year=2026", "/inspections?year=2026"):
        check(lambda h, p=path: client.get(f"{API}{p}", headers=h), READERS | {OUTSIDER})
        for name in READERS:
            assert client.get(f"{API}{path}", headers=token[name]).status_code == 200
    # the outsider reads their own ward, which has no plan: nothing of this ward shows
    assert client.get(f"{API}/evaluation?year=2026", headers=token[OUTSIDER]).status_code == 404

    deciders = {"vhxh.truong", "lanhdao"}
    check(
        lambda h: client.post(f"{API}/self-inspections/open", json={"year": 2026}, headers=h),
        deciders,
        succeed_as="vhxh.truong",
        ok=201,
    )
    rid = next(
        r["id"]
        for r in client.get(
            f"{API}/self-inspections?year=2026", headers=token["lanhdao"]
        ).get_json()["records"]
        if r["unit"] == "VP"
    )
    check(
        lambda h: client.get(f"{API}/self-inspections/{rid}", headers=h),
        READERS | {"vp.canbo"},
    )
    answers = {
        c.code: {"self_score": "0", "explanation": "Chưa có."} for c in load_rubric().criteria
    }
    check(
        lambda h: client.post(
            f"{API}/self-inspections/{rid}/answers", json={"answers": answers}, headers=h
        ),
        {"vp.canbo", "vp.truong"},
        succeed_as="vp.canbo",
    )
    check(
        lambda h: client.post(f"{API}/self-inspections/{rid}/submit", json={}, headers=h),
        {"vp.truong"},
        succeed_as="vp.truong",
    )
    check(
        lambda h: client.post(
            f"{API}/self-inspections/{rid}/decision", json={"acknowledge": True}, headers=h
        ),
        {"vhxh.truong"},
        succeed_as="vhxh.truong",
    )
    drawn = check(
        lambda h: client.post(
            f"{API}/inspections/sample",
            json={"year": 2026, "seed": "s", "include": ["VP"]},
            headers=h,
        ),
        deciders,
        succeed_as="lanhdao",
        ok=201,
    )
    assert drawn["selected"][0] == "VP"
    iid = next(
        i["id"]
        for i in client.get(f"{API}/inspections?year=2026", headers=token["lanhdao"]).get_json()[
            "items"
        ]
        if i["unit"] == "VP"
    )
    check(
        lambda h: client.post(
            f"{API}/inspections/{iid}/plan", json={"plan": "Kế hoạch", "team": ["A"]}, headers=h
        ),
        {"vhxh.thamdinh1", "vhxh.truong", "lanhdao"},
        succeed_as="vhxh.thamdinh1",
    )

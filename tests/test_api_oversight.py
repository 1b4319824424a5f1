"""The oversight part of /api/v1: the evaluation, the self-inspection coverage, the inspection
draw and its replay — the same answers as the domain, the same refusals in the one shape."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest
from flask import Flask

from app.database import db_session
from definitions.calendar import load_calendar
from definitions.rubric import load_rubric
from workflow import sampling
from workflow.evaluation import evaluate
from workflow.models import Organization

from .test_api import API, bearer, web  # noqa: F401 - the fixture is used by name

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

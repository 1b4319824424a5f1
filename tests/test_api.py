"""The JSON API (/api/v1) through Flask's test client: tokens, every endpoint's answer and its
refusals in the one error shape, CSRF for cookie-authenticated calls, the whole lifecycle,
evidence round trips, and who may call what (every role, another unit, another ward)."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.test import TestResponse, encode_multipart

from app import create_app
from app.cli import main
from app.database import audit_trail, database_of, db_session
from audit.ledger import CommittedMismatchError
from definitions.loader import load_units
from workflow.accounts import create_user, find_user
from workflow.bootstrap import DEMO_PASSWORD
from workflow.models import ApiToken, Organization, User
from workflow.planning import ensure_organization, ensure_units, units_by_code
from workflow.tokens import authenticate, create_token
from workflow.trail import SYSTEM

PDF = b"%PDF-1.4\n% bao cao quy I\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
API = "/api/v1"
# A multipart part without a name: werkzeug files it under the key None.
UNNAMED_PART = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"


@pytest.fixture
def web(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("CCHC_MAX_UPLOAD_MB", "1")
    assert CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False).exit_code == 0
    app = create_app({"TESTING": True})
    yield app
    database_of(app).engine.dispose()


def bearer(app: Flask, username: str) -> dict[str, str]:
    """Authorization headers with a fresh token of `username`."""
    with app.app_context():
        session = db_session()
        user = find_user(session, username)
        assert user is not None
        org = session.get_one(Organization, user.organization_id)
        _row, plaintext = create_token(
            session, org, user, name="tests", now=datetime.now(UTC), trail=audit_trail()
        )
        session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


def login(app: Flask, username: str) -> FlaskClient:
    """A browser-like client signed in through the login form."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/login",
        data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
    )
    assert response.status_code == 302
    return client


def other_ward_user(app: Flask, username: str, unit: str, roles: tuple[str, ...]) -> None:
    """An account of a second ward (Lê Chân) whose unit codes repeat the first ward's."""
    with app.app_context():
        session = db_session()
        now = datetime.now(UTC)
        org, _ = ensure_organization(
            session, slug="le-chan", name="Phường Lê Chân", audit_origin="test/le-chan", now=now
        )
        ensure_units(session, org, load_units())
        create_user(
            session,
            org,
            username=username,
            full_name=username,
            unit=units_by_code(session, org)[unit],
            roles=roles,
            password=None,
            actor=SYSTEM,
            now=now,
            trail=audit_trail(),
        )
        session.commit()


def refused(response: TestResponse, status: int, code: str) -> None:
    """The one error shape, with the expected status and code and a Vietnamese message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"].strip()


def instance_id(client: FlaskClient, headers: dict[str, str], number: int, unit: str) -> int:
    rows = client.get(f"{API}/instances?number={number}&unit={unit}", headers=headers).json
    assert rows is not None
    return int(rows["items"][0]["id"])


def detail(client: FlaskClient, headers: dict[str, str], tid: int) -> dict[str, Any]:
    response = client.get(f"{API}/instances/{tid}", headers=headers)
    assert response.status_code == 200
    data: dict[str, Any] = response.get_json()
    return data


def fire(
    client: FlaskClient, headers: dict[str, str], tid: int, event: str, **fields: Any
) -> TestResponse:
    return client.post(
        f"{API}/instances/{tid}/events", headers=headers, json={"event": event, **fields}
    )


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    tid: int,
    product: str,
    data: bytes = PDF,
    name: str = "bao-cao.pdf",
) -> TestResponse:
    return client.post(
        f"{API}/instances/{tid}/evidence",
        headers=headers,
        data={"product": product, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


# --- tokens and authentication -----------------------------------------------------------------


@pytest.mark.db
def test_a_token_is_created_used_listed_and_revoked(web: Flask) -> None:
    browser = login(web, "vp.canbo")
    csrf = browser.get(f"{API}/csrf-token").json["csrf_token"]
    created = browser.post(
        f"{API}/tokens",
        json={"name": "Báo cáo tự động", "expires_on": "2099-12-31"},
        headers={"X-CSRFToken": csrf},
    )
    assert created.status_code == 201
    token = created.json
    assert token["token"].startswith("cchc_") and token["active"] is True
    assert token["prefix"] == token["token"][:12]
    program = web.test_client()  # no cookie: the token alone
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert program.get(f"{API}/me", headers=headers).json["username"] == "vp.canbo"

    listed = program.get(f"{API}/tokens", headers=headers)
    assert [t["name"] for t in listed.json["items"]] == ["Báo cáo tự động"]
    assert token["token"] not in listed.get_data(as_text=True)  # the secret is shown once
    with web.app_context():  # stored hashed: the secret is nowhere in the row
        row = db_session().get_one(ApiToken, token["id"])
        assert row.token_hash == hashlib.sha256(token["token"].encode()).hexdigest()
        assert token["token"] not in (row.name, row.prefix, row.token_hash)

    revoked = program.delete(f"{API}/tokens/{token['id']}", headers=headers)
    assert revoked.status_code == 200 and revoked.json["active"] is False
    refused(program.get(f"{API}/me", headers=headers), 401, "invalid_token")
    again = browser.delete(f"{API}/tokens/{token['id']}", headers={"X-CSRFToken": csrf})
    refused(again, 409, "already_revoked")

    auditor = bearer(web, "kiemtoan")
    log = program.get(f"{API}/audit/entries?object_type=api_token", headers=auditor).json
    actions = [(e["action"], e["actor"]["user"]) for e in log["items"]]
    assert ("token.created", "vp.canbo") in actions and ("token.revoked", "vp.canbo") in actions


@pytest.mark.db
def test_token_refusals(web: Flask) -> None:
    client = web.test_client()
    member = bearer(web, "vp.canbo")
    refused(client.post(f"{API}/tokens", headers=member, json={"name": "  "}), 422, "name_required")
    refused(client.post(f"{API}/tokens", headers=member, json={}), 400, "invalid_body")
    refused(
        client.post(f"{API}/tokens", headers=member, json={"name": "x", "scope": "all"}),
        400,
        "invalid_body",
    )
    refused(
        client.post(
            f"{API}/tokens", headers=member, json={"name": "x", "expires_on": "2001-01-01"}
        ),
        422,
        "invalid_expiry",
    )
    refused(
        client.post(
            f"{API}/tokens", headers=member, json={"name": "x", "expires_on": "31/12/2026"}
        ),
        400,
        "invalid_body",
    )
    refused(
        client.post(f"{API}/tokens", headers=member, data="name=x"), 415, "unsupported_media_type"
    )
    # Someone else's token is not found to them; the ward's administrator may revoke it.
    head = client.post(f"{API}/tokens", headers=bearer(web, "vp.truong"), json={"name": "t"}).json
    refused(client.delete(f"{API}/tokens/{head['id']}", headers=member), 404, "not_found")
    admin = bearer(web, "quantri")
    assert client.delete(f"{API}/tokens/{head['id']}", headers=admin).status_code == 200
    refused(client.delete(f"{API}/tokens/999999", headers=member), 404, "not_found")


@pytest.mark.db
def test_expired_and_malformed_tokens_do_not_authenticate(web: Flask) -> None:
    with web.app_context():
        session = db_session()
        user = find_user(session, "vp.canbo")
        assert user is not None
        org = session.get_one(Organization, user.organization_id)
        now = datetime.now(UTC)
        _row, plaintext = create_token(
            session,
            org,
            user,
            name="short",
            now=now,
            trail=audit_trail(),
            expires_at=now + timedelta(hours=1),
        )
        assert authenticate(session, plaintext, now) is user
        assert authenticate(session, plaintext, now + timedelta(hours=2)) is None
        assert authenticate(session, plaintext[:-1], now) is None
        assert authenticate(session, plaintext + "x", now) is None
        user.active = False
        assert authenticate(session, plaintext, now) is None
        session.rollback()
    client = web.test_client()
    refused(client.get(f"{API}/me"), 401, "unauthenticated")
    assert client.get(f"{API}/me").headers["WWW-Authenticate"].startswith("Bearer")
    refused(
        client.get(f"{API}/me", headers={"Authorization": "Basic dTpw"}), 401, "unauthenticated"
    )
    refused(client.get(f"{API}/me", headers={"Authorization": "Bearer "}), 401, "unauthenticated")
    refused(
        client.get(f"{API}/me", headers={"Authorization": "Bearer cchc_" + "A" * 43}),
        401,
        "invalid_token",
    )


@pytest.mark.db
def test_cookie_calls_need_the_csrf_header_for_unsafe_methods(web: Flask) -> None:
    browser = login(web, "vp.canbo")
    assert browser.get(f"{API}/notifications").status_code == 200  # reading needs none
    # Basic credentials a browser keeps for a proxy are not for us: the session still counts.
    proxied = browser.get(f"{API}/me", headers={"Authorization": "Basic dTpw"})
    assert proxied.status_code == 200 and proxied.json["username"] == "vp.canbo"
    refused(browser.post(f"{API}/notifications/read"), 403, "csrf_failed")
    refused(
        browser.post(f"{API}/tokens", json={"name": "x"}, headers={"X-CSRFToken": "forged"}),
        403,
        "csrf_failed",
    )
    refused(browser.delete(f"{API}/tokens/1"), 403, "csrf_failed")
    tid = instance_id(browser, {}, 12, "VP")
    refused(fire(browser, {}, tid, "start"), 403, "csrf_failed")
    assert detail(browser, {}, tid)["state"] == "assigned"  # nothing happened
    csrf = browser.get(f"{API}/csrf-token").json["csrf_token"]
    assert (
        browser.post(f"{API}/notifications/read", headers={"X-CSRFToken": csrf}).status_code == 200
    )
    assert fire(browser, {"X-CSRFToken": csrf}, tid, "start").status_code == 200
    # A bearer token needs no CSRF header: browsers never send one on their own.
    program = web.test_client()
    assert (
        program.post(f"{API}/notifications/read", headers=bearer(web, "vp.canbo")).status_code
        == 200
    )


@pytest.mark.db
def test_unknown_routes_and_methods_answer_json(web: Flask) -> None:
    client = web.test_client()
    headers = bearer(web, "vp.canbo")
    refused(client.get(f"{API}/khong-co", headers=headers), 404, "not_found")
    refused(client.get(f"{API}/khong-co"), 404, "not_found")
    refused(client.post(f"{API}/instances/1/khong-co", headers=headers), 404, "not_found")
    refused(client.get(f"{API}/instances/0", headers=headers), 404, "not_found")
    refused(client.get(f"{API}/instances/99999999999", headers=headers), 404, "not_found")
    refused(client.get(f"{API}/instances/-1", headers=headers), 404, "not_found")
    response = client.delete(f"{API}/instances", headers=headers)
    refused(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    assert client.get("/khong-co").mimetype != "application/json"  # pages keep their own 404
    document = client.get(f"{API}/openapi.json")  # public, no token needed
    assert document.status_code == 200 and document.json["openapi"] == "3.1.0"


# --- instances and events ------------------------------------------------------------------------


@pytest.mark.db
def test_list_and_show_instances(web: Flask) -> None:
    client = web.test_client()
    member = bearer(web, "vp.canbo")
    rows = client.get(f"{API}/instances", headers=member).json["items"]
    assert len(rows) > 20 and {"id", "number", "unit", "state", "due", "version"} <= set(rows[0])
    vp = client.get(f"{API}/instances?unit=VP&state=assigned", headers=member).json["items"]
    assert vp and all(r["unit"] == "VP" and r["state"] == "assigned" for r in vp)
    twelve = client.get(f"{API}/instances?number=12", headers=member).json["items"]
    assert [r["number"] for r in twelve] == [12]
    assert client.get(f"{API}/instances?state=accepted", headers=member).json["items"] == []
    unfiltered = client.get(f"{API}/instances?unit=&state=&number=", headers=member).json
    assert len(unfiltered["items"]) == len(rows)  # empty fields are fields not filled in
    refused(client.get(f"{API}/instances?number=abc", headers=member), 400, "invalid_parameter")
    refused(client.get(f"{API}/instances?number=0", headers=member), 400, "invalid_parameter")
    refused(client.get(f"{API}/instances?state=done", headers=member), 400, "invalid_parameter")
    refused(client.get(f"{API}/instances?unit=V%00P", headers=member), 400, "invalid_parameter")

    tid = twelve[0]["id"]
    shown = detail(client, member, tid)
    assert shown["number"] == 12 and shown["lead"] == "VP" and shown["state"] == "assigned"
    assert shown["enabled_events"] == ["start"]
    assert shown["may"] == {"add_evidence": True, "explain": True, "request_contribution": True}
    assert "task.assigned" in [h["action"] for h in shown["history"]]
    assert detail(client, bearer(web, "vhxh.thamdinh1"), tid)["enabled_events"] == []
    refused(client.get(f"{API}/instances/999999", headers=member), 404, "not_found")


@pytest.mark.db
def test_fire_refusals(web: Flask) -> None:
    client = web.test_client()
    member, head = bearer(web, "vp.canbo"), bearer(web, "vp.truong")
    tid = instance_id(client, member, 12, "VP")
    refused(fire(client, member, tid, "dance"), 422, "unknown_event")
    refused(fire(client, member, tid, "accept"), 409, "invalid_transition")
    refused(fire(client, bearer(web, "yte.canbo"), tid, "start"), 403, "not_permitted")
    refused(fire(client, member, 999999, "start"), 404, "not_found")
    refused(fire(client, member, tid, "start", expected_version=7), 409, "stale_version")
    refused(fire(client, member, tid, "start", expected_version="1"), 400, "invalid_body")
    refused(fire(client, member, tid, "start", colour="red"), 400, "invalid_body")
    refused(fire(client, member, tid, "start", due="2026-02-30"), 400, "invalid_body")
    refused(fire(client, member, tid, "start", reason="a\x00b"), 400, "invalid_body")
    refused(
        client.post(f"{API}/instances/{tid}/events", headers=member, json=["start"]),
        400,
        "invalid_body",
    )
    refused(
        client.post(
            f"{API}/instances/{tid}/events",
            headers=member,
            data=b'{"event": "start"',
            content_type="application/json",
        ),
        400,
        "invalid_json",
    )
    refused(
        client.post(
            f"{API}/instances/{tid}/events",
            headers=member,
            data=b"\xff\xfe\x00",
            content_type="application/json",
        ),
        400,
        "invalid_json",
    )
    refused(
        client.post(f"{API}/instances/{tid}/events", headers=member, data={"event": "start"}),
        415,
        "unsupported_media_type",
    )
    assert detail(client, member, tid)["version"] == 1  # nothing refused changed anything

    version = detail(client, member, tid)["version"]
    started = fire(client, member, tid, "start", expected_version=version)
    assert started.status_code == 200
    assert started.json["before"] == "assigned" and started.json["after"] == "in_progress"
    assert started.json["version"] == version + 1 and started.json["audit_seq"] > 0
    refused(fire(client, member, tid, "submit"), 403, "not_permitted")  # the head submits
    refused(fire(client, head, tid, "submit"), 422, "evidence_missing")

    # The ward leader schedules; a date before the period is refused for what it says.
    leader = bearer(web, "lanhdao")
    rows = client.get(f"{API}/instances?state=awaiting_schedule", headers=leader).json["items"]
    if rows:
        waiting = rows[0]["id"]
        refused(fire(client, leader, waiting, "schedule"), 422, "due_required")
        refused(fire(client, leader, waiting, "schedule", due="2000-01-01"), 422, "invalid_due")
        assert fire(client, leader, waiting, "schedule", due="2026-12-30").status_code == 200
        assert detail(client, leader, waiting)["due"] == "2026-12-30"


@pytest.mark.db
def test_the_whole_lifecycle_through_the_api(web: Flask) -> None:
    client = web.test_client()
    member, head = bearer(web, "vp.canbo"), bearer(web, "vp.truong")
    reviewer, approver = bearer(web, "vhxh.thamdinh1"), bearer(web, "vhxh.truong")
    auditor = bearer(web, "kiemtoan")
    tid = instance_id(client, member, 12, "VP")
    product = detail(client, member, tid)["products"][0]

    assert fire(client, member, tid, "start").status_code == 200
    assert upload(client, member, tid, product).status_code == 201
    assert detail(client, head, tid)["enabled_events"] == ["submit"]
    assert fire(client, head, tid, "submit").status_code == 200
    assert detail(client, reviewer, tid)["enabled_events"] == ["review", "return_for_rework"]
    refused(fire(client, reviewer, tid, "return_for_rework"), 422, "reason_required")
    returned = fire(client, reviewer, tid, "return_for_rework", reason="Thiếu số liệu quý I")
    assert returned.json["after"] == "returned"
    remarks = detail(client, member, tid)["remarks"]
    assert remarks[-1]["body"] == "Thiếu số liệu quý I"  # the member reads the reason

    assert fire(client, member, tid, "rework").status_code == 200
    assert upload(client, member, tid, product, PNG, "so-lieu.png").status_code == 201
    assert fire(client, head, tid, "submit").status_code == 200
    refused(fire(client, reviewer, tid, "review", findings="Đạt"), 422, "recommendation_required")
    reviewed = fire(
        client, reviewer, tid, "review", findings="Đạt yêu cầu", recommendation="accept"
    )
    assert reviewed.json["after"] == "reviewed"
    assert detail(client, approver, tid)["enabled_events"] == ["return_for_rework", "accept"]
    refused(fire(client, approver, tid, "accept"), 422, "assessment_required")
    accepted = fire(client, approver, tid, "accept", assessment="Hoàn thành tốt")
    assert accepted.status_code == 200 and accepted.json["after"] == "accepted"
    assert detail(client, approver, tid)["enabled_events"] == []

    history = client.get(f"{API}/audit/history/task_instance/{tid}", headers=auditor).json
    actions = [e["action"] for e in history["items"]]
    for action in (
        "task.start",
        "evidence.added",
        "task.submit",
        "task.return_for_rework",
        "task.rework",
        "task.review",
        "task.accept",
    ):
        assert action in actions
    seqs = [e["seq"] for e in history["items"]]
    assert seqs == sorted(seqs)
    accept_entry = history["items"][-1]
    assert accept_entry["body"]["details"] == {"assessment": "Hoàn thành tốt"}
    assert accept_entry["actor"] == {"user": "vhxh.truong", "unit": "VHXH", "role": "approver"}
    assert len(accept_entry["leaf_hash"]) == 64


@pytest.mark.db
def test_four_eyes_refusals_map_to_403(web: Flask) -> None:
    client = web.test_client()
    contributor, head = bearer(web, "vhxh.thamdinh1"), bearer(web, "vhxh.truong")
    tid = instance_id(client, head, 1, "VHXH")
    product = detail(client, head, tid)["products"][0]
    assert fire(client, contributor, tid, "start").status_code == 200
    assert upload(client, contributor, tid, product).status_code == 201
    assert fire(client, head, tid, "submit").status_code == 200
    # The reviewer provided evidence for this submission: not theirs to review.
    refused(
        fire(client, contributor, tid, "review", findings="x", recommendation="accept"),
        403,
        "self_review",
    )
    other = bearer(web, "vhxh.thamdinh2")
    assert (
        fire(client, other, tid, "review", findings="Đạt", recommendation="accept").status_code
        == 200
    )
    # VHXH's own work is decided by the ward leader, never by VHXH's approver.
    refused(fire(client, head, tid, "accept", assessment="Tốt"), 403, "not_permitted")
    assert fire(client, bearer(web, "lanhdao"), tid, "accept", assessment="Tốt").status_code == 200


# --- evidence, explanations, contributions --------------------------------------------------------


@pytest.mark.db
def test_evidence_upload_download_round_trip_and_refusals(web: Flask) -> None:
    client = web.test_client()
    member, head = bearer(web, "vp.canbo"), bearer(web, "vp.truong")
    tid = instance_id(client, member, 12, "VP")
    product = detail(client, member, tid)["products"][0]
    refused(upload(client, member, tid, product), 409, "invalid_state")  # not started yet
    fire(client, member, tid, "start")

    stored = upload(client, member, tid, product, PDF, "../../etc/bao-cao.pdf")
    assert stored.status_code == 201
    evidence = stored.json
    assert evidence["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert evidence["filename"] == "bao-cao.pdf"  # the uploaded name never becomes a path
    assert evidence["media_type"] == "application/pdf" and evidence["uploader"] == "vp.canbo"
    assert stored.headers["Location"] == f"{API}/evidence/{evidence['id']}/download"

    download = client.get(evidence["download"], headers=bearer(web, "kiemtoan"))
    assert download.status_code == 200
    assert hashlib.sha256(download.data).hexdigest() == evidence["sha256"]
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "bao-cao.pdf" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-SHA256"] == evidence["sha256"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    download.close()
    shown = detail(client, member, tid)["evidence"]
    assert [(e["id"], e["sha256"]) for e in shown] == [(evidence["id"], evidence["sha256"])]

    refused(
        upload(client, member, tid, product, b"MZ\x90\x00 not allowed", "x.pdf"),
        415,
        "file_type_not_allowed",
    )
    refused(upload(client, member, tid, "Sản phẩm không có"), 422, "unknown_product")
    refused(upload(client, bearer(web, "yte.canbo"), tid, product), 403, "not_permitted")
    refused(upload(client, member, 999999, product), 404, "not_found")
    # Encoded here: the test client would spool a body this large to an unclosed temp file.
    boundary, big = encode_multipart(
        {"product": product, "file": FileStorage(io.BytesIO(PDF + b"0" * 2**20), "lon.pdf")}
    )
    too_large = client.post(
        f"{API}/instances/{tid}/evidence",
        headers=member,
        data=big,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    refused(too_large, 413, "file_too_large")
    refused(
        client.post(f"{API}/instances/{tid}/evidence", headers=member, json={"product": product}),
        415,
        "unsupported_media_type",
    )
    refused(
        client.post(
            f"{API}/instances/{tid}/evidence",
            headers=member,
            data={"product": product},
            content_type="multipart/form-data",
        ),
        400,
        "invalid_body",
    )
    refused(
        client.post(
            f"{API}/instances/{tid}/evidence",
            headers=member,
            data={"product": product, "file": (io.BytesIO(PDF), "a.pdf"), "expected_version": "1"},
            content_type="multipart/form-data",
        ),
        409,
        "stale_version",
    )
    refused(client.get(f"{API}/evidence/999999/download", headers=member), 404, "not_found")
    response = client.post(
        f"{API}/instances/{tid}/evidence",
        headers=member,
        data=UNNAMED_PART,
        content_type="multipart/form-data; boundary=b",
    )
    refused(response, 400, "invalid_body")

    # Withdrawal: only the uploader, only once.
    refused(
        client.post(f"{API}/evidence/{evidence['id']}/withdraw", headers=head), 403, "not_permitted"
    )
    withdrawn = client.post(f"{API}/evidence/{evidence['id']}/withdraw", headers=member)
    assert withdrawn.status_code == 200 and withdrawn.json["withdrawn_at"] is not None
    refused(
        client.post(f"{API}/evidence/{evidence['id']}/withdraw", headers=member), 404, "not_found"
    )
    assert detail(client, member, tid)["evidence"][0]["withdrawn"] is True


@pytest.mark.db
def test_explanations(web: Flask) -> None:
    client = web.test_client()
    member, head = bearer(web, "vp.canbo"), bearer(web, "vp.truong")
    tid = instance_id(client, member, 12, "VP")
    product = detail(client, member, tid)["products"][0]
    url = f"{API}/instances/{tid}/explanations"
    fire(client, member, tid, "start")
    refused(client.post(url, headers=member, json={"product": product}), 400, "invalid_body")
    refused(
        client.post(url, headers=member, json={"product": product, "text": " "}),
        422,
        "explanation_required",
    )
    refused(
        client.post(url, headers=member, json={"product": "?", "text": "x"}), 422, "unknown_product"
    )
    refused(
        client.post(url, headers=bearer(web, "kiemtoan"), json={"product": product, "text": "x"}),
        403,
        "not_permitted",
    )
    text = "Văn bản đang chờ ký, sẽ bổ sung trong tuần."
    explained = client.post(url, headers=member, json={"product": product, "text": text})
    assert explained.status_code == 201
    assert explained.json["text"] == text and explained.json["author"] == "vp.canbo"
    # The explanation covers the product: the head may submit without a file.
    assert fire(client, head, tid, "submit").status_code == 200


@pytest.mark.db
def test_contribution_request_and_answers(web: Flask) -> None:
    client = web.test_client()
    member = bearer(web, "vp.canbo")
    asked, outsider = bearer(web, "kthtdt.canbo"), bearer(web, "yte.canbo")
    tid = instance_id(client, member, 12, "VP")
    url = f"{API}/instances/{tid}/contributions"
    fire(client, member, tid, "start")
    refused(client.post(url, headers=member, json={"unit": "YTE"}), 422, "not_a_coordinator")
    refused(client.post(url, headers=asked, json={"unit": "KTHTDT"}), 403, "not_permitted")
    refused(
        client.post(url, headers=member, json={"unit": "KTHTDT", "due": "soon"}),
        400,
        "invalid_body",
    )
    made = client.post(
        url, headers=member, json={"unit": "kthtdt", "due": "2026-06-30", "message": "Số liệu"}
    )
    assert made.status_code == 201
    assert made.json["unit"] == "KTHTDT" and made.json["state"] == "requested"
    assert made.json["due"] == "2026-06-30"
    refused(client.post(url, headers=member, json={"unit": "KTHTDT"}), 409, "already_requested")
    request_id = made.json["id"]
    answer = f"{API}/contributions/{request_id}/answer"
    refused(
        client.post(answer, headers=outsider, json={"provide": True, "note": "x"}),
        403,
        "not_permitted",
    )
    refused(client.post(answer, headers=asked, json={"provide": False}), 422, "reason_required")
    refused(client.post(answer, headers=asked, json={"provide": "yes"}), 400, "invalid_body")
    refused(client.post(answer, headers=asked, json={"provide": True}), 422, "contribution_empty")
    unnamed = client.post(
        answer, headers=asked, data=UNNAMED_PART, content_type="multipart/form-data; boundary=b"
    )
    refused(unnamed, 400, "invalid_body")
    provided = client.post(
        answer,
        headers=asked,
        data={
            "provide": "true",
            "note": "Gửi số liệu",
            "files": [(io.BytesIO(PDF), "so-lieu.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert provided.status_code == 200 and provided.json["state"] == "provided"
    refused(
        client.post(answer, headers=asked, json={"provide": True, "note": "x"}),
        409,
        "already_answered",
    )
    refused(
        client.post(f"{API}/contributions/999999/answer", headers=asked, json={"provide": True}),
        404,
        "not_found",
    )
    shown = detail(client, member, tid)
    assert shown["contributions"][0]["state"] == "provided"
    assert any(e["product"] == "Phối hợp của KTHTDT" for e in shown["evidence"])

    declined_request = client.post(url, headers=member, json={"unit": "CAP"}).json["id"]
    declined = client.post(
        f"{API}/contributions/{declined_request}/answer",
        headers=bearer(web, "cap.truong"),
        json={"provide": False, "reason": "Không có số liệu"},
    )
    assert declined.status_code == 200 and declined.json["decline_reason"] == "Không có số liệu"


# --- notifications and the audit log -----------------------------------------------------------


@pytest.mark.db
def test_notifications(web: Flask) -> None:
    client = web.test_client()
    member, head, reviewer = (bearer(web, u) for u in ("vp.canbo", "vp.truong", "vhxh.thamdinh1"))
    tid = instance_id(client, member, 12, "VP")
    fire(client, member, tid, "start")
    url = f"{API}/instances/{tid}/explanations"
    product = detail(client, member, tid)["products"][0]
    client.post(url, headers=member, json={"product": product, "text": "Giải trình"})
    fire(client, head, tid, "submit")
    inbox = client.get(f"{API}/notifications", headers=reviewer).json
    assert inbox["unread"] >= 1
    assert inbox["items"][0]["instance_id"] == tid and inbox["items"][0]["read"] is False
    assert len(client.get(f"{API}/notifications?limit=1", headers=reviewer).json["items"]) == 1
    refused(client.get(f"{API}/notifications?limit=0", headers=reviewer), 400, "invalid_parameter")
    marked = client.post(f"{API}/notifications/read", headers=reviewer).json["marked"]
    assert marked == inbox["unread"]
    assert client.get(f"{API}/notifications", headers=reviewer).json["unread"] == 0


@pytest.mark.db
def test_audit_queries(web: Flask) -> None:
    client = web.test_client()
    auditor, member = bearer(web, "kiemtoan"), bearer(web, "vp.canbo")
    tid = instance_id(client, member, 12, "VP")
    fire(client, member, tid, "start")
    url = f"{API}/audit/entries"
    refused(client.get(url, headers=member), 403, "not_permitted")
    refused(
        client.get(f"{API}/audit/history/task_instance/{tid}", headers=member), 403, "not_permitted"
    )
    everything = client.get(url, headers=auditor).json
    assert everything["total"] > 50 and everything["page"] == 1 and len(everything["items"]) == 50
    assert everything["pages"] == -(-everything["total"] // 50)
    seqs = [e["seq"] for e in everything["items"]]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    starts = client.get(f"{url}?action=task.start&user=vp.canbo&unit=VP", headers=auditor).json
    assert [(e["object"], e["actor"]["role"]) for e in starts["items"]] == [
        ({"type": "task_instance", "id": str(tid)}, "member")
    ]
    today = datetime.now(UTC).date()
    dated = f"{url}?since={today - timedelta(days=1)}&until={today + timedelta(days=1)}&per_page=5"
    assert client.get(dated, headers=auditor).json["total"] == everything["total"]
    assert client.get(f"{url}?until=2000-01-01", headers=auditor).json["total"] == 0
    assert client.get(f"{url}?page=999&per_page=1000", headers=auditor).json["items"] == []
    refused(client.get(f"{url}?since=hôm-qua", headers=auditor), 400, "invalid_parameter")
    refused(client.get(f"{url}?per_page=5000", headers=auditor), 400, "invalid_parameter")
    refused(client.get(f"{url}?page=0", headers=auditor), 400, "invalid_parameter")
    extremes = client.get(f"{url}?since=0001-01-01&until=9999-12-31", headers=auditor)
    assert extremes.json["total"] == everything["total"]
    history = client.get(f"{API}/audit/history/task_instance/{tid}", headers=auditor).json["items"]
    assert [e["action"] for e in history] == ["task.assigned", "task.start"]
    user_history = client.get(f"{API}/audit/history/user/vp.canbo", headers=auditor).json["items"]
    assert user_history[0]["action"] == "user.created"
    assert client.get(f"{API}/audit/history/user/nobody", headers=auditor).json["items"] == []
    refused(
        client.get(f"{API}/audit/history/user/a%00b", headers=auditor), 400, "invalid_parameter"
    )
    for allowed in ("lanhdao", "quantri"):
        assert client.get(url, headers=bearer(web, allowed)).status_code == 200


# --- who may call what ---------------------------------------------------------------------------

WARD = (
    "vp.canbo",  # member of the lead unit
    "vp.truong",  # head of the lead unit
    "yte.canbo",  # member of another unit
    "kthtdt.truong",  # head of a coordinating unit
    "vhxh.thamdinh1",  # reviewer
    "vhxh.truong",  # approver (VHXH head)
    "lanhdao",  # ward leader
    "kiemtoan",  # auditor
    "quantri",  # administrator
)
OUTSIDER = "lc.vp.truong"  # head of VP in another ward


@pytest.mark.db
def test_every_endpoint_by_every_role(web: Flask) -> None:
    """For each endpoint, everyone not allowed is refused (403, or 404 where the object is not
    theirs to see) in the error shape and changes nothing; someone allowed succeeds."""
    other_ward_user(web, OUTSIDER, "VP", ("member", "head"))
    client = web.test_client()
    token = {name: bearer(web, name) for name in (*WARD, OUTSIDER)}
    everyone = (*WARD, OUTSIDER)
    tid = instance_id(client, token["vp.canbo"], 12, "VP")
    product = detail(client, token["vp.canbo"], tid)["products"][0]

    def version() -> int:
        return int(detail(client, token["kiemtoan"], tid)["version"])

    def check(
        call: Any, allowed: set[str], *, succeed_as: str | None = None, ok: int = 200
    ) -> TestResponse | None:
        before = version()
        for name in everyone:
            if name in allowed:
                continue
            response = call(token[name])
            assert response.status_code in (403, 404), (name, response.get_data(as_text=True))
            refused(response, response.status_code, response.json["error"]["code"])
            if name == OUTSIDER:
                assert response.status_code == 404  # another ward's objects do not exist
        assert version() == before
        if succeed_as is None:
            return None
        response = call(token[succeed_as])
        assert response.status_code == ok, (succeed_as, response.get_data(as_text=True))
        return response

    # Reading: everyone of the ward reads the ward's plan work; nobody reads another ward's.
    for name in WARD:
        assert client.get(f"{API}/instances/{tid}", headers=token[name]).status_code == 200
    refused(client.get(f"{API}/instances/{tid}", headers=token[OUTSIDER]), 404, "not_found")
    assert client.get(f"{API}/instances", headers=token[OUTSIDER]).json["items"] == []

    lead = {"vp.canbo", "vp.truong"}
    check(lambda h: fire(client, h, tid, "start"), lead, succeed_as="vp.canbo")
    evidence = check(lambda h: upload(client, h, tid, product), lead, succeed_as="vp.canbo", ok=201)
    assert evidence is not None
    evidence_id = evidence.json["id"]
    download = f"{API}/evidence/{evidence_id}/download"
    for name in WARD:
        response = client.get(download, headers=token[name])
        assert response.status_code == 200
        response.close()
    refused(client.get(download, headers=token[OUTSIDER]), 404, "not_found")
    check(
        lambda h: client.post(
            f"{API}/instances/{tid}/explanations", headers=h, json={"product": product, "text": "x"}
        ),
        lead,
        succeed_as="vp.truong",
        ok=201,
    )
    requested = check(
        lambda h: client.post(
            f"{API}/instances/{tid}/contributions", headers=h, json={"unit": "KTHTDT"}
        ),
        lead,
        succeed_as="vp.canbo",
        ok=201,
    )
    assert requested is not None
    check(
        lambda h: client.post(
            f"{API}/contributions/{requested.json['id']}/answer",
            headers=h,
            json={"provide": True, "note": "Đã gửi"},
        ),
        {"kthtdt.truong"},
        succeed_as="kthtdt.truong",
    )
    second = upload(client, token["vp.truong"], tid, product).json["id"]
    check(
        lambda h: client.post(f"{API}/evidence/{second}/withdraw", headers=h),
        {"vp.truong"},
        succeed_as="vp.truong",
    )
    check(lambda h: fire(client, h, tid, "submit"), {"vp.truong"}, succeed_as="vp.truong")
    reviewers = {"vhxh.thamdinh1"}
    check(
        lambda h: fire(client, h, tid, "review", findings="Đạt", recommendation="accept"),
        reviewers,
        succeed_as="vhxh.thamdinh1",
    )
    check(
        lambda h: fire(client, h, tid, "accept", assessment="Tốt"),
        {"vhxh.truong"},
        succeed_as="vhxh.truong",
    )

    # The audit log: auditors, the ward leader and the administrator.
    audit_readers = {"kiemtoan", "lanhdao", "quantri"}
    for url in (f"{API}/audit/entries", f"{API}/audit/history/task_instance/{tid}"):
        for name in everyone:
            response = client.get(url, headers=token[name])
            if name in audit_readers:
                assert response.status_code == 200
            else:
                refused(response, 403, "not_permitted")
    outsider_auditor = "lc.kiemtoan"
    other_ward_user(web, outsider_auditor, "VP", ("auditor",))
    theirs = client.get(
        f"{API}/audit/history/task_instance/{tid}", headers=bearer(web, outsider_auditor)
    )
    assert theirs.status_code == 200 and theirs.json["items"] == []  # their log, not ours

    # Tokens are one's own (the ward's administrator may revoke any of them).
    with web.app_context():
        ids = {
            name: t.id
            for name in ("vp.canbo", "vp.truong")
            for t in db_session().scalars(select(ApiToken).join(User).where(User.username == name))
        }
    check(
        lambda h: client.delete(f"{API}/tokens/{ids['vp.canbo']}", headers=h),
        {"vp.canbo", "quantri"},
        succeed_as="vp.canbo",
    )


@pytest.mark.db
def test_an_audit_mismatch_after_the_commit_is_its_own_error(
    web: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger's integrity alarm after the COMMIT answers audit_mismatch (the change is
    saved, do not send it again), not internal_error's "try again later"."""
    client = web.test_client()
    member = bearer(web, "vp.canbo")
    tid = instance_id(client, member, 13, "VP")
    web.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error handler answers

    def alarm(_session: Any) -> None:
        raise CommittedMismatchError("the entry built again does not match; committed with it")

    with monkeypatch.context() as patch:
        patch.setattr(Session, "commit", alarm)
        response = fire(client, member, tid, "start")
    refused(response, 500, "audit_mismatch")
    assert "Đừng thực hiện lại" in response.get_json()["error"]["message"]

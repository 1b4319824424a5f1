"""The whole lifecycle in a real browser (Playwright driving Debian's chromium) against the app
served on a loopback port: a unit submits, VHXH returns it with a reason, the unit reworks and
resubmits, VHXH reviews and its head accepts, an auditor reads the timeline and verifies the log.

Each page is saved as a screenshot under build/screenshots/. Skipped when chromium (Debian's
/usr/bin/chromium, or $CCHC_CHROMIUM) or Playwright is missing, except in CI (CI=true), where
that is a failure.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from app import create_app
from app.cli import main
from app.database import database_of
from tests.conftest import REPO, in_ci
from workflow.bootstrap import DEMO_PASSWORD
from workflow.states import TASK_STATE_LABELS, TaskState

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.db, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("CCHC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = REPO / "build" / "screenshots"
TASK_NUMBER = 13  # led by Văn phòng (VP): VHXH reviews and its head decides
PDF = b"%PDF-1.4\n% bao cao ket qua\n%%EOF\n"
REASON = "Thiếu số liệu quý I, đề nghị bổ sung bảng tổng hợp."


def _missing(why: str) -> None:
    if in_ci():
        pytest.fail(f"{why} and CI=true: the browser test must run")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def base_url(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on a free loopback port, in a thread, against a fresh demo database."""
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    result = CliRunner().invoke(main, ["init", "--demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        database_of(app).engine.dispose()


class Person:
    """One person's own browser session (separate cookies), taking screenshots as it goes."""

    def __init__(self, browser: Browser, base_url: str, username: str, shots: list[str]) -> None:
        self.context = browser.new_context(base_url=base_url, locale="vi-VN")
        self.page: Page = self.context.new_page()
        self.username = username
        self.shots = shots
        self.page.goto("/login")
        self.shot("dang-nhap")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", DEMO_PASSWORD)
        self.page.click("button:has-text('Đăng nhập')")
        self.page.wait_for_url(re.compile(r"/$"))
        self.ok_flash_absent()

    def ok_flash_absent(self) -> None:
        errors = self.page.locator("p.flash.error")
        assert errors.count() == 0, errors.all_inner_texts()

    def shot(self, what: str) -> None:
        name = f"{len(self.shots) + 1:02d}-{self.username}-{what}.png"
        self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        self.shots.append(name)

    def open_task(self, task_id: int) -> None:
        self.page.goto(f"/nhiem-vu/{task_id}")
        self.shot("nhiem-vu")

    def act(self, label: str, shot: str, fields: dict[str, str] | None = None) -> str:
        """Fill and press the action form whose button reads `label`; the confirmation."""
        form = self.page.locator(
            "section.actions form", has=self.page.locator(f"button:text-is('{label}')")
        )
        for name, value in (fields or {}).items():
            field = form.locator(f"[name={name}]")
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        form.locator("button").click()
        self.page.wait_for_load_state()
        self.ok_flash_absent()
        message = self.page.locator("p.flash.ok").inner_text()
        self.shot(shot)
        return message

    def upload_for_every_product(self, tmp_path: Path, tag: str) -> None:
        products = self.page.locator("form.upload select[name=product]").first
        names = products.locator("option").all_inner_texts()
        assert names, "the task lists its expected products"
        for index, product in enumerate(names):
            evidence = tmp_path / f"{tag}-{index}.pdf"
            evidence.write_bytes(PDF + f"% {tag} {index}\n".encode())
            form = self.page.locator("form.upload").first
            form.locator("select[name=product]").select_option(label=product)
            form.locator("input[type=file]").set_input_files(str(evidence))
            form.locator("button").click()
            self.page.wait_for_load_state()
            self.ok_flash_absent()
            assert "Đã tải lên tài liệu kiểm chứng." in self.page.locator("p.flash.ok").inner_text()
        self.shot(f"tai-len-{tag}")

    def state(self) -> str:
        return self.page.locator("dd[class^=state-]").inner_text()

    def close(self) -> None:
        self.context.close()


def _task_id(member: Person) -> int:
    member.page.goto(f"/?number={TASK_NUMBER}")
    member.shot("viec-cua-don-vi")
    link = member.page.locator("a[href^='/nhiem-vu/']").first
    href = link.get_attribute("href")
    assert href is not None
    return int(href.rsplit("/", 1)[1])


def test_the_whole_lifecycle_in_the_browser(
    browser: Browser, base_url: str, tmp_path: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    shots: list[str] = []
    people: dict[str, Person] = {}

    def person(username: str) -> Person:
        if username not in people:
            people[username] = Person(browser, base_url, username, shots)
        return people[username]

    try:
        # The unit: a member starts the task and uploads the evidence; the head submits
        # (the demo policy lets only the lead unit's head submit).
        member = person("vp.canbo")
        task_id = _task_id(member)
        member.open_task(task_id)
        member.act("Bắt đầu thực hiện", "bat-dau")
        assert member.state().startswith(TASK_STATE_LABELS[TaskState.IN_PROGRESS])
        member.upload_for_every_product(tmp_path, "lan-1")
        head = person("vp.truong")
        head.open_task(task_id)
        assert head.act("Nộp sản phẩm", "nop") == "Đã thực hiện: Nộp sản phẩm."
        assert head.state().startswith(TASK_STATE_LABELS[TaskState.EVIDENCE_SUBMITTED])

        # VHXH's reviewer returns it from the queue, with a reason.
        reviewer = person("vhxh.thamdinh1")
        reviewer.page.goto("/tham-dinh")
        reviewer.shot("hang-cho-tham-dinh")
        reviewer.page.locator(f"a[href='/nhiem-vu/{task_id}']").first.click()
        reviewer.page.wait_for_load_state()
        reviewer.shot("nhiem-vu")
        reviewer.act("Trả lại để hoàn thiện", "tra-lai", {"reason": REASON})
        assert reviewer.state().startswith(TASK_STATE_LABELS[TaskState.RETURNED])

        # The member reads the reason, reworks, adds a file; the head resubmits.
        member.open_task(task_id)
        assert REASON in member.page.locator("main").inner_text()
        member.act("Hoàn thiện lại", "hoan-thien-lai")
        member.upload_for_every_product(tmp_path, "lan-2")
        head.open_task(task_id)
        head.act("Nộp sản phẩm", "nop-lai")

        # Review (another reviewer) and the decision of VHXH's head: four eyes, three people.
        second = person("vhxh.thamdinh2")
        second.open_task(task_id)
        second.act(
            "Thẩm định",
            "tham-dinh",
            {"findings": "Đã đủ số liệu, đạt yêu cầu.", "recommendation": "accept"},
        )
        approver = person("vhxh.truong")
        approver.open_task(task_id)
        approver.act("Nghiệm thu", "nghiem-thu", {"assessment": "Hoàn thành tốt nhiệm vụ."})
        assert approver.state().startswith(TASK_STATE_LABELS[TaskState.ACCEPTED])
        assert approver.page.locator("section.actions").count() == 0  # nothing left to do

        # The auditor reads the task's timeline and verifies the log now.
        auditor = person("kiemtoan")
        auditor.page.goto(f"/kiem-toan/nhiem-vu/{task_id}")
        auditor.shot("dong-thoi-gian")
        timeline = auditor.page.locator("main").inner_text()
        for user in ("vp.canbo", "vp.truong", "vhxh.thamdinh1", "vhxh.thamdinh2", "vhxh.truong"):
            assert user in timeline, user
        auditor.page.goto("/kiem-toan/kiem-chung")
        auditor.shot("kiem-chung")
        auditor.page.click("button:has-text('Kiểm chứng ngay')")
        auditor.page.wait_for_load_state()
        auditor.shot("ket-qua-kiem-chung")
        result = auditor.page.locator("section.verify-result").inner_text()
        assert "Kết quả: nhật ký nguyên vẹn." in result
    finally:
        for someone in people.values():
            someone.close()
    assert len(shots) >= 15
    assert all((SCREENSHOTS / name).stat().st_size > 1000 for name in shots)

"""The `cchc` command line as a script would drive it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from definitions.loader import default_plan_path


@pytest.fixture
def cli(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return run


@pytest.mark.db
def test_init_twice_then_list(cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("init", "--demo", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["tasks_created"] == 48 and report["instances_created"] > 48

    again = json.loads(cli("init", "--demo", "--json").stdout)
    assert again["tasks_created"] == again["instances_created"] == 0
    assert again["users_created"] == [] and again["units_created"] == []

    tasks = json.loads(cli("task", "list", "--json").stdout)
    assert len(tasks) == report["instances_created"]
    assert {"id", "number", "unit", "period", "state", "due"} <= set(tasks[0])
    vhxh = json.loads(cli("task", "list", "--unit", "VHXH", "--number", "2", "--json").stdout)
    assert [t["due"] for t in vhxh] == ["2026-03-09", "2026-06-09", "2026-09-09", "2026-12-09"]

    users = json.loads(cli("user", "list", "--json").stdout)
    by_name = {u["username"]: u for u in users}
    assert by_name["vhxh.truong"]["unit"] == "VHXH"
    assert "approver" in by_name["vhxh.truong"]["roles"]


@pytest.mark.db
def test_user_create_and_set_password(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    made = cli(
        "user",
        "create",
        "nguyen.van.a",
        "--name",
        "Nguyễn Văn A",
        "--unit",
        "vp",
        "--role",
        "member",
        "--password-stdin",
        "--email",
        "a.nguyen@example.vn",
        "--json",
        input="mat-khau-dai\n",
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout) == {
        "username": "nguyen.van.a",
        "unit": "VP",
        "roles": ["member"],
        "email": "a.nguyen@example.vn",
    }
    assert cli("user", "set-email", "nguyen.van.a", "a@vp.example.vn").exit_code == 0
    wrong = cli("user", "set-email", "nguyen.van.a", "a@")
    assert wrong.exit_code == 1 and "[invalid_email]" in wrong.output

    taken = cli("user", "create", "nguyen.van.a", "--name", "X", "--role", "member")
    assert taken.exit_code == 1 and "username_taken" in taken.output

    short = cli("user", "set-password", "nguyen.van.a", input="ngan\n")
    assert short.exit_code == 1 and "weak_password" in short.output
    assert cli("user", "set-password", "nguyen.van.a", input="mot-mat-khau-moi\n").exit_code == 0

    bad_role = cli("user", "create", "b", "--name", "B", "--role", "boss")
    assert bad_role.exit_code == 1 and "unknown_role" in bad_role.output


def test_parse_timeframe_cli() -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["plan", "parse-timeframe", "Quý I/2026", "--year", "2026", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["periods"][0]["due"] == "2026-03-31"
    unknown = runner.invoke(
        main, ["plan", "parse-timeframe", "Lúc nào rảnh thì làm", "--year", "2026"]
    )
    assert unknown.exit_code == 1
    assert "Lúc nào rảnh thì làm" in unknown.output


def test_plan_show_lists_48_tasks_in_7_sections() -> None:
    result = CliRunner().invoke(main, ["plan", "show", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert len(plan["tasks"]) == 48
    assert [s["number"] for s in plan["sections"]] == ["I", "II", "III", "IV", "V", "VI", "VII"]
    assert plan["tasks"][32]["content"].endswith("theo Nghị quyết số 53/2025/NQ-HĐND.")


def test_plan_import_reproduces_the_checked_in_plan(seed_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.yaml"
    result = CliRunner().invoke(main, ["plan", "import", str(seed_path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "48 nhiệm vụ" in result.output
    assert out.read_bytes() == default_plan_path().read_bytes()
    checked = CliRunner().invoke(main, ["plan", "validate", str(out)])
    assert checked.exit_code == 0, checked.output


def test_plan_validate_names_the_file_task_and_field(tmp_path: Path) -> None:
    text = default_plan_path().read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  - KTHTDT\n", "  - KTHTDTX\n", 1), encoding="utf-8")
    result = CliRunner().invoke(main, ["plan", "validate", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml" in result.output and "KTHTDTX" in result.output
    assert "nhiệm vụ" in result.output

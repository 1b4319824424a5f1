"""Issue 6 from the command line: `cchc evaluate`, the self-inspection round, closing the year,
and an inspection draw replayed by another process (as after a restart)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from definitions.rubric import load_rubric

IN_SCOPE = ["KTHTDT", "TTDVSNC", "TTPVHCC", "VHXH", "VP"]


@pytest.fixture
def cli(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CCHC_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("CCHC_INSTANCE_DIR", str(tmp_path / "instance"))
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("init", "--demo").exit_code == 0
    return run


def refused(result: Result, code: str) -> None:
    assert result.exit_code == 1, result.output
    assert f"[{code}]" in result.output


@pytest.mark.db
def test_evaluate_prints_figures_with_the_audit_tree(cli) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("evaluate", "--year", "2026", "--as-of", "30/06/2026", "--json").stdout)
    assert data["as_of"] == "2026-06-30"
    assert data["audit"]["tree_size"] > 0 and len(data["audit"]["root"]) == 64
    overall = data["overall"]
    assert overall["led"] == sum(u["led"] for u in data["by_unit"].values())
    assert overall["led"] == sum(s["led"] for s in data["by_section"].values())
    assert list(data["by_section"]) == ["I", "II", "III", "IV", "V", "VI", "VII"]
    assert {s["unit"] for s in data["scores"]} >= set(IN_SCOPE)
    # Nothing is accepted in the fresh demo: the figures say so.
    assert overall["accepted_on_time"] == overall["accepted_late"] == 0
    again = json.loads(cli("evaluate", "--year", "2026", "--as-of", "30/06/2026", "--json").stdout)
    assert again == data
    text = cli("evaluate", "--year", "2026", "--as-of", "30/06/2026").stdout
    assert "Đánh giá kế hoạch" in text and "30/06/2026" in text
    refused(cli("evaluate", "--year", "2031", "--json"), "not_found")


@pytest.mark.db
def test_self_inspection_round_and_closing_the_year(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    refused(cli("self-inspection", "open", "--year", "2026", "--as", "vp.truong"), "not_permitted")
    opened = json.loads(
        cli("self-inspection", "open", "--year", "2026", "--as", "vhxh.truong", "--json").stdout
    )
    assert sorted(opened["created"]) == IN_SCOPE
    status = json.loads(cli("self-inspection", "status", "--year", "2026", "--json").stdout)
    assert status["text"] == "0/5 đơn vị đã gửi, 0/5 đơn vị đã được xác nhận"
    ids = {r["unit"]: str(r["id"]) for r in status["records"]}

    answers = tmp_path / "answers.json"
    answers.write_text(
        json.dumps(
            {
                c.code: {"self_score": "0", "explanation": "Chưa có tài liệu riêng."}
                for c in load_rubric().criteria
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    refused(cli("year", "close", "--year", "2026", "--as", "lanhdao"), "coverage_incomplete")
    for unit in IN_SCOPE:
        rid = ids[unit]
        refused(
            cli("self-inspection", "submit", rid, "--as", f"{unit.lower()}.truong"),
            "answers_missing",
        )
        filled = cli(
            "self-inspection",
            "fill",
            rid,
            "--answers",
            str(answers),
            "--as",
            f"{unit.lower()}.canbo",
        )
        assert filled.exit_code == 0, filled.output
        assert (
            cli("self-inspection", "submit", rid, "--as", f"{unit.lower()}.truong").exit_code == 0
        )
        decider = "lanhdao" if unit == "VHXH" else "vhxh.truong"
        done = cli("self-inspection", "acknowledge", rid, "--as", decider, "--json")
        assert json.loads(done.stdout)["state"] == "acknowledged"
    status = json.loads(cli("self-inspection", "status", "--year", "2026", "--json").stdout)
    assert (status["complete"], status["text"]) == (
        True,
        "5/5 đơn vị đã gửi, 5/5 đơn vị đã được xác nhận",
    )
    assert cli("year", "close", "--year", "2026", "--as", "lanhdao").exit_code == 0
    refused(cli("year", "close", "--year", "2026", "--as", "lanhdao"), "year_closed")


@pytest.mark.db
def test_a_draw_replays_identically_in_a_new_process(
    cli: Callable[..., Result], fresh_db_url: str, tmp_path: Path
) -> None:
    refused(
        cli(
            "inspection",
            "sample",
            "--year",
            "2026",
            "--fraction",
            "0.1",
            "--seed",
            "s",
            "--include",
            "XYZ",
        ),
        "invalid_sample",
    )
    drawn = cli(
        "inspection",
        "sample",
        "--year",
        "2026",
        "--fraction",
        "0.4",
        "--weights",
        "risk",
        "--include",
        "vp",
        "--json",
    )
    assert drawn.exit_code == 0, drawn.output
    data = json.loads(drawn.stdout)
    assert data["seed_source"]["kind"] == "checkpoint"  # `cchc init` made the signing key
    assert data["selected"][0] == "VP"
    assert len(data["selected"]) == max(math.ceil(0.4 * 5), math.ceil(0.2 * 5)) == 2
    refused(cli("inspection", "sample", "--year", "2026", "--seed", "x"), "already_drawn")

    env = {
        **os.environ,
        "CCHC_DATABASE_URL": fresh_db_url,
        "CCHC_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    replayed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "inspection",
            "replay",
            str(data["audit_seq"]),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    result = json.loads(replayed.stdout)
    assert result["identical"] and result["recomputed"] == data["selected"]
    refused(cli("inspection", "replay", "0"), "not_a_draw")

    (inspection,) = [
        r for r in json.loads(cli("inspection", "list", "--json").stdout) if r["unit"] == "VP"
    ]
    iid = str(inspection["id"])
    assert (
        cli(
            "inspection",
            "plan",
            iid,
            "--plan",
            "Kiểm tra hồ sơ",
            "--team",
            "A",
            "--team",
            "B",
            "--date",
            "01/12/2026",
            "--as",
            "vhxh.thamdinh1",
        ).exit_code
        == 0
    )
    assert (
        cli(
            "inspection", "findings", iid, "--text", "Chậm tiến độ", "--as", "vhxh.thamdinh1"
        ).exit_code
        == 0
    )
    refused(
        cli(
            "inspection",
            "conclude",
            iid,
            "--number",
            "15/TB-UBND",
            "--text",
            "Kết luận",
            "--action",
            "Hoàn thiện hồ sơ|20/12/2026",
            "--as",
            "vhxh.truong",
        ),
        "not_permitted",
    )
    concluded = cli(
        "inspection",
        "conclude",
        iid,
        "--number",
        "15/TB-UBND",
        "--text",
        "Kết luận",
        "--action",
        "Hoàn thiện hồ sơ|20/12/2099",
        "--as",
        "lanhdao",
        "--json",
    )
    assert concluded.exit_code == 0, concluded.output
    (action,) = json.loads(concluded.stdout)["corrective_actions"]
    assert action["state"] == "assigned"
    task = json.loads(cli("task", "show", str(action["instance"]), "--json").stdout)
    assert (task["lead"], task["number"], task["due"]) == ("VP", 1001, "2099-12-20")
    refused(cli("inspection", "close", iid, "--as", "vhxh.truong"), "corrective_open")

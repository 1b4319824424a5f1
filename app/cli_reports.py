"""`cchc report`: a periodic reform report (quarter, 6 months, year) as .docx, .xlsx or .pdf,
built from the evaluation and recorded in the audit log. Registered on `cchc` by app/cli.py."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli import (
    Runtime,
    _as_user,
    _parse_date,
    emit,
    fail,
    json_option,
    main,
    org_option,
    pass_runtime,
)
from definitions.calendar import load_calendar
from definitions.rubric import RubricError, load_rubric
from workflow.clock import ward_date
from workflow.documents import render
from workflow.errors import DomainError
from workflow.evidence import LocalEvidenceStore
from workflow.periodic import FORMATS, REPORT_KINDS, GeneratedReport, generate_report


@main.command("report")
@click.option("--kind", type=click.Choice(REPORT_KINDS), required=True)
@click.option("--year", type=int, required=True, help="The plan's year, e.g. 2026.")
@click.option("--quarter", type=click.IntRange(1, 4), default=None, help="1-4 (quarter only).")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Date dd/mm/yyyy (default: the period's data cut-off end, or today if earlier).",
)
@click.option("--format", "fmt", type=click.Choice(tuple(FORMATS)), default="docx")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--difficulties",
    default="",
    help="Khó khăn, vướng mắc và đề xuất (text; @FILE reads it from a file).",
)
@click.option(
    "--as", "as_username", default=None, help="Acting username (default: the system itself)."
)
@org_option
@json_option
@pass_runtime
def report_command(
    rt: Runtime,
    kind: str,
    year: int,
    quarter: int | None,
    as_of: str | None,
    fmt: str,
    output: Path,
    difficulties: str,
    as_username: str | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Write the periodic report of KIND to OUTPUT and record it in the audit log."""
    if difficulties.startswith("@"):
        difficulties = Path(difficulties[1:]).read_text(encoding="utf-8")
    try:
        rubric = load_rubric()
    except (RubricError, OSError) as exc:
        fail("invalid_rubric", str(exc))
        raise AssertionError("unreachable") from exc
    now = rt.clock.now()
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            made: GeneratedReport = generate_report(
                session,
                org,
                _as_user(session, as_username) if as_username else None,
                kind=kind,
                year=year,
                quarter=quarter,
                fmt=fmt,
                as_of=_parse_date(as_of),
                today=ward_date(now),
                now=now,
                difficulties=difficulties,
                calendar=load_calendar(),
                rubric=rubric,
                trail=rt.trail,
                render=render,
                store=LocalEvidenceStore(rt.settings.evidence_dir),
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    output.write_bytes(made.data)  # after the audit entry committed
    data = {**made.as_json(), "output": str(output)}
    emit(
        data,
        as_json,
        lambda d: (
            f"Đã lập {d['period']['name'].lower()} ({d['period']['label']}), số liệu đến "
            f"{d['as_of'][8:]}/{d['as_of'][5:7]}/{d['as_of'][:4]}: {d['output']} "
            f"({d['size']} byte, SHA-256 {d['sha256']}; nhật ký mục số {d['audit_seq']})"
        ),
    )

"""`cchc evaluate`, `cchc kpi`, `cchc self-inspection`, `cchc year` and `cchc inspection`: the
evaluation of the plan's work, the annual self-inspection of every unit, and the inspection of
at least 20% of them. Commands parse input, call workflow/ and print; a refusal exits 1 with its
code and Vietnamese message. Registered on the `cchc` group by app/cli.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from app.cli import (
    Runtime,
    _as_user,
    _parse_date,
    as_option,
    emit,
    fail,
    json_option,
    main,
    org_option,
    pass_runtime,
)
from definitions.calendar import load_calendar
from definitions.rubric import Rubric, RubricError, load_rubric
from workflow import inspections as insp
from workflow import kpis, selfinspection
from workflow.clock import ward_date
from workflow.errors import DomainError
from workflow.evaluation import evaluate
from workflow.evidence import LocalEvidenceStore
from workflow.oversight import year_end

year_option = click.option("--year", type=int, required=True, help="The plan's year, e.g. 2026.")
rubric_option = click.option(
    "--rubric",
    "rubric_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Rubric file (default: definitions/data/rubric.yaml).",
)
version_option = click.option(
    "--version", "expected_version", type=int, default=None, help="Refuse if changed since."
)


def _rubric(path: Path | None) -> Rubric:
    try:
        return load_rubric(path)
    except (RubricError, OSError) as exc:
        fail("invalid_rubric", str(exc))
        raise AssertionError("unreachable") from exc


def _today(rt: Runtime) -> Any:
    return ward_date(rt.clock.now())


# --- evaluate ---------------------------------------------------------------------------------


@main.command("evaluate")
@year_option
@click.option("--as-of", "as_of", default=None, help="Date dd/mm/yyyy (default: today or 31/12).")
@rubric_option
@click.option("--instances", is_flag=True, help="Also list every instance as evaluated.")
@org_option
@json_option
@pass_runtime
def evaluate_command(
    rt: Runtime,
    year: int,
    as_of: str | None,
    rubric_path: Path | None,
    instances: bool,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Evaluate the plan's work per unit, section and plan, KPIs and scores, as of a date."""
    rubric = _rubric(rubric_path)
    day = _parse_date(as_of) or min(_today(rt), year_end(year))
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            result = evaluate(
                session, org, year=year, as_of=day, calendar=load_calendar(), rubric=rubric
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(result.as_json(instances=instances), as_json, _evaluation_text)


def _rate(value: str | None) -> str:
    return "—" if value is None else f"{value}%"


def _evaluation_text(d: dict[str, Any]) -> str:
    o = d["overall"]
    lines = [
        f"Đánh giá kế hoạch {d['plan']} tính đến {_vn(d['as_of'])} "
        f"(nhật ký: {d['audit']['tree_size']} mục, gốc {d['audit']['root'][:16]}…)",
        f"Toàn kế hoạch: {o['led']} nhiệm vụ; hoàn thành đúng hạn {o['accepted_on_time']}, "
        f"quá hạn {o['accepted_late']}; chưa hoàn thành trong hạn {o['open_on_time']}, "
        f"quá hạn {o['open_overdue']}; tỷ lệ hoàn thành {_rate(o['completion_rate'])}, "
        f"đúng hạn {_rate(o['on_time_rate'])}.",
        "",
        f"{'Đơn vị':<10} {'NV':>4} {'HT':>4} {'QH':>4} {'HT%':>7} {'ĐH%':>7} {'Trả':>4} "
        f"{'Điểm':>9}",
    ]
    scores = {s["unit"]: s for s in d["scores"]}
    for code, f in d["by_unit"].items():
        score = scores.get(code)
        points = f"{score['total']}/{score['max_points']}" if score else "—"
        accepted = f["accepted_on_time"] + f["accepted_late"]
        lines.append(
            f"{code:<10} {f['led']:>4} {accepted:>4} {f['open_overdue']:>4} "
            f"{_rate(f['completion_rate']):>7} {_rate(f['on_time_rate']):>7} "
            f"{f['returns']:>4} {points:>9}"
        )
    lines.append("")
    for k in d["kpis"]:
        met = {True: "đạt", False: "chưa đạt", None: "chưa đo"}[k["met"]]
        value = f"{k['value']}{k['unit']}" if k["value"] is not None else "—"
        lines.append(f"{k['code']}: {value} (chỉ tiêu {k['comparator']} {k['threshold']}) {met}")
    return "\n".join(lines)


def _vn(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


# --- KPIs -------------------------------------------------------------------------------------


@main.group("kpi")
def kpi_group() -> None:
    """Measured values of the plan's targets, entered with evidence."""


@kpi_group.command("measure")
@click.argument("code")
@click.argument("value")
@year_option
@click.option("--date", "measured", required=True, help="Date of the measurement, dd/mm/yyyy.")
@click.option(
    "--file",
    "evidence",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The evidence file (report, survey result, ...).",
)
@click.option("--note", default="")
@as_option
@org_option
@json_option
@pass_runtime
def kpi_measure(
    rt: Runtime,
    code: str,
    value: str,
    year: int,
    measured: str,
    evidence: Path,
    note: str,
    as_username: str,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Record VALUE of the KPI CODE, measured on --date, with its evidence file."""
    day = _parse_date(measured)
    assert day is not None
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            row = kpis.record_measurement(
                session,
                org,
                year,
                code,
                _as_user(session, as_username),
                value=value,
                measured_on=day,
                data=evidence.read_bytes(),
                filename=evidence.name,
                note=note,
                now=rt.clock.now(),
                store=LocalEvidenceStore(rt.settings.evidence_dir),
                trail=rt.trail,
            )
            data = {
                "id": row.id,
                "kpi": row.kpi_code,
                "value": row.value,
                "measured_on": row.measured_on.isoformat(),
                "evidence_sha256": row.evidence_sha256,
            }
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, lambda d: f"Đã ghi {d['kpi']} = {d['value']} ({_vn(d['measured_on'])})")


# --- self-inspection --------------------------------------------------------------------------


@main.group("self-inspection")
def self_inspection_group() -> None:
    """The annual self-inspection (tự kiểm tra) of every unit in scope."""


@self_inspection_group.command("open")
@year_option
@as_option
@rubric_option
@org_option
@json_option
@pass_runtime
def si_open(
    rt: Runtime,
    year: int,
    as_username: str,
    rubric_path: Path | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Open the year's self-inspection of every unit in scope, pre-filled from the evaluation."""
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            opened = selfinspection.open_self_inspections(
                session,
                org,
                year,
                _as_user(session, as_username),
                now=rt.clock.now(),
                today=_today(rt),
                calendar=load_calendar(),
                rubric=_rubric(rubric_path),
                trail=rt.trail,
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    data = {"year": year, "created": list(opened.created), "existing": list(opened.existing)}
    emit(data, as_json, lambda d: f"Đã mở phiếu tự kiểm tra cho: {', '.join(d['created']) or '—'}")


@self_inspection_group.command("status")
@year_option
@org_option
@json_option
@pass_runtime
def si_status(rt: Runtime, year: int, org_slug: str | None, as_json: bool) -> None:
    """Coverage: how many units in scope submitted and were acknowledged, and each one's state."""
    with rt.session() as session:
        org = rt.organization(session, org_slug)
        cover = selfinspection.coverage(session, org, year)
        data = cover.as_json()
        data["records"] = [
            selfinspection.record_as_dict(r)
            for r in selfinspection.self_inspections(session, org, year)
        ]
    emit(data, as_json, _status_text)


def _status_text(d: dict[str, Any]) -> str:
    lines = [f"Năm {d['year']}: {d['text']}."]
    for r in d["records"]:
        lines.append(f"  {r['id']:>4}  {r['unit']:<10} {r['state_label']}")
    if d["missing_units"]:
        lines.append(f"Chưa được xác nhận: {', '.join(d['missing_units'])}")
    if d["closed_at"]:
        lines.append("Năm đã khóa sổ.")
    return "\n".join(lines)


@self_inspection_group.command("show")
@click.argument("record_id", type=int)
@org_option
@json_option
@pass_runtime
def si_show(rt: Runtime, record_id: int, org_slug: str | None, as_json: bool) -> None:
    """One self-inspection with its pre-filled evaluation and answers."""
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            data = selfinspection.record_as_dict(
                selfinspection.load_self_inspection(session, org, record_id), full=True
            )
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, True)


@self_inspection_group.command("fill")
@click.argument("record_id", type=int)
@click.option(
    "--answers",
    "answers_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='JSON: {"criterion code": {"self_score": "10", "evidence": [{"document": "...", '
    '"location": "..."}], "explanation": "...", "shortcomings": "...", '
    '"corrective_actions": "..."}}',
)
@as_option
@version_option
@rubric_option
@org_option
@json_option
@pass_runtime
def si_fill(
    rt: Runtime,
    record_id: int,
    answers_path: Path,
    as_username: str,
    expected_version: int | None,
    rubric_path: Path | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Save answers (from a JSON file) for some or all criteria."""
    try:
        answers = json.loads(answers_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        fail("invalid_answer", f"Tệp trả lời không phải JSON hợp lệ: {exc}")
    if not isinstance(answers, dict) or not all(isinstance(v, dict) for v in answers.values()):
        fail("invalid_answer", "Tệp trả lời phải là một bảng: mã tiêu chí → nội dung trả lời.")
    _si_step(
        rt,
        org_slug,
        as_json,
        lambda s, org, user: selfinspection.fill_self_inspection(
            s,
            org,
            record_id,
            user,
            answers,
            now=rt.clock.now(),
            rubric=_rubric(rubric_path),
            trail=rt.trail,
            expected_version=expected_version,
        ),
        as_username,
    )


@self_inspection_group.command("submit")
@click.argument("record_id", type=int)
@as_option
@version_option
@rubric_option
@org_option
@json_option
@pass_runtime
def si_submit(
    rt: Runtime,
    record_id: int,
    as_username: str,
    expected_version: int | None,
    rubric_path: Path | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """The unit head submits the self-inspection."""
    _si_step(
        rt,
        org_slug,
        as_json,
        lambda s, org, user: selfinspection.submit_self_inspection(
            s,
            org,
            record_id,
            user,
            now=rt.clock.now(),
            rubric=_rubric(rubric_path),
            trail=rt.trail,
            expected_version=expected_version,
        ),
        as_username,
    )


@self_inspection_group.command("acknowledge")
@click.argument("record_id", type=int)
@as_option
@version_option
@org_option
@json_option
@pass_runtime
def si_acknowledge(
    rt: Runtime,
    record_id: int,
    as_username: str,
    expected_version: int | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """VHXH's approver (the ward leader for VHXH) acknowledges a submitted self-inspection."""
    _si_step(
        rt,
        org_slug,
        as_json,
        lambda s, org, user: selfinspection.decide_self_inspection(
            s,
            org,
            record_id,
            user,
            acknowledge=True,
            now=rt.clock.now(),
            trail=rt.trail,
            expected_version=expected_version,
        ),
        as_username,
    )


@self_inspection_group.command("return")
@click.argument("record_id", type=int)
@as_option
@click.option("--reason", required=True)
@version_option
@org_option
@json_option
@pass_runtime
def si_return(
    rt: Runtime,
    record_id: int,
    as_username: str,
    reason: str,
    expected_version: int | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Return a submitted self-inspection for completion, with a reason."""
    _si_step(
        rt,
        org_slug,
        as_json,
        lambda s, org, user: selfinspection.decide_self_inspection(
            s,
            org,
            record_id,
            user,
            acknowledge=False,
            reason=reason,
            now=rt.clock.now(),
            trail=rt.trail,
            expected_version=expected_version,
        ),
        as_username,
    )


def _si_step(rt: Runtime, org_slug: str | None, as_json: bool, step: Any, username: str) -> None:
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            data = selfinspection.record_as_dict(step(session, org, _as_user(session, username)))
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, lambda d: f"{d['unit']}: {d['state_label']}")


@main.group("year")
def year_group() -> None:
    """The reform year as a whole."""


@year_group.command("close")
@year_option
@as_option
@org_option
@json_option
@pass_runtime
def year_close(
    rt: Runtime, year: int, as_username: str, org_slug: str | None, as_json: bool
) -> None:
    """Close the year: refused until every unit's self-inspection is acknowledged."""
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            closure = selfinspection.close_year(
                session,
                org,
                year,
                _as_user(session, as_username),
                now=rt.clock.now(),
                trail=rt.trail,
            )
            data = {"year": year, "closed_at": closure.closed_at.isoformat()}
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, lambda d: f"Đã khóa sổ năm {d['year']}.")


# --- inspection -------------------------------------------------------------------------------


@main.group("inspection")
def inspection_group() -> None:
    """Inspection of at least 20% of the units: the draw, its replay and the inspections."""


@inspection_group.command("sample")
@year_option
@click.option("--fraction", default="0.2", show_default=True, help="Share of units (≥ 0.2).")
@click.option("--seed", default=None, help="Seed text (default: the latest signed checkpoint).")
@click.option("--weights", type=click.Choice(["uniform", "risk"]), default="uniform")
@click.option(
    "--include",
    multiple=True,
    help="A unit that must be inspected (repeat, or separate codes with commas).",
)
@click.option("--as", "as_username", default=None, help="Acting user (default: the system).")
@rubric_option
@org_option
@json_option
@pass_runtime
def inspection_sample(
    rt: Runtime,
    year: int,
    fraction: str,
    seed: str | None,
    weights: str,
    include: tuple[str, ...],
    as_username: str | None,
    rubric_path: Path | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Draw the units to inspect (at least ceil(0.2 × N)); the draw is one audit entry."""
    units = [code.strip().upper() for item in include for code in item.split(",") if code.strip()]
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            record = insp.draw_sample(
                session,
                org,
                year,
                _as_user(session, as_username) if as_username else None,
                now=rt.clock.now(),
                today=_today(rt),
                calendar=load_calendar(),
                rubric=_rubric(rubric_path),
                trail=rt.trail,
                fraction=fraction,
                seed=seed,
                weights=weights,
                include=units,
            )
            data = {
                "year": year,
                "audit_seq": record.audit_seq,
                "seed": record.seed,
                **record.parameters,
                "selected": record.selected,
            }
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, _sample_text)


def _sample_text(d: dict[str, Any]) -> str:
    return (
        f"Năm {d['year']}: chọn {len(d['selected'])}/{len(d['population'])} đơn vị "
        f"(tối thiểu {d['minimum']}): {', '.join(d['selected'])}.\n"
        f"Ghi tại mục nhật ký số {d['audit_seq']}; "
        f"chạy lại: cchc inspection replay {d['audit_seq']}"
    )


@inspection_group.command("replay")
@click.argument("audit_seq", type=int)
@org_option
@json_option
@pass_runtime
def inspection_replay(rt: Runtime, audit_seq: int, org_slug: str | None, as_json: bool) -> None:
    """Run the draw recorded in audit entry AUDIT_SEQ again; exit 1 unless identical."""
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            result = insp.replay(session, org, audit_seq)
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(result.as_json(), as_json, _replay_text)
    if not result.identical:
        raise SystemExit(1)


def _replay_text(d: dict[str, Any]) -> str:
    verdict = "trùng khớp" if d["identical"] else "KHÔNG trùng khớp"
    return (
        f"Mục {d['seq']} (năm {d['year']}): đã ghi {', '.join(d['recorded'])}; "
        f"chạy lại được {', '.join(d['recomputed'])}: {verdict}."
    )


@inspection_group.command("list")
@click.option("--year", type=int, default=None)
@org_option
@json_option
@pass_runtime
def inspection_list(rt: Runtime, year: int | None, org_slug: str | None, as_json: bool) -> None:
    """The inspections, with their state and corrective actions."""
    with rt.session() as session:
        org = rt.organization(session, org_slug)
        rows = [insp.inspection_as_dict(r) for r in insp.inspections(session, org, year)]
    emit(
        rows,
        as_json,
        lambda rs: (
            "\n".join(f"{r['id']:>4}  {r['year']}  {r['unit']:<10} {r['state_label']}" for r in rs)
            or "Chưa có cuộc kiểm tra nào."
        ),
    )


def _inspection_step(
    rt: Runtime, org_slug: str | None, as_json: bool, username: str, step: Any
) -> None:
    try:
        with rt.session() as session:
            org = rt.organization(session, org_slug)
            data = insp.inspection_as_dict(step(session, org, _as_user(session, username)))
    except DomainError as exc:
        fail(exc.code, exc.message)
    emit(data, as_json, lambda d: f"Kiểm tra {d['unit']} ({d['year']}): {d['state_label']}")


@inspection_group.command("plan")
@click.argument("inspection_id", type=int)
@click.option("--plan", "plan_text", required=True, help="Content and method of the inspection.")
@click.option("--team", multiple=True, required=True, help="A team member (repeat).")
@click.option("--date", "scheduled", default=None, help="Planned date dd/mm/yyyy.")
@as_option
@version_option
@org_option
@json_option
@pass_runtime
def inspection_plan(
    rt: Runtime,
    inspection_id: int,
    plan_text: str,
    team: tuple[str, ...],
    scheduled: str | None,
    as_username: str,
    expected_version: int | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Set the inspection's plan, team and date."""
    _inspection_step(
        rt,
        org_slug,
        as_json,
        as_username,
        lambda s, org, user: insp.plan_inspection(
            s,
            org,
            inspection_id,
            user,
            plan_text=plan_text,
            team=list(team),
            scheduled_on=_parse_date(scheduled),
            now=rt.clock.now(),
            trail=rt.trail,
            expected_version=expected_version,
        ),
    )


@inspection_group.command("findings")
@click.argument("inspection_id", type=int)
@click.option("--text", "findings", required=True)
@as_option
@version_option
@org_option
@json_option
@pass_runtime
def inspection_findings(
    rt: Runtime,
    inspection_id: int,
    findings: str,
    as_username: str,
    expected_version: int | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Record the inspection's findings."""
    _inspection_step(
        rt,
        org_slug,
        as_json,
        as_username,
        lambda s, org, user: insp.record_findings(
            s,
            org,
            inspection_id,
            user,
            findings=findings,
            now=rt.clock.now(),
            trail=rt.trail,
            expected_version=expected_version,
        ),
    )


def _orders(items: tuple[str, ...]) -> list[insp.CorrectiveOrder]:
    orders = []
    for item in items:
        description, sep, due = item.rpartition("|")
        day = _parse_date(due.strip()) if sep else None
        if day is None:
            raise click.BadParameter(
                f"“{item}”: cần dạng “nội dung|dd/mm/yyyy”.", param_hint="--action"
            )
        orders.append(insp.CorrectiveOrder(description.strip(), day))
    return orders


@inspection_group.command("conclude")
@click.argument("inspection_id", type=int)
@click.option("--number", required=True, help="The notice's number, e.g. 15/TB-UBND.")
@click.option("--text", "conclusion", required=True, help="The conclusion.")
@click.option(
    "--action",
    "actions",
    multiple=True,
    help="A corrective action as 'description|dd/mm/yyyy' (repeat).",
)
@as_option
@version_option
@org_option
@json_option
@pass_runtime
def inspection_conclude(
    rt: Runtime,
    inspection_id: int,
    number: str,
    conclusion: str,
    actions: tuple[str, ...],
    as_username: str,
    expected_version: int | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Issue the conclusion notice; corrective actions become tasks of the inspected unit."""
    orders = _orders(actions)
    _inspection_step(
        rt,
        org_slug,
        as_json,
        as_username,
        lambda s, org, user: insp.conclude_inspection(
            s,
            org,
            inspection_id,
            user,
            number=number,
            conclusion=conclusion,
            corrective=orders,
            now=rt.clock.now(),
            trail=rt.trail,
            expected_version=expected_version,
        ),
    )


@inspection_group.command("close")
@click.argument("inspection_id", type=int)
@as_option
@version_option
@org_option
@json_option
@pass_runtime
def inspection_close(
    rt: Runtime,
    inspection_id: int,
    as_username: str,
    expected_version: int | None,
    org_slug: str | None,
    as_json: bool,
) -> None:
    """Close the inspection once its corrective actions are accepted."""
    _inspection_step(
        rt,
        org_slug,
        as_json,
        as_username,
        lambda s, org, user: insp.close_inspection(
            s,
            org,
            inspection_id,
            user,
            now=rt.clock.now(),
            trail=rt.trail,
            expected_version=expected_version,
        ),
    )

"""`python -m audit`: verify an exported log or a receipt with nothing but files and a key."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import click

from audit.receipt import ReceiptError, verify_receipt
from audit.verify import KINDS, verify_export


def _read_key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read the public key {path}: {exc}") from exc


@click.group()
def cli() -> None:
    """Kiểm tra nhật ký kiểm toán / check the audit log, offline."""


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--pubkey",
    type=click.Path(path_type=Path),
    help="Verifier key obtained independently (default: the export's verifier.vkey).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def verify(directory: Path, pubkey: Path | None, as_json: bool) -> None:
    """Verify an exported log folder (entries.jsonl, checkpoints/, verifier.vkey)."""
    key = _read_key(pubkey)
    try:
        report = verify_export(directory, key, progress=sys.stderr.isatty() and not as_json)
    except Exception as exc:  # an auditor's tool never shows a traceback
        click.echo(f"FAIL: malformed: unexpected error: {exc}", err=True)
        click.echo("KHÔNG HỢP LỆ: không đọc được bản xuất.", err=True)
        sys.exit(1)
    if as_json:
        problem = report.problem
        click.echo(
            json.dumps(
                {
                    "ok": problem is None,
                    "origin": report.origin,
                    "size": report.size,
                    "root": base64.b64encode(report.root).decode("ascii"),
                    "checkpoints": report.checkpoints,
                    "covered": report.covered,
                    "problem": None
                    if problem is None
                    else {"seq": problem.seq, "kind": problem.kind, "message": problem.message},
                    "warnings": report.warnings,
                },
                ensure_ascii=False,
            )
        )
        sys.exit(0 if problem is None else 1)
    if report.problem is not None:
        p = report.problem
        where = "-" if p.seq is None else str(p.seq)
        click.echo(f"FAIL: seq {where}: {p.kind}: {p.message}")
        click.echo(f"KHÔNG HỢP LỆ: mục số {where}: {KINDS.get(p.kind, p.kind)}.")
        sys.exit(1)
    root_b64 = base64.b64encode(report.root).decode("ascii")
    click.echo(f"OK: log {report.origin or '(empty)'}")
    click.echo(f"tree size: {report.size}")
    click.echo(f"root: {root_b64} (hex {report.root.hex()})")
    click.echo(f"checkpoints: {report.checkpoints}, latest matching covers {report.covered}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"HỢP LỆ: {report.size} mục, gốc cây {root_b64}.")


@cli.command("verify-receipt")
@click.argument("receipt", type=click.Path(path_type=Path))
@click.option("--pubkey", type=click.Path(path_type=Path), required=True, help="Verifier key.")
def verify_receipt_cmd(receipt: Path, pubkey: Path) -> None:
    """Verify a receipt for one entry offline."""
    key = _read_key(pubkey)
    assert key is not None
    try:
        result = verify_receipt(receipt, key)
    except ReceiptError as exc:
        click.echo(f"FAIL: {exc.kind}: {exc}")
        click.echo("KHÔNG HỢP LỆ: biên nhận không chứng minh được mục này.")
        sys.exit(1)
    except Exception as exc:  # never a traceback
        click.echo(f"FAIL: malformed: unexpected error: {exc}")
        sys.exit(1)
    root_b64 = base64.b64encode(result.root).decode("ascii")
    click.echo(f"OK: entry {result.seq} of {result.origin} is in the signed tree")
    click.echo(f"tree size: {result.tree_size}, root: {root_b64}")
    click.echo(f"action: {result.entry.get('action')}, ts: {result.entry.get('ts')}")
    click.echo(f"HỢP LỆ: mục số {result.seq} có trong cây đã ký (kích thước {result.tree_size}).")


def main() -> None:
    cli(prog_name="python -m audit")


if __name__ == "__main__":
    main()

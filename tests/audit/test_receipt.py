"""Receipts: one entry proved against a signed checkpoint, checked offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from audit.__main__ import cli
from audit.ledger import Ledger, LedgerError
from audit.receipt import ReceiptError, make_receipt, verify_receipt

pytestmark = pytest.mark.db
ORIGIN = "test.example/receipts"
NOW = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def receipt(session: Session, append: Any, keys: Any, tmp_path: Path) -> Path:
    ledger = Ledger(ORIGIN)
    append(session, ledger, 11)
    with pytest.raises(LedgerError, match="no checkpoint"):
        make_receipt(session, ORIGIN, 7)
    text = make_receipt(session, ORIGIN, 7, signer=keys.signer, now=NOW)
    path = tmp_path / "receipt.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_receipt_verifies_offline(receipt: Path, keys: Any) -> None:
    result = verify_receipt(receipt, keys.verifier_text)
    assert (result.origin, result.seq, result.tree_size) == (ORIGIN, 7, 11)
    assert result.entry["seq"] == 7


def test_receipt_uses_a_stored_checkpoint(session: Session, append: Any, keys: Any) -> None:
    ledger = Ledger(ORIGIN)
    append(session, ledger, 5)
    cp = ledger.checkpoint(session, keys.signer, now=NOW)
    append(session, ledger, 3, start=5)
    data = json.loads(make_receipt(session, ORIGIN, 2))
    assert data["tree_size"] == 5 and data["checkpoint"] == cp.note
    with pytest.raises(LedgerError):
        make_receipt(session, ORIGIN, 6, checkpoint=cp)


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda d: d.update(entry=d["entry"].replace("task.", "tusk.")), "inclusion_invalid"),
        (lambda d: d.update(seq=6), "body_modified"),
        (lambda d: d["inclusion_proof"].reverse(), "inclusion_invalid"),
        (lambda d: d["inclusion_proof"].pop(), "inclusion_invalid"),
        (lambda d: d["inclusion_proof"].__setitem__(0, "%%%"), "malformed"),
        (lambda d: d["inclusion_proof"].__setitem__(0, "AAAA"), "malformed"),
        (lambda d: d.update(tree_size=12), "malformed"),
        (
            lambda d: d.update(checkpoint=d["checkpoint"].replace("\n11\n", "\n12\n")),
            "checkpoint_signature_invalid",
        ),
        (lambda d: d.update(checkpoint="garbage"), "malformed"),
        (lambda d: d.update(origin="other.example/log"), "malformed"),
        (lambda d: d.pop("entry"), "malformed"),
        (lambda d: d.update(format="something-else"), "malformed"),
    ],
)
def test_damaged_receipts_fail(receipt: Path, keys: Any, change: Any, kind: str) -> None:
    _edit(receipt, change)
    with pytest.raises(ReceiptError) as info:
        verify_receipt(receipt, keys.verifier_text)
    assert info.value.kind == kind


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.write_bytes(b"\xff\xfe garbage"),
        lambda p: p.write_text("[]"),
        lambda p: p.unlink(),
    ],
)
def test_garbage_receipts_fail_closed(receipt: Path, keys: Any, damage: Any) -> None:
    damage(receipt)
    with pytest.raises(ReceiptError) as info:
        verify_receipt(receipt, keys.verifier_text)
    assert info.value.kind == "malformed"


def test_wrong_key(receipt: Path, other_keys: Any) -> None:
    with pytest.raises(ReceiptError) as info:
        verify_receipt(receipt, other_keys.verifier_text)
    assert info.value.kind == "checkpoint_signature_invalid"


def test_cli_verify_receipt(receipt: Path, keys: Any, other_keys: Any, tmp_path: Path) -> None:
    good, bad, junk = tmp_path / "good.vkey", tmp_path / "bad.vkey", tmp_path / "junk.vkey"
    good.write_text(keys.verifier_text)
    bad.write_text(other_keys.verifier_text)
    junk.write_text("nonsense")
    ok = CliRunner().invoke(cli, ["verify-receipt", str(receipt), "--pubkey", str(good)])
    assert ok.exit_code == 0 and "OK: entry 7" in ok.output
    for key in (bad, junk):
        result = CliRunner().invoke(cli, ["verify-receipt", str(receipt), "--pubkey", str(key)])
        assert result.exit_code == 1 and "FAIL:" in result.output
        assert "Traceback" not in result.output

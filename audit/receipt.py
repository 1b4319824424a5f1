"""Receipts: one entry, a signed checkpoint and the inclusion proof, checkable offline."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from audit import merkle
from audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    parse_and_verify_checkpoint,
)
from audit.ledger import Executor, Ledger, LedgerError

RECEIPT_FORMAT = "cchc-audit-receipt/1"
MAX_RECEIPT_BYTES = 4 * 1024 * 1024


class ReceiptError(ValueError):
    """A receipt that does not prove what it claims; `kind` is a stable code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class VerifiedReceipt:
    origin: str
    seq: int
    tree_size: int
    root: bytes
    entry: dict[str, Any]


def make_receipt(
    executor: Executor,
    origin: str,
    seq: int,
    *,
    checkpoint: Checkpoint | None = None,
    signer: NoteSigner | None = None,
    now: datetime | None = None,
) -> str:
    """The receipt text (JSON) for entry `seq`, proved against `checkpoint`, else the latest
    stored checkpoint that covers it, else a new one signed with `signer` at `now`."""
    ledger = Ledger(origin)
    if checkpoint is None:
        checkpoint = ledger.latest_checkpoint(executor, covering=seq + 1)
    if checkpoint is None:
        if signer is None or now is None:
            raise LedgerError(f"no checkpoint covers entry {seq}: sign one first")
        checkpoint = ledger.checkpoint(executor, signer, now=now)
    if not 0 <= seq < checkpoint.size:
        raise LedgerError(f"entry {seq} is not covered by the checkpoint of size {checkpoint.size}")
    entry = ledger.entry(executor, seq)
    proof = ledger.inclusion_proof(executor, seq, checkpoint.size)
    receipt = {
        "format": RECEIPT_FORMAT,
        "origin": origin,
        "seq": seq,
        "tree_size": checkpoint.size,
        "entry": entry.body.decode("utf-8"),
        "inclusion_proof": [base64.b64encode(p).decode("ascii") for p in proof],
        "checkpoint": checkpoint.note,
    }
    return json.dumps(receipt, ensure_ascii=False, indent=2) + "\n"


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReceiptError("malformed", f"receipt field {name!r} is missing or not {kind.__name__}")
    return value


def verify_receipt_text(text: str, verifier_key_text: str) -> VerifiedReceipt:
    """Check a receipt: the checkpoint's signature, the entry's place in that tree."""
    try:
        verifier = NoteVerifier.from_text(verifier_key_text)
    except CheckpointError as exc:
        raise ReceiptError("malformed", f"public key: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReceiptError("malformed", "the receipt is not JSON") from exc
    if not isinstance(data, dict) or data.get("format") != RECEIPT_FORMAT:
        raise ReceiptError("malformed", f"not a {RECEIPT_FORMAT} receipt")
    origin = _field(data, "origin", str)
    seq = _field(data, "seq", int)
    size = _field(data, "tree_size", int)
    body = _field(data, "entry", str).encode("utf-8")
    note = _field(data, "checkpoint", str)
    proof_text = _field(data, "inclusion_proof", list)
    proof: list[bytes] = []
    for item in proof_text:
        try:
            if not isinstance(item, str):
                raise ValueError("not a string")
            node = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ReceiptError("malformed", "an inclusion proof hash is not base64") from exc
        if len(node) != merkle.HASH_SIZE:
            raise ReceiptError("malformed", "an inclusion proof hash is not 32 bytes")
        proof.append(node)
    try:
        cp = parse_and_verify_checkpoint(note, verifier, origin=origin)
    except CheckpointError as exc:
        raise ReceiptError(exc.kind, f"checkpoint: {exc}") from exc
    if cp.size != size:
        raise ReceiptError("malformed", f"tree_size {size} is not the checkpoint's {cp.size}")
    try:
        entry = json.loads(body)
    except ValueError as exc:
        raise ReceiptError("malformed", "the entry is not JSON") from exc
    if not isinstance(entry, dict) or entry.get("seq") != seq or entry.get("log") != origin:
        raise ReceiptError("body_modified", f"the entry is not entry {seq} of {origin}")
    if not merkle.verify_inclusion(merkle.leaf_hash(body), seq, size, proof, cp.root):
        raise ReceiptError(
            "inclusion_invalid",
            f"the proof does not place this entry at {seq} in the signed tree of size {size}",
        )
    return VerifiedReceipt(origin, seq, size, cp.root, entry)


def verify_receipt(path: str | Path, verifier_key_text: str) -> VerifiedReceipt:
    """Check a receipt file offline; raises ReceiptError saying what is wrong."""
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_RECEIPT_BYTES + 1)
    except OSError as exc:
        raise ReceiptError("malformed", f"cannot read {path}: {exc}") from exc
    if len(raw) > MAX_RECEIPT_BYTES:
        raise ReceiptError("malformed", "the receipt is too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReceiptError("malformed", "the receipt is not UTF-8 text") from exc
    return verify_receipt_text(text, verifier_key_text)

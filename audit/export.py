"""Writing a log out for an auditor: entries as JSON Lines, the signed checkpoints, the key.

Layout of an export folder (see docs/audit.md):

    entries.jsonl          one line per entry, seq 0, 1, 2, ...: the stored body bytes + "\\n"
    checkpoints/<size>.txt one C2SP signed note per stored checkpoint, size zero-padded to 12
    verifier.vkey          the log's public verifier key (an auditor may bring their own)
    README.txt             what these files are and how to check them
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from audit.checkpoint import NoteVerifier
from audit.ledger import Executor, Ledger, LedgerError, _connection
from audit.merkle import CompactRange
from audit.schema import audit_checkpoint, audit_entry, entry_order, entry_range

ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_DIR = "checkpoints"
KEY_FILE = "verifier.vkey"
README_FILE = "README.txt"

_README = """\
Audit log export / Bản xuất nhật ký kiểm toán
Log / Nhật ký: {origin}
Entries / Số mục: {size}
Root / Gốc cây Merkle: {root}

entries.jsonl   one entry per line (RFC 8785 canonical JSON), seq 0..{last}
                mỗi dòng một mục, đúng từng byte như đã lưu và đã băm
checkpoints/    signed checkpoints (C2SP signed notes, Ed25519)
                các điểm kiểm tra có chữ ký số
verifier.vkey   the log's public key / khóa công khai của nhật ký

Check / Kiểm tra:  python -m audit verify . --pubkey <independently obtained key>
"""


@dataclass(frozen=True)
class ExportSummary:
    origin: str
    size: int
    root: bytes
    checkpoints: int
    directory: Path


def checkpoint_filename(size: int) -> str:
    return f"{size:012d}.txt"


def export_log(
    executor: Executor,
    origin: str,
    out_dir: str | Path,
    public_key_text: str,
    *,
    batch_size: int = 5000,
) -> ExportSummary:
    """Write the log `origin` as it stands into `out_dir` (absent or empty), streaming the
    entries in batches. Checkpoints cover only what was signed: sign one first (Ledger.
    checkpoint) so the auditor can check the whole export against a signature."""
    verifier = NoteVerifier.from_text(public_key_text)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    ledger = Ledger(origin)
    conn = _connection(executor)
    head = ledger._head(conn, lock=False)
    if head is None:
        raise LedgerError(f"there is no audit log {origin!r}")
    size = head.size
    root = CompactRange.from_bytes(head.size, head.compact_range).root()

    out.mkdir(parents=True, exist_ok=True)
    next_seq = 0
    with (out / ENTRIES_FILE).open("wb") as fh:
        while next_seq < size:
            rows = conn.execute(
                select(audit_entry.c.seq, audit_entry.c.body)
                .where(*entry_range(conn.dialect.name, head.id, next_seq, size))
                .order_by(entry_order(conn.dialect.name))
                .limit(batch_size)
            ).all()
            if not rows:
                raise LedgerError(f"log {origin} has no entry {next_seq} below its size {size}")
            for seq, body in rows:
                if seq != next_seq:
                    raise LedgerError(f"log {origin} lacks entry {next_seq}")
                fh.write(bytes(body) + b"\n")
                next_seq += 1

    cp_dir = out / CHECKPOINTS_DIR
    cp_dir.mkdir()
    count = 0
    notes = conn.execute(
        select(audit_checkpoint.c.size, audit_checkpoint.c.note)
        .where(audit_checkpoint.c.log_id == head.id, audit_checkpoint.c.size <= size)
        .order_by(audit_checkpoint.c.size)
    )
    for cp_size, note in notes:
        (cp_dir / checkpoint_filename(int(cp_size))).write_bytes(note.encode("utf-8"))
        count += 1
    (out / KEY_FILE).write_text(verifier.to_text() + "\n", encoding="utf-8")
    (out / README_FILE).write_text(
        _README.format(origin=origin, size=size, root=root.hex(), last=max(size - 1, 0)),
        encoding="utf-8",
    )
    return ExportSummary(origin, size, root, count, out)

"""The standalone verifier: checks an exported log with nothing but the export and a key.

It streams entries.jsonl once (memory stays flat), recomputing every leaf and the tree, and
stops at the first damage it can prove, naming the sequence number and a stable kind code.
How each kind is told apart is explained in docs/audit.md.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from audit.checkpoint import (
    CheckpointError,
    CheckpointSignatureError,
    NoteVerifier,
    parse_and_verify_checkpoint,
    parse_checkpoint_body,
)
from audit.export import CHECKPOINTS_DIR, ENTRIES_FILE, KEY_FILE
from audit.merkle import EMPTY_ROOT, fold_right

KINDS = {
    "body_modified": "nội dung mục bị sửa",
    "entry_missing": "thiếu mục",
    "entry_inserted": "có mục chèn thêm hoặc trùng lặp",
    "entries_reordered": "các mục bị đổi thứ tự",
    "log_truncated": "nhật ký bị cắt ngắn so với điểm kiểm tra",
    "checkpoint_signature_invalid": "chữ ký điểm kiểm tra không hợp lệ",
    "checkpoint_root_mismatch": "gốc cây không khớp điểm kiểm tra",
    "checkpoint_conflict": "hai điểm kiểm tra cùng kích thước nhưng khác gốc",
    "malformed": "tệp hỏng hoặc sai định dạng",
}

_PREV = b',"prev":"'
_SEQ = b'","seq":'
_TS = b',"ts":"'
_TAIL = b',"v":1}\n'
_HASH = hashlib.sha256


@dataclass(frozen=True)
class Problem:
    kind: str
    seq: int | None
    message: str


@dataclass
class VerifyReport:
    ok: bool
    size: int = 0
    root: bytes = EMPTY_ROOT
    origin: str | None = None
    checkpoints: int = 0
    covered: int = 0  # entries covered by the largest checkpoint that matched
    problem: Problem | None = None
    warnings: list[str] = field(default_factory=list)


class Damage(Exception):
    def __init__(self, kind: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(kind, seq, message)


def _fast_fields(line: bytes) -> tuple[int, bytes] | None:
    """(seq, prev hex) of a line exactly as the ledger writes it, or None.

    Canonical JSON sorts keys, so a body ends `,"prev":"<64 hex>","seq":<n>,"ts":"...","v":1}`
    and no string can hold an unescaped quote: the last `,"prev":"` is the top-level one.
    """
    i = line.rfind(_PREV)
    if i < 0 or not line.endswith(_TAIL) or line[i + 73 : i + 81] != _SEQ:
        return None
    start = i + 81
    end = line.find(b",", start)
    digits = line[start:end]
    if end < 0 or not digits.isdigit() or (digits[0] == 48 and len(digits) > 1):
        return None
    if line[end : end + 7] != _TS:
        return None
    return int(digits), line[i + 9 : i + 73]


def _any_seq(line: bytes) -> int | None:
    """The seq of a line in any JSON layout, or None if it is not an entry at all."""
    fast = _fast_fields(line)
    if fast is not None:
        return fast[0]
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict):
        seq = obj.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            return seq
    return None


@dataclass
class _Checkpoints:
    roots: dict[int, bytes]
    bad: dict[int, Problem]
    origin: str | None
    count: int


def _load_checkpoints(directory: Path, verifier: NoteVerifier) -> _Checkpoints:
    roots: dict[int, bytes] = {}
    bad: dict[int, Problem] = {}
    origin: str | None = None
    cp_dir = directory / CHECKPOINTS_DIR
    files = sorted(cp_dir.iterdir()) if cp_dir.is_dir() else []
    for path in files:
        raw = path.read_bytes()
        try:
            cp = parse_and_verify_checkpoint(raw, verifier)
        except CheckpointSignatureError as exc:
            try:
                size = _lenient_size(raw)
            except (CheckpointError, UnicodeDecodeError) as inner:
                raise Damage("malformed", None, f"checkpoint {path.name}: {inner}") from inner
            bad.setdefault(size, Problem(exc.kind, size - 1, f"{path.name}: {exc}"))
            continue
        except CheckpointError as exc:
            raise Damage("malformed", None, f"checkpoint {path.name}: {exc}") from exc
        if origin is None:
            origin = cp.origin
        elif cp.origin != origin:
            raise Damage(
                "malformed",
                None,
                f"checkpoint {path.name} is for log {cp.origin!r}, not {origin!r}",
            )
        known = roots.get(cp.size)
        if known is not None and known != cp.root:
            bad.setdefault(
                cp.size,
                Problem(
                    "checkpoint_conflict",
                    cp.size - 1,
                    f"two signed checkpoints of size {cp.size} have different roots",
                ),
            )
        roots.setdefault(cp.size, cp.root)
    return _Checkpoints(roots, bad, origin, len(files))


def _lenient_size(raw: bytes) -> int:
    # A note whose signature failed parsed fine, so its body is readable.
    text = raw.decode("utf-8")
    body = text[: text.rfind("\n\n") + 1]
    return parse_checkpoint_body(body)[1]


class _Lines:
    """The rest of entries.jsonl, with a one-line look-ahead for diagnosing damage."""

    def __init__(self, source: Iterator[bytes], progress: Any = None) -> None:
        self.source = source
        self.progress = progress
        self._peeked: bytes | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._peeked is not None:
            line, self._peeked = self._peeked, None
            return line
        return next(self.source)

    def peek(self) -> bytes | None:
        if self._peeked is None:
            self._peeked = next(self.source, None)
        return self._peeked


def verify_export(
    directory: str | Path, verifier_text: str | None = None, *, progress: bool = False
) -> VerifyReport:
    """Verify an export folder. Never raises for damaged input: the report says what is wrong."""
    report = VerifyReport(ok=False)
    try:
        _verify(Path(directory), verifier_text, progress, report)
    except Damage as damage:
        report.problem = damage.problem
        return report
    except OSError as exc:
        report.problem = Problem("malformed", None, f"cannot read the export: {exc}")
        return report
    report.ok = True
    return report


def _verify(
    directory: Path, verifier_text: str | None, progress: bool, report: VerifyReport
) -> None:
    if verifier_text is None:
        key_path = directory / KEY_FILE
        if not key_path.is_file():
            raise Damage("malformed", None, f"no {KEY_FILE} in the export; pass --pubkey")
        verifier_text = key_path.read_text(encoding="utf-8", errors="replace")
        report.warnings.append(
            "trusting the key shipped inside the export; pass --pubkey with a key obtained "
            "independently"
        )
    try:
        verifier = NoteVerifier.from_text(verifier_text)
    except CheckpointError as exc:
        raise Damage("malformed", None, f"public key: {exc}") from exc
    entries_path = directory / ENTRIES_FILE
    if not entries_path.is_file():
        raise Damage("malformed", None, f"no {ENTRIES_FILE} in {directory}")

    cps = _load_checkpoints(directory, verifier)
    report.checkpoints = cps.count
    sizes = sorted(set(cps.roots) | set(cps.bad))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit=" entries", unit_scale=True, leave=False)
    try:
        with entries_path.open("rb", buffering=1 << 20) as fh:  # fewer, larger reads
            _scan(_Lines(iter(fh), bar), cps, sizes, report)
    finally:
        if bar is not None:
            bar.close()


def _scan(lines: _Lines, cps: _Checkpoints, sizes: list[int], report: VerifyReport) -> None:
    stack: list[bytes] = []  # compact range of the leaves so far
    count = 0
    good = 0  # size of the largest checkpoint that matched
    pending = 0  # index into sizes of the next checkpoint to check
    origin = cps.origin

    def settle(upto: int) -> None:
        """Check every checkpoint of size <= upto; the tree holds exactly `upto` leaves."""
        nonlocal pending, good
        while pending < len(sizes) and sizes[pending] <= upto:
            size = sizes[pending]
            pending += 1
            problem = cps.bad.get(size)
            if problem is not None:
                raise Damage(problem.kind, problem.seq, problem.message)
            if size != upto:
                continue  # cannot happen: settle() runs at every size
            root = fold_right(stack) if stack else EMPTY_ROOT
            if root == cps.roots[size]:
                good = size
                continue
            if good == size - 1:
                raise Damage(
                    "body_modified",
                    size - 1,
                    f"entry {size - 1} differs from what the checkpoint of size {size} signed",
                )
            raise Damage(
                "checkpoint_root_mismatch",
                good,
                f"the entries {good}..{size - 1} do not match the signed checkpoint of size "
                f"{size} (the entries before {good} match an earlier checkpoint)",
            )

    settle(0)
    it = lines.source
    first = next(it, None)
    if origin is None and first is not None:
        origin = _first_origin(first)
    marker = b"" if origin is None else b',"log":' + json.dumps(origin, ensure_ascii=False).encode()
    upcoming = sizes[pending] if pending < len(sizes) else -1
    last = b"0" * 64  # the hex link of entry 0: GENESIS_PREV
    progress = lines.progress
    hexlify = binascii.hexlify
    leaf_seed, node_seed = _HASH(b"\x00"), _HASH(b"\x01")
    # The hot loop: no JSON parsing, no calls per line beyond hashing (see _fast_fields).
    # Fields are tested in place (startswith at an offset) rather than sliced out, and the
    # hashers are copies of ones already fed their prefix byte.
    for line in chain((first,), it) if first is not None else it:
        i = line.rfind(_PREV)
        seq = -1
        if i > 0 and line.endswith(_TAIL) and line.startswith(_SEQ, i + 73):
            end = line.find(b",", i + 81)
            digits = line[i + 81 : end]
            if (
                end > 0
                and digits.isdigit()
                and (len(digits) == 1 or digits[0] != 48)
                and line.startswith(_TS, end)
                and line.rfind(marker, 0, i) > 0
            ):
                seq = int(digits)
        if seq < 0:
            seq = _slow_line(line, count, settle)
            linked = False
        else:
            linked = line.startswith(last, i + 9)
        if seq != count:
            settle(count)
            _structure(seq, count, _Lines(it))
        if not linked:
            _broken_link(count, line, _Lines(it), stack, cps)
        if count == upcoming:
            settle(count)
            upcoming = sizes[pending] if pending < len(sizes) else -1
        hasher = leaf_seed.copy()
        hasher.update(line[:-1])
        h = hasher.digest()
        last = hexlify(h)
        m = count
        while m & 1:
            hasher = node_seed.copy()
            hasher.update(stack.pop())
            hasher.update(h)
            h = hasher.digest()
            m >>= 1
        stack.append(h)
        count += 1
        if progress is not None and not count & 0xFFFF:
            progress.update(0x10000)
    settle(count)
    for size in sizes[pending:]:
        problem = cps.bad.get(size)
        if problem is not None and problem.kind != "checkpoint_signature_invalid":
            raise Damage(problem.kind, problem.seq, problem.message)
        if size in cps.roots:
            raise Damage(
                "log_truncated",
                count,
                f"the export ends after {count} entries but a signed checkpoint covers {size}",
            )
        if problem is not None:
            raise Damage(problem.kind, problem.seq, problem.message)
    report.size = count
    report.root = fold_right(stack) if stack else EMPTY_ROOT
    report.origin = origin
    report.covered = good
    if good < count:
        report.warnings.append(
            f"entries {good}..{count - 1} are not covered by a signed checkpoint"
        )


def _slow_line(line: bytes, count: int, settle: Any) -> int:
    """The seq of a line not in the ledger's exact layout; damage if it is entry `count`."""
    seq = _any_seq(line)
    if seq is None:
        what = "is cut short" if not line.endswith(b"\n") else "is not a log entry"
        raise Damage("malformed", count, f"line {count + 1} of entries.jsonl {what}")
    if seq == count:
        settle(count)
        raise Damage(
            "body_modified",
            count,
            f"entry {count} is not in the exact form the ledger writes (altered bytes)",
        )
    return seq


def _first_origin(line: bytes) -> str | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    log = obj.get("log") if isinstance(obj, dict) else None
    return log if isinstance(log, str) else None


def _structure(seq: int, expected: int, lines: _Lines) -> None:
    if seq < expected:
        raise Damage(
            "entry_inserted",
            expected,
            f"where entry {expected} belongs there is another entry {seq} (inserted or duplicated)",
        )
    # seq > expected: the missing entry is either later in the file (moved) or gone.
    for later in lines:
        if _any_seq(later) == expected:
            raise Damage(
                "entries_reordered",
                expected,
                f"entry {expected} comes after entry {seq}: the entries are out of order",
            )
    raise Damage("entry_missing", expected, f"entry {expected} is missing (next is {seq})")


def _broken_link(
    count: int, line: bytes, lines: _Lines, stack: list[bytes], cps: _Checkpoints
) -> None:
    """Entry `count` does not link to the hash of entry count - 1: one of the two changed.

    If the next entry still links to this one, this one is intact and the earlier body was
    modified; if it does not, this one was (its link back was rewritten). At the end of the
    file a checkpoint of size `count`, if any, decides; otherwise the earlier one is named.
    """
    here = count - 1
    earlier = Damage(
        "body_modified",
        here,
        f"entry {here}'s body does not hash to the value entry {count} links to",
    )
    this = Damage(
        "body_modified", count, f"entry {count} was altered: its link to entry {here} is wrong"
    )
    nxt = lines.peek()
    fast = _fast_fields(nxt) if nxt is not None else None
    if fast is not None and fast[0] == count + 1:
        raise earlier if fast[1] == _HASH(b"\x00" + line[:-1]).hexdigest().encode() else this
    if nxt is None and count in cps.roots and count not in cps.bad:
        root = fold_right(stack) if stack else EMPTY_ROOT
        if root == cps.roots[count]:
            raise this
    raise earlier

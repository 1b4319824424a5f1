"""Evidence files: content-addressed storage behind a small interface, and the allow-list of
file types, recognised from the content, never from the name."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.schema import audit_entry
from workflow.errors import DomainError
from workflow.models import Evidence, KpiMeasurement


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class EvidenceStore(Protocol):
    def store(self, data: bytes) -> StoredBlob: ...

    def open(self, sha256: str) -> BinaryIO: ...


class LocalEvidenceStore:
    """Files under root/ab/cd/<sha256>. Writing the same content twice stores it once.

    A blob is written before the database transaction commits; if that transaction rolls
    back, the blob stays unreferenced (harmless, and collectable by comparing with the table).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def store(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                Path(tmp).replace(path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredBlob(digest, len(data))

    def open(self, sha256: str) -> BinaryIO:
        return self._path(sha256).open("rb")


_ZIP_KINDS = {
    "word/": ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xl/": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
_ODF = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
}
_ODF_MEDIA = {kind: media.decode("ascii") for media, kind in _ODF.items()}
ALLOWED_KINDS = ("pdf", "doc", "docx", "xls", "xlsx", "odt", "ods", "jpg", "png", "zip")


def display_name(filename: str, kind: str) -> str:
    """A name to show and to offer on download; never used as a path."""
    base = unicodedata.normalize("NFC", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    base = "".join(ch for ch in base if ch.isprintable())[:200]
    return base or f"tai-lieu.{kind}"


def sniff(data: bytes) -> tuple[str, str]:
    """(kind, media type) of an allowed file recognised from its content; refuses the rest."""
    if data.startswith(b"%PDF-"):
        return "pdf", "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg", "image/jpeg"
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        # Legacy Office (OLE2): Word and Excel share the container; the name is not trusted,
        # so both are recorded as a legacy Office document.
        return "doc", "application/x-ole-storage"
    if data.startswith(b"PK\x03\x04"):
        return _sniff_zip(data)
    raise DomainError(
        "file_type_not_allowed",
        "Loại tệp không được chấp nhận. Chỉ nhận PDF, Word (doc, docx), Excel (xls, xlsx), "
        "OpenDocument (odt, ods), ảnh JPG, PNG và tệp nén ZIP.",
    )


def _sniff_zip(data: bytes) -> tuple[str, str]:
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = archive.namelist()
            if "mimetype" in names:
                kind = _ODF.get(archive.read("mimetype").strip())
                if kind is not None:
                    return kind, _ODF_MEDIA[kind]
            for prefix, (kind, media) in _ZIP_KINDS.items():
                if "[Content_Types].xml" in names and any(n.startswith(prefix) for n in names):
                    return kind, media
    except zipfile.BadZipFile as exc:
        raise DomainError("file_damaged", "Tệp nén bị hỏng, không mở được.") from exc
    return "zip", "application/zip"


# --- collecting unreferenced blobs ------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    modified: datetime


def stored_files(root: Path) -> Iterator[StoredFile]:
    """Every blob under a LocalEvidenceStore root (files being written are skipped)."""
    for path in sorted(root.glob("??/??/*")):
        name = path.name
        if len(name) != 64 or any(c not in "0123456789abcdef" for c in name):
            continue
        stat = path.stat()
        yield StoredFile(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def _hashes_in(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "sha256" and isinstance(item, str) and len(item) == 64:
                found.add(item)
            else:
                _hashes_in(item, found)
    elif isinstance(value, list):
        for item in value:
            _hashes_in(item, found)


def referenced_blobs(session: Session) -> set[str]:
    """Every file any record points at: evidence rows, KPI measurements, and every SHA-256
    named in any audit entry (evidence, contributions, measurements, generated reports)."""
    found = set(session.scalars(select(Evidence.sha256)))
    found |= set(session.scalars(select(KpiMeasurement.evidence_sha256)))
    bodies = session.execute(select(audit_entry.c.body).execution_options(yield_per=2000))
    for (body,) in bodies:
        _hashes_in(json.loads(bytes(body)), found)
    return found


@dataclass
class Collection:
    """What a garbage collection found (and removed, unless it was a dry run)."""

    unreferenced: list[StoredFile] = field(default_factory=list)
    too_recent: int = 0  # unreferenced, but younger than the minimum age: maybe in flight
    removed: int = 0
    removed_bytes: int = 0


def collect_unreferenced(
    session: Session,
    root: Path,
    *,
    now: datetime,
    min_age: timedelta,
    delete: bool = False,
) -> Collection:
    """Find the blobs no record points at (left behind by an upload whose transaction rolled
    back) and older than `min_age`, so that an upload still in flight is never touched;
    remove them when `delete`. Reads the references first, then the files."""
    references = referenced_blobs(session)
    result = Collection()
    for blob in stored_files(root):
        if blob.sha256 in references:
            continue
        if now - blob.modified < min_age:
            result.too_recent += 1
            continue
        result.unreferenced.append(blob)
        if delete:
            (root / blob.sha256[:2] / blob.sha256[2:4] / blob.sha256).unlink(missing_ok=True)
            result.removed += 1
            result.removed_bytes += blob.size
    return result

"""Evidence files: content-addressed storage behind a small interface, and the allow-list of
file types, recognised from the content, never from the name."""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, Protocol

from workflow.errors import DomainError


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

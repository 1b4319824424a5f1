"""The .docx converted to PDF by LibreOffice headless, when it is installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from workflow.errors import DomainError

TIMEOUT_SECONDS = 180


def soffice_path() -> str | None:
    """The LibreOffice binary (soffice or libreoffice on PATH), or None."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def docx_to_pdf(docx: bytes, *, timeout: int = TIMEOUT_SECONDS) -> bytes:
    """Convert with `soffice --headless --convert-to pdf`, in a private profile directory so
    that parallel conversions do not share LibreOffice's user installation."""
    binary = soffice_path()
    if binary is None:
        raise DomainError(
            "pdf_unavailable",
            "Máy chủ chưa cài LibreOffice nên không xuất được PDF; hãy tải bản Word (.docx) "
            "hoặc cài gói libreoffice-writer-nogui.",
        )
    with tempfile.TemporaryDirectory(prefix="cchc-pdf-") as work:
        folder = Path(work)
        source = folder / "bao-cao.docx"
        source.write_bytes(docx)
        profile = (folder / "profile").as_uri()
        try:
            subprocess.run(  # noqa: S603 - a fixed command on our own temporary file
                [
                    binary,
                    f"-env:UserInstallation={profile}",
                    "--headless",
                    "--norestore",
                    "--convert-to",
                    "pdf",
                    "--outdir",
                    str(folder),
                    str(source),
                ],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise DomainError(
                "pdf_failed", f"LibreOffice không chuyển xong sang PDF sau {timeout} giây."
            ) from exc
        except subprocess.CalledProcessError as exc:
            raise DomainError(
                "pdf_failed", f"LibreOffice không chuyển được sang PDF (mã lỗi {exc.returncode})."
            ) from exc
        result = folder / "bao-cao.pdf"
        if not result.exists():
            raise DomainError("pdf_failed", "LibreOffice không tạo ra tệp PDF.")
        return result.read_bytes()

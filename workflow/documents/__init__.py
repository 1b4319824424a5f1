"""Rendering a periodic report (workflow.periodic.PeriodicReport) as a file: Word (.docx),
Excel (.xlsx) and PDF (the .docx converted by LibreOffice). No business rule lives here."""

from __future__ import annotations

from workflow.documents.excel import render_xlsx
from workflow.documents.pdf import docx_to_pdf
from workflow.documents.word import render_docx
from workflow.errors import DomainError
from workflow.periodic import PeriodicReport


def render(report: PeriodicReport, fmt: str) -> bytes:
    """The report as a file of format docx, xlsx or pdf."""
    if fmt == "docx":
        return render_docx(report)
    if fmt == "xlsx":
        return render_xlsx(report)
    if fmt == "pdf":
        return docx_to_pdf(render_docx(report))
    raise DomainError("invalid_format", f"Định dạng “{fmt}” không hợp lệ (docx, xlsx, pdf).")

"""Helpers shared by the renderers: Vietnamese number formats and reproducible zip files."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from decimal import Decimal

from workflow.evaluation import Figures


def vn_number(value: Decimal | int | None) -> str:
    """85.7 → "85,7"; "—" when there is none."""
    if value is None:
        return "—"
    return str(value).replace(".", ",")


def vn_percent(value: Decimal | None) -> str:
    """85.7 → "85,7%" (the evaluation's one decimal, kept as is); "—" when there is none."""
    return "—" if value is None else f"{vn_number(value)}%"


def figures_row(f: Figures) -> list[str]:
    """led, the four national statuses, completion and on-time rates, as table cells."""
    return [
        str(f.led),
        str(f.accepted_on_time),
        str(f.accepted_late),
        str(f.open_on_time),
        str(f.open_overdue),
        vn_percent(f.completion_rate),
        vn_percent(f.on_time_rate),
    ]


FIGURE_HEADERS = [
    "Số nhiệm vụ",
    "Hoàn thành đúng hạn",
    "Hoàn thành quá hạn",
    "Chưa hoàn thành trong hạn",
    "Chưa hoàn thành quá hạn",
    "Tỷ lệ hoàn thành",
    "Tỷ lệ đúng hạn",
]


def reproducible_zip(data: bytes, day: date) -> bytes:
    """The same zip (an OOXML package) with every member stamped `day` 00:00 and written in
    the same order, so the same content gives the same bytes."""
    stamp = (max(day.year, 1980), day.month, day.day, 0, 0, 0)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=stamp)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o600 << 16
            target.writestr(member, source.read(info.filename))
    return out.getvalue()

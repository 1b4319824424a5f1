"""The scoring rubric of a unit's reform work, read from data (definitions/data/rubric.yaml).

The rubric only says how measured figures become points; the figures themselves are computed
by workflow/evaluation.py. Points are Decimals (never floats), so a score is the same on every
machine and can be written into the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from definitions.loader import COMPARATORS
from definitions.yamlio import read_yaml

RATE_METRICS: tuple[str, ...] = ("completion_rate", "on_time_rate", "contributions_on_time_rate")
COUNT_METRICS: tuple[str, ...] = ("open_overdue", "accepted_late", "returns")

_CONDITION = re.compile(r"^\s*(>=|<=|>|<|=)\s*(-?\d+(?:\.\d+)?)\s*$")


def default_rubric_path() -> Path:
    """Return the path of the checked-in rubric."""
    return Path(__file__).parent / "data" / "rubric.yaml"


class RubricError(ValueError):
    """The rubric file is malformed; the message (Vietnamese) names the criterion and field."""


@dataclass(frozen=True)
class Band:
    comparator: str
    bound: Decimal
    points: Decimal

    def holds(self, value: Decimal) -> bool:
        return COMPARATORS[self.comparator](value, self.bound)

    @property
    def condition(self) -> str:
        return f"{self.comparator} {self.bound}"


@dataclass(frozen=True)
class Criterion:
    code: str
    title: str
    metric: str
    max_points: Decimal
    product_kinds: tuple[str, ...] = ()
    bands: tuple[Band, ...] = ()
    no_data_points: Decimal = Decimal(0)
    points_each: Decimal = Decimal(0)
    min_points: Decimal = Decimal(0)

    @property
    def is_rate(self) -> bool:
        return self.metric in RATE_METRICS

    @property
    def lowest(self) -> Decimal:
        """The fewest points the criterion can give (a deduction's floor, else 0)."""
        return self.min_points if not self.is_rate else Decimal(0)

    def points(self, value: Decimal | int | None) -> Decimal:
        """The points for a measured value (a rate in %, None when nothing to count, or a
        count)."""
        if self.is_rate:
            if value is None:
                return self.no_data_points
            rate = Decimal(value)
            for band in self.bands:
                if band.holds(rate):
                    return band.points
            return Decimal(0)
        count = Decimal(value or 0)
        return max(self.points_each * count, self.min_points)


@dataclass(frozen=True)
class Rubric:
    code: str
    title: str
    criteria: tuple[Criterion, ...]

    @property
    def max_points(self) -> Decimal:
        return sum((c.max_points for c in self.criteria), Decimal(0))

    def criterion(self, code: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.code == code:
                return criterion
        raise KeyError(code)


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool | float):
        raise RubricError(f"{where}: phải là số nguyên hoặc chuỗi số thập phân, không dùng số thực")
    if not isinstance(value, int | str):
        raise RubricError(f"{where}: phải là một số")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise RubricError(f"{where}: “{value}” không phải là số") from exc
    if not number.is_finite():
        raise RubricError(f"{where}: “{value}” không phải là số hữu hạn")
    return number


def _text(data: Mapping[str, object], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RubricError(f"{where}: thiếu trường “{key}”")
    return value.strip()


def _band(item: object, where: str) -> Band:
    if not isinstance(item, Mapping) or set(item) != {"when", "points"}:
        raise RubricError(f"{where}: mỗi mức phải có đúng hai trường “when” và “points”")
    match = _CONDITION.match(str(item["when"]))
    if match is None:
        raise RubricError(f"{where}: điều kiện “{item['when']}” không hợp lệ (ví dụ: “>= 70”)")
    return Band(match.group(1), Decimal(match.group(2)), _decimal(item["points"], where))


_KEYS = {
    "code",
    "title",
    "metric",
    "max_points",
    "product_kinds",
    "bands",
    "no_data_points",
    "points_each",
    "min_points",
}


def _criterion(item: object, position: int) -> Criterion:
    if not isinstance(item, Mapping):
        raise RubricError(f"tiêu chí thứ {position}: phải là một bảng khóa–giá trị")
    code = item.get("code")
    where = f"tiêu chí “{code}”" if isinstance(code, str) else f"tiêu chí thứ {position}"
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise RubricError(f"{where}: trường không được hỗ trợ: {', '.join(map(str, unknown))}")
    metric = _text(item, "metric", where)
    if metric not in RATE_METRICS + COUNT_METRICS:
        raise RubricError(f"{where}: chỉ số “{metric}” không được hỗ trợ")
    kinds = item.get("product_kinds") or []
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise RubricError(f"{where}: “product_kinds” phải là danh sách mã loại sản phẩm")
    max_points = _decimal(item.get("max_points", 0), f"{where}, max_points")
    if metric in RATE_METRICS:
        raw_bands = item.get("bands")
        if not isinstance(raw_bands, list) or not raw_bands:
            raise RubricError(f"{where}: chỉ số tỷ lệ cần danh sách mức điểm “bands”")
        bands = tuple(_band(b, f"{where}, bands") for b in raw_bands)
        no_data = _decimal(item.get("no_data_points", 0), f"{where}, no_data_points")
        for points in [b.points for b in bands] + [no_data]:
            if not Decimal(0) <= points <= max_points:
                raise RubricError(f"{where}: điểm {points} nằm ngoài khoảng 0–{max_points}")
        return Criterion(
            code=_text(item, "code", where),
            title=_text(item, "title", where),
            metric=metric,
            max_points=max_points,
            product_kinds=tuple(kinds),
            bands=bands,
            no_data_points=no_data,
        )
    each = _decimal(item.get("points_each"), f"{where}, points_each")
    floor = _decimal(item.get("min_points", 0), f"{where}, min_points")
    if each > 0 or floor > 0 or max_points != 0:
        raise RubricError(f"{where}: tiêu chí đếm là tiêu chí trừ điểm (điểm âm, max_points = 0)")
    return Criterion(
        code=_text(item, "code", where),
        title=_text(item, "title", where),
        metric=metric,
        max_points=max_points,
        product_kinds=tuple(kinds),
        points_each=each,
        min_points=floor,
    )


def rubric_from_data(data: object) -> Rubric:
    """Build a rubric from parsed YAML; RubricError (Vietnamese) when it is malformed."""
    if not isinstance(data, Mapping):
        raise RubricError("bộ tiêu chí phải là một bảng khóa–giá trị")
    items = data.get("criteria")
    if not isinstance(items, list) or not items:
        raise RubricError("bộ tiêu chí cần danh sách “criteria”")
    criteria = tuple(_criterion(item, i) for i, item in enumerate(items, start=1))
    codes = [c.code for c in criteria]
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    if duplicated:
        raise RubricError(f"mã tiêu chí bị trùng: {', '.join(duplicated)}")
    return Rubric(
        code=_text(data, "code", "bộ tiêu chí"),
        title=_text(data, "title", "bộ tiêu chí"),
        criteria=criteria,
    )


def load_rubric(path: Path | None = None) -> Rubric:
    """Read the rubric file (the checked-in one by default)."""
    path = path or default_rubric_path()
    try:
        return rubric_from_data(read_yaml(path))
    except RubricError as exc:
        raise RubricError(f"{path.name}: {exc}") from exc

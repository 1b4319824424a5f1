"""The units of a ward and the group names of its task table, resolved to unit codes as data."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

from definitions.text import clean_cell, name_key
from definitions.yamlio import read_yaml

UnitKind = Literal["department", "center", "police", "leadership", "external"]
_KINDS: tuple[str, ...] = get_args(UnitKind)
# Names in a cell are separated by commas, semicolons or "và"; a unit's own name may contain
# them too ("Phòng Kinh tế, Hạ tầng và Đô thị"), so pieces are rejoined to find the longest name.
_SEPARATOR = re.compile(r"(\s*[,;]\s*|\s+và\s+)", re.IGNORECASE)


def default_units_path() -> Path:
    """Return the path of the checked-in unit catalog."""
    return Path(__file__).parent / "data" / "units.yaml"


class UnitCatalogError(ValueError):
    """The unit catalog file is malformed."""


class UnitNameError(ValueError):
    """A cell names units that the catalog does not know (or that cannot lead)."""

    def __init__(self, message: str, names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.names = names


@dataclass(frozen=True)
class Unit:
    """A unit of the ward, or an outside body that only coordinates."""

    code: str
    name: str
    short_name: str
    kind: UnitKind
    can_lead: bool
    self_inspects: bool
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class UnitGroup:
    """A group name of the task table and what it stands for as lead and as coordinators.

    As coordinators a group is either a fixed list of units, or (coordinator_pool set) stays
    symbolic under its code and means, when a task runs, the pool minus the task's lead unit.
    """

    code: str
    names: tuple[str, ...]
    as_lead: tuple[str, ...]
    as_coordinators: tuple[str, ...]
    coordinator_pool: tuple[str, ...]


@dataclass(frozen=True)
class _Name:
    code: str
    is_group: bool


class UnitCatalog:
    """Units by code, and the resolution of the names written in the task table."""

    def __init__(self, units: Iterable[Unit], groups: Iterable[UnitGroup]) -> None:
        self.units: dict[str, Unit] = {unit.code: unit for unit in units}
        self.groups: dict[str, UnitGroup] = {group.code: group for group in groups}
        self._names: dict[str, _Name] = {}
        for unit in self.units.values():
            for spelling in (unit.name, unit.short_name, *unit.aliases):
                self._add_name(spelling, _Name(unit.code, is_group=False))
        for group in self.groups.values():
            if group.code in self.units:
                raise UnitCatalogError(f'Nhóm "{group.code}" trùng mã với một đơn vị')
            for spelling in group.names:
                self._add_name(spelling, _Name(group.code, is_group=True))
            for code in (*group.as_lead, *group.as_coordinators, *group.coordinator_pool):
                if code not in self.units:
                    raise UnitCatalogError(f'Nhóm "{group.code}": không có đơn vị mã "{code}"')

    def _add_name(self, spelling: str, name: _Name) -> None:
        key = name_key(spelling)
        known = self._names.setdefault(key, name)
        if known != name:
            raise UnitCatalogError(f'Tên "{spelling}" dùng cho cả "{known.code}" và "{name.code}"')

    def match_unit_name(self, text: str) -> str | None:
        """Return the code of the unit that `text` names exactly (up to spelling), or None."""
        name = self._names.get(name_key(text))
        return name.code if name is not None and not name.is_group else None

    def _names_in(self, text: str) -> tuple[list[_Name], list[str]]:
        """Split a cell into the names it contains and the pieces that name nothing known."""
        parts = _SEPARATOR.split(clean_cell(text))
        tokens, separators = parts[0::2], parts[1::2]
        found: list[_Name] = []
        unknown: list[str] = []
        pending = ""
        start = 0
        while start < len(tokens):
            end, name = self._longest_name(tokens, separators, start)
            if name is None:
                pending += (separators[start - 1] if pending else "") + tokens[start]
                ends_piece = start == len(tokens) - 1 or ";" in separators[start]
                if ends_piece and pending.strip():
                    unknown.append(pending.strip())
                    pending = ""
                start += 1
                continue
            if pending.strip():
                unknown.append(pending.strip())
            pending = ""
            found.append(name)
            start = end
        return found, unknown

    def _longest_name(
        self, tokens: list[str], separators: list[str], start: int
    ) -> tuple[int, _Name | None]:
        for end in range(len(tokens), start, -1):
            candidate = tokens[start] + "".join(
                separator + token
                for separator, token in zip(
                    separators[start : end - 1], tokens[start + 1 : end], strict=True
                )
            )
            name = self._names.get(name_key(candidate))
            if name is not None:
                return end, name
        return start + 1, None

    def resolve_lead(self, text: str) -> tuple[str, ...]:
        """Return the unit codes that lead a task whose "Cơ quan chủ trì" cell is `text`."""
        names, unknown = self._names_in(text)
        if unknown:
            raise UnitNameError(_unknown_message(unknown), tuple(unknown))
        codes: list[str] = []
        for name in names:
            codes.extend(self.groups[name.code].as_lead if name.is_group else [name.code])
        if not codes:
            raise UnitNameError("Không có cơ quan chủ trì", ())
        cannot_lead = [self.units[code].name for code in codes if not self.units[code].can_lead]
        if cannot_lead:
            raise UnitNameError(
                f'Đơn vị "{cannot_lead[0]}" không được chủ trì nhiệm vụ', tuple(cannot_lead)
            )
        return tuple(dict.fromkeys(codes))

    def resolve_coordinators(self, text: str) -> tuple[str, ...]:
        """Return the unit codes and symbolic groups of a "Cơ quan phối hợp" cell."""
        names, unknown = self._names_in(text)
        if unknown:
            raise UnitNameError(_unknown_message(unknown), tuple(unknown))
        codes: list[str] = []
        for name in names:
            group = self.groups.get(name.code) if name.is_group else None
            if group is None:
                codes.append(name.code)
            elif group.coordinator_pool:
                codes.append(group.code)
            else:
                codes.extend(group.as_coordinators)
        return tuple(dict.fromkeys(codes))

    def is_coordinator(self, code: str) -> bool:
        """Say whether `code` may stand in a task's coordinators: a unit or a symbolic group."""
        return code in self.units or bool(
            code in self.groups and self.groups[code].coordinator_pool
        )

    def expand_coordinators(self, coordinators: Iterable[str], lead: str) -> tuple[str, ...]:
        """Return the units a lead unit may ask, symbolic groups expanded and the lead left out."""
        codes: list[str] = []
        for code in coordinators:
            group = self.groups.get(code)
            codes.extend(group.coordinator_pool if group is not None else [code])
        return tuple(code for code in dict.fromkeys(codes) if code != lead)

    def self_inspecting_units(self) -> tuple[Unit, ...]:
        """Return the units that must self-inspect every year, in catalog order."""
        return tuple(unit for unit in self.units.values() if unit.self_inspects)


def _unknown_message(names: list[str]) -> str:
    return "Không nhận ra đơn vị: " + ", ".join(f'"{name}"' for name in names)


def _codes(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
        raise UnitCatalogError(f"{where}: phải là danh sách mã đơn vị")
    return tuple(cast(list[str], value))


def _read_unit(row: object, where: str) -> Unit:
    if not isinstance(row, dict):
        raise UnitCatalogError(f"{where}: phải là một bảng khóa–giá trị")
    fields = cast(dict[str, object], row)
    texts = {key: fields.get(key) for key in ("code", "name", "short_name", "kind")}
    for key, value in texts.items():
        if not isinstance(value, str) or not value.strip():
            raise UnitCatalogError(f'{where}: trường "{key}" phải là văn bản, không để trống')
    if texts["kind"] not in _KINDS:
        raise UnitCatalogError(f'{where}: loại đơn vị "{texts["kind"]}" không hợp lệ')
    flags = {key: fields.get(key) for key in ("can_lead", "self_inspects")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise UnitCatalogError(f'{where}: trường "{key}" phải là true hoặc false')
    aliases = fields.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
        raise UnitCatalogError(f'{where}: trường "aliases" phải là danh sách tên')
    return Unit(
        code=str(texts["code"]),
        name=str(texts["name"]),
        short_name=str(texts["short_name"]),
        kind=cast(UnitKind, texts["kind"]),
        can_lead=bool(flags["can_lead"]),
        self_inspects=bool(flags["self_inspects"]),
        aliases=tuple(cast(list[str], aliases)),
    )


def _read_group(code: object, row: object, where: str) -> UnitGroup:
    if not isinstance(code, str) or not isinstance(row, dict):
        raise UnitCatalogError(f"{where}: phải là mã nhóm kèm một bảng khóa–giá trị")
    fields = cast(dict[str, object], row)
    names = _codes(fields.get("names"), f"{where}, names")
    lead = _codes(fields.get("as_lead", []), f"{where}, as_lead")
    coordinators = _codes(fields.get("as_coordinators", []), f"{where}, as_coordinators")
    pool = _codes(fields.get("coordinator_pool", []), f"{where}, coordinator_pool")
    if bool(coordinators) == bool(pool):
        raise UnitCatalogError(f'{where}: cần đúng một trong "as_coordinators", "coordinator_pool"')
    return UnitGroup(code, names, lead, coordinators, pool)


def load_units(path: str | Path | None = None) -> UnitCatalog:
    """Read a unit catalog (see definitions/data/units.yaml for its form)."""
    source = Path(path) if path else default_units_path()
    data = read_yaml(source)
    if not isinstance(data, dict) or not isinstance(data.get("units"), list):
        raise UnitCatalogError(f'{source.name}: thiếu danh sách "units"')
    rows = cast(list[object], data["units"])
    units = [_read_unit(row, f"{source.name}: đơn vị thứ {i}") for i, row in enumerate(rows, 1)]
    codes = [unit.code for unit in units]
    if len(set(codes)) != len(codes):
        raise UnitCatalogError(f"{source.name}: mã đơn vị bị trùng")
    groups_data = data.get("groups", {})
    if not isinstance(groups_data, dict):
        raise UnitCatalogError(f'{source.name}: "groups" phải là một bảng khóa–giá trị')
    groups = [
        _read_group(code, row, f'{source.name}: nhóm "{code}"')
        for code, row in cast(dict[object, object], groups_data).items()
    ]
    try:
        return UnitCatalog(units, groups)
    except UnitCatalogError as error:
        raise UnitCatalogError(f"{source.name}: {error}") from None

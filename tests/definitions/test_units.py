"""Tests of the unit catalog: codes, self-inspection, name matching and group resolution."""

from pathlib import Path

import pytest

from definitions.text import name_key
from definitions.units import UnitCatalog, UnitCatalogError, UnitNameError, load_units

WARD_UNITS = {"VHXH", "VP", "KTHTDT", "TTPVHCC", "TTDVSNC", "CAP"}
COORDINATING_ONLY = {"YTE", "GDDT", "TCNSCD", "MTTQ"}


def test_the_catalog_holds_the_ward_units_the_leadership_and_the_outside_bodies(
    units: UnitCatalog,
) -> None:
    assert set(units.units) == WARD_UNITS | COORDINATING_ONLY | {"LDUBND"}
    assert units.units["LDUBND"].kind == "leadership"
    assert {code for code, unit in units.units.items() if unit.kind == "external"} == (
        COORDINATING_ONLY
    )
    assert {code for code, unit in units.units.items() if unit.can_lead} == WARD_UNITS


def test_the_units_of_ubnd_phường_self_inspect_and_the_police_does_not(units: UnitCatalog) -> None:
    assert [unit.code for unit in units.self_inspecting_units()] == [
        "VHXH",
        "VP",
        "KTHTDT",
        "TTPVHCC",
        "TTDVSNC",
    ]
    assert not units.units["CAP"].self_inspects


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Phòng Văn hóa - xã hội", "VHXH"),
        ("Phòng Văn hoá-Xã hội", "VHXH"),
        ("PHÒNG VĂN HOÁ – XÃ HỘI", "VHXH"),
        ("Phòng  Văn hóa -Xã hội.", "VHXH"),
        ("Văn phòng HĐND và UBND", "VP"),
        ("Văn phòng HĐND và UBND phường", "VP"),
        ("Phòng Kinh tế, Hạ tầng và Đô thị", "KTHTDT"),
        ("Trung tâm Phục vụ hành chính công", "TTPVHCC"),
        ("Trung tâm Phục vụ Hành chính công", "TTPVHCC"),
        ("Trung tâm Phục vụ HCC", "TTPVHCC"),
        ("Trung tâm Dịch vụ sự nghiệp công", "TTDVSNC"),
        ("Công an phường", "CAP"),
        ("Uỷ ban Mặt trận Tổ quốc Việt Nam phường", "MTTQ"),
        ("tổ công nghệ số cộng đồng", "TCNSCD"),
    ],
)
def test_spellings_of_a_unit_name_match_it(units: UnitCatalog, text: str, code: str) -> None:
    assert units.match_unit_name(text) == code


@pytest.mark.parametrize(
    "text",
    [
        "Phòng Văn hóa",
        "Phòng Văn hóa - Xã hội phường Lê Chân",
        "Trung tâm Phục vụ",
        "Các phòng, ban, đơn vị có liên quan",
        "Phòng Tư pháp",
    ],
)
def test_nothing_is_guessed_from_a_partial_or_group_name(units: UnitCatalog, text: str) -> None:
    assert units.match_unit_name(text) is None


def test_name_key_ignores_case_tone_placement_and_hyphen_spacing() -> None:
    assert name_key("Phòng Văn hoá-Xã hội") == name_key("phòng văn hóa - xã hội")
    assert name_key("Thủy lợi") == name_key("Thuỷ lợi")
    assert name_key("Văn hóa") != name_key("Văn hoa")


@pytest.mark.parametrize(
    ("text", "leads"),
    [
        ("Phòng Văn hóa - xã hội", ("VHXH",)),
        ("Công an phường", ("CAP",)),
        ("Các phòng chuyên môn thuộc UBND phường", ("VP", "KTHTDT", "VHXH")),
        ("Các phòng, ban, đơn vị có liên quan", ("VP", "KTHTDT", "VHXH")),
        ("Phòng Văn hóa - Xã hội; Văn phòng HĐND và UBND", ("VHXH", "VP")),
    ],
)
def test_a_lead_cell_resolves_to_unit_codes(
    units: UnitCatalog, text: str, leads: tuple[str, ...]
) -> None:
    assert units.resolve_lead(text) == leads


@pytest.mark.parametrize(
    ("text", "coordinators"),
    [
        ("Các phòng, ban, đơn vị có liên quan", ("related_units",)),
        ("Các phòng, ban, ngành, đơn vị", ("related_units",)),
        ("Các phòng, ban, ngành, đơn vị có liên quan", ("related_units",)),
        ("Các phòng, ban, cơ quan, đơn vị có liên quan", ("related_units",)),
        (
            "Các phòng, ban, đơn vị có liên quan; các đơn vị sự nghiệp công lập trong lĩnh vực "
            "y tế",
            ("related_units", "YTE"),
        ),
        (
            "Các phòng, ban, đơn vị có liên quan; các đơn vị sự nghiệp công lập trong lĩnh vực "
            "GD và ĐT",
            ("related_units", "GDDT"),
        ),
        (
            "Các phòng, ban, đơn vị có liên quan, tổ công nghệ số cộng đồng",
            ("related_units", "TCNSCD"),
        ),
        ("Trung tâm Phục vụ HCC", ("TTPVHCC",)),
        ("Các phòng chuyên môn thuộc UBND phường", ("VP", "KTHTDT", "VHXH")),
        ("", ()),
    ],
)
def test_a_coordinator_cell_resolves_to_codes_and_symbolic_groups(
    units: UnitCatalog, text: str, coordinators: tuple[str, ...]
) -> None:
    assert units.resolve_coordinators(text) == coordinators


def test_unknown_names_are_all_reported(units: UnitCatalog) -> None:
    with pytest.raises(UnitNameError) as caught:
        units.resolve_coordinators(
            "Phòng Nội vụ; Các phòng, ban, đơn vị có liên quan, Ban Chỉ huy Quân sự phường"
        )
    assert caught.value.names == ("Phòng Nội vụ", "Ban Chỉ huy Quân sự phường")
    assert '"Phòng Nội vụ"' in str(caught.value)


def test_a_body_that_only_coordinates_cannot_lead(units: UnitCatalog) -> None:
    with pytest.raises(UnitNameError, match="không được chủ trì"):
        units.resolve_lead("Tổ công nghệ số cộng đồng")
    with pytest.raises(UnitNameError, match="Không có cơ quan chủ trì"):
        units.resolve_lead("")


def test_the_symbolic_group_expands_to_the_ward_units_other_than_the_lead(
    units: UnitCatalog,
) -> None:
    assert units.expand_coordinators(("related_units", "YTE"), lead="VHXH") == (
        "VP",
        "KTHTDT",
        "TTPVHCC",
        "TTDVSNC",
        "CAP",
        "YTE",
    )
    assert units.is_coordinator("related_units")
    assert not units.is_coordinator("specialist_departments")
    assert not units.is_coordinator("XYZ")


def _write_catalog(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "units.yaml"
    path.write_text(body, encoding="utf-8")
    return path


UNIT_A = (
    "  - {code: A, name: Phòng A, short_name: A, kind: department, can_lead: true,"
    " self_inspects: true, aliases: [Phòng Alpha]}\n"
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "units:\n"
            + UNIT_A
            + "  - {code: B, name: Phòng B, short_name: B, kind: department, can_lead: true,"
            " self_inspects: true, aliases: [phòng alpha]}\n",
            '"A" và "B"',
        ),
        (
            "units:\n"
            + UNIT_A
            + "groups:\n  g: {names: [Nhóm], as_lead: [Z], as_coordinators: [A]}\n",
            '"Z"',
        ),
        ("units:\n" + UNIT_A + "groups:\n  g: {names: [Nhóm], as_lead: [A]}\n", "coordinator_pool"),
        ("units:\n" + UNIT_A.replace("department", "ministry"), "ministry"),
        ("units:\n" + UNIT_A.replace("can_lead: true", "can_lead: 'yes'"), "can_lead"),
        ("units:\n" + UNIT_A + UNIT_A, "trùng"),
    ],
)
def test_a_malformed_catalog_is_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(UnitCatalogError, match=message):
        load_units(_write_catalog(tmp_path, body))

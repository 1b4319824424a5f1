"""Tests of the product vocabulary and of splitting a "Sản phẩm" cell into products."""

import pytest

from definitions.products import ProductVocabulary


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("Kế hoạch của UBND phường", [("Kế hoạch của UBND phường", "ke_hoach")]),
        (
            "Kế hoạch của UBND phường; Báo cáo kết quả điều tra, khảo sát",
            [
                ("Kế hoạch của UBND phường", "ke_hoach"),
                ("Báo cáo kết quả điều tra, khảo sát", "bao_cao"),
            ],
        ),
        (
            "Kế hoạch, Thông báo kết luận, Báo cáo",
            [("Kế hoạch", "ke_hoach"), ("Thông báo kết luận", "thong_bao"), ("Báo cáo", "bao_cao")],
        ),
        (
            "Kế hoạch, Báo cáo của Phòng Kinh tế, Hạ tầng và Đô thị phường",
            [
                ("Kế hoạch", "ke_hoach"),
                ("Báo cáo của Phòng Kinh tế, Hạ tầng và Đô thị phường", "bao_cao"),
            ],
        ),
        (
            "Kế hoạch/Báo cáo kết quả Hội thi, các tác phẩm dự thi, giải thưởng",
            [
                ("Kế hoạch", "ke_hoach"),
                ("Báo cáo kết quả Hội thi", "bao_cao"),
                ("các tác phẩm dự thi", "tac_pham_du_thi"),
                ("giải thưởng", "giai_thuong"),
            ],
        ),
        (
            "Hội nghị, tọa đàm, các lớp tập huấn, ban hành các văn bản hướng dẫn thực hiện",
            [
                ("Hội nghị", "hoi_nghi"),
                ("tọa đàm", "hoi_nghi"),
                ("các lớp tập huấn", "lop_tap_huan"),
                ("ban hành các văn bản hướng dẫn thực hiện", "van_ban"),
            ],
        ),
        (
            "Hồ sơ, kết quả giải quyết TTHC được số hóa",
            [("Hồ sơ, kết quả giải quyết TTHC được số hóa", "ho_so")],
        ),
        (
            "Văn bản theo Nghị định số 45/2020/NĐ-CP",
            [("Văn bản theo Nghị định số 45/2020/NĐ-CP", "van_ban")],
        ),
        ("Kế hoạch;; ", [("Kế hoạch", "ke_hoach")]),
    ],
)
def test_a_products_cell_splits_into_verbatim_products(
    products: ProductVocabulary, cell: str, expected: list[tuple[str, str]]
) -> None:
    assert [(name, products.classify(name)) for name in products.split(cell)] == expected


@pytest.mark.parametrize("name", ["Khảo sát", "kết quả giải quyết", "Kho bạc", ""])
def test_a_name_of_no_known_kind_is_not_classified(products: ProductVocabulary, name: str) -> None:
    assert products.classify(name) is None


def test_keywords_match_whole_words_only(products: ProductVocabulary) -> None:
    assert products.classify("KH triển khai") == "ke_hoach"
    assert products.classify("Khung năng lực") is None


def test_every_kind_has_a_vietnamese_label_and_keywords(products: ProductVocabulary) -> None:
    assert {"ke_hoach", "bao_cao", "quyet_dinh", "thong_bao", "van_ban", "quy_che", "ho_so"} <= set(
        products.kinds
    )
    for kind in products.kinds.values():
        assert kind.label.strip()
        assert kind.keywords

"""The vocabulary of product kinds, and how a "Sản phẩm" cell splits into products."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from definitions.text import clean_cell, name_key
from definitions.yamlio import read_yaml

_SEPARATOR = re.compile(r"(\s*[,/]\s*)")


def default_products_path() -> Path:
    """Return the path of the checked-in product vocabulary."""
    return Path(__file__).parent / "data" / "products.yaml"


class ProductVocabularyError(ValueError):
    """The product vocabulary file is malformed."""


@dataclass(frozen=True)
class Product:
    """A product a task must deliver: its name as written in the plan, and its kind's code."""

    name: str
    kind: str


@dataclass(frozen=True)
class ProductKind:
    """A kind of product, with its Vietnamese label and the words a product of it begins with."""

    code: str
    label: str
    keywords: tuple[str, ...]


class ProductVocabulary:
    """The known product kinds, and the classification of a product name into one of them."""

    def __init__(self, kinds: Iterable[ProductKind], ignored_leading_words: Iterable[str]) -> None:
        self.kinds: dict[str, ProductKind] = {kind.code: kind for kind in kinds}
        self._ignored = sorted((name_key(word) for word in ignored_leading_words), key=len)[::-1]
        self._keywords = sorted(
            (
                (name_key(keyword), kind.code)
                for kind in self.kinds.values()
                for keyword in kind.keywords
            ),
            key=lambda pair: len(pair[0]),
            reverse=True,
        )

    def classify(self, name: str) -> str | None:
        """Return the kind of product `name` by its first words, or None if none fits."""
        key = name_key(name)
        stripped = True
        while stripped:
            stripped = False
            for word in self._ignored:
                if key.startswith(word + " "):
                    key = key[len(word) + 1 :]
                    stripped = True
        for keyword, code in self._keywords:
            rest = key[len(keyword) :]
            if key.startswith(keyword) and not rest[:1].isalnum():
                return code
        return None

    def split(self, cell: str) -> list[str]:
        """Split a "Sản phẩm" cell into product names, each kept verbatim.

        ";" always separates products; "," and "/" only where the next piece begins like a
        product, so "Báo cáo kết quả điều tra, khảo sát" stays one product.
        """
        names: list[str] = []
        for segment in clean_cell(cell).split(";"):
            parts = _SEPARATOR.split(segment.strip())
            current = parts[0]
            for separator, token in zip(parts[1::2], parts[2::2], strict=True):
                if self.classify(token) is None:
                    current += separator + token
                else:
                    names.append(current.strip())
                    current = token
            names.append(current.strip())
        return [name for name in names if name]


def _text_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ProductVocabularyError(f"{where}: phải là danh sách văn bản")
    return tuple(cast(list[str], value))


def load_products(path: str | Path | None = None) -> ProductVocabulary:
    """Read a product vocabulary (see definitions/data/products.yaml for its form)."""
    source = Path(path) if path else default_products_path()
    data = read_yaml(source)
    if not isinstance(data, dict) or not isinstance(data.get("kinds"), dict):
        raise ProductVocabularyError(f'{source.name}: thiếu bảng "kinds"')
    kinds = []
    for code, row in cast(dict[object, object], data["kinds"]).items():
        where = f'{source.name}: loại "{code}"'
        if not isinstance(row, dict) or not isinstance(row.get("label"), str):
            raise ProductVocabularyError(f'{where}: cần "label" là văn bản')
        keywords = _text_list(row.get("keywords"), f"{where}, keywords")
        kinds.append(ProductKind(str(code), str(row["label"]), keywords))
    ignored = _text_list(data.get("ignored_leading_words", []), source.name)
    return ProductVocabulary(kinds, ignored)

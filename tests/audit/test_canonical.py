"""Canonical entry bytes: RFC 8785, NFC everywhere, no floats."""

from __future__ import annotations

import unicodedata

import pytest

from audit.canonical import canonical_bytes


def test_keys_are_sorted_and_output_is_compact() -> None:
    assert canonical_bytes({"b": [1, True, None], "a": "x"}) == b'{"a":"x","b":[1,true,null]}'


def test_strings_and_keys_are_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Phường Bến Nghé")
    assert decomposed != "Phường Bến Nghé"
    out = canonical_bytes({decomposed: decomposed})
    assert out == '{"Phường Bến Nghé":"Phường Bến Nghé"}'.encode()


def test_keys_equal_after_nfc_are_refused() -> None:
    with pytest.raises(ValueError, match="NFC"):
        canonical_bytes({"é": 1, unicodedata.normalize("NFD", "é"): 2})


@pytest.mark.parametrize("bad", [1.5, {"a": [0.0]}, {"x": {"y": float("nan")}}])
def test_floats_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="floats are not allowed"):
        canonical_bytes(bad)


@pytest.mark.parametrize("bad", [{1: "a"}, {"a": b"bytes"}, {"a": {1, 2}}, object()])
def test_other_types_are_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        canonical_bytes(bad)


def test_unsafe_integers_are_refused() -> None:
    assert canonical_bytes(2**53 - 1) == b"9007199254740991"
    with pytest.raises(ValueError, match="canonicalise"):
        canonical_bytes(2**60)


def test_tuples_encode_as_arrays() -> None:
    assert canonical_bytes({"a": (1, "b")}) == b'{"a":[1,"b"]}'

"""Canonical entry bytes: RFC 8785, NFC everywhere, no floats."""

from __future__ import annotations

import enum
import unicodedata

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- the bytes are the rfc8785 package's, over the NFC-normalised value ----------------------

_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),  # any scalar value: controls, BMP, astral
        st.sampled_from(["\x00", "\x1f", "\x7f", "\u2028", '"', "\\", "\ue000", "\uffff", "😀"]),
    ),
    max_size=12,
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None)
@given(_json)
def test_bytes_are_the_rfc8785_packages_of_the_nfc_value(value: object) -> None:
    try:
        expected = rfc8785.dumps(_nfc_deep(value))
    except rfc8785.CanonicalizationError:
        with pytest.raises(ValueError):
            canonical_bytes(value)
        return
    if _nfc_collision(value):
        with pytest.raises(ValueError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


def _nfc_deep(value: object) -> object:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {unicodedata.normalize("NFC", k): _nfc_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nfc_deep(v) for v in value]
    return value


def _nfc_collision(value: object) -> bool:
    if isinstance(value, dict):
        keys = [unicodedata.normalize("NFC", k) for k in value]
        return len(set(keys)) != len(keys) or any(_nfc_collision(v) for v in value.values())
    if isinstance(value, list):
        return any(_nfc_collision(v) for v in value)
    return False


def test_key_order_is_utf16_not_code_points() -> None:
    # U+FF61 sorts after U+1F600 by code point but before it in UTF-16 (0xFF61 < 0xD83D).
    value = {"😀": 1, "\uff61": 2, "a": 3}
    assert canonical_bytes(value) == '{"a":3,"😀":1,"｡":2}'.encode()


def test_control_characters_are_escaped_as_rfc8785_does() -> None:
    value = {"k": '\x00\x01\b\t\n\x0b\f\r\x1f\x7f"\\/\u2028'}
    assert canonical_bytes(value) == (
        b'{"k":"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\x7f\\"\\\\/\xe2\x80\xa8"}'
    )


@pytest.mark.parametrize("bad", [{"a": "\ud800"}, {"\udc00": 1}, {"b": {"\ud83d": [1]}}])
def test_lone_surrogates_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="canonicalise"):
        canonical_bytes(bad)


def test_the_callers_value_is_left_as_it_was() -> None:
    decomposed = unicodedata.normalize("NFD", "Bến")
    value = {"b": {decomposed: [decomposed]}, "a": (1, Level.HIGH)}
    canonical_bytes(value)
    assert value == {"b": {decomposed: [decomposed]}, "a": (1, Level.HIGH)}
    assert list(value["b"]) == [decomposed]  # type: ignore[call-overload]


class Level(enum.IntEnum):
    HIGH = 3


def test_int_and_str_subclasses_encode_as_their_values() -> None:
    class Kind(str, enum.Enum):  # noqa: UP042 - str() of this mixin is "Kind.TASK", not its text
        TASK = "task"

    value = {"kind": Kind.TASK, "level": Level.HIGH}
    assert canonical_bytes(value) == b'{"kind":"task","level":3}'

"""Canonical entry bytes: RFC 8785 JSON with NFC-normalised strings and no floats.

`canonical_bytes` normalises and checks the value in one walk (NFC strings and keys, no floats,
integers within the range JSON numbers hold exactly), then has the `rfc8785` package write it:
the canonical encoding is the package's, not ours (issue 3 asks for it by name, and a
well-kept library beats our own code for anything that is not our domain). The walk already
puts keys in RFC 8785 order, which the package keeps.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

import rfc8785

# RFC 8785 numbers are IEEE doubles: integers beyond this lose digits.
_SAFE_INT = 2**53 - 1


def _nfc(text: str) -> str:
    # ASCII is already NFC; the check is far cheaper than normalising.
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _jcs_order(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _normalise(value: Any, path: str) -> Any:
    """`value` as plain dicts (keys NFC and in RFC 8785 order), lists, NFC strings and safe
    ints; refuses anything else with the path of the offending part. `path` is only
    formatted when something is wrong."""
    kind = type(value)
    if kind is str:
        return _nfc(value)
    if value is None or kind is bool:
        return value
    if kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        number = int(value)
        if not -_SAFE_INT <= number <= _SAFE_INT:
            raise ValueError(
                f"cannot canonicalise audit entry: {number} exceeds the safe integer range "
                f"of JSON numbers (at {path})"
            )
        return number
    if isinstance(value, str):  # a str subclass (an enum member, say): its text
        return _nfc(value[:])
    if isinstance(value, float):
        raise TypeError(
            f"floats are not allowed in audit entries (at {path}): use an integer or a string"
        )
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        ascii_keys = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings (at {path}: {key!r})")
            nkey = _nfc(key[:])
            if nkey in out:
                raise ValueError(f"two keys are equal after NFC normalisation (at {path}: {key!r})")
            ascii_keys = ascii_keys and nkey.isascii()
            out[nkey] = _normalise(item, f"{path}.{nkey}")
        # For ASCII (indeed any BMP) keys code point order is UTF-16 order.
        ordered = sorted(out) if ascii_keys else sorted(out, key=_jcs_order)
        return {key: out[key] for key in ordered}
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{type(value).__name__} is not allowed in audit entries (at {path}): "
        "use str, int, bool, None, lists and string-keyed objects"
    )


def canonical_bytes(obj: Any) -> bytes:
    """The exact bytes stored and hashed for `obj`: every string (keys too) NFC-normalised,
    then RFC 8785 (JCS) through the `rfc8785` package. Refuses floats (TypeError) and integers
    outside ±(2**53 - 1) (ValueError), since JCS would otherwise encode them as lossy doubles."""
    try:
        return rfc8785.dumps(_normalise(obj, "$"))
    except rfc8785.CanonicalizationError as exc:  # e.g. a lone surrogate: not Unicode text
        raise ValueError(f"cannot canonicalise audit entry: {exc}") from exc

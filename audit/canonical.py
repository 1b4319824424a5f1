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


class _Refused(Exception):
    """A part of the value that cannot be canonicalised; `where` is filled in on the way out
    of the walk, so that no path is formatted while nothing is wrong."""

    def __init__(self, kind: type[Exception], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.where: list[str] = []

    def error(self) -> Exception:
        path = "$" + "".join(reversed(self.where))
        return self.kind(self.message.format(path=path))


def _nfc(text: str) -> str:
    # ASCII is already NFC; the check is far cheaper than normalising.
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _jcs_order(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _normalise(value: Any) -> Any:
    """`value` as plain dicts (keys NFC and in RFC 8785 order), lists, NFC strings and safe
    ints; anything else raises _Refused."""
    kind = type(value)
    if kind is str:
        return value if value.isascii() else unicodedata.normalize("NFC", value)
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        return _normalise_object(value)
    if kind is int:
        if -_SAFE_INT <= value <= _SAFE_INT:
            return value
        raise _Refused(
            ValueError,
            f"cannot canonicalise audit entry: {value} exceeds the safe integer range of JSON "
            "numbers (at {path})",
        )
    if value is None or kind is bool:
        return value
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_normalise(item))
            except _Refused as refused:
                refused.where.append(f"[{i}]")
                raise
        return out
    if isinstance(value, int):  # an int subclass (an IntEnum member, say): its number
        return _normalise(int(value))
    if isinstance(value, str):  # a str subclass (an enum member, say): its text
        return _nfc(value[:])
    if isinstance(value, float):
        raise _Refused(
            TypeError,
            "floats are not allowed in audit entries (at {path}): use an integer or a string",
        )
    raise _Refused(
        TypeError,
        f"{type(value).__name__} is not allowed in audit entries (at {{path}}): "
        "use str, int, bool, None, lists and string-keyed objects",
    )


def _normalise_object(value: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ascii_keys = True
    for key, item in value.items():
        if type(key) is not str:
            if not isinstance(key, str):
                raise _Refused(TypeError, f"object keys must be strings (at {{path}}: {key!r})")
            key = key[:]
        if not key.isascii():
            ascii_keys = False
            key = unicodedata.normalize("NFC", key)
        if key in out:
            raise _Refused(
                ValueError, f"two keys are equal after NFC normalisation (at {{path}}: {key!r})"
            )
        try:
            out[key] = _normalise(item)
        except _Refused as refused:
            refused.where.append(f".{key}")
            raise
    # For ASCII (indeed any BMP) keys code point order is UTF-16 order.
    ordered = sorted(out) if ascii_keys else sorted(out, key=_jcs_order)
    return {key: out[key] for key in ordered}


def canonical_bytes(obj: Any) -> bytes:
    """The exact bytes stored and hashed for `obj`: every string (keys too) NFC-normalised,
    then RFC 8785 (JCS) through the `rfc8785` package. Refuses floats (TypeError) and integers
    outside ±(2**53 - 1) (ValueError), since JCS would otherwise encode them as lossy doubles."""
    try:
        return rfc8785.dumps(_normalise(obj))
    except _Refused as refused:
        raise refused.error() from None
    except rfc8785.CanonicalizationError as exc:  # e.g. a lone surrogate: not Unicode text
        raise ValueError(f"cannot canonicalise audit entry: {exc}") from exc

"""Canonical entry bytes: RFC 8785 JSON with NFC-normalised strings and no floats."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

import rfc8785


def _normalise(value: Any, path: str) -> Any:
    # bool before int: bool is an int subclass, and both are fine as they are.
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, float):
        raise TypeError(
            f"floats are not allowed in audit entries (at {path}): use an integer or a string"
        )
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings (at {path}: {key!r})")
            nkey = unicodedata.normalize("NFC", key)
            if nkey in out:
                raise ValueError(f"two keys are equal after NFC normalisation (at {path}: {key!r})")
            out[nkey] = _normalise(item, f"{path}.{nkey}")
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{type(value).__name__} is not allowed in audit entries (at {path}): "
        "use str, int, bool, None, lists and string-keyed objects"
    )


def canonical_bytes(obj: Any) -> bytes:
    """The exact bytes stored and hashed for `obj`: every string (keys too) NFC-normalised,
    then RFC 8785 (JCS). Refuses floats (TypeError) and integers outside ±(2**53 - 1)
    (ValueError), since JCS would otherwise encode them as lossy doubles."""
    normalised = _normalise(obj, "$")
    try:
        return rfc8785.dumps(normalised)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"cannot canonicalise audit entry: {exc}") from exc

"""Normalise Vietnamese names so that spelling variants of one name compare equal."""

import re
import unicodedata

# Combining tone marks in NFD: grave, acute, tilde, hook above, dot below.
_TONE = "\u0300\u0301\u0303\u0309\u0323"
# Old and new tone placement ("hoá"/"hóa", "thuỷ"/"thủy") name the same word: the tone goes
# on the second vowel in the canonical form.
_TONE_ON_FIRST_VOWEL = re.compile(rf"([oO])([{_TONE}])([aAeE])|([uU])([{_TONE}])([yY])")
_DASH = re.compile(r"\s*[-\u2010-\u2015\u2212]\s*")
_COMMA = re.compile(r"\s*,\s*")
_SPACE = re.compile(r"\s+")


def _move_tone(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + match.group(3) + match.group(2)
    return match.group(4) + match.group(6) + match.group(5)


def canonical_tone(text: str) -> str:
    """Return `text` in NFC with the tone of "oa", "oe", "uy" always on the second vowel."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _TONE_ON_FIRST_VOWEL.sub(_move_tone, decomposed))


def name_key(text: str) -> str:
    """Return the comparison key of a name: case, tone placement and spacing do not matter."""
    key = canonical_tone(text).casefold()
    key = _DASH.sub(" - ", key)
    key = _COMMA.sub(", ", key)
    return _SPACE.sub(" ", key).strip().rstrip(".").strip()


def clean_cell(text: str) -> str:
    """Return a table cell's text in NFC without surrounding whitespace, otherwise verbatim."""
    return unicodedata.normalize("NFC", text).strip()

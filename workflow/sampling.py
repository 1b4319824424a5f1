"""Choosing the units to inspect (kiểm tra): at least ceil(0.2 × N) of the N units in scope.

The draw is a pure function of its recorded inputs — the population (unit codes in code order,
each with an integer weight), the units included by hand, the sample size and the seed — so
it gives the same units on every database, after a restart and when replayed from its audit
entry. Only integers and SHA-256 are involved (no floating point, no process-dependent
random state):

    for round r = 0, 1, ...: h = SHA-256(seed ‖ 0x00 ‖ r as text) read as a big-endian integer;
    take the unit at position h mod W along the cumulative weights of the units not yet
    chosen (W their total weight).

Weights: "uniform" gives every unit weight 1; "risk" gives each unit 10 + 10 × (the rubric's
maximum − the unit's score), in tenths of a point, so a low-scoring unit is more likely to be
chosen and no unit has a zero chance. By default the seed is derived from the latest signed
checkpoint of the ward's audit log (its size and root), a value fixed in the signed log before
the draw, so nobody can choose it after seeing the outcome.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

ALGORITHM = "sha256-cumulative-weights-v1"
MINIMUM_FRACTION = Fraction(1, 5)  # appendix task 6: at least 20% of units
WEIGHT_MODES = ("uniform", "risk")


class SamplingError(ValueError):
    """Inputs a draw cannot be made from; the message is Vietnamese."""


def parse_fraction(text: str | Decimal | Fraction) -> Fraction:
    """A fraction of units as written ("0.2", "0,25", "1/4"); within (0, 1]."""
    try:
        value = Fraction(str(text).strip().replace(",", "."))
    except (ValueError, ZeroDivisionError):
        raise SamplingError(f"Tỷ lệ chọn mẫu “{text}” không hợp lệ (ví dụ: 0.2).") from None
    if not 0 < value <= 1:
        raise SamplingError("Tỷ lệ chọn mẫu phải lớn hơn 0 và không quá 1 (100%).")
    return value


def fraction_text(value: Fraction) -> str:
    """A fraction as decimal text when it is one ("0.2"), else as "p/q"."""
    decimal = Decimal(value.numerator) / Decimal(value.denominator)
    if Fraction(decimal) == value:
        return format(decimal.normalize(), "f")
    return f"{value.numerator}/{value.denominator}"


def sample_size(population: int, fraction: Fraction, included: int = 0) -> int:
    """ceil(fraction × N), never fewer than ceil(0.2 × N) nor than the units included."""
    wanted = max(math.ceil(fraction * population), math.ceil(MINIMUM_FRACTION * population))
    return min(population, max(wanted, included))


def risk_weight(score: Decimal | int, max_points: Decimal) -> int:
    """10 + 10 × (max − score), whole tenths of a point, at least 1."""
    shortfall = max(Decimal(0), max_points - Decimal(score))
    return max(1, 10 + int((shortfall * 10).to_integral_value()))


@dataclass(frozen=True)
class Draw:
    """The inputs and outcome of one draw, as its audit entry records them."""

    seed: str
    fraction: Fraction
    weights: str
    population: tuple[tuple[str, int], ...]  # (unit code, weight), by code
    include: tuple[str, ...]
    size: int
    selected: tuple[str, ...]
    algorithm: str = ALGORITHM

    def as_json(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "seed": self.seed,
            "fraction": fraction_text(self.fraction),
            "minimum": math.ceil(MINIMUM_FRACTION * len(self.population)),
            "weights": self.weights,
            "population": [{"unit": u, "weight": w} for u, w in self.population],
            "include": list(self.include),
            "size": self.size,
            "selected": list(self.selected),
        }


def _pick(seed: str, round_number: int, weights: Sequence[int]) -> int:
    digest = hashlib.sha256(f"{seed}\x00{round_number}".encode()).digest()
    point = int.from_bytes(digest, "big") % sum(weights)
    for index, weight in enumerate(weights):
        if point < weight:
            return index
        point -= weight
    raise AssertionError("unreachable: the point lies below the total weight")


def draw(
    seed: str,
    population: Mapping[str, int],
    *,
    fraction: Fraction = MINIMUM_FRACTION,
    include: Sequence[str] = (),
    weights: str = "uniform",
) -> Draw:
    """Draw the sample (see the module's description). Included units come first, then the
    drawn ones in the order they were drawn."""
    if not seed:
        raise SamplingError("Cần một hạt giống (seed) để chọn mẫu.")
    if weights not in WEIGHT_MODES:
        raise SamplingError(f"Cách tính trọng số “{weights}” không được hỗ trợ (uniform | risk).")
    if not population:
        raise SamplingError("Không có đơn vị nào thuộc phạm vi kiểm tra.")
    if any(not isinstance(w, int) or w < 1 for w in population.values()):
        raise SamplingError("Trọng số của mỗi đơn vị phải là số nguyên dương.")
    ordered = tuple(sorted(population.items()))
    forced = tuple(dict.fromkeys(include))
    unknown = [code for code in forced if code not in population]
    if unknown:
        raise SamplingError(f"Đơn vị không thuộc phạm vi kiểm tra: {', '.join(unknown)}.")
    size = sample_size(len(ordered), fraction, len(forced))
    remaining = [(code, w) for code, w in ordered if code not in forced]
    chosen = list(forced)
    round_number = 0
    while len(chosen) < size:
        index = _pick(seed, round_number, [w for _, w in remaining])
        chosen.append(remaining.pop(index)[0])
        round_number += 1
    return Draw(
        seed=seed,
        fraction=fraction,
        weights=weights,
        population=ordered,
        include=forced,
        size=size,
        selected=tuple(chosen),
    )


def redraw(recorded: Mapping[str, Any]) -> Draw:
    """Run a recorded draw again from its recorded inputs (an audit entry's details)."""
    try:
        if recorded["algorithm"] != ALGORITHM:
            raise SamplingError(f"Không hỗ trợ thuật toán chọn mẫu “{recorded['algorithm']}”.")
        population = {str(p["unit"]): int(p["weight"]) for p in recorded["population"]}
        return draw(
            str(recorded["seed"]),
            population,
            fraction=parse_fraction(str(recorded["fraction"])),
            include=[str(u) for u in recorded["include"]],
            weights=str(recorded["weights"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SamplingError):
            raise
        raise SamplingError("Mục nhật ký không chứa đủ dữ liệu của một lần chọn mẫu.") from exc


def checkpoint_seed(origin: str, size: int, root_hex: str, year: int) -> str:
    """The default seed: the latest signed checkpoint's tree, and the year drawn for."""
    return f"{origin}\n{size}\n{root_hex}\nkiem-tra-cchc-{year}"

"""Amount steps and price ticks as integer grids: ccxt's rounding without its string work.

ccxt's ``decimal_to_precision`` (TICK_SIZE mode) turns the value and the tick into decimals
through their shortest ``repr``, takes the remainder, and formats the result: correct, and
~20 µs a call. A `Grid` keeps the tick as an exact fraction ``m / 10**d`` and works on floats,
falling back to exact integers only where the float result could differ from the decimal one
(the value within float noise of a grid point, or of a half for rounding). The result is the
same float ccxt gives: the multiple ``k * m / 10**d`` correctly rounded, which is what both
``float(Decimal)`` and Python's int true division return. `tests/runtime/model/test_grid.py`
checks that against ccxt on 6,000 values per tick (each truncated, rounded, negated and
cleaned), the hard cases (multiples, halves, float noise either side) over-represented.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["Grid"]

# Where the float quotient is this close to an integer (or a half) relative to its size, the
# decimal answer is taken exactly. The float quotient errs by a few 1e-16 relative; a value
# that is not exactly on the grid point is ~1e-12 relative away when it has 12 significant
# digits (amounts are cleaned to 12 digits first), so a margin of 1e-9 leaves no doubt.
_NEAR: Final = 1e-9
_CLEAN: Final = 1e-13  # `truncate_clean`'s margin: between float error and 12-digit spacing
_EXACT_FLOATS: Final = 2.0**52  # quotients from here on are not exact integers in floats


def _decimal(x: float) -> tuple[int, int]:
    """``(digits, exponent)`` with ``x == digits * 10**exponent`` for the shortest repr of x:
    the decimal ccxt (``Decimal(str(x))``) works with."""
    text = repr(x)
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    return int(whole + frac), (int(exp) if exp else 0) - len(frac)


class Grid:
    """The multiples of one positive tick (e.g. 0.001), with ccxt's two roundings."""

    __slots__ = ("_m", "_scale", "_shift", "tick")

    def __init__(self, tick: float) -> None:
        if not (math.isfinite(tick) and tick > 0):
            raise ValueError(f"a tick must be a finite positive number, not {tick!r}")
        self.tick = tick
        digits, exponent = _decimal(float(tick))
        while digits % 10 == 0:
            digits //= 10
            exponent += 1
        # tick == m / 10**shift exactly (shift may be negative for ticks of 10, 100...)
        self._m = digits
        self._shift = -exponent
        self._scale = 10.0**self._shift / digits  # value * _scale = value / tick, in floats

    def _value(self, k: int) -> float:
        """The grid point ``k * tick`` as the float nearest to the exact decimal."""
        n = k * self._m
        if self._shift >= 0:
            return n / 10**self._shift
        return float(n * 10 ** (-self._shift))

    def _ratio(self, x: float) -> tuple[int, int]:
        """``x / tick`` as an exact fraction (numerator, denominator) of x's decimal."""
        digits, exponent = _decimal(x)
        power = exponent + self._shift
        if power >= 0:
            return digits * 10**power, self._m
        return digits, self._m * 10**-power

    def truncate(self, x: float) -> float:
        """``x`` rounded toward zero to a multiple of the tick (ccxt TRUNCATE, TICK_SIZE)."""
        if x < 0:
            return -self.truncate(-x)
        q = x * self._scale
        k = math.floor(q)
        if q - k < _NEAR * (q + 1.0) or k + 1 - q < _NEAR * (q + 1.0):
            num, den = self._ratio(x)
            k = num // den
        return self._value(k)

    def truncate_clean(self, x: float) -> float:
        """`truncate` for a value of at most 12 significant digits (an amount cleaned of
        float noise), with no decimal work: such a value off the grid is at least 1e-12 of
        itself away from it, while the float quotient errs by under 1e-15, so a quotient
        within 1e-13 of an integer is exactly that multiple."""
        if x < 0:
            return -self.truncate_clean(-x)
        q = x * self._scale
        if q >= _EXACT_FLOATS:
            return self.truncate(x)
        k = round(q)
        if abs(q - k) > _CLEAN * max(q, 1.0):
            k = math.floor(q)
        return self._value(k)

    def round(self, x: float) -> float:
        """``x`` rounded to the nearest multiple of the tick, halves away from zero (ccxt
        ROUND, TICK_SIZE)."""
        if x < 0:
            return -self.round(-x)
        q = x * self._scale
        k = math.floor(q + 0.5)
        if abs(q - math.floor(q) - 0.5) < _NEAR * (q + 1.0):
            num, den = self._ratio(x)
            k, rest = divmod(num, den)
            if 2 * rest >= den:
                k += 1
        return self._value(k)

"""ccxt's own precision helpers, exposed to the rest of the runtime.

This package is the one place that imports ccxt; the model rounds amounts and prices through
these so that local checks agree with what ccxt sends.
"""

from __future__ import annotations

from ccxt.base.decimal_to_precision import (
    NO_PADDING,
    ROUND,
    TICK_SIZE,
    TRUNCATE,
    decimal_to_precision,
)


def truncate_to_step(value: float, step: float) -> float:
    """`value` rounded down to a multiple of `step` (amounts), as ccxt's amount_to_precision."""
    return float(decimal_to_precision(value, TRUNCATE, step, TICK_SIZE, NO_PADDING))


def round_to_tick(value: float, tick: float) -> float:
    """`value` rounded to the nearest multiple of `tick` (prices), as ccxt's price_to_precision."""
    return float(decimal_to_precision(value, ROUND, tick, TICK_SIZE, NO_PADDING))

"""`Grid` rounds exactly as ccxt's decimal_to_precision (TICK_SIZE) does, value for value."""

from __future__ import annotations

import math
import random

import pytest

from runtime.exchanges.ccxt import round_to_tick, truncate_to_step
from runtime.model._grid import Grid

TICKS = [1e-8, 1e-5, 0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 100.0, 0.00025]


def values(rng: random.Random, tick: float, n: int) -> list[float]:
    """Random values around the grid, with the hard cases over-represented: exact multiples
    (as 12-digit decimals, as amounts arrive), halves, and float noise either side of both."""
    out = []
    for _ in range(n):
        k = rng.randrange(0, 10**7)
        case = rng.randrange(6)
        if case == 0:
            x = rng.uniform(0, 1e6) * tick
        elif case == 1:
            x = float(f"{k * tick:.12g}")  # an exact multiple
        elif case == 2:
            x = float(f"{(k + 0.5) * tick:.12g}")  # an exact half
        elif case == 3:
            x = math.nextafter(float(f"{k * tick:.12g}"), rng.choice((0.0, math.inf)))
        elif case == 4:
            x = math.nextafter(float(f"{(k + 0.5) * tick:.12g}"), rng.choice((0.0, math.inf)))
        else:
            x = rng.uniform(0, 1e9)
        out.append(float(f"{x:.12g}") if rng.random() < 0.5 else x)
    return out


@pytest.mark.parametrize("tick", TICKS)
def test_grid_equals_ccxt(tick: float) -> None:
    rng = random.Random(f"grid-{tick}")
    grid = Grid(tick)
    for x in values(rng, tick, 6000):
        assert grid.truncate(x) == truncate_to_step(x, tick), (x, tick)
        assert grid.round(x) == round_to_tick(x, tick), (x, tick)
        assert grid.truncate(-x) == truncate_to_step(-x, tick), (-x, tick)
        assert grid.round(-x) == round_to_tick(-x, tick), (-x, tick)
        clean = float(f"{x:.12g}")  # what `truncate_clean` is for: amounts cleaned of noise
        assert grid.truncate_clean(clean) == truncate_to_step(clean, tick), (clean, tick)


def test_grid_known_values() -> None:
    assert Grid(0.01).truncate(0.29) == 0.29  # 0.28999999999999998 in binary: still on the grid
    assert Grid(0.01).truncate(0.299) == 0.29
    assert Grid(0.5).round(1.25) == 1.5  # halves go away from zero
    assert Grid(0.5).round(-1.25) == -1.5
    assert Grid(10.0).truncate(12345.0) == 12340.0
    assert Grid(1e-8).truncate(1e15) == 1e15  # beyond 2**53 ticks: the exact path


def test_grid_refuses_a_tick_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="finite positive"):
        Grid(0.0)

"""The local checks of DESIGN §3.2 that issue 13 found missing: the market's price range, its
percent-price band and maximum notional, numbers of every real type but nothing else, and
spot-only refusals as None instead of raises. Nothing refused reaches the exchange."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime import (
    Buy,
    ConfigError,
    GTCOrder,
    MarketOrder,
    PositionClose,
    Sell,
    Sim,
    UpdateLeverage,
    call,
    strategy,
)
from runtime.engine import runtime_of
from tests.conftest import HERE, MANUAL
from traces import iter_events


def sim(path: Path, tmp: Path) -> Any:
    return strategy(str(path), mode=Sim(bars=200, seed=1), config={"trace_root": str(tmp)})


def intents(s: Any) -> int:
    return sum(e.kind.name == "ORDER_INTENT" for e in iter_events(s.trace_path))


async def refused(s: Any, rule: str, *args: Any, **kwargs: Any) -> None:
    before = intents(s)
    assert await call(s, *args, **kwargs) is None
    assert getattr(runtime_of(s).last_refusal, "rule", None) == rule, runtime_of(s).last_refusal
    assert intents(s) == before  # never sent


async def test_price_range_band_and_notional(tmp_path: Path) -> None:
    s = sim(MANUAL, tmp_path)
    ai = s.universe["BTC/USDT"]
    assert ai.price_max == 1_000_000.0
    assert ai.cost_max == 9_000_000.0
    await refused(s, "price_limits", ai, GTCOrder[Sell], amount=0.01, price=1e12)
    await refused(s, "percent_price", ai, GTCOrder[Buy], amount=0.001, price=ai.price * 6)
    await refused(s, "percent_price", ai, GTCOrder[Sell], amount=0.001, price=ai.price * 0.1)
    await refused(s, "cost_max", ai, MarketOrder[Buy], amount=8_000.0)
    # Within the band and the limits the same kinds of order pass the checks.
    resting = await call(s, ai, GTCOrder[Buy], amount=0.001, price=ai.price * 0.5, waitfor=0)
    assert resting is not None


async def test_numbers_are_real_numbers_even_with_skipchecks(tmp_path: Path) -> None:
    s = sim(MANUAL, tmp_path)
    ai = s.universe["BTC/USDT"]
    await refused(s, "amount_positive", ai, MarketOrder[Buy], amount=True)
    await refused(s, "amount_positive", ai, MarketOrder[Buy], amount="1")
    await refused(s, "amount_positive", ai, MarketOrder[Buy], amount=float("nan"), skipchecks=True)
    await refused(
        s, "price_positive", ai, GTCOrder[Buy], amount=0.01, price=float("inf"), skipchecks=True
    )
    # numpy's numbers are numbers: an np.int64 amount gets to the cash check, not a type error.
    await refused(s, "free_cash", ai, MarketOrder[Buy], amount=np.int64(1))
    assert await call(s, ai, MarketOrder[Buy], amount=np.float64(0.01)) is not None


async def test_spot_only_refusals_return_none(tmp_path: Path) -> None:
    s = sim(MANUAL, tmp_path)
    ai = s.universe["BTC/USDT"]
    await refused(s, "reduce_only", ai, MarketOrder[Sell], amount=0.01, reduce_only=True)
    await refused(s, "position_close", ai, PositionClose())


async def test_update_leverage_takes_numbers_only(tmp_path: Path) -> None:
    s = sim(HERE / "manual_margin_strategy.py", tmp_path)
    ai = next(iter(s.universe))
    assert await call(s, ai, UpdateLeverage("5")) is False  # raised TypeError
    assert "must be a number" in str(runtime_of(s).last_refusal)
    assert await call(s, ai, UpdateLeverage(np.int64(3))) is True
    assert ai.leverage == 3.0


async def test_a_wrong_order_type_still_raises_before_anything_is_recorded(
    tmp_path: Path,
) -> None:
    s = sim(MANUAL, tmp_path)
    with pytest.raises(ConfigError, match="order type bound to a side"):
        await call(s, s.universe["BTC/USDT"], "market", amount=0.01)

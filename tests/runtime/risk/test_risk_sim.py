"""Risk in Sim (DESIGN §9): the halts a live run would have, at the bar they would happen,
and each pre-trade limit refusing with its rule, its values and nothing sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import trio

from runtime import (
    Buy,
    CancelOrders,
    ConfigError,
    GTCOrder,
    MarketOrder,
    Risk,
    Sell,
    Sim,
    call,
    halt,
    resume,
    start,
    stop,
    strategy,
)
from runtime.engine import replay_from_trace
from tests.conftest import MANUAL, bars
from traces import read_trace

HERE = Path(__file__).resolve().parent
ALL_IN = HERE / "all_in_strategy.py"


def falling(n_flat: int, n_fall: int, step: float) -> list[float]:
    return [100.0] * n_flat + [100.0 * (1 - step) ** (i + 1) for i in range(n_fall)]


def equity_by_bar(s: Any, frame: pd.DataFrame) -> np.ndarray:
    """Equity at each bar's close from the fills alone: cash and base after each fill."""
    ai = s.universe["BTC/USDT"]
    close = frame["timestamp"] + pd.Timedelta(minutes=1)
    times = close.dt.as_unit("ms").astype("int64").to_numpy()
    cash = np.full(len(frame), 10_000.0)
    base = np.zeros(len(frame))
    for t in ai.trades:
        after = times >= t.timestamp
        cash[after] -= t.value + t.fee
        base[after] += t.amount
    return cash + base * frame["close"].to_numpy()


async def test_max_drawdown_halts_at_the_first_bar_past_the_limit(tmp_path: Path) -> None:
    frame = bars(falling(5, 40, 0.004))
    s = strategy(
        ALL_IN,
        mode=Sim(),
        data=frame,
        risk=Risk(max_drawdown=0.05),
        config={"trace_root": str(tmp_path)},
    )
    await start(s)
    ai = s.universe["BTC/USDT"]
    assert ai.trades, s.refusals  # it did buy
    equity = equity_by_bar(s, frame)
    peak = np.maximum.accumulate(np.concatenate(([10_000.0], equity)))[1:]
    expected = int(np.argmax((peak - equity) / peak >= 0.05))
    assert expected > 6  # a bar well inside the fall, not the first one
    halts = [a for a in s.alerts if a.kind == "halt"]
    assert len(halts) == 1
    close_ms = int(frame["timestamp"].iloc[expected].value // 1_000_000) + 60_000
    assert halts[0].timestamp == close_ms
    assert halts[0].message.startswith("halted: max_drawdown")
    assert not s.trading
    assert ai.orders == ()  # the resting bid was cancelled
    assert s.later
    assert all(r is None for r in s.later)
    halted = [e for e in s.refusals if getattr(e, "rule", "") == "halted"]
    assert len(halted) == len(s.later)
    assert str(halted[0]).startswith("halted: max_drawdown")
    # The halt is state in the trace: a replay is halted too.
    events = read_trace(s.trace_path, kinds=["HALTED"])
    assert len(events) == 1
    assert events["ts_ns"].iloc[0] == close_ms * 1_000_000
    assert not replay_from_trace(s.trace_path).trading


async def test_max_daily_loss_counts_from_each_utc_midnight(tmp_path: Path) -> None:
    # 23:30 to 00:40: down 1.5% before midnight, 1.5% more by 00:20, then 1% more.
    before = [100.0] * 5 + list(np.linspace(100.0, 98.5, 25))
    after = list(np.linspace(98.5, 97.0, 20)) + list(np.linspace(97.0, 96.0, 20))
    frame = bars(before + after, start="2024-01-01 23:30")
    s = strategy(
        ALL_IN,
        mode=Sim(),
        data=frame,
        risk=Risk(max_daily_loss=200.0),
        config={"trace_root": str(tmp_path)},
    )
    await start(s)
    equity = equity_by_bar(s, frame)
    close = frame["timestamp"] + pd.Timedelta(minutes=1)
    day = close.dt.floor("D").to_numpy()
    # The day's loss from its equity at 00:00 (the first close of the day), bar by bar.
    opening = np.array([equity[int(np.argmax(day == d))] for d in day])
    loss = opening - equity
    total_loss = 10_000.0 - equity
    expected = int(np.argmax(loss >= 200.0))
    assert loss[expected] >= 200.0
    assert total_loss[:expected].max() >= 200.0  # over 200 in all before that: the day reset
    halts = [a for a in s.alerts if a.kind == "halt"]
    assert len(halts) == 1
    assert halts[0].timestamp == int(close.iloc[expected].value // 1_000_000)
    assert "max_daily_loss" in halts[0].message


async def test_flatten_on_halt_sells_the_holding(tmp_path: Path) -> None:
    s = strategy(
        ALL_IN,
        mode=Sim(),
        data=bars(falling(5, 40, 0.004)),
        risk=Risk(max_drawdown=0.05, on_halt="flatten"),
        config={"trace": False},
    )
    await start(s)
    ai = s.universe["BTC/USDT"]
    assert not s.trading
    assert ai.trades[-1].side == "sell"
    assert ai.cash < ai.amount_min  # nothing but dust left


def manual(risk: Risk, tmp_path: Path, closes: list[float] | None = None) -> Any:
    return strategy(
        MANUAL,
        mode=Sim(),
        data=bars(closes or [60_000.0] * 50),
        risk=risk,
        config={"trace_root": str(tmp_path)},
    )


def intents(s: Any) -> int:
    s.flush_trace()
    return len(read_trace(s.trace_path, kinds=["ORDER_INTENT"]))


@pytest.mark.parametrize(
    ("risk", "kwargs", "rule", "words"),
    [
        (
            Risk(max_order_notional=1_000.0),
            {"amount": 0.02},
            "max_order_notional",
            ["1,200.00 USDT", "max_order_notional=1000", "send at most 0.016"],
        ),
        (
            Risk(price_band=0.05),
            {"amount": 0.01, "price": 63_600.0},
            "price_band",
            ["6.00% from the last price 60000", "price_band=0.05", "allows 5.00%"],
        ),
        (
            Risk(price_band=0.05),
            {"amount": 0.01, "price": 56_400.0},
            "price_band",
            ["6.00%"],
        ),
    ],
)
async def test_pre_trade_limit_refuses_and_sends_nothing(
    tmp_path: Path, risk: Risk, kwargs: dict[str, Any], rule: str, words: list[str]
) -> None:
    s = manual(risk, tmp_path)
    ai = s.universe["BTC/USDT"]
    kind = GTCOrder[Buy] if "price" in kwargs else MarketOrder[Buy]
    assert await call(s, ai, kind, **kwargs) is None
    error = s.errors[-1]
    assert error.rule == rule
    for word in words:
        assert word in str(error)
    assert intents(s) == 0
    assert ai.orders == ()
    assert ai.trades == []


async def test_price_band_lets_a_price_within_it_through(tmp_path: Path) -> None:
    s = manual(Risk(price_band=0.05), tmp_path)
    ai = s.universe["BTC/USDT"]
    assert await call(s, ai, GTCOrder[Buy], amount=0.01, price=57_100.0, waitfor=0) is not None


async def test_max_position_notional_counts_the_holding(tmp_path: Path) -> None:
    s = manual(Risk(max_position_notional=2_000.0), tmp_path)
    ai = s.universe["BTC/USDT"]
    assert await call(s, ai, MarketOrder[Buy], amount=0.02) is not None  # 1,200
    assert await call(s, ai, MarketOrder[Buy], amount=0.02) is None  # 2,400 in all
    assert s.errors[-1].rule == "max_position_notional"
    assert "2,4" in str(s.errors[-1])
    # Selling reduces the position: always allowed.
    assert await call(s, ai, MarketOrder[Sell], amount=0.01) is not None


async def test_max_open_orders_and_max_orders_per_minute(tmp_path: Path) -> None:
    s = manual(Risk(max_open_orders=2), tmp_path)
    ai = s.universe["BTC/USDT"]
    for price in (50_000.0, 50_100.0):
        assert await call(s, ai, GTCOrder[Buy], amount=0.01, price=price, waitfor=0) is not None
    sent = intents(s)
    assert await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_200.0, waitfor=0) is None
    assert s.errors[-1].rule == "max_open_orders"
    assert "2 orders are open" in str(s.errors[-1])
    assert intents(s) == sent

    s = manual(Risk(max_orders_per_minute=3), tmp_path / "rate")
    ai = s.universe["BTC/USDT"]
    for _ in range(3):
        assert await call(s, ai, MarketOrder[Buy], amount=0.001) is not None
    assert await call(s, ai, MarketOrder[Buy], amount=0.001) is None
    assert s.errors[-1].rule == "max_orders_per_minute"
    assert "3 orders sent in the last 60 s" in str(s.errors[-1])
    assert intents(s) == 3


async def test_halt_cancels_refuses_and_resume_trades_again(tmp_path: Path) -> None:
    s = manual(Risk(), tmp_path)
    ai = s.universe["BTC/USDT"]
    assert await call(s, ai, GTCOrder[Buy], amount=0.01, price=50_000.0, waitfor=0) is not None
    await halt(s, "test")
    assert not s.trading
    assert ai.orders == ()
    assert await call(s, ai, MarketOrder[Buy], amount=0.01) is None
    assert str(s.errors[-1]).startswith("halted: test")
    assert await call(s, ai, CancelOrders()) is True  # cancels still work
    resume(s)
    assert s.trading
    assert await call(s, ai, MarketOrder[Buy], amount=0.01) is not None
    s.flush_trace()
    kinds = list(read_trace(s.trace_path, kinds=["HALTED", "RESUMED"])["kind"])
    assert kinds == ["HALTED", "RESUMED"]


STRATEGY_ERRORS = """
from runtime import Strategy

class Flaky(Strategy):
    markets = ["BTC/USDT"]
    warmup = 1
    plan = "xxo"

    def __init__(self):
        self.n = 0

    async def on_tick(self, ts):
        self.n += 1
        if self.n <= len(self.plan) and self.plan[self.n - 1] == "x":
            raise RuntimeError(f"bad tick {self.n}")
"""


@pytest.mark.parametrize(("plan", "halted"), [("xxo", False), ("xxx", True), ("xxoxxo", False)])
async def test_strategy_errors_in_a_row(
    tmp_path: Path, plan: str, halted: bool, caplog: Any
) -> None:
    path = tmp_path / "flaky.py"
    path.write_text(STRATEGY_ERRORS.replace('plan = "xxo"', f"plan = {plan!r}"))
    s = strategy(
        path,
        mode=Sim(bars=20),
        risk=Risk(max_strategy_errors=3),
        config={"trace_root": str(tmp_path)},
    )
    await start(s)
    assert s.n == 20  # every tick ran
    assert s.trading is not halted
    errors = read_trace(s.trace_path, kinds=["STRATEGY_ERROR"])
    assert len(errors) == plan.count("x")
    assert len(read_trace(s.trace_path, kinds=["HALTED"])) == int(halted)
    assert any("on_tick at bar 2024-01-01T00:0" in r.getMessage() for r in caplog.records)


def test_risk_values_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"max_drawdown=5.*fraction below 1"):
        Risk(max_drawdown=5)
    with pytest.raises(ConfigError, match="on_halt='sell'"):
        Risk(on_halt="sell")
    with pytest.raises(ConfigError, match="max_open_orders=-1"):
        Risk(max_open_orders=-1)


RUNAWAY_SIM = """
import trio

from runtime import Strategy, call, MarketOrder, Buy, Sell

class RunawaySim(Strategy):
    markets = ["BTC/USDT"]
    warmup = 1

    def __init__(self):
        self.sent = 0
        self.busy = trio.Event()  # set after 100 orders

    async def on_tick(self, ts):
        ai = self.universe["BTC/USDT"]
        while True:  # never returns, never awaits anything but call, swallows everything
            try:
                side = Buy if self.sent % 2 == 0 else Sell
                await call(self, ai, MarketOrder[side], amount=0.001)
                self.sent += 1
                if self.sent == 100:
                    self.busy.set()
            except Exception:
                pass
"""


async def test_stop_ends_a_sim_tick_that_only_loops_on_call(tmp_path: Path) -> None:
    path = tmp_path / "runaway_sim.py"
    path.write_text(RUNAWAY_SIM)
    s = strategy(path, mode=Sim(bars=50), config={"trace": False})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(start, s)
        with trio.fail_after(10):
            await s.busy.wait()
        sent = s.sent
        t0 = trio.current_time()
        await stop(s)
        assert trio.current_time() - t0 < 5.0
    assert s.sent >= sent
    after = s.sent
    await trio.lowlevel.checkpoint()
    assert s.sent == after  # nothing runs on after stop returned

"""The bundled strategies on the loopback Bybit (v5, one unified account), in Live and Paper,
with ``exchange="bybit"``: each runs, trades, and ends with local state equal to the venue's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime import Live, Paper, Strategy, start, stop, strategy
from runtime.exchanges._markets import markets_cache_path
from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing.loopback import BybitLoopbackExchange
from tests.conftest import HERE
from tests.runtime.testing.loopback.support import make_bybit

SMA = HERE / "fast_sma_cross.py"
TREND = HERE / "fast_margin_trend.py"


@pytest.fixture
def bybit(monkeypatch: pytest.MonkeyPatch) -> Iterator[BybitLoopbackExchange]:
    """A Bybit loopback whose 1-second bars move on their own with the wall clock."""
    with make_bybit(timeframe="1s", bar_interval_ms=1000, seed=3) as ex:
        for name, value in ex.env().items():
            monkeypatch.setenv(name, value)
        yield ex


async def run_until_traded(s: Strategy, trades: int, seconds: float, live: bool) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        with trio.move_on_after(seconds):
            # Ticks come from the wall clock: poll the strategy's progress.
            while sum(len(ai.trades) for ai in s.universe) < trades:  # noqa: ASYNC110
                await trio.sleep(0.1)
        if live:
            # The last fill's wallet report may still be on its way (Bybit sends the wallet
            # apart from the order and the execution): let the account reports settle.
            with trio.move_on_after(5.0):
                while not await balances_agree(s):  # noqa: ASYNC110 (the venue is polled)
                    await trio.sleep(0.2)
        await stop(s)


async def balances_agree(s: Strategy) -> bool:
    async with CcxtExchange.open("bybit", sandbox=False) as ex:
        totals = (await ex.fetch_balance())["total"]
    return all(abs(b.total - totals.get(c, 0.0)) < 1e-6 for c, b in s.balances.items())


async def venue_state(symbols: list[str], margin: bool) -> dict[str, Any]:
    async with CcxtExchange.open("bybit", sandbox=False) as ex:
        out: dict[str, Any] = {
            "balance": await ex.fetch_balance(),
            "open": [o for sym in symbols for o in await ex.fetch_open_orders(sym)],
        }
        if margin:
            out["positions"] = await ex.fetch_positions(symbols)
        return out


@pytest.mark.parametrize("path", [SMA, TREND], ids=["sma_cross", "margin_trend"])
async def test_live_on_bybit_ends_equal_to_the_exchange(
    bybit: BybitLoopbackExchange, tmp_path: Path, path: Path
) -> None:
    s = strategy(
        path, mode=Live(), exchange="bybit", sandbox=False, config={"trace_root": str(tmp_path)}
    )
    margin = s._rt.margin is not None
    assert not markets_cache_path("bybit").exists()  # strategy(...) read the bundled snapshot
    await run_until_traded(s, 2, 25.0, live=True)
    assert sum(len(ai.trades) for ai in s.universe) >= 1, "the strategy never traded"
    assert markets_cache_path("bybit").is_file()  # the start saved the venue's own markets
    venue = await venue_state(list(s.universe.keys()), margin)
    assert venue["open"] == []  # Live cancels its orders when it stops
    assert s.cash_committed == pytest.approx(0.0, abs=1e-9) or margin
    for currency, balance in s.balances.items():
        if currency in venue["balance"]["total"]:
            assert balance.total == pytest.approx(venue["balance"][currency]["total"]), currency
    for ai in s.universe:
        assert ai.orders == ()
        if margin:
            reported = {p["side"]: p["contracts"] for p in venue["positions"] if p["contracts"]}
            local = {
                side: pos.contracts for side, pos in (("long", ai.long), ("short", ai.short)) if pos
            }
            assert local == pytest.approx(reported)
        else:
            assert ai.cash == pytest.approx(venue["balance"]["total"].get(ai.base, 0.0))


@pytest.mark.parametrize("path", [SMA, TREND], ids=["sma_cross", "margin_trend"])
async def test_paper_on_bybit_ends_equal_to_its_paper_exchange(
    bybit: BybitLoopbackExchange, tmp_path: Path, path: Path
) -> None:
    s = strategy(
        path, mode=Paper(), exchange="bybit", sandbox=False, config={"trace_root": str(tmp_path)}
    )
    await run_until_traded(s, 2, 25.0, live=False)
    assert sum(len(ai.trades) for ai in s.universe) >= 1, "the strategy never traded"
    paper = s._rt.driver.paper
    for currency, balance in s.balances.items():
        assert balance.total == pytest.approx(paper.ledger.balance(currency).total), currency
    for ai in s.universe:
        theirs = paper.ledger.assets[ai.symbol]
        assert [o.client_id for o in ai.orders] == [
            o.client_id for o in theirs.open_orders.values()
        ]
        for side in ("long", "short"):
            mine, venue = getattr(ai, side), getattr(theirs, side)
            assert (mine is None) == (venue is None), side
            if mine is not None:
                assert mine.contracts == pytest.approx(venue.contracts)
    # Nothing reached the exchange account.
    async with CcxtExchange.open("bybit", sandbox=False) as ex:
        assert (await ex.fetch_balance())["USDT"]["total"] == pytest.approx(100_000.0)

"""The simulated exchange on its own: filters, funds, matching, fees and ccxt-shaped answers."""

from __future__ import annotations

import pytest

from runtime import InsufficientFunds, OrderNotFound, OrderRejected
from runtime.exchanges._interface import Exchange
from runtime.exchanges._markets import market_for
from runtime.exchanges.sim._exchange import Bar, FillModel, SimExchange

SYM = "BTC/USDT"


class ScriptedFeed:
    """A feed whose bars a test sets one by one."""

    def __init__(self) -> None:
        self.bars: dict[str, Bar] = {}
        self.now = 0

    def push(self, exchange: SimExchange, bar: Bar) -> None:
        self.bars[SYM] = bar
        self.now = bar.time_ms + 60_000
        exchange.on_bar()

    def bar(self, symbol: str) -> Bar | None:
        return self.bars.get(symbol)

    def now_ms(self) -> int:
        return self.now


def make(cash: float = 100_000.0, volume: float = 10.0) -> tuple[SimExchange, ScriptedFeed]:
    feed = ScriptedFeed()
    ex = SimExchange(
        {SYM: market_for("binance", SYM)},
        feed,
        balances={"USDT": cash},
        fill_model=FillModel(volume_cap=0.5),
    )
    feed.push(ex, Bar(0, 30_000.0, 30_100.0, 29_900.0, 30_000.0, volume))
    return ex, feed


def test_it_is_an_exchange() -> None:
    ex, _ = make()
    assert isinstance(ex, Exchange)


@pytest.mark.parametrize(
    ("amount", "price", "filter_name"),
    [
        (0.000123456, 29_000.0, "LOT_SIZE"),  # not a multiple of the step
        (0.000001, 29_000.0, "LOT_SIZE"),  # below the minimum quantity
        (0.01, 29_000.005, "PRICE_FILTER"),  # not on the tick
        (0.0001, 29_000.0, "NOTIONAL"),  # 2.9 USDT, below the 5 USDT minimum
    ],
)
async def test_filters_reject_like_binance(amount: float, price: float, filter_name: str) -> None:
    ex, _ = make()
    with pytest.raises(OrderRejected, match=f"Filter failure: {filter_name}"):
        await ex.create_order(SYM, "limit", "buy", amount, price)
    assert await ex.fetch_open_orders(SYM) == []


async def test_insufficient_funds() -> None:
    ex, _ = make(cash=1_000.0)
    with pytest.raises(InsufficientFunds, match="insufficient balance"):
        await ex.create_order(SYM, "limit", "buy", 0.1, 29_000.0)
    with pytest.raises(InsufficientFunds):
        await ex.create_order(SYM, "market", "sell", 0.01)


async def test_post_only_that_would_cross_is_rejected() -> None:
    ex, _ = make()
    with pytest.raises(OrderRejected, match="immediately match"):
        await ex.create_order(SYM, "limit", "buy", 0.01, 30_001.0, {"postOnly": True})


async def test_duplicate_client_id_is_rejected() -> None:
    ex, _ = make()
    await ex.create_order(SYM, "limit", "buy", 0.01, 29_000.0, {"clientOrderId": "a"})
    with pytest.raises(OrderRejected, match="Duplicate"):
        await ex.create_order(SYM, "limit", "buy", 0.01, 29_000.0, {"clientOrderId": "a"})


async def test_market_order_answer_is_a_ccxt_order() -> None:
    ex, _ = make()
    o = await ex.create_order(SYM, "market", "buy", 0.5, None, {"clientOrderId": "m1"})
    assert o["status"] == "closed"
    assert o["clientOrderId"] == "m1"
    assert o["filled"] == pytest.approx(0.5)
    assert o["remaining"] == pytest.approx(0.0)
    assert o["average"] > 30_000.0
    assert o["cost"] == pytest.approx(0.5 * o["average"])
    assert o["fee"]["currency"] == "USDT"
    assert o["fee"]["cost"] == pytest.approx(o["cost"] * 0.001)
    (t,) = await ex.fetch_my_trades(SYM)
    assert t["order"] == o["id"]
    assert t["takerOrMaker"] == "taker"
    bal = await ex.fetch_balance()
    assert bal["BTC"]["total"] == pytest.approx(0.5)
    assert bal["USDT"]["total"] == pytest.approx(100_000.0 - o["cost"] - o["fee"]["cost"])


async def test_slippage_grows_with_size() -> None:
    ex, _ = make(cash=1_000_000.0)
    small = await ex.create_order(SYM, "market", "buy", 0.01)
    big = await ex.create_order(SYM, "market", "buy", 5.0)
    assert 30_000.0 < small["average"] < big["average"]


async def test_resting_order_fills_partially_on_thin_bars() -> None:
    ex, feed = make(volume=1.0)
    o = await ex.create_order(SYM, "limit", "buy", 1.0, 29_500.0, {"clientOrderId": "r"})
    assert o["status"] == "open"
    # A bar that trades through 29,500 with 1 BTC volume: the order may take half of it.
    feed.push(ex, Bar(60_000, 29_800.0, 29_900.0, 29_400.0, 29_700.0, 1.0))
    o = await ex.fetch_order(None, SYM, {"clientOrderId": "r"})
    assert o["filled"] == pytest.approx(0.5)
    assert o["status"] == "open"
    # A bar that only touches the price does not fill.
    feed.push(ex, Bar(120_000, 29_700.0, 29_800.0, 29_500.0, 29_600.0, 1.0))
    assert (await ex.fetch_order(o["id"], SYM))["filled"] == pytest.approx(0.5)
    feed.push(ex, Bar(180_000, 29_600.0, 29_700.0, 29_000.0, 29_100.0, 3.0))
    o = await ex.fetch_order(o["id"], SYM)
    assert o["status"] == "closed"
    trades = await ex.fetch_my_trades(SYM)
    assert [t["amount"] for t in trades] == pytest.approx([0.5, 0.5])
    assert all(t["takerOrMaker"] == "maker" for t in trades)
    assert all(t["price"] == 29_500.0 for t in trades)
    assert trades[0]["fee"]["cost"] == pytest.approx(0.5 * 29_500.0 * 0.001)


async def test_gap_through_the_limit_fills_at_the_open() -> None:
    ex, feed = make()
    await ex.create_order(SYM, "market", "buy", 0.1)
    o = await ex.create_order(SYM, "limit", "sell", 0.1, 30_500.0)
    feed.push(ex, Bar(60_000, 31_000.0, 31_200.0, 30_900.0, 31_100.0, 10.0))
    trades = [t for t in await ex.fetch_my_trades(SYM) if t["order"] == o["id"]]
    assert trades[0]["price"] == 31_000.0  # better than the limit: the bar opened past it


async def test_order_placed_during_a_bar_does_not_see_that_bar() -> None:
    ex, feed = make()
    feed.now = 30_000  # inside the next bar's span, as if placed late
    o = await ex.create_order(SYM, "limit", "buy", 0.1, 29_500.0)
    feed.push(ex, Bar(0, 30_000.0, 30_100.0, 29_000.0, 30_000.0, 10.0))  # an earlier bar
    assert (await ex.fetch_order(o["id"], SYM))["filled"] == 0.0


async def test_cancel_and_lookup_errors() -> None:
    ex, _ = make()
    o = await ex.create_order(SYM, "limit", "buy", 0.01, 29_000.0, {"clientOrderId": "c"})
    c = await ex.cancel_order(o["id"], SYM)
    assert c["status"] == "canceled"
    assert (await ex.fetch_balance())["USDT"]["used"] == 0.0
    with pytest.raises(OrderNotFound):
        await ex.cancel_order(o["id"], SYM)
    with pytest.raises(OrderNotFound):
        await ex.fetch_order(None, SYM, {"clientOrderId": "nope"})
    closed = await ex.fetch_closed_orders(SYM)
    assert [x["clientOrderId"] for x in closed] == ["c"]

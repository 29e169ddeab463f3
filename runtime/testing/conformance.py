"""One conformance suite for every implementation of the exchange interface, as
`zarr.testing.store.StoreTests` is for stores.

:class:`ExchangeConformance` holds the tests; an implementation's test module subclasses it and
gives a ``venue`` fixture returning a :class:`Venue`: the exchange, with BTC/USDT loaded and
cash in USDT, and its market price now. vigil runs it against the simulated exchange, its ccxt
exchange (real ccxt against the loopback Binance on 127.0.0.1) and the scripted exchange
(tests/runtime/exchanges/test_conformance.py). The runtime parses every exchange's answers the
same way, so each must give the same ccxt unified structures and raise the same vigil errors
for the same situations.

Needs pytest (a test-time dependency), so it is imported by name, not from `runtime.testing`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from runtime._errors import InsufficientFunds, OrderNotFound
from runtime.exchanges._interface import Exchange

SYM = "BTC/USDT"
AMOUNT = 0.001  # BTC: above the minimum amount and notional at these prices
_client_ids = itertools.count(1)


async def create(ex: Exchange, *args: Any) -> dict[str, Any]:
    """`create_order`, which a venue under test must answer with the order (a simulated
    exchange answers None only when it reports straight to a runtime)."""
    order = await ex.create_order(*args)
    assert order is not None, "create_order returned no order"
    return order


@dataclass(frozen=True)
class Venue:
    exchange: Exchange
    last: float  # the market price now

    @property
    def resting_price(self) -> float:
        """A buy limit well below the market, on the tick: it rests."""
        return round(self.last * 0.8, 2)


def client_id() -> str:
    return f"conformance-{next(_client_ids)}"


class ExchangeConformance:
    """The exchange interface's contract; subclasses provide the ``venue`` fixture."""

    async def test_it_is_an_exchange_with_the_market_loaded(self, venue: Venue) -> None:
        assert isinstance(venue.exchange, Exchange)
        market = (await venue.exchange.load_markets())[SYM]
        assert market["base"] == "BTC"
        assert market["quote"] == "USDT"
        assert market["precision"]["amount"] > 0
        assert market["precision"]["price"] > 0
        assert market["limits"]["amount"]["min"] > 0

    async def test_a_resting_order_is_found_by_id_and_client_id_then_cancelled(
        self, venue: Venue
    ) -> None:
        ex, cid = venue.exchange, client_id()
        placed = await create(
            ex, SYM, "limit", "buy", AMOUNT, venue.resting_price, {"clientOrderId": cid}
        )
        assert placed["status"] == "open"
        assert placed["clientOrderId"] == cid
        assert placed["amount"] == pytest.approx(AMOUNT)
        assert placed["price"] == pytest.approx(venue.resting_price)
        assert placed["filled"] == 0
        by_id = await ex.fetch_order(placed["id"], SYM)
        by_client_id = await ex.fetch_order(None, SYM, {"clientOrderId": cid})
        assert by_id["id"] == by_client_id["id"] == placed["id"]
        assert [o["id"] for o in await ex.fetch_open_orders(SYM)] == [placed["id"]]

        cancelled = await ex.cancel_order(placed["id"], SYM)
        assert cancelled["status"] == "canceled"
        assert await ex.fetch_open_orders(SYM) == []
        assert (await ex.fetch_order(None, SYM, {"clientOrderId": cid}))["status"] == "canceled"
        with pytest.raises(OrderNotFound):
            await ex.cancel_order(placed["id"], SYM)  # no longer open

    async def test_a_market_order_closes_filled_with_its_trade_and_fee(self, venue: Venue) -> None:
        ex = venue.exchange
        before = (await ex.fetch_balance())["total"].get("BTC") or 0.0
        order = await create(ex, SYM, "market", "buy", AMOUNT, None, {})
        assert order["status"] == "closed"
        assert order["filled"] == pytest.approx(AMOUNT)
        assert order["average"] == pytest.approx(venue.last, rel=0.01)
        trades = [t for t in await ex.fetch_my_trades(SYM) if t["order"] == order["id"]]
        assert sum(t["amount"] for t in trades) == pytest.approx(AMOUNT)
        assert all(t["fee"]["cost"] > 0 for t in trades)
        assert (await ex.fetch_order(order["id"], SYM))["status"] == "closed"
        closed = [o["id"] for o in await ex.fetch_closed_orders(SYM)]
        assert order["id"] in closed
        after = (await ex.fetch_balance())["total"]["BTC"]
        assert after - before == pytest.approx(AMOUNT, abs=AMOUNT * 0.01)  # a base fee at most

    async def test_an_ioc_order_that_cannot_fill_ends_unfilled(self, venue: Venue) -> None:
        ex = venue.exchange
        order = await create(
            ex, SYM, "limit", "buy", AMOUNT, venue.resting_price, {"timeInForce": "IOC"}
        )
        assert order["status"] in ("expired", "canceled")
        assert order["filled"] == 0
        assert await ex.fetch_open_orders(SYM) == []

    async def test_unknown_orders_raise_order_not_found(self, venue: Venue) -> None:
        ex = venue.exchange
        with pytest.raises(OrderNotFound):
            await ex.fetch_order(None, SYM, {"clientOrderId": "conformance-never-sent"})
        with pytest.raises(OrderNotFound):
            await ex.cancel_order("987654321", SYM)

    async def test_an_order_beyond_the_funds_raises_insufficient_funds(self, venue: Venue) -> None:
        ex = venue.exchange
        with pytest.raises(InsufficientFunds):
            # 50 BTC: far beyond the cash, within every venue's maximum order size.
            await create(ex, SYM, "limit", "buy", 50.0, venue.resting_price, {})
        assert await ex.fetch_open_orders(SYM) == []  # nothing was placed

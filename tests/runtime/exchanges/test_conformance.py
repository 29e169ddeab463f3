"""The exchange conformance suite (`runtime.testing.conformance`) against every implementation:
the simulated exchange, vigil's ccxt exchange on the loopback Binance and on the loopback
Bybit (v5, unified account), and the scripted one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing import BybitLoopbackExchange, LoopbackExchange, ScriptedExchange
from runtime.testing.conformance import AMOUNT, SYM, ExchangeConformance, Venue
from tests.runtime.exchanges.ccxt.support import FAST
from tests.runtime.exchanges.test_sim_exchange import make
from tests.runtime.testing.loopback.support import BTC, make_bybit


class TestSimExchange(ExchangeConformance):
    @pytest.fixture
    def venue(self) -> Venue:
        ex, _ = make()  # BTC/USDT at 30,000, 100,000 USDT
        return Venue(ex, 30_000.0)


class TestCcxtExchange(ExchangeConformance):
    @pytest.fixture
    async def venue(self, loopback: LoopbackExchange) -> AsyncIterator[Venue]:
        async with CcxtExchange.open(
            "binance", sandbox=False, env=loopback.env(), rate_limit=FAST
        ) as ex:
            loopback.set_price(BTC, 60_000.0)
            yield Venue(ex, 60_000.0)


class TestCcxtBybit(ExchangeConformance):
    @pytest.fixture
    def bybit(self) -> Iterator[BybitLoopbackExchange]:
        with make_bybit() as ex:
            yield ex

    @pytest.fixture
    async def venue(self, bybit: BybitLoopbackExchange) -> AsyncIterator[Venue]:
        async with CcxtExchange.open(
            "bybit", sandbox=False, env=bybit.env(), rate_limit=FAST
        ) as ex:
            bybit.set_price(BTC, 60_000.0)
            yield Venue(ex, 60_000.0)


class TestScriptedExchange(ExchangeConformance):
    @pytest.fixture
    def venue(self) -> Venue:
        return Venue(ScriptedExchange(SYM, price=60_000.0, balances={"USDT": 100_000.0}), 60_000.0)

    async def test_resting_orders_fill_when_the_script_moves_the_price(self) -> None:
        ex = ScriptedExchange(SYM, price=60_000.0, balances={"USDT": 100_000.0})
        order = await ex.create_order(SYM, "limit", "buy", AMOUNT, 59_000.0, {})
        ex.move_to(59_500.0)
        assert (await ex.fetch_order(order["id"], SYM))["status"] == "open"
        ex.move_to(58_900.0)
        filled = await ex.fetch_order(order["id"], SYM)
        assert filled["status"] == "closed"
        assert filled["average"] == 59_000.0
        assert (await ex.fetch_balance())["total"]["BTC"] == pytest.approx(AMOUNT)

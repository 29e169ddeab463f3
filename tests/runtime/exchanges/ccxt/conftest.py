"""Fixtures: a loopback Binance on 127.0.0.1, and vigil's ccxt exchange pointed at it.

The exchanges read their credentials and URL from the loopback's environment lines
(``VIGIL_BINANCE_URL``, ``VIGIL_BINANCE_API_KEY`` ...), as a strategy run against
``vigil exchange serve`` does. These tests cross threads (the bridge loop, the server), so they
run on trio's real clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from runtime.exchanges.ccxt import CcxtExchange
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.exchanges.ccxt.support import FAST
from tests.runtime.testing.loopback.support import BTC, make_exchange


@pytest.fixture
def loopback() -> Iterator[LoopbackExchange]:
    """A started loopback exchange with BTC held at 60,000 on spot and futures."""
    with make_exchange() as ex:
        ex.set_price(BTC, 60_000.0)
        yield ex


@pytest.fixture
async def spot(loopback: LoopbackExchange) -> AsyncIterator[CcxtExchange]:
    """vigil's ccxt exchange for Binance spot, on the loopback, markets loaded."""
    async with CcxtExchange.open(
        "binance", sandbox=False, env=loopback.env(), rate_limit=FAST
    ) as ex:
        yield ex


@pytest.fixture
async def futures(loopback: LoopbackExchange) -> AsyncIterator[CcxtExchange]:
    """vigil's ccxt exchange for Binance USDⓈ-M (a margin strategy on "binance")."""
    async with CcxtExchange.open(
        "binance", margin="isolated", sandbox=False, env=loopback.env(), rate_limit=FAST
    ) as ex:
        yield ex

"""Fixtures for Live and Paper tests: a loopback Binance (or, with `dialect`, either dialect:
Binance or Bybit) on 127.0.0.1 and the environment that points vigil at it, as `vigil exchange
serve` prints it. Threads are involved, so these tests run on the real clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from runtime.testing.loopback import BybitLoopbackExchange, LoopbackExchange
from tests.runtime.testing.loopback.support import BTC, make_bybit, make_exchange


@dataclass(frozen=True)
class Dialect:
    """One loopback dialect, as a test parametrised over both sees it."""

    id: str  # a strategy's exchange=: "binance" or "bybit"
    ex: Any  # LoopbackExchange or BybitLoopbackExchange
    perp_taker: float  # the perpetuals' taker fee

    def path(self, what: str) -> dict[str, str]:
        """``path=`` and ``method=`` of a REST endpoint, for the fault knobs: "my_trades",
        "order_get", "order_cancel", "open_orders" or "account"."""
        path, method = _PATHS[self.id][what]
        return {"path": path, "method": method}

    def wallet_usdt(self, balance: dict[str, Any]) -> float:
        """The realised USDT wallet of a derivatives account's ccxt balance."""
        if self.id == "binance":  # ccxt's USDⓈ-M total includes PnL; the wallet is in info
            assets = balance["info"]["assets"]
            return next(float(a["walletBalance"]) for a in assets if a["asset"] == "USDT")
        return float(balance["USDT"]["total"])  # Bybit's walletBalance


_PATHS = {
    "binance": {
        "my_trades": ("/api/v3/myTrades", "GET"),
        "order_get": ("/api/v3/order", "GET"),
        "order_cancel": ("/api/v3/order", "DELETE"),
        "open_orders": ("/api/v3/openOrders", "GET"),
        "account": ("/api/v3/account", "GET"),
    },
    "bybit": {
        "my_trades": ("/v5/execution/list", "GET"),
        "order_get": ("/v5/order/realtime", "GET"),
        "order_cancel": ("/v5/order/cancel", "POST"),
        "open_orders": ("/v5/order/realtime", "GET"),
        "account": ("/v5/account/wallet-balance", "GET"),
    },
}


def _dialect(name: str, **kwargs: Any) -> LoopbackExchange | BybitLoopbackExchange:
    return make_exchange(**kwargs) if name == "binance" else make_bybit(**kwargs)


@pytest.fixture(params=["binance", "bybit"])
def dialect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dialect]:
    """Each loopback dialect in turn, BTC at 60,000, prices moving only when a test moves them."""
    with _dialect(request.param) as ex:
        ex.set_price(BTC, 60_000.0)
        for name, value in ex.env().items():
            monkeypatch.setenv(name, value)
        yield Dialect(request.param, ex, 0.0005 if request.param == "binance" else 0.0006)


@pytest.fixture(params=["binance", "bybit"])
def running_dialect(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Dialect]:
    """Each dialect in turn, its 1-second bars moving on their own with the wall clock."""
    with _dialect(request.param, timeframe="1s", bar_interval_ms=1000) as ex:
        for name, value in ex.env().items():
            monkeypatch.setenv(name, value)
        yield Dialect(request.param, ex, 0.0005 if request.param == "binance" else 0.0006)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackExchange]:
    """A loopback whose prices move only when a test moves them, BTC at 60,000."""
    with make_exchange() as ex:
        ex.set_price(BTC, 60_000.0)
        for name, value in ex.env().items():
            monkeypatch.setenv(name, value)
        yield ex


@pytest.fixture
def running_market(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackExchange]:
    """A loopback whose 1-second bars move on their own, in step with the wall clock."""
    with make_exchange(timeframe="1s", bar_interval_ms=1000) as ex:
        for name, value in ex.env().items():
            monkeypatch.setenv(name, value)
        yield ex

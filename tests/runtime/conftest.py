"""Fixtures for Live and Paper tests: a loopback Binance on 127.0.0.1 and the environment
that points vigil at it, as `vigil exchange serve` prints it. Threads are involved, so these
tests run on the real clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import BTC, make_exchange


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

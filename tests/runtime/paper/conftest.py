"""Live-mode fixtures: a loopback Binance on 127.0.0.1 and the environment that points vigil
at it, as `vigil exchange serve` prints it. Threads are involved, so no virtual clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.exchanges.loopback import LoopbackExchange
from tests.runtime.exchanges.loopback.support import BTC, make_exchange


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackExchange]:
    with make_exchange() as ex:
        ex.set_price(BTC, 60_000.0)
        for name, value in ex.env().items():
            monkeypatch.setenv(name, value)
        yield ex

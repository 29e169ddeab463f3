"""The ``loopback`` fixture: a started loopback exchange per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import BTC, make_exchange


@pytest.fixture
def loopback() -> Iterator[LoopbackExchange]:
    """A started loopback exchange with BTC held at 60,000 on spot and futures."""
    with make_exchange() as ex:
        ex.set_price(BTC, 60_000.0)
        yield ex

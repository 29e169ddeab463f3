"""The shipped market snapshots are what real ccxt makes of the loopback's exchangeInfo
(Binance) and instruments-info (Bybit)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from runtime.testing import _snapshot as snapshot
from runtime.testing.loopback import BybitLoopbackExchange, LoopbackExchange


def _shipped_text(exchange: str) -> str:
    path = resources.files("runtime.exchanges").joinpath("markets", f"{exchange}.json")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("exchange", ["binance", "binanceusdm"])
def test_ccxt_reading_the_loopback_reproduces_the_shipped_file(exchange: str) -> None:
    with LoopbackExchange(history=10) as server:
        assert server.base_url is not None
        document = snapshot.build_snapshot_from_loopback(exchange, server.base_url)
    assert snapshot.render(document) == _shipped_text(exchange)
    assert document == snapshot.build_snapshot(exchange)  # the canned source agrees


def test_ccxt_bybit_reading_the_bybit_loopback_reproduces_the_shipped_file() -> None:
    with BybitLoopbackExchange(history=10) as server:
        assert server.base_url is not None
        document = snapshot.build_snapshot_from_loopback("bybit", server.base_url)
    assert snapshot.render(document) == _shipped_text("bybit")
    assert document == snapshot.build_snapshot("bybit")  # the canned source agrees
    assert sorted(document["markets"]) == [
        f"{base}/USDT{suffix}"
        for base in ("BTC", "DOGE", "ETH", "SOL", "XRP")
        for suffix in ("", ":USDT")
    ]


def test_the_command_writes_byte_identical_files(tmp_path: Path) -> None:
    assert snapshot.main(["--out", str(tmp_path)]) == 0  # --source loopback by default
    for exchange in snapshot.EXCHANGES:
        assert (tmp_path / f"{exchange}.json").read_text(encoding="utf-8") == _shipped_text(
            exchange
        )
    with pytest.raises(ValueError, match="source 'web' is not valid"):
        snapshot.write_snapshots(tmp_path, source="web")

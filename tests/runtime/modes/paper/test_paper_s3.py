"""A Paper run whose trace root is on S3 (moto's server): the URL reads like the local trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from runtime import Buy, MarketOrder, Paper, Trade, call, start, stop, strategy
from runtime.engine._replica import snapshot
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import MANUAL
from tests.runtime.testing.loopback.support import BTC
from tests.s3server import keys, moto_server, use_bucket
from traces import read_trace, replay_from_trace, trace_tail


@pytest.fixture
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


async def test_paper_trace_on_s3_equals_the_local_one(
    loopback: LoopbackExchange, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    bucket = use_bucket(endpoint, monkeypatch)
    root = f"s3://{bucket}/paper"
    s = strategy(MANUAL, mode=Paper(), sandbox=False, config={"trace_root": root})
    ai = s.universe[BTC]
    feed = s._rt.driver.paper.paper_feed
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        with trio.fail_after(10):
            while BTC not in feed.books:  # noqa: ASYNC110  (the applier writes it)
                await trio.sleep(0.02)
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.02), Trade)
        await stop(s)
    url = f"{root}/binance/paper/manual_strategy.zarr"
    assert any(k.endswith("/zarr.json") for k in keys(endpoint, bucket, "paper/binance/paper/"))
    remote, local = read_trace(url), read_trace(s.trace_path)
    assert len(remote) == len(local) > 0
    assert remote.drop(columns="payload").equals(local.drop(columns="payload"))
    assert list(remote["payload"]) == list(local["payload"])
    assert "TRADE" in set(remote["kind"])
    assert trace_tail(url, n=10) == trace_tail(s, n=10)
    assert snapshot(replay_from_trace(url)._rt.state) == snapshot(s._rt.state)

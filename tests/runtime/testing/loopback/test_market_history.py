"""Historical market data the loopback serves for downloads: klines paging rules and the
perpetuals' funding history, as Binance answers them (checked against the SDK's model)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.testing.loopback import LoopbackExchange
from runtime.testing.loopback._funding import FUNDING_INTERVAL_MS
from tests.runtime.testing.loopback.support import make_exchange, raw
from tests.runtime.testing.loopback.test_spec import F, check

MIN = 60_000


@pytest.fixture(scope="module")
def ex() -> Iterator[LoopbackExchange]:
    with make_exchange(history=3_000) as exchange:  # two days: several funding times
        yield exchange


@pytest.mark.parametrize(("path", "cap"), [("/api/v3/klines", 1000), ("/fapi/v1/klines", 1500)])
def test_klines_pages_follow_binance_limits(ex: LoopbackExchange, path: str, cap: int) -> None:
    forming = ex.clock.forming_open_ms
    start = forming - 2_500 * MIN
    base = {"symbol": "BTCUSDT", "interval": "1m"}
    status, _, body = raw(
        ex, "GET", path, {**base, "startTime": start, "limit": 5000}, signed=False
    )
    assert status == 200
    assert len(body) == cap  # the page limit, counted from startTime
    assert body[0][0] == start
    assert [r[0] for r in body] == list(range(start, start + cap * MIN, MIN))
    _, _, body = raw(ex, "GET", path, {**base, "endTime": start + 9 * MIN}, signed=False)
    assert len(body) == 500  # the default limit, ending at endTime
    assert body[-1][0] == start + 9 * MIN
    _, _, body = raw(
        ex, "GET", path, {**base, "startTime": start, "endTime": start + 4 * MIN}, signed=False
    )
    assert [r[0] for r in body] == [start + k * MIN for k in range(5)]  # endTime inclusive
    status, _, body = raw(
        ex, "GET", path, {**base, "startTime": start + MIN, "endTime": start}, signed=False
    )
    assert (status, body["code"]) == (400, -1023)


def test_funding_history_follows_binance_rules(ex: LoopbackExchange) -> None:
    status, _, body = raw(ex, "GET", "/fapi/v1/fundingRate", {"symbol": "BTCUSDT"}, signed=False)
    assert status == 200
    assert len(body) >= 4
    assert check(F.GetFundingRateHistoryResponse, body) == []
    times = [r["fundingTime"] for r in body]
    assert all(t % FUNDING_INTERVAL_MS == 0 for t in times)  # 00:00, 08:00, 16:00 UTC
    assert times == sorted(times)
    assert times[-1] <= ex.clock.forming_open_ms  # only settled funding
    # Paged from startTime, `limit` at a time; oldest first; the same rate every time.
    _, _, page = raw(
        ex,
        "GET",
        "/fapi/v1/fundingRate",
        {"symbol": "BTCUSDT", "startTime": times[1], "limit": 2},
        signed=False,
    )
    assert page == body[1:3]
    status, _, err = raw(
        ex,
        "GET",
        "/fapi/v1/fundingRate",
        {"symbol": "BTCUSDT", "startTime": times[1], "endTime": times[0]},
        signed=False,
    )
    assert (status, err["code"]) == (400, -1023)

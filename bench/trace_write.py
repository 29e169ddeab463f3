"""Trace write path: batched market-data appends and durable order-path appends.

Baselines, measured in the same run on the same disk:

- appends: raw ``numpy.ndarray.tofile`` of the fixed-width columns (seq, ts_ns, ts_exchange_ns,
  kind, asset), batch by batch, into one open file: no payloads, no WAL, no Zarr. It is the
  ceiling for "append rows to a file from Python".
- durable latency: one ``os.write`` of the same encoded order payload to an fd per event.

"batched appends" counts until every full chunk is committed to Zarr (``flush()`` included), so
it is the rate the writer sustains, not just the rate ``record_many`` accepts.

    python bench/trace_write.py [--events N] [--batch B] [--orders M]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from traces._codec import encode
from traces._schema import Kind
from traces._writer import TraceWriter

ROW = np.dtype(
    [("seq", "<u8"), ("ts_ns", "<i8"), ("ts_exchange_ns", "<i8"), ("kind", "<u2"), ("asset", "<i4")]
)


def market_payloads(n: int) -> list[dict[str, Any]]:
    """Small public-trade payloads like a ccxt watch_trades entry, trimmed: ~45 bytes each."""
    return [
        {
            "p": 30_000.0 + (i % 997) * 0.5,
            "q": 0.001 * (1 + i % 89),
            "s": "buy" if i % 3 else "sell",
            "t": 1_700_000_000_000 + i,
        }
        for i in range(n)
    ]


def order_payload(i: int) -> dict[str, Any]:
    """A ccxt unified order as returned by create_order (with Binance's raw `info`)."""
    return {
        "id": str(28_457_000 + i),
        "clientOrderId": f"x-vigil-{i:08d}",
        "timestamp": 1_700_000_000_000 + i,
        "datetime": "2023-11-14T22:13:20.000Z",
        "symbol": "BTC/USDT",
        "type": "limit",
        "timeInForce": "GTC",
        "side": "buy",
        "price": 30_000.0,
        "amount": 0.01,
        "cost": 0.0,
        "filled": 0.0,
        "remaining": 0.01,
        "status": "open",
        "fee": None,
        "trades": [],
        "info": {
            "symbol": "BTCUSDT",
            "orderId": 28_457_000 + i,
            "clientOrderId": f"x-vigil-{i:08d}",
            "transactTime": 1_700_000_000_000 + i,
            "price": "30000.00000000",
            "origQty": "0.01000000",
            "executedQty": "0.00000000",
            "status": "NEW",
            "timeInForce": "GTC",
            "type": "LIMIT",
            "side": "BUY",
        },
    }


def tofile_rate(n: int, batch: int, tmp: Path) -> float:
    rows = np.zeros(batch, ROW)
    rows["kind"] = int(Kind.PUBLIC_TRADES)
    rows["ts_exchange_ns"] = -1
    t0 = time.perf_counter()
    with open(tmp / "baseline.bin", "wb") as f:
        for start in range(0, n, batch):
            rows["seq"] = np.arange(start, start + batch)
            rows["ts_ns"] = rows["seq"]
            rows.tofile(f)
        f.flush()
    return n / (time.perf_counter() - t0)


def batched_rate(n: int, batch: int, tmp: Path) -> tuple[float, float]:
    pool = market_payloads(batch * 8)  # distinct payloads, reused batch by batch
    ts = np.arange(n, dtype=np.int64)
    w = TraceWriter(tmp / "market.zarr")
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        k = start % len(pool)
        if k + batch > len(pool):
            k = 0
        w.record_many(
            Kind.PUBLIC_TRADES, pool[k : k + batch], ts[start : start + batch], asset="BTC/USDT"
        )
    accepted = time.perf_counter() - t0
    w.flush()
    sustained = time.perf_counter() - t0
    w.close()
    return n / sustained, n / accepted


def single_rate(n: int, tmp: Path) -> float:
    pool = market_payloads(8192)
    w = TraceWriter(tmp / "single.zarr")
    t0 = time.perf_counter()
    for i in range(n):
        w.record(Kind.PUBLIC_TRADES, pool[i % 8192], ts_ns=i, asset="BTC/USDT")
    w.flush()
    rate = n / (time.perf_counter() - t0)
    w.close()
    return rate


def durable_latencies(
    m: int, tmp: Path, name: str, *, fsync: str = "never", load: int = 0
) -> np.ndarray:
    """Per-call latency (us) of durable order appends; with ``load`` market events recorded
    between them, so the worker is committing chunks while we measure."""
    orders = [order_payload(i) for i in range(m)]
    pool = market_payloads(max(load, 1))
    ts = np.arange(max(load, 1), dtype=np.int64)
    w = TraceWriter(tmp / name, fsync=fsync)  # type: ignore[arg-type]
    lat = np.empty(m, np.int64)
    for i in range(m):
        t0 = time.perf_counter_ns()
        w.record(Kind.ORDER_ACK, orders[i], ts_ns=i, asset="BTC/USDT", durable=True)
        lat[i] = time.perf_counter_ns() - t0
        if load:
            w.record_many(Kind.PUBLIC_TRADES, pool, ts, asset="BTC/USDT")
    w.close()
    return lat / 1e3


def write_latencies(m: int, tmp: Path) -> np.ndarray:
    data = encode(order_payload(0))
    fd = os.open(tmp / "baseline.wal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    lat = np.empty(m, np.int64)
    for i in range(m):
        t0 = time.perf_counter_ns()
        os.write(fd, data)
        lat[i] = time.perf_counter_ns() - t0
    os.close(fd)
    return lat / 1e3


def pct(lat: np.ndarray) -> str:
    return f"p50 {np.percentile(lat, 50):.1f} us, p99 {np.percentile(lat, 99):.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args()
    n, batch, m = args.events, args.batch, args.orders

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as d:
        tmp = Path(d)
        base = tofile_rate(n, batch, tmp)
        sustained, accepted = batched_rate(n, batch, tmp)
        single = single_rate(n // 4, tmp)
        base_lat = write_latencies(m, tmp)
        lat = durable_latencies(m, tmp, "orders.zarr")
        lat_load = durable_latencies(m // 4, tmp, "orders_load.zarr", load=200)
        lat_fsync = durable_latencies(min(m, 500), tmp, "orders_fsync.zarr", fsync="order")

    print(f"events: {n:,} market-data appends in batches of {batch}; {m:,} durable order appends")
    print(
        f"batched appends: {sustained:,.0f}/s incl. Zarr commits ({sustained / base:.3f}x numpy "
        f"tofile at {base / 1e6:.1f}M/s; target 500,000/s); record_many accepts {accepted:,.0f}/s"
    )
    print(f"single record() appends: {single:,.0f}/s ({single / base:.3f}x numpy tofile)")
    print(
        f"durable order appends (fsync=never): {pct(lat)} (target p99 <= 2000 us); "
        f"p99 {np.percentile(lat, 99) / np.percentile(base_lat, 99):.1f}x os.write baseline "
        f"({pct(base_lat)})"
    )
    print(
        f"durable order appends with 200 market events between each: {pct(lat_load)}, "
        f"max {lat_load.max():.0f} us"
    )
    print(f"durable order appends (fsync=order, {len(lat_fsync)}): {pct(lat_fsync)}")


if __name__ == "__main__":
    main()

"""`traces.to_dask`: several traces, local and on S3, as one dask DataFrame read on workers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.runtime.dist.clusters import local_cluster
from tests.s3server import moto_server, use_bucket
from traces import Kind, TraceWriter, open_recorder, read_trace, to_dask


def write(path: Path, n: int, tag: str) -> None:
    with TraceWriter(path, chunk_rows=100) as w:
        for i in range(n):
            w.record(Kind.TRADE, {"tag": tag, "i": i}, ts_ns=1_000 + i, asset="BTC/USDT")


def test_one_partition_per_chunk_payloads_decoded_on_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    write(a, 350, "a")  # chunks of 100: 4 partitions, the last from the WAL
    write(b, 100, "b")  # exactly one chunk
    with moto_server() as endpoint:
        monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
        bucket = use_bucket(endpoint, monkeypatch)
        rec = open_recorder(f"s3://{bucket}/r", "binance", "sim", "c")
        for i in range(30):
            rec.record(Kind.ORDER_INTENT, {"tag": "c", "i": i}, ts_ns=i)
        rec.close()
        url = f"s3://{bucket}/r/binance/sim/c.zarr"

        frame = to_dask([a, str(b), url])
        assert frame.npartitions == 4 + 1 + 1
        # Workers spawned now inherit the AWS variables: they read the URL themselves.
        cluster, client = local_cluster(tmp_path / "scratch")
        try:
            got = client.compute(frame).result()
        finally:
            client.close()
            cluster.close()
        expected = pd.concat([read_trace(a), read_trace(b), read_trace(url)], ignore_index=True)

    got = got.reset_index(drop=True)
    assert list(got["trace"]) == [str(a)] * 350 + [str(b)] * 100 + [url] * 30
    assert list(got["seq"]) == list(expected["seq"])
    assert list(got["ts_ns"]) == list(expected["ts_ns"])
    assert list(got["kind"]) == [str(k) for k in expected["kind"]]
    assert list(got["asset"]) == ["BTC/USDT"] * 450 + [None] * 30
    assert list(got["payload"]) == list(expected["payload"])
    assert got["payload"][0] == {"tag": "a", "i": 0}

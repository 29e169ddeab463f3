"""Traces on object storage, against moto's real S3 server on 127.0.0.1.

The blobs suite runs on both sides (local files and S3); then a Sim run with an s3:// trace
root reads back equal to its local trace, a second writer is refused, and a SIGKILLed writer
loses nothing: reopening it uploads what the store lacked.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from runtime import Sim, TraceError, start, strategy
from runtime.engine import snapshot
from tests.conftest import HERE
from tests.s3server import keys, moto_server, use_bucket
from traces import Kind, open_recorder, read_trace, replay_from_trace, trace_tail
from traces._blobs import Blobs, LocalBlobs, ObjectBlobs


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "home"))
    return use_bucket(endpoint, monkeypatch)


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Blobs:
    if request.param == "local":
        return LocalBlobs(tmp_path / "blobs")
    name: str = request.getfixturevalue("bucket")
    return ObjectBlobs(f"s3://{name}/some/prefix")


def test_blobs_get_put_list_delete(blobs: Blobs) -> None:
    with pytest.raises(FileNotFoundError):
        blobs.get("a/b")
    blobs.put("a/b", b"one")
    blobs.put("a/c/d", b"three")
    blobs.put("a/b", b"two")  # a put replaces
    assert blobs.get("a/b") == b"two"
    assert blobs.list() == {"a/b": 3, "a/c/d": 5}
    assert blobs.list("a/c/") == {"a/c/d": 5}
    blobs.delete("a/b")
    blobs.delete("a/b")  # deleting what is gone is no error
    assert blobs.list() == {"a/c/d": 5}


def test_put_if_absent_writes_once(blobs: Blobs) -> None:
    assert blobs.put_if_absent("lease", b"first")
    assert not blobs.put_if_absent("lease", b"second")
    assert blobs.get("lease") == b"first"


def test_object_blobs_are_never_pickled(bucket: str) -> None:
    with pytest.raises(TypeError, match="carries credentials"):
        pickle.dumps(ObjectBlobs(f"s3://{bucket}/x"))


def test_sim_trace_on_s3_reads_like_the_local_one(bucket: str, endpoint: str) -> None:
    root = f"s3://{bucket}/team"
    # ~19.5K events: two whole chunks committed and mirrored, the rest sealed from the WAL.
    s = strategy("sma_cross", mode=Sim(bars=50_000), config={"trace_root": root})
    trio.run(start, s)
    url = f"{root}/binance/sim/sma_cross.zarr"
    assert s._rt.recorder.url == url
    local = s.trace_path
    assert local is not None

    stored = keys(endpoint, bucket, "team/binance/sim/sma_cross.zarr/")
    assert "team/binance/sim/sma_cross.zarr/seq/c/1" in stored  # the second whole chunk
    assert "team/binance/sim/sma_cross.zarr/writer.lease" not in stored  # released at close
    assert any("/wal/" in k for k in stored)  # the sealed tail

    remote, mine = read_trace(url), read_trace(local)
    assert len(remote) == len(mine) > 16_384
    assert remote.drop(columns="payload").equals(mine.drop(columns="payload"))
    assert list(remote["payload"]) == list(mine["payload"])
    trades = read_trace(url, kinds=["TRADE"], since="2024-01-02")
    assert (
        trades.drop(columns="payload")
        .reset_index(drop=True)
        .equals(
            read_trace(local, kinds=["TRADE"], since="2024-01-02")
            .drop(columns="payload")
            .reset_index(drop=True)
        )
    )
    assert trace_tail(url, n=25) == trace_tail(s, n=25)
    assert snapshot(replay_from_trace(url)._rt.state) == snapshot(s._rt.state)


def test_a_second_writer_is_refused(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = f"s3://{bucket}/t"
    first = open_recorder(root, "binance", "sim", "lease")
    first.record(Kind.TRADE, {"i": 0}, ts_ns=0)
    # Another machine: its own local cache, the same URL.
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path / "elsewhere"))
    second = open_recorder(root, "binance", "sim", "lease")
    with pytest.raises(TraceError, match=r"already open for writing.*writer pid"):
        second.record(Kind.TRADE, {"i": 1}, ts_ns=1)
    first.close()
    # Free now: the new writer starts from the store's copy, so nothing is lost.
    second.record(Kind.TRADE, {"i": 1}, ts_ns=1)
    second.close()
    url = f"{root}/binance/sim/lease.zarr"
    assert [p["i"] for p in read_trace(url)["payload"]] == [0, 1]


CHILD = textwrap.dedent(
    """
    import sys
    from traces import Kind, open_recorder

    rec = open_recorder(sys.argv[1], "binance", "sim", "crash")
    n = int(sys.argv[2])
    for i in range(n):
        rec.record(Kind.TRADE, {"i": i}, ts_ns=i, durable=(i == n - 1))
    rec.flush()
    print("recorded", flush=True)
    sys.stdin.read()  # killed here, before close: the tail is never sealed
    """
)


def test_sigkill_then_reopen_loses_nothing_and_the_store_catches_up(
    bucket: str, endpoint: str
) -> None:
    root = f"s3://{bucket}/k"
    url = f"{root}/binance/sim/crash.zarr"
    n = 20_000  # two whole chunks of 8192 and a tail of 3616 in the WAL
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, root, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "recorded"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL

    stored = keys(endpoint, bucket, "k/")
    assert "k/binance/sim/crash.zarr/writer.lease" in stored  # the dead writer's
    assert not any("/wal/" in k for k in stored)  # never sealed
    before = len(read_trace(url))
    assert before < n

    again = open_recorder(root, "binance", "sim", "crash")  # same host: the lease is stale
    again.record(Kind.TRADE, {"i": n}, ts_ns=n)
    again.close()
    remote = read_trace(url)
    assert [p["i"] for p in remote["payload"]] == list(range(n + 1))
    assert list(remote["seq"]) == list(range(n + 1))
    assert remote.drop(columns="payload").equals(read_trace(again.path).drop(columns="payload"))


def test_storage_options_instead_of_the_environment(
    bucket: str, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    options = {
        "endpoint": endpoint,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "region": "us-east-1",
    }
    root = f"s3://{bucket}/opts"
    s = strategy(
        "sma_cross",
        mode=Sim(bars=500),
        config={"trace_root": root, "storage_options": options},
    )
    trio.run(start, s)
    assert "opts/binance/sim/sma_cross.zarr/zarr.json" in keys(endpoint, bucket, "opts/")

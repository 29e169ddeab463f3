"""Helpers for the trace tests: small payloads, mixed writes, and every byte a trace holds.

Imported by name (pytest puts this directory on sys.path: it has no __init__.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numcodecs
import numpy as np

from traces._schema import Kind
from traces._writer import TraceWriter

CHUNK = 64  # small chunks, so a few hundred events cross several chunk boundaries


def trade(i: int) -> dict[str, object]:
    """A small ccxt-like trade payload, distinct per i."""
    return {
        "id": str(i),
        "price": 30_000.0 + i / 4,
        "amount": 0.001 * (i % 7),
        "side": "buy",
        "info": {"t": i, "m": i % 2 == 0},
    }


def write_mixed(w: TraceWriter, n: int, *, t0: int = 0) -> list[tuple[int, int, str | None]]:
    """Write n events mixing single records and batches; returns (seq, ts_ns, asset) each."""
    out: list[tuple[int, int, str | None]] = []
    i = 0
    while i < n:
        if i % 17 == 0 and n - i >= 10:
            k = 10
            ts = np.arange(t0 + i, t0 + i + k, dtype=np.int64)
            seqs = w.record_many(
                Kind.PUBLIC_TRADES, [trade(t0 + j) for j in range(i, i + k)], ts, asset="ETH/USDT"
            )
            out += [(s, int(t), "ETH/USDT") for s, t in zip(seqs, ts, strict=True)]
            i += k
        else:
            asset = None if i % 3 == 0 else "BTC/USDT"
            seq = w.record(Kind.TRADE, trade(t0 + i), ts_ns=t0 + i, asset=asset, durable=i % 4 == 0)
            out.append((seq, t0 + i, asset))
            i += 1
    return out


def iter_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath) / name


def all_bytes(root: Path) -> list[tuple[Path, bytes]]:
    """Every file under root as stored, plus the decompressed content of every Zarr chunk
    (chunks are zstd-compressed, so a raw scan alone could miss plain text)."""
    zstd = numcodecs.Zstd()
    out = []
    for path in iter_files(root):
        raw = path.read_bytes()
        out.append((path, raw))
        if path.parent.name == "c":
            out.append((path, bytes(zstd.decode(raw))))
    return out


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Name -> (mtime_ns, content) for every file: to prove a reader changed nothing."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in iter_files(root)
    }

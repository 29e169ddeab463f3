"""`to_dask`: many traces as one dask DataFrame, for analysis beyond one process.

One partition per chunk of each trace (the rows past the last whole chunk, in the WAL, are the
trace's last partition). The graph carries only (trace path or URL, row range): each worker
opens the trace itself (an object-store URL through its own local copy, with the worker's own
credentials: no store or key travels in the graph) and decodes the payloads there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime._errors import ConfigError
from traces._codec import Payloads
from traces._schema import Kind
from traces._view import open_view

# dask is part of the `vigil[dist]` extra.
try:
    import dask
    import dask.dataframe as dd

    DASK_MISSING: str | None = None
except ImportError as _exc:
    DASK_MISSING = str(_exc)

_KIND_NAMES = {int(k): k.name for k in Kind}


def to_dask(paths_or_urls: str | Path | Iterable[str | Path]) -> Any:
    """The traces as one dask DataFrame with the columns of `read_trace` plus ``trace`` (its
    path or URL); ``kind`` and ``asset`` are strings (None for no asset) and ``payload``
    holds decoded dicts. Partition bounds are read here; rows are read and decoded on the
    workers."""
    if DASK_MISSING is not None:
        raise ConfigError(
            f"to_dask needs dask, which is not installed ({DASK_MISSING}); install the "
            'distributed extra with pip install "vigil[dist]"'
        )
    items = [paths_or_urls] if isinstance(paths_or_urls, str | Path) else list(paths_or_urls)
    parts: list[tuple[str, int, int]] = []
    for item in items:
        view = open_view(item)
        step = view.chunk_rows
        parts += [(str(item), lo, min(lo + step, view.total)) for lo in range(0, view.total, step)]
    if not parts:
        raise ConfigError(f"to_dask: the traces {[str(i) for i in items]} hold no events")
    # Payloads are dicts: dask's string conversion would turn them into their repr.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(read_part, parts, meta=_meta(), enforce_metadata=False)


def read_part(part: tuple[str, int, int]) -> pd.DataFrame:
    """Rows ``[lo, hi)`` of one trace, payloads decoded (runs on a worker)."""
    trace, lo, hi = part
    view = open_view(trace)
    cols = view.read(lo, hi)
    symbols = view.symbols
    ts = np.asarray(cols["ts_ns"])
    payloads: Payloads = cols["payload"]
    return pd.DataFrame(
        {
            "trace": pd.Series([trace] * len(ts), dtype=object),
            "seq": np.asarray(cols["seq"]),
            "time": pd.to_datetime(ts, unit="ns", utc=True),
            "ts_ns": ts,
            "ts_exchange_ns": np.asarray(cols["ts_exchange_ns"]),
            "kind": pd.Series(
                [_KIND_NAMES.get(int(k), str(k)) for k in cols["kind"]], dtype=object
            ),
            "asset": pd.Series(
                [symbols[a] if 0 <= a < len(symbols) else None for a in cols["asset"]],
                dtype=object,
            ),
            "payload": pd.Series(payloads.decode_all(), dtype=object),  # GC paused inside
        }
    )


def _meta() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trace": pd.Series([], dtype=object),
            "seq": pd.Series([], dtype="uint64"),
            "time": pd.Series([], dtype="datetime64[ns, UTC]"),
            "ts_ns": pd.Series([], dtype="int64"),
            "ts_exchange_ns": pd.Series([], dtype="int64"),
            "kind": pd.Series([], dtype=object),
            "asset": pd.Series([], dtype=object),
            "payload": pd.Series([], dtype=object),
        }
    )

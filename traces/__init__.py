"""Zarr event traces: the write-ahead log and writer, the readers (`trace_tail`, `read_trace`,
`iter_events`, `list_runs`) and object-level plumbing. Traces store and read bytes; they know
nothing of strategies. A trace root or path may be an object-store URL (``s3://bucket/prefix``):
the writer mirrors its local trace there and the readers read a local copy. `to_dask` reads
many traces as one dask DataFrame (the `vigil[dist]` extra).

`replay_from_trace`, which rebuilds a strategy's state from its trace, is implemented by the
runtime's engine (`runtime.engine`) and re-exported here, loaded on first use so that importing
`traces` alone never imports the runtime's modes, exchanges or CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from traces._blobs import Blobs as Blobs
from traces._blobs import open_blobs as open_blobs
from traces._codec import redact as redact
from traces._payloads import PayloadArray as PayloadArray
from traces._reader import Event as Event
from traces._reader import iter_events as iter_events
from traces._reader import read_trace as read_trace
from traces._reader import tail_frame as tail_frame
from traces._reader import tail_records as tail_records
from traces._recorder import default_trace_root as default_trace_root
from traces._recorder import open_recorder as open_recorder
from traces._recorder import trace_path as trace_path
from traces._runs import RunInfo as RunInfo
from traces._runs import choose_run as choose_run
from traces._runs import list_runs as list_runs
from traces._runs import runs_of as runs_of
from traces._schema import STATE_KINDS as STATE_KINDS
from traces._schema import Kind as Kind
from traces._summary import event_line as event_line
from traces._summary import summarise as summarise
from traces._tail import TraceOwner as TraceOwner
from traces._tail import trace_path_of as trace_path_of
from traces._tail import trace_tail as trace_tail
from traces._view import open_view as open_view
from traces._writer import TraceWriter as TraceWriter

if TYPE_CHECKING:
    from runtime.engine import replay_from_trace as replay_from_trace
    from traces._dask import to_dask as to_dask


def __getattr__(name: str) -> Any:
    # The one name implemented above this package (DESIGN §1): loaded lazily, not imported.
    if name == "replay_from_trace":
        return importlib.import_module("runtime.engine").replay_from_trace
    if name == "to_dask":  # loaded on use: importing dask.dataframe takes a second
        return importlib.import_module("traces._dask").to_dask
    raise AttributeError(f"module 'traces' has no attribute {name!r}")

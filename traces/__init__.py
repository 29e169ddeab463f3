"""Zarr event traces: the writer, the readers (`trace_tail`, `read_trace`) and
`replay_from_trace`, which rebuilds a strategy's state from its trace."""

from ._codec import redact as redact
from ._reader import Event as Event
from ._reader import PayloadArray as PayloadArray
from ._reader import RunInfo as RunInfo
from ._reader import iter_events as iter_events
from ._reader import list_runs as list_runs
from ._reader import read_trace as read_trace
from ._reader import tail_frame as tail_frame
from ._reader import tail_records as tail_records
from ._recorder import open_recorder as open_recorder
from ._recorder import trace_path as trace_path
from ._replay import replay_from_trace as replay_from_trace
from ._schema import Kind as Kind
from ._tail import trace_tail as trace_tail
from ._writer import TraceWriter as TraceWriter

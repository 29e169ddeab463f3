"""`trace_tail`: the last events of a strategy's trace, as dicts or a DataFrame."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from runtime._errors import TraceError
from traces._blobs import is_url
from traces._fetch import fetch
from traces._reader import tail_frame, tail_records
from traces._summary import TailRecords


@runtime_checkable
class TraceOwner(Protocol):
    """Anything that records a trace (a strategy): where it is, and a way to make every event
    it recorded readable. Lets readers take a strategy without knowing what one is."""

    @property
    def trace_path(self) -> Path | None: ...

    def flush_trace(self) -> None: ...


def trace_path_of(owner_or_path: TraceOwner | str | Path) -> Path:
    """The trace path of a strategy (flushed, so a reader sees all it recorded) or a path;
    an object-store URL gives its local copy, brought up to date."""
    if isinstance(owner_or_path, str) and is_url(owner_or_path):
        return fetch(owner_or_path)
    if isinstance(owner_or_path, str | Path):
        return Path(owner_or_path)
    if not isinstance(owner_or_path, TraceOwner):
        raise TraceError(
            f"{owner_or_path!r} is neither a trace path nor a strategy; pass s or s.trace_path"
        )
    path = owner_or_path.trace_path
    if path is None:
        raise TraceError(
            f"strategy {owner_or_path!r} records no trace (config trace=False), so there is "
            "nothing to read or replay"
        )
    owner_or_path.flush_trace()
    return path


def trace_tail(s_or_path: TraceOwner | str | Path, n: int = 10, as_df: bool = False) -> Any:
    """The last `n` events of a strategy's trace (or of a trace path), oldest first: a list of
    event dicts (shown one line per event, payloads summarised), or with ``as_df=True`` a
    DataFrame with payload keys as columns."""
    records = tail_records(trace_path_of(s_or_path), n)
    return tail_frame(records) if as_df else TailRecords(records)

"""`trace_tail`: the last events of a strategy's trace, as dicts or a DataFrame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._reader import tail_frame, tail_records


def trace_tail(s_or_path: Any, n: int = 10, as_df: bool = False) -> Any:
    """The last `n` events of a strategy's trace (or of a trace path), oldest first: a list of
    event dicts, or with ``as_df=True`` a DataFrame with payload keys as columns."""
    from ._replay import _path_of

    path = _path_of(s_or_path) if not isinstance(s_or_path, str | Path) else Path(s_or_path)
    records = tail_records(path, n)
    return tail_frame(records) if as_df else records

"""The runs of a trace (each from its RUN_STARTED to its RUN_STOPPED), and the one place a run
is chosen by index or id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from runtime._errors import TraceError
from traces._codec import Payloads
from traces._schema import Kind
from traces._view import TraceView, open_view


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run of a strategy in a trace: from its RUN_STARTED to its RUN_STOPPED.
    A run whose process died has ``stop_seq=None`` and ends where the next run starts."""

    run_id: str
    start_seq: int
    end_seq: int  # one past the run's last event
    stop_seq: int | None
    started_ns: int
    stopped_ns: int | None

    @property
    def crashed(self) -> bool:
        return self.stop_seq is None


def runs_of(view: TraceView) -> list[RunInfo]:
    """Every run in the trace behind `view`, oldest first."""
    kinds = view.read(0, view.total, ["kind"])["kind"]
    marks = np.flatnonzero((kinds == Kind.RUN_STARTED) | (kinds == Kind.RUN_STOPPED))
    if not len(marks):
        return []
    cols = view.read_at(marks, ["seq", "ts_ns", "kind", "payload"])
    payloads = cols["payload"]
    runs: list[RunInfo] = []
    current: dict[str, Any] | None = None

    def close(end: int, stop_seq: int | None, stopped_ns: int | None) -> None:
        assert current is not None
        runs.append(
            RunInfo(current["run_id"], current["seq"], end, stop_seq, current["ts"], stopped_ns)
        )

    for i, (seq, ts, kind) in enumerate(
        zip(cols["seq"].tolist(), cols["ts_ns"].tolist(), cols["kind"].tolist(), strict=True)
    ):
        run_id = _run_id(payloads, i)
        if kind == Kind.RUN_STARTED:
            if current is not None:
                close(seq, None, None)  # started again without stopping: the last one crashed
            current = {"run_id": run_id, "seq": seq, "ts": ts}
        elif current is not None and run_id in (current["run_id"], "None"):
            close(seq + 1, seq, ts)
            current = None
    if current is not None:
        close(view.total, None, None)
    return runs


class _RunMark(msgspec.Struct):
    """The one key of a RUN_STARTED or RUN_STOPPED payload read here; the parser steps over
    the others (a stop's snapshot holds every trade) without building them."""

    run_id: Any = None


_RUN_MARK = msgspec.msgpack.Decoder(_RunMark).decode


def _run_id(payloads: Payloads, i: int) -> str:
    start = int(payloads.offsets[i])
    try:
        data = payloads.blob[start : start + int(payloads.sizes[i])].data
        return str(_RUN_MARK(data).run_id)
    except (msgspec.DecodeError, msgspec.ValidationError):  # not a map of str keys
        payload = payloads.decode(i)
        return str(payload.get("run_id")) if isinstance(payload, dict) else "None"


def list_runs(path: str | Path) -> list[RunInfo]:
    """Every run in the trace, oldest first."""
    return runs_of(open_view(path))


def choose_run(runs: Sequence[RunInfo], run: int | str, path: Path) -> int:
    """The index of `run` in `runs`: an index (-1 the last) or a run id. The one place a run is
    chosen (replay, reports, readers, the CLI); TraceError names the runs there are."""
    if not runs:
        raise TraceError(f"trace {path} has no runs: it holds no RUN_STARTED event")
    if isinstance(run, str):
        for i, r in enumerate(runs):
            if r.run_id == run:
                return i
        ids = ", ".join(r.run_id for r in runs)
        raise TraceError(f"trace {path} has no run {run!r}; its runs are: {ids}")
    if not -len(runs) <= run < len(runs):
        raise TraceError(
            f"trace {path} has {len(runs)} run(s), so run={run} does not exist; "
            f"use 0..{len(runs) - 1} or -1 for the last"
        )
    return run % len(runs)

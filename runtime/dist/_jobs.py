"""One sweep job: a Sim run as a pure function of (strategy source, params, data reference).

A `Job` carries everything a worker needs and nothing it cannot rebuild: the strategy's source
text (a worker needs vigil installed, not the user's files), the parameters, the markets and
time span, a reference to the bars, and the directory its trace goes to. `run_job` runs it and
returns one row; any failure of the run becomes the row's ``error``. This module is imported
by dask worker processes, so it must stay importable on its own (no ``__main__`` code).

A job's directory holds its trace and, once the run has finished, ``row.json``: written last
and atomically, it is what makes the job complete. A job run again finds its row there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import trio

from runtime._errors import ConfigError
from runtime.app._lifecycle import start
from runtime.data import MarketStore, StoreData
from runtime.data._store import timeframe_ms
from runtime.dist._windows import Span
from runtime.engine._strategy import Strategy, load_strategy_class
from runtime.model._bars import generate_bars, load_bars
from runtime.model._modes import Sim
from runtime.modes._venues import venue_id
from runtime.modes._wiring import normalize_symbol, strategy, with_params

ROW_FILE = "row.json"


@dataclass(frozen=True, slots=True)
class Generated:
    """Seeded generated bars (`Sim(bars=, seed=)`), rebuilt on the worker."""

    bars: int
    seed: int

    def key(self) -> str:
        return f"generated:{self.bars}:{self.seed}"


@dataclass(frozen=True, slots=True)
class Files:
    """Bar files (CSV or Parquet) every worker can read at the same path: one path, or
    (symbol, path) pairs. `digest` is their content hash, so a changed file is a new job."""

    paths: str | tuple[tuple[str, str], ...]
    digest: str

    def key(self) -> str:
        return f"files:{self.digest}"


@dataclass(frozen=True, slots=True)
class Frames:
    """DataFrames held by the caller: shipped once to the cluster (scattered) and handed to
    each job beside it. `digest` hashes their content."""

    digest: str

    def key(self) -> str:
        return f"frames:{self.digest}"


@dataclass(frozen=True, slots=True)
class Store:
    """A range of the market-data store (DESIGN §11, ``data="store"``), read on the worker with
    the stored funding: every worker needs that store (this machine, or a shared mount).
    Times are epoch ms; a stored range is final, so the range names the data."""

    root: str
    since: int | None
    until: int | None

    def key(self) -> str:
        return f"store:{self.root}:{self.since}:{self.until}"


DataRef = Generated | Files | Frames | Store


@dataclass(frozen=True, slots=True)
class Job:
    """One Sim run of a sweep. `key` names it (a hash of everything that decides its result)
    and `directory` is where its trace and row go."""

    key: str
    name: str
    source: str
    params: tuple[tuple[str, Any], ...]
    markets: tuple[str, ...] | None
    span: Span | None
    window: int | None
    segment: str | None
    data: DataRef
    mode: Sim
    initial_cash: float | None
    directory: str
    strategy_file: str

    def head(self) -> dict[str, Any]:
        """The columns that say which job a row is: its key, params, markets and window."""
        row: dict[str, Any] = {"job": self.key, **dict(self.params)}
        if self.markets is not None:
            row["markets"] = ",".join(self.markets)
        if self.span is not None:
            row |= {
                "window": self.window,
                "segment": self.segment,
                "start": self.span.start.isoformat(),
                "end": self.span.end.isoformat(),
            }
        return row


def job_key(
    *,
    name: str,
    source: str,
    params: Mapping[str, Any],
    markets: tuple[str, ...] | None,
    span: Span | None,
    data: DataRef,
    mode: Sim,
    initial_cash: float | None,
) -> str:
    """A short stable hash of everything that decides a job's result."""
    return digest(
        {
            "name": name,
            "source": hashlib.sha256(source.encode()).hexdigest(),
            "params": sorted(params.items()),
            "markets": markets,
            "span": None if span is None else [span.start.value, span.end.value],
            "data": data.key(),
            "mode": [mode.bars, mode.seed, dataclasses.asdict(mode.fill_model)],
            "initial_cash": initial_cash,
        }
    )[:16]


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def frames_digest(frames: pd.DataFrame | Mapping[str, pd.DataFrame]) -> str:
    """A content hash of bar DataFrames (values, index and column names)."""
    h = hashlib.sha256()
    items = frames.items() if isinstance(frames, Mapping) else [("", frames)]
    for symbol, frame in sorted(items, key=lambda kv: str(kv[0])):
        h.update(str(symbol).encode())
        h.update(repr(list(frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


def files_digest(paths: str | tuple[tuple[str, str], ...]) -> str:
    h = hashlib.sha256()
    pairs = [("", paths)] if isinstance(paths, str) else list(paths)
    for symbol, path in pairs:
        h.update(symbol.encode())
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise ConfigError(f"data file {path!r} cannot be read: {exc.strerror}") from exc
    return h.hexdigest()


def completed_row(job: Job) -> dict[str, Any] | None:
    """The row of a job that has finished before (its row written, its trace still there), or
    None."""
    try:
        text = (Path(job.directory) / ROW_FILE).read_text()
    except FileNotFoundError:
        return None
    try:
        row: dict[str, Any] = json.loads(text)
    except ValueError:
        return None  # not ours, or damaged: run the job again
    trace = row.get("trace")
    return row if isinstance(trace, str) and Path(trace).is_dir() else None


def run_job(job: Job, frames: Any = None) -> dict[str, Any]:
    """Run one job (on a worker or in this process) and return its row. A job that finished
    before returns its stored row; a run that fails returns a row carrying the error."""
    done = completed_row(job)
    if done is not None:
        return done
    directory = Path(job.directory)
    # A run killed midway left part of a trace: start again from nothing.
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    t0 = time.perf_counter()
    row = job.head()
    try:
        s = strategy(
            _strategy_file(job),
            mode=job.mode,
            data=_bars_for(job, frames),
            initial_cash=job.initial_cash,
            params=dict(job.params),
            config={
                "trace_root": str(directory),
                **({"markets": job.markets} if job.markets is not None else {}),
            },
        )
        trio.run(start, s)
        stats = {k: float(v) for k, v in s.results.stats.items()}
        trace = str(s.trace_path)
    except Exception as exc:  # a failed job is a row, not a lost sweep
        row |= {"trace": None, "seconds": time.perf_counter() - t0, "error": describe(exc)}
        return row
    row |= {**stats, "trace": trace, "seconds": time.perf_counter() - t0, "error": None}
    _write_row(directory, row)
    return row


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _write_row(directory: Path, row: dict[str, Any]) -> None:
    tmp = directory / f"{ROW_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(row, allow_nan=True))
    os.replace(tmp, directory / ROW_FILE)


def _strategy_file(job: Job) -> str:
    """The strategy's source written where this worker can load it (once per content)."""
    path = Path(job.strategy_file)
    if not (path.is_file() and path.read_text() == job.source):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(job.source)
        os.replace(tmp, path)
    return str(path)


def _bars_for(job: Job, frames: Any) -> Any:
    """The `data=` of the job's Sim run: its reference resolved, cut to its span."""
    ref = job.data
    data: Any
    if isinstance(ref, Store):
        if job.span is None:
            return StoreData(since=ref.since, until=ref.until, root=ref.root)
        until = job.span.end.value // 1_000_000
        if ref.until is not None:
            until = min(until, ref.until)
        return StoreData(since=_store_since(job, ref), until=until, root=ref.root)
    if isinstance(ref, Generated):
        if job.span is None:
            return None  # Sim generates them itself, from the job's `mode`
        data = None
    elif isinstance(ref, Files):
        data = ref.paths if isinstance(ref.paths, str) else dict(ref.paths)
    else:
        data = frames
    if job.span is None:
        return data
    return _cut(job, data)


def _store_since(job: Job, ref: Store) -> int:
    """Where a span's store read starts: `warmup` bars before the span, as `_cut` does, but
    not before what the store (or the sweep's own range) holds."""
    assert job.span is not None
    cls, symbols = _job_class(job)
    want = job.span.start.value // 1_000_000 - max(int(cls.warmup), 0) * timeframe_ms(
        cls.timeframe
    )
    db = MarketStore(ref.root)
    venue = venue_id(cls.exchange, cls.margin)
    starts = []
    for sym in symbols:
        series = db.open(cls.exchange, sym, cls.timeframe) or db.open(venue, sym, cls.timeframe)
        if series is not None and series.rows:
            starts.append(series.start)
    floors = [*starts, *([ref.since] if ref.since is not None else [])]
    return max([want, *floors])


def _job_class(job: Job) -> tuple[type[Strategy], list[str]]:
    """The job's strategy class with its params, and the markets it trades."""
    _, base = load_strategy_class(_strategy_file(job))
    cls = with_params(base, dict(job.params))
    return cls, [normalize_symbol(m, cls.margin) for m in (job.markets or cls.markets)]


def _cut(job: Job, data: Any) -> dict[str, pd.DataFrame]:
    """The job's markets within its span, with the strategy's warmup bars before it, so the
    first tick falls on the span's first bar."""
    assert job.span is not None
    cls, symbols = _job_class(job)
    if data is None:
        data = generate_bars(symbols, job.mode.bars, timeframe=cls.timeframe, seed=job.mode.seed)
    elif isinstance(data, Mapping):
        data = {normalize_symbol(str(k), cls.margin): v for k, v in data.items()}
    bars = load_bars(data, symbols)
    first = int(np.searchsorted(bars.time_ns, job.span.start.value, side="left"))
    stop = int(np.searchsorted(bars.time_ns, job.span.end.value, side="left"))
    if stop <= first:
        raise ConfigError(
            f"window {job.span.start} .. {job.span.end} holds no bars; the data covers "
            f"{pd.Timestamp(int(bars.time_ns[0]), tz='UTC')} .. "
            f"{pd.Timestamp(int(bars.time_ns[-1]), tz='UTC')}"
        )
    begin = max(first - max(int(cls.warmup), 0), 0)
    return {sym: bars.to_frame(sym).iloc[begin:stop] for sym in symbols}

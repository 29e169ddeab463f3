"""`sweep`: one Sim job per combination of params (× markets × windows), on any engine.

The jobs are planned here, in the caller's process: the strategy is loaded once to check the
parameter names, its source text is read, the data is turned into a reference (generated,
files, or DataFrames shipped once), and every job gets a key hashing all that decides its
result. A job whose directory already holds its row is not run again (resume).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from runtime._errors import ConfigError
from runtime._progress import Progress
from runtime.data import StoreData, data_root
from runtime.data._store import to_ms
from runtime.dist._engines import Engine, open_engine
from runtime.dist._jobs import (
    DataRef,
    Files,
    Frames,
    Generated,
    Job,
    Store,
    completed_row,
    digest,
    files_digest,
    frames_digest,
    job_key,
)
from runtime.dist._windows import Span, spans_of
from runtime.engine._strategy import Strategy, load_strategy_class
from runtime.model._modes import Sim
from runtime.modes._wiring import with_params

# The columns before and after a row's statistics; the statistics sit between them.
TAIL = ("trace", "seconds", "error")


@dataclass(frozen=True, slots=True)
class Plan:
    """A strategy and its data, ready to make jobs: what every job of a sweep shares."""

    name: str
    source: str
    cls: type[Strategy]
    data: DataRef
    frames: Any
    mode: Sim
    initial_cash: float | None
    directory: Path

    def job(
        self,
        params: Mapping[str, Any],
        *,
        markets: tuple[str, ...] | None = None,
        span: Span | None = None,
        window: int | None = None,
        segment: str | None = None,
    ) -> Job:
        key = job_key(
            name=self.name,
            source=self.source,
            params=params,
            markets=markets,
            span=span,
            data=self.data,
            mode=self.mode,
            initial_cash=self.initial_cash,
        )
        return Job(
            key=key,
            name=self.name,
            source=self.source,
            params=tuple(params.items()),
            markets=markets,
            span=span,
            window=window,
            segment=segment,
            data=self.data,
            mode=self.mode,
            initial_cash=self.initial_cash,
            directory=str(self.directory / key),
            strategy_file=str(self.directory / f"{self.name}.py"),
        )

    def check_params(self, names: Iterable[str]) -> None:
        """ConfigError, listing the valid names, for a name the strategy does not declare."""
        with_params(self.cls, dict.fromkeys(names))


def plan(
    name_or_path: str | Path,
    *,
    data: Any,
    mode: Sim | None,
    initial_cash: float | None,
    trace_root: str | Path,
    sweep_id: str | None,
) -> Plan:
    name, cls = load_strategy_class(name_or_path)
    source = _source_text(name_or_path, cls)
    mode = mode if mode is not None else Sim()
    if not isinstance(mode, Sim):
        raise ConfigError(f"sweep jobs are Sim runs; mode={mode!r} must be Sim(...)")
    ref, frames = _data_ref(data, mode)
    if "://" in str(trace_root):
        raise ConfigError(
            f"trace_root={str(trace_root)!r}: sweep jobs write their traces to a directory "
            "(on a cluster, one every worker can reach, such as a shared mount); object-store "
            "URLs are for a strategy's own trace_root"
        )
    if sweep_id is None:
        # The same strategy on the same data is the same sweep: running it again resumes.
        sweep_id = f"{name}-{digest([source, ref.key(), repr(mode), initial_cash])[:10]}"
    elif not sweep_id or "/" in sweep_id or sweep_id in (".", ".."):
        raise ConfigError(f"sweep_id={sweep_id!r} must be a folder name, e.g. 'sma-grid-1'")
    # Absolute: workers do not share the caller's working directory.
    directory = Path(trace_root).resolve() / "sweeps" / sweep_id
    return Plan(name, source, cls, ref, frames, mode, initial_cash, directory)


def sweep(
    name_or_path: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    data: Any = None,
    markets: Sequence[str | Sequence[str]] | None = None,
    windows: Sequence[Any] | None = None,
    mode: Sim | None = None,
    initial_cash: float | None = None,
    client: Any = None,
    trace_root: str | Path = "traces",
    sweep_id: str | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run one Sim job per combination of `params` values (× `markets` × `windows`) and return
    one row per job: its params, its statistics, its trace path, its seconds and its error.

    * `params`: ``{"fast": [5, 10, 20], "slow": [30, 50]}``; a single value is one choice.
    * `data`: as `strategy(..., data=)`: a DataFrame, a CSV or Parquet path, a dict from
      market to either, or ``"store"`` / ``StoreData(since=, until=)`` (the market-data store,
      with funding); None generates bars from `mode` (``Sim(bars=, seed=)``).
    * `markets`: each entry (a symbol, or a list of symbols) is a separate set of jobs.
    * `windows`: `walk_forward(...)` windows (each runs its train and its test span),
      `Span`s or ``(start, end)`` pairs.
    * `client`: None (a dask LocalCluster, one worker process per core), ``"serial"`` (this
      process), a scheduler address ``"tcp://host:8786"``, or a `distributed.Client`.
    * Traces go to ``<trace_root>/sweeps/<sweep_id>/<job>/``; a job that finished there before
      is not run again. `sweep_id` defaults to the strategy's name and a hash of its source,
      data and mode, so the same sweep run again resumes.

    Rows come in job order, and the same jobs give the same rows on every engine (but for
    ``seconds``). A job that fails, or whose worker dies more often than dask retries it, has
    its ``error`` set and NaN statistics.
    """
    p = plan(
        name_or_path,
        data=data,
        mode=mode,
        initial_cash=initial_cash,
        trace_root=trace_root,
        sweep_id=sweep_id,
    )
    grid = _grid(params or {})
    p.check_params(grid[0] if grid else {})
    jobs = [
        p.job(combo, markets=m, span=span, window=w, segment=seg)
        for m in _market_sets(markets)
        for w, seg, span in (spans_of(windows) if windows else [(None, None, None)])
        for combo in grid
    ]
    rows = run_jobs(jobs, p.frames, client=client, progress=progress)
    return rows_frame(rows)


def run_jobs(
    jobs: Sequence[Job],
    frames: Any,
    *,
    client: Any = None,
    engine: Engine | None = None,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Every job's row, in job order: rows already on disk are read, the rest run on `engine`
    (or one opened from `client` and closed after)."""
    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        done = completed_row(job)
        if done is not None:
            rows[job.key] = done
    todo = [job for job in jobs if job.key not in rows]
    bar = Progress(len(jobs), unit="jobs") if _wanted(progress) else None
    if todo:
        own = engine is None
        engine = engine if engine is not None else open_engine(client)
        try:
            for job, row in engine.run(todo, frames):
                rows[job.key] = row
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if own:
                engine.close()
    if bar is not None:
        bar.finish(len(rows))
    return [_row_for(job, rows[job.key]) for job in jobs]


def rows_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame: the job's columns, then its statistics, then trace, seconds and
    error; window times as UTC Timestamps."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns and c not in TAIL]
    frame = pd.DataFrame(list(rows), columns=[*columns, *TAIL])
    for col in ("trace", "error"):  # None where there is none, not NaN
        frame[col] = pd.Series([row.get(col) for row in rows], dtype=object)
    for col in ("start", "end"):
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def _row_for(job: Job, row: dict[str, Any]) -> dict[str, Any]:
    # A row read back from JSON has lists where the job had tuples: the job's own head wins.
    return {**row, **job.head()}


def _grid(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = list(params)
    choices = []
    for name in names:
        values = params[name]
        if isinstance(values, str) or not isinstance(values, Iterable):
            values = [values]
        values = list(values)
        if not values:
            raise ConfigError(f"params[{name!r}] is empty; give it at least one value")
        choices.append(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def _market_sets(markets: Sequence[str | Sequence[str]] | None) -> list[tuple[str, ...] | None]:
    if markets is None:
        return [None]
    if isinstance(markets, str):
        raise ConfigError(
            f"markets={markets!r} must be a list: each entry, a symbol or a list of symbols, "
            "is one set of jobs, e.g. ['BTC/USDT', 'ETH/USDT']"
        )
    sets: list[tuple[str, ...] | None] = []
    for entry in markets:
        symbols = (entry,) if isinstance(entry, str) else tuple(entry)
        if not symbols:
            raise ConfigError("markets has an empty entry; each entry needs a symbol")
        sets.append(symbols)
    return sets


def _source_text(name_or_path: str | Path, cls: type[Strategy]) -> str:
    """The strategy file's text, which the jobs carry to the workers."""
    text = str(name_or_path)
    path = Path(text) if (text.endswith(".py") or Path(text).exists()) else None
    if path is None:
        module = sys.modules[cls.__module__]
        path = Path(module.__file__ or "")
    return path.read_text()


def _data_ref(data: Any, mode: Sim) -> tuple[DataRef, Any]:
    """The data as a reference the jobs carry, and the frames shipped beside them (if any)."""
    if data is None:
        return Generated(mode.bars, mode.seed), None
    request = StoreData.of(data)
    if request is not None:  # data="store" or StoreData(since=, until=): the market-data store
        root = str(data_root(request.root).resolve())
        return Store(root, to_ms(request.since, "since"), to_ms(request.until, "until")), None
    if isinstance(data, str | Path):
        path = _local_path(data)
        return Files(path, files_digest(path)), None
    if isinstance(data, pd.DataFrame):
        return Frames(frames_digest(data)), data
    if isinstance(data, Mapping) and data:
        values = list(data.values())
        if all(isinstance(v, pd.DataFrame) for v in values):
            frames = {str(k): v for k, v in data.items()}
            return Frames(frames_digest(frames)), frames
        if all(isinstance(v, str | Path) for v in values):
            paths = tuple((str(k), _local_path(v)) for k, v in data.items())
            return Files(paths, files_digest(paths)), None
    raise ConfigError(
        f"data={type(data).__name__} is not sweep data; pass a DataFrame, a CSV or Parquet "
        "path, a dict from market to DataFrames (or to paths), or \"store\""
    )


def _local_path(value: str | Path) -> str:
    text = str(value)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    elif "://" in text:
        raise ConfigError(
            f"data {text!r}: sweeps read bar files by path or file:// URL; copy remote files "
            "where every worker can read them"
        )
    return str(Path(text).resolve())


def _wanted(progress: bool | None) -> bool:
    return Progress.wanted() if progress is None else progress

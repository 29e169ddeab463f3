"""The market-data store: OHLCV bars and funding rates in a Zarr v3 hierarchy on local disk.

Layout (``$VIGIL_HOME/data`` by default, ``VIGIL_HOME`` defaulting to ``~/.vigil``)::

    <root>/                              a Zarr group
      <exchange>/<market>/<timeframe>/   one group per exchange, market and timeframe
        time                             int64 open times, ms since the epoch, increasing
        open high low close volume       float64
      <exchange>/<market>/funding/       funding rates of a perpetual, stored the same way
        time rate mark_price             int64 funding times; float64 (mark_price NaN if unknown)

``<market>`` is the ccxt symbol with ``/`` as ``_`` and ``:`` as ``-`` (``BTC_USDT-USDT``); the
symbol itself is in the group's attributes.

**Commit point.** A group's ``rows`` and ``complete_until`` attributes are written in one
atomic update of its ``zarr.json``, after the chunks they cover: a reader takes rows
``[:rows]`` and never sees a half-written one. Chunk files are written whole (zarr's local
store writes a temporary file and renames it), so rewriting the last, partly filled chunk
on an append never exposes a torn chunk either; rows past ``rows`` left by a crash are
overwritten by the next append.

**Coverage.** ``start`` and ``complete_until`` (ms, end exclusive) bound the range the
exchange was asked about: every bar it has there is stored, and a bar missing inside it is a
gap the exchange itself has (``gaps``: ``[from, to)`` pairs), never filled with invented bars.
A download asks only for what lies outside that range.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import zarr
from zarr.codecs import ZstdCodec

from runtime._errors import ConfigError
from runtime.model._bars import OHLCV, TIMEFRAMES

__all__ = [
    "BAR_COLUMNS",
    "FUNDING",
    "FUNDING_COLUMNS",
    "MarketStore",
    "Series",
    "data_root",
    "market_key",
    "to_ms",
]

BAR_COLUMNS: Final = OHLCV
FUNDING: Final = "funding"
FUNDING_COLUMNS: Final = ("rate", "mark_price")
FORMAT: Final = "vigil-market-data"
FORMAT_VERSION: Final = 1
# 2**16 one-minute bars are 45 days; a year is 9 chunks per column.
BAR_CHUNK_ROWS: Final = 65_536
FUNDING_CHUNK_ROWS: Final = 4_096
ZSTD_LEVEL: Final = 3
_LOCK: Final = ".lock"

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


def data_root(store: str | os.PathLike[str] | None = None) -> Path:
    """Where the store lives: ``store`` if given, else ``$VIGIL_HOME/data`` (``~/.vigil/data``)."""
    if store is not None:
        return Path(store).expanduser()
    home = os.environ.get("VIGIL_HOME") or "~/.vigil"
    return Path(home).expanduser() / "data"


def market_key(symbol: str) -> str:
    """The group name of a market: ``"BTC/USDT:USDT"`` -> ``"BTC_USDT-USDT"``."""
    if not isinstance(symbol, str) or "/" not in symbol:
        raise ConfigError(f"market {symbol!r} is not a ccxt symbol; write it as 'BTC/USDT'")
    return symbol.replace("/", "_").replace(":", "-")


def to_ms(value: Any, name: str) -> int | None:
    """A time given as an ISO string, a datetime or Timestamp, or epoch ms; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not a time; write e.g. '2024-01-01'")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)  # epoch milliseconds
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{name}={value!r} is not a time; write e.g. '2024-01-01' or '2024-01-01T12:00'"
        ) from None
    if ts is pd.NaT:
        raise ConfigError(f"{name}={value!r} is not a time; write e.g. '2024-01-01'")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def timeframe_ms(timeframe: str) -> int:
    if timeframe not in TIMEFRAMES:
        raise ConfigError(
            f"timeframe {timeframe!r} is not supported; valid: {', '.join(TIMEFRAMES)}"
        )
    return TIMEFRAMES[timeframe] // 1_000_000


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a group holds: ``rows`` rows over ``[start, complete_until)``, first and last row
    times (None when empty) and the exchange's own gaps."""

    rows: int
    start: int
    complete_until: int
    first: int | None
    last: int | None
    gaps: tuple[tuple[int, int], ...]


class Series:
    """One group of the store: a ``time`` array and float64 value columns, appended in order.

    Writing (:meth:`append`, :meth:`commit`) needs the group's lock (:meth:`MarketStore.writing`);
    reading needs none. Appends are buffered in memory until :meth:`commit`.
    """

    def __init__(self, path: Path, group: zarr.Group) -> None:
        self.path = path
        self.group = group
        attrs: dict[str, Any] = dict(group.attrs)
        if attrs.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a vigil market-data group (no format attribute)")
        self.attrs = attrs
        self.columns: tuple[str, ...] = tuple(attrs["columns"])
        self.symbol: str = attrs["symbol"]
        self.exchange: str = attrs["exchange"]
        self.name: str = attrs["name"]  # a timeframe, or "funding"
        self.step_ms: int | None = attrs.get("step_ms")
        self.rows: int = int(attrs["rows"])
        self.start: int = int(attrs["start"])
        self.complete_until: int = int(attrs["complete_until"])
        self.gaps: list[list[int]] = [list(g) for g in attrs.get("gaps", [])]
        self.first: int | None = attrs.get("first")
        self.last: int | None = attrs.get("last")
        self._arrays: dict[str, zarr.Array[Any]] = {}
        self._pending_t: list[Int64Array] = []
        self._pending_v: dict[str, list[Float64Array]] = {c: [] for c in self.columns}
        self._pending_until: int | None = None
        self._pending_start: int | None = None

    def array(self, name: str) -> zarr.Array[Any]:
        arr = self._arrays.get(name)
        if arr is None:
            node = self.group[name]
            if not isinstance(node, zarr.Array):
                raise ConfigError(f"{self.path / name} is damaged: not an array")
            arr = self._arrays[name] = node
        return arr

    @property
    def coverage(self) -> Coverage:
        return Coverage(
            self.rows,
            self.start,
            self.complete_until,
            self.first,
            self.last,
            tuple((int(a), int(b)) for a, b in self.gaps),
        )

    @property
    def pending_rows(self) -> int:
        return sum(len(t) for t in self._pending_t)

    # Reading.
    def read(
        self, since_ms: int | None = None, until_ms: int | None = None
    ) -> tuple[Int64Array, dict[str, Float64Array]]:
        """Rows with ``since_ms <= time < until_ms`` (committed rows only)."""
        rows = self.rows
        if rows == 0:
            empty = np.empty(0, np.float64)
            return np.empty(0, np.int64), {c: empty for c in self.columns}
        times = np.asarray(self.array("time")[:rows], dtype=np.int64)
        lo = 0 if since_ms is None else int(np.searchsorted(times, since_ms, side="left"))
        hi = rows if until_ms is None else int(np.searchsorted(times, until_ms, side="left"))
        hi = max(hi, lo)
        cols = {c: np.asarray(self.array(c)[lo:hi], dtype=np.float64) for c in self.columns}
        return times[lo:hi], cols

    # Writing.
    def append(
        self,
        times: Int64Array,
        values: Mapping[str, Float64Array],
        covered_until: int,
    ) -> int:
        """Buffer rows (strictly increasing times after every stored row) and extend the
        covered range to ``covered_until``; returns how many rows were taken. Rows at or
        before the last one held are skipped (a resumed page may overlap)."""
        last = self._last_held()
        times = np.asarray(times, dtype=np.int64)
        keep = times > last if last is not None else np.ones(len(times), bool)
        if len(times) > 1 and np.any(np.diff(times) <= 0):
            raise ConfigError(f"{self.symbol} {self.name}: times are not strictly increasing")
        times = times[keep]
        if len(times):
            self._pending_t.append(times)
            for c in self.columns:
                self._pending_v[c].append(np.asarray(values[c], dtype=np.float64)[keep])
        if covered_until > (self._pending_until or self.complete_until):
            self._pending_until = covered_until
        return len(times)

    def extend_start(self, start_ms: int) -> None:
        """Record that the exchange has nothing before the first row back to ``start_ms``."""
        if start_ms < self.start:
            self._pending_start = start_ms

    def _last_held(self) -> int | None:
        if self._pending_t:
            return int(self._pending_t[-1][-1])
        return self.last

    def commit(self) -> int:
        """Write the buffered rows, then publish ``rows``/``complete_until``; returns rows
        written. Chunks first, the group's attributes last (the commit point)."""
        n = self.pending_rows
        if n == 0 and self._pending_until is None and self._pending_start is None:
            return 0
        lo, hi = self.rows, self.rows + n
        if n:
            times = np.concatenate(self._pending_t)
            new_gaps = _gaps(self.last, times, self.step_ms)
            columns = [("time", times)]
            columns += [(c, np.concatenate(self._pending_v[c])) for c in self.columns]
            for name, data in columns:
                arr = self.array(name)
                if arr.shape[0] != hi:
                    arr.resize((hi,))
                arr[lo:hi] = data
            self.gaps.extend(new_gaps)
            if self.first is None:
                self.first = int(times[0])
            self.last = int(times[-1])
        self.rows = hi
        if self._pending_until is not None:
            self.complete_until = max(self.complete_until, self._pending_until)
        if self._pending_start is not None:
            self.start = min(self.start, self._pending_start)
        self._pending_t.clear()
        for v in self._pending_v.values():
            v.clear()
        self._pending_until = self._pending_start = None
        self._publish()
        return n

    def _publish(self) -> None:
        update = {
            "rows": self.rows,
            "start": self.start,
            "complete_until": self.complete_until,
            "first": self.first,
            "last": self.last,
            "gaps": self.gaps,
        }
        self.group.update_attributes(update)  # one write of zarr.json: the commit point
        self.attrs.update(update)


def _gaps(last: int | None, times: Int64Array, step_ms: int | None) -> list[list[int]]:
    """``[from, to)`` ranges with no row, between consecutive times more than a step apart."""
    if step_ms is None or not len(times):
        return []
    if last is not None:
        times = np.concatenate(([last], times))
    d = np.diff(times)
    at = np.nonzero(d > step_ms)[0]
    return [[int(times[i]) + step_ms, int(times[i + 1])] for i in at]


class MarketStore:
    """The store at ``root`` (see the module doc)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = data_root(root)

    def __repr__(self) -> str:
        return f"MarketStore({str(self.root)!r})"

    def group_path(self, exchange: str, symbol: str, name: str) -> Path:
        return self.root / exchange / market_key(symbol) / name

    def open(self, exchange: str, symbol: str, name: str) -> Series | None:
        """The group of ``symbol``'s ``name`` (a timeframe or ``"funding"``), or None."""
        path = self.group_path(exchange, symbol, name)
        if not (path / "zarr.json").is_file() and path.with_name(path.name + ".old").exists():
            self._repair(exchange, symbol, name)  # a rewrite died between its two renames
        if not (path / "zarr.json").is_file():
            return None
        return Series(path, zarr.open_group(str(path), mode="r+"))

    def create(
        self, exchange: str, symbol: str, name: str, *, start: int, kind: str = "ohlcv"
    ) -> Series:
        """A new empty group covering nothing yet, from ``start``: built beside its place and
        renamed into it, so a crash never leaves a group without its arrays or attributes."""
        path = self.group_path(exchange, symbol, name)
        building = path.with_name(path.name + ".init")
        if building.exists():
            shutil.rmtree(building)
        self._create_at(building, exchange, symbol, name, start=start, kind=kind)
        if path.exists():  # not a group (open() found no zarr.json): debris of a crash
            shutil.rmtree(path)
        os.replace(building, path)
        return Series(path, zarr.open_group(str(path), mode="r+"))

    def _create_at(
        self, path: Path, exchange: str, symbol: str, name: str, *, start: int, kind: str
    ) -> Series:
        self._ensure_parents(path)
        funding = kind == FUNDING
        columns = FUNDING_COLUMNS if funding else BAR_COLUMNS
        rows = FUNDING_CHUNK_ROWS if funding else BAR_CHUNK_ROWS
        group = zarr.open_group(str(path), mode="w")
        compressors = [ZstdCodec(level=ZSTD_LEVEL, checksum=True)]
        group.create_array(
            "time", shape=(0,), chunks=(rows,), dtype="int64", compressors=compressors,
            fill_value=0,
        )  # fmt: skip
        for c in columns:
            group.create_array(
                c, shape=(0,), chunks=(rows,), dtype="float64", compressors=compressors,
                fill_value=float("nan"),
            )  # fmt: skip
        group.update_attributes(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "exchange": exchange,
                "symbol": symbol,
                "name": name,
                "kind": kind,
                "columns": list(columns),
                "step_ms": None if funding else timeframe_ms(name),
                "chunk_rows": rows,
                "rows": 0,
                "start": start,
                "complete_until": start,
                "first": None,
                "last": None,
                "gaps": [],
            }
        )
        return Series(path, group)

    def _ensure_parents(self, path: Path) -> None:
        # Every level is a group, so zarr.open_group(root) walks the whole store.
        node = path.parent
        chain = []
        while node != self.root.parent and node != node.parent:
            chain.append(node)
            if node == self.root:
                break
            node = node.parent
        for p in reversed(chain):
            if not (p / "zarr.json").is_file():
                p.mkdir(parents=True, exist_ok=True)
                zarr.open_group(str(p), mode="a")

    @contextlib.contextmanager
    def writing(self, exchange: str, symbol: str, name: str) -> Iterator[None]:
        """Hold the write lock of one group (one writer at a time; a second is refused).
        A rewrite that a crash interrupted is completed or undone first."""
        path = self.group_path(exchange, symbol, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.parent / f".{path.name}{_LOCK}"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(
                    f"another process is writing {symbol} {name} of {exchange} in {self.root}; "
                    "wait for it to finish"
                ) from None
            self._finish_swap(path)
            yield
        finally:
            os.close(fd)

    def _repair(self, exchange: str, symbol: str, name: str) -> None:
        # Readers take no lock; one that finds a rewrite half done completes it, unless a
        # writer is at work (which completes it itself).
        with contextlib.suppress(ConfigError), self.writing(exchange, symbol, name):
            pass

    def rewrite(
        self,
        old: Series,
        times: Int64Array,
        values: Mapping[str, Float64Array],
        *,
        start: int,
    ) -> Series:
        """Replace a group with ``times``/``values`` prepended to its rows (a download that
        reaches further back than the store): built beside it, then swapped in by renames."""
        old_t, old_v = old.read()
        new_path = old.path.with_name(old.path.name + ".new")
        if new_path.exists():
            shutil.rmtree(new_path)
        series = self._create_at(
            new_path, old.exchange, old.symbol, old.name, start=start, kind=old.attrs["kind"]
        )
        series.gaps = []
        keep = times < (old.first if old.first is not None else old.complete_until)
        series.append(
            np.concatenate((times[keep], old_t)),
            {c: np.concatenate((np.asarray(values[c])[keep], old_v[c])) for c in old.columns},
            old.complete_until,
        )
        series.commit()
        gone = old.path.with_name(old.path.name + ".old")
        os.replace(old.path, gone)
        os.replace(new_path, old.path)
        shutil.rmtree(gone)
        return Series(old.path, zarr.open_group(str(old.path), mode="r+"))

    def _finish_swap(self, path: Path) -> None:
        """Complete or undo a rewrite a crash interrupted (see :meth:`rewrite`)."""
        new = path.with_name(path.name + ".new")
        gone = path.with_name(path.name + ".old")
        if gone.exists():
            if not path.exists() and new.exists():
                os.replace(new, path)
            if path.exists():
                shutil.rmtree(gone)
        if new.exists() and path.exists():
            shutil.rmtree(new)

    # Catalogue.
    def series(self) -> list[Series]:
        """Every group in the store, sorted by exchange, market and name."""
        out: list[Series] = []
        if not self.root.is_dir():
            return out
        for doc in sorted(self.root.glob("*/*/*/zarr.json")):
            if "." in doc.parent.name:
                continue  # a group being built or swapped (".init", ".new", ".old")
            try:
                attrs = json.loads(doc.read_text()).get("attributes", {})
            except (OSError, ValueError):
                continue
            if attrs.get("format") != FORMAT:
                continue
            out.append(Series(doc.parent, zarr.open_group(str(doc.parent), mode="r")))
        return out

    def catalog(self) -> pd.DataFrame:
        """One row per group: exchange, market, timeframe (or "funding"), first and last row
        time, count, gaps (how many, and the bars they miss), covered range."""
        rows = []
        for s in self.series():
            missing = sum((b - a) // s.step_ms for a, b in s.gaps) if s.step_ms else 0
            rows.append(
                {
                    "exchange": s.exchange,
                    "market": s.symbol,
                    "timeframe": s.name,
                    "first": _ts(s.first),
                    "last": _ts(s.last),
                    "count": s.rows,
                    "gaps": len(s.gaps),
                    "missing": int(missing),
                    "complete_until": _ts(s.complete_until),
                }
            )
        columns = [
            "exchange", "market", "timeframe", "first", "last", "count", "gaps", "missing",
            "complete_until",
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)


def _ts(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def frame_of(times: Int64Array, cols: Mapping[str, Float64Array], columns: Sequence[str]) -> Any:
    index = pd.DatetimeIndex(times.astype("datetime64[ms]").astype("datetime64[ns]"), tz="UTC")
    index.name = "timestamp"
    return pd.DataFrame({c: cols[c] for c in columns}, index=index, copy=False)

"""Reading traces: ``read_trace``, ``tail_records``, ``iter_events`` and the run listing.

A reader sees a consistent snapshot: Zarr rows ``[:committed]`` plus the WAL records past them,
up to the last intact one. It never modifies a file, so it is safe next to a live writer and on a
trace whose writer crashed (a torn last record is skipped, leftover ``.partial`` files ignored).

Payloads stay encoded until asked for: ``read_trace``'s ``payload`` column is a
:class:`PayloadArray`, which decodes an element when it is accessed.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

import numcodecs
import numpy as np
import pandas as pd
import zarr
import zarr.api.asynchronous as zarr_async
from pandas.api.extensions import ExtensionArray, ExtensionDtype
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.codecs.bytes import Endian
from zarr.core.sync import sync as _zarr_sync  # zarr's own sync bridge: one shared IO loop
from zarr.storage import LocalStore

from runtime._errors import ConfigError, TraceError
from traces._codec import Payloads, encode, gc_paused
from traces._schema import COLUMNS, NO_ASSET, SCHEMA_VERSION, Kind
from traces._wal import WalRecords, WalScan, scan_wal

__all__ = [
    "Event",
    "PayloadArray",
    "PayloadDtype",
    "RunInfo",
    "iter_events",
    "list_runs",
    "read_trace",
    "tail_frame",
    "tail_records",
]

# Layout shared with the writer. The payload column is three arrays: `payload` (uint8, every
# payload back to back), `payload_offset` and `payload_size`. Why not zarr's variable-length
# bytes dtype: in zarr 3.1 it has no v3 spec (it warns that other readers may not read it), and
# reading it builds one Python bytes object per row, while this layout reads as flat numpy
# arrays and lets payloads stay encoded until a row is looked at (on 160K small payloads,
# measured: 15% faster to write and 25% faster to read than vlen-bytes).
PAYLOAD_ARRAYS: dict[str, str] = {
    "payload_offset": "int64",
    "payload_size": "uint32",
    "payload": "uint8",
}
ARRAYS: dict[str, str] = {**COLUMNS, **PAYLOAD_ARRAYS}
WAL_DIR = "wal"
LOCK_FILE = "writer.lock"
FIELDS = ("seq", "ts_ns", "ts_exchange_ns", "kind", "asset", "payload")

_SPARSE = 64  # a selection this much sparser than its span is read chunk by chunk
_RETRIES = 20  # a live writer can move `committed` and delete WAL segments between our reads


def _sync(coro: Any) -> Any:
    return _zarr_sync(coro)


# ------------------------------------------------------------------------------------------------
# Chunk files


def check_codecs(path: Path, arrays: Mapping[str, zarr.AsyncArray[Any]]) -> numcodecs.Zstd:
    """Check the layout the direct chunk reader and writer rely on: every array 1-D, zarr v3,
    codecs exactly little-endian bytes then zstd without checksum, one level for all. Returns
    the matching numcodecs codec."""
    levels: set[int] = set()
    for name, arr in arrays.items():
        meta = arr.metadata
        codecs: tuple[Any, ...] = tuple(getattr(meta, "codecs", ()))
        ok = (
            meta.zarr_format == 3
            and len(arr.shape) == 1
            and len(codecs) == 2
            and isinstance(codecs[0], BytesCodec)
            and codecs[0].endian in (None, Endian.little)
            and isinstance(codecs[1], ZstdCodec)
            and not codecs[1].checksum
        )
        if not ok:
            raise TraceError(
                f"trace {path}: array {name} is not laid out as vigil writes traces "
                f"(1-D, bytes + zstd codecs): {codecs}"
            )
        levels.add(codecs[1].level)
    if len(levels) != 1:
        raise TraceError(f"trace {path}: arrays use different zstd levels {sorted(levels)}")
    return numcodecs.Zstd(level=levels.pop())


_pool: ThreadPoolExecutor | None = None
_POOL_MIN_CHUNKS = 8  # below this, a thread hop costs more than it saves


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="trace-read")
    return _pool


@dataclass(frozen=True, slots=True)
class _ArrayFiles:
    """One trace array read straight from its chunk files.

    Zarr's read path costs ~0.4 ms per chunk in asyncio and thread plumbing (0.5 s per 10M-row
    column, measured) against ~0.1 ms to read and unzstd the file; :func:`check_codecs` has
    verified the codecs, so a chunk is ``zstd(values.tobytes())``. Only rows below
    ``committed`` are read, and the writer has written each of their chunks whole.
    """

    name: str
    root: Path
    chunk: int
    dtype: np.dtype[Any]
    key: Callable[[tuple[int, ...]], str]
    zstd: numcodecs.Zstd

    @staticmethod
    def of(path: Path, name: str, arr: zarr.AsyncArray[Any], zstd: numcodecs.Zstd) -> _ArrayFiles:
        meta = arr.metadata
        return _ArrayFiles(
            name,
            path / name,
            int(meta.chunks[0]),
            np.dtype(arr.dtype),
            meta.encode_chunk_key,
            zstd,
        )

    def _decode(self, k: int, pieces: list[tuple[np.ndarray, slice]]) -> None:
        """Decode chunk ``k`` once and copy each ``src`` slice of it into its ``out``."""
        path = self.root / self.key((k,))
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise TraceError(
                f"trace {self.root.parent} is damaged: chunk file {path} of committed rows is "
                "missing"
            ) from None
        if len(pieces) == 1 and pieces[0][1] == slice(0, self.chunk):
            self.zstd.decode(raw, out=pieces[0][0])  # straight into place, no copy
            return
        full = np.frombuffer(self.zstd.decode(raw), self.dtype)
        for out, src in pieces:
            out[:] = full[src]

    def read_ranges(self, ranges: Sequence[tuple[int, int]], extra: int = 0) -> np.ndarray:
        """Rows ``[lo, hi)`` of each range, concatenated, followed by ``extra`` uninitialised
        rows for the caller to fill (saves copying a large result to append a WAL tail).
        Each chunk is decoded once, however many ranges touch it; many chunks are decoded on a
        few threads (zstd drops the GIL)."""
        total = sum(hi - lo for lo, hi in ranges)
        out = np.empty(total + extra, self.dtype)
        by_chunk: dict[int, list[tuple[np.ndarray, slice]]] = {}
        pos = 0
        size = self.chunk
        for lo, hi in ranges:
            for k in range(lo // size, (hi - 1) // size + 1 if hi > lo else lo // size):
                a, b = max(lo, k * size), min(hi, (k + 1) * size)
                by_chunk.setdefault(k, []).append(
                    (out[pos : pos + b - a], slice(a - k * size, b - k * size))
                )
                pos += b - a
        if len(by_chunk) < _POOL_MIN_CHUNKS:
            for k, pieces in by_chunk.items():
                self._decode(k, pieces)
        else:
            for _ in _executor().map(lambda item: self._decode(*item), by_chunk.items()):
                pass
        return out

    def read(self, lo: int, hi: int, extra: int = 0) -> np.ndarray:
        return self.read_ranges([(lo, hi)], extra)

    def take(self, index: np.ndarray) -> np.ndarray:
        """Rows at ``index`` (any order), reading each chunk they touch once."""
        if not len(index):
            return np.empty(0, self.dtype)
        chunks = np.unique(index // self.chunk)
        data = self.read_ranges([(int(k) * self.chunk, (int(k) + 1) * self.chunk) for k in chunks])
        pos = np.searchsorted(chunks, index // self.chunk) * self.chunk + index % self.chunk
        result: np.ndarray = data[pos]
        return result


# ------------------------------------------------------------------------------------------------
# Snapshot


@dataclass(slots=True)
class _View:
    """A consistent read-only snapshot of one trace."""

    path: Path
    committed: int
    chunk_rows: int
    symbols: list[str]
    files: dict[str, _ArrayFiles]
    wal: WalRecords

    @property
    def total(self) -> int:
        return self.committed + len(self.wal)

    def read(self, lo: int, hi: int, fields: Iterable[str] = FIELDS) -> dict[str, Any]:
        """Rows ``[lo, hi)`` of the requested fields: numpy arrays, and Payloads for payload."""
        fields = list(fields)
        z_hi = min(hi, self.committed)
        w_lo, w_hi = max(lo, self.committed) - self.committed, hi - self.committed
        wal = _wal_fields(self.wal, w_lo, w_hi, fields) if w_lo < w_hi else None
        if lo >= z_hi:
            return wal if wal is not None else _wal_fields(WalRecords.empty(lo), 0, 0, fields)
        n_wal = w_hi - w_lo if wal is not None else 0
        out: dict[str, Any] = {}
        for f in fields:
            if f != "payload":
                # Committed rows land in an array with room left for the WAL rows after them.
                arr = self.files[f].read(lo, z_hi, extra=n_wal)
                if wal is not None:
                    arr[z_hi - lo :] = wal[f]
                out[f] = arr
                continue
            tail = wal["payload"].compact() if wal is not None else Payloads.empty()
            offsets = self.files["payload_offset"].read(lo, z_hi)
            sizes = self.files["payload_size"].read(lo, z_hi, extra=n_wal)
            p = _read_blob(self.files["payload"], offsets, sizes[: z_hi - lo], len(tail.blob))
            if wal is not None:
                base = len(p.blob) - len(tail.blob)
                p.blob[base:] = tail.blob
                sizes[z_hi - lo :] = tail.sizes
                p = Payloads(p.blob, np.concatenate([p.offsets, tail.offsets + base]), sizes)
            out[f] = p
        return out

    def read_at(self, index: np.ndarray, fields: Iterable[str] = FIELDS) -> dict[str, Any]:
        """Rows at sorted positions ``index``, reading only the chunks they touch."""
        fields = list(fields)
        index = np.asarray(index, np.int64)
        split = int(np.searchsorted(index, self.committed))
        z_idx, w_idx = index[:split], index[split:] - self.committed
        parts: list[dict[str, Any]] = []
        if len(z_idx):
            parts.append(self._read_committed(fields, lambda f: f.take(z_idx)))
        if len(w_idx):
            w = _wal_fields(self.wal, 0, len(self.wal), fields)
            parts.append({f: (v.take(w_idx) if f == "payload" else v[w_idx]) for f, v in w.items()})
        return _join_parts(parts, fields)

    def _read_committed(
        self, fields: list[str], get: Callable[[_ArrayFiles], np.ndarray]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields:
            if f == "payload":
                offsets = get(self.files["payload_offset"])
                sizes = get(self.files["payload_size"])
                out[f] = _read_blob(self.files["payload"], offsets, sizes)
            else:
                out[f] = get(self.files[f])
        return out


def _join_parts(parts: list[dict[str, Any]], fields: list[str]) -> dict[str, Any]:
    if not parts:
        return _wal_fields(WalRecords.empty(0), 0, 0, fields)
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for f in fields:
        a, b = parts[0][f], parts[1][f]
        out[f] = Payloads.concat([a, b]) if f == "payload" else np.concatenate([a, b])
    return out


def _wal_fields(wal: WalRecords, lo: int, hi: int, fields: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        if f == "seq":
            out[f] = np.arange(wal.seq0 + lo, wal.seq0 + hi, dtype=np.uint64)
        elif f == "payload":
            out[f] = wal.payloads.take(slice(lo, hi))
        else:
            out[f] = getattr(wal, f)[lo:hi]
    return out


def _read_blob(
    blob: _ArrayFiles, offsets: np.ndarray, sizes: np.ndarray, extra: int = 0
) -> Payloads:
    """Fetch the payload bytes of these rows, one range per contiguous run (the writer pads each
    commit to a whole blob chunk, so runs break at commit boundaries). The returned blob ends
    with ``extra`` spare bytes."""
    offsets = offsets.astype(np.int64, copy=False)
    if not len(offsets):
        return Payloads(np.empty(extra, np.uint8), offsets, sizes)
    ends = offsets + sizes
    first = np.flatnonzero(np.concatenate([[True], offsets[1:] != ends[:-1]]))
    last = np.concatenate([first[1:], [len(offsets)]]) - 1
    run_lo, run_hi = offsets[first], ends[last]
    buf = blob.read_ranges(list(zip(run_lo.tolist(), run_hi.tolist(), strict=True)), extra)
    run_base = np.concatenate([[0], np.cumsum(run_hi - run_lo)[:-1]])
    # A row's offset in `buf` = its offset - its run's start + where that run landed in buf:
    # a per-run constant, spread to the run's rows with a cumulative sum of its changes.
    shift = np.zeros(len(offsets), np.int64)
    delta = run_base - run_lo
    shift[first] = np.diff(delta, prepend=0)
    np.cumsum(shift, out=shift)
    shift += offsets
    return Payloads(buf, shift, sizes)


async def _open_arrays(
    path: Path,
) -> tuple[dict[str, Any], dict[str, zarr.AsyncArray[Any]]]:
    store = LocalStore(path, read_only=True)
    group = await zarr_async.open_group(store=store, mode="r")
    attrs = dict(group.attrs)
    _check_attrs(path, attrs)
    nodes = await asyncio.gather(*(group.getitem(n) for n in ARRAYS))
    arrays = {n: cast(zarr.AsyncArray[Any], a) for n, a in zip(ARRAYS, nodes, strict=True)}
    return attrs, arrays


def _check_attrs(path: Path, attrs: Mapping[str, Any]) -> None:
    version = attrs.get("schema_version")
    if version is None:
        raise TraceError(
            f"{path} is a Zarr group but not a vigil trace: it has no schema_version attribute"
        )
    if version != SCHEMA_VERSION:
        raise TraceError(
            f"trace {path} has schema_version {version!r}; this vigil reads version "
            f"{SCHEMA_VERSION}: open it with the vigil release that wrote it"
        )


def check_trace_path(path: Path) -> None:
    """Raise TraceError unless ``path`` looks like a trace directory."""
    if not path.exists():
        raise TraceError(f"no trace at {path}: the directory does not exist")
    if not (path / "zarr.json").is_file():
        raise TraceError(f"no trace at {path}: it has no zarr.json (not a Zarr group)")


def open_view(path: str | Path) -> _View:
    """Snapshot the trace at ``path``. Raises TraceError if it is missing or unreadable."""
    path = Path(path)
    check_trace_path(path)
    last: Exception | None = None
    for _ in range(_RETRIES):
        try:
            attrs, arrays = _sync(_open_arrays(path))
            committed = int(attrs["committed"])
            scan: WalScan = scan_wal(path / WAL_DIR, committed)
        except FileNotFoundError as exc:  # a writer deleted a WAL segment we had listed
            last = exc
            continue
        except KeyError as exc:
            raise TraceError(f"trace {path} is incomplete: missing {exc}") from exc
        if scan.gap_before:  # committed moved on and its segments went away: look again
            last = None
            continue
        zstd = check_codecs(path, arrays)
        files = {n: _ArrayFiles.of(path, n, a, zstd) for n, a in arrays.items()}
        symbols = list(attrs.get("symbols", []))
        for index, symbol in scan.symbols:
            if index == len(symbols):
                symbols.append(symbol)
        return _View(
            path, committed, int(attrs.get("chunk_rows", 8192)), symbols, files, scan.records
        )
    raise TraceError(
        f"trace {path} kept changing while being read ({_RETRIES} attempts) or its WAL is "
        f"missing records after committed row: {last!r}"
    )


# ------------------------------------------------------------------------------------------------
# Lazy payload column


class PayloadDtype(ExtensionDtype):
    """dtype of :class:`PayloadArray`: msgpack-encoded dicts decoded on access."""

    name = "payload"
    type = dict  # the scalar type: a decoded payload
    kind = "O"
    na_value = None

    @classmethod
    def construct_array_type(cls) -> builtins.type[PayloadArray]:
        return PayloadArray


class PayloadArray(ExtensionArray):
    """A pandas column of trace payloads kept encoded; an element is decoded when accessed.

    ``arr[i]`` returns a fresh dict. Bulk conversions (``to_numpy``, ``tolist``, iteration,
    ``Series.map``) decode with the cyclic GC paused. Selecting rows shares the encoded bytes.
    The array is immutable. ``raw(i)`` returns the encoded bytes, ``field(key)`` one key of
    every payload.
    """

    _dtype = PayloadDtype()

    def __init__(self, payloads: Payloads) -> None:
        self._p = payloads

    # -- construction
    @classmethod
    def _from_sequence(cls, scalars: Any, *, dtype: Any = None, copy: bool = False) -> PayloadArray:
        if isinstance(scalars, PayloadArray):
            return scalars.copy() if copy else scalars
        parts: list[bytes] = []
        na: list[bool] = []
        for s in scalars:
            missing = s is None or (isinstance(s, float) and math.isnan(s))
            na.append(missing)
            parts.append(b"" if missing else encode(s))
        p = Payloads.from_bytes(parts)
        offsets = np.where(np.array(na, bool), -1, p.offsets) if any(na) else p.offsets
        return cls(Payloads(p.blob, offsets, p.sizes))

    @classmethod
    def _from_factorized(cls, values: np.ndarray, original: PayloadArray) -> PayloadArray:
        return cls(Payloads.from_bytes([bytes(v) for v in values]))

    def _values_for_factorize(self) -> tuple[np.ndarray, Any]:
        out = np.empty(len(self), dtype=object)
        out[:] = [self.raw(i) for i in range(len(self))]
        return out, None

    # -- the ExtensionArray contract
    @property
    def dtype(self) -> PayloadDtype:
        return self._dtype

    def __len__(self) -> int:
        return len(self._p)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (int, np.integer)):
            i = int(item)
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(f"index {item} is out of bounds for {len(self)} payloads")
            return None if self._p.offsets[i] < 0 else self._p.decode(i)
        if isinstance(item, tuple) and len(item) == 1:
            item = item[0]
        if not isinstance(item, slice):
            item = pd.api.indexers.check_array_indexer(self, item)
        return PayloadArray(self._p.take(item))

    @property
    def nbytes(self) -> int:
        return int(self._p.offsets.nbytes + self._p.sizes.nbytes + self._p.sizes.sum())

    def isna(self) -> np.ndarray:
        return self._p.offsets < 0

    def take(
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        allow_fill: bool = False,
        fill_value: Any = None,
    ) -> PayloadArray:
        idx = np.asarray(indices, dtype=np.intp)
        if allow_fill:
            if fill_value is not None and not (
                isinstance(fill_value, float) and math.isnan(fill_value)
            ):
                raise ValueError("PayloadArray.take can only fill with None")
            if len(idx) and idx.min() < -1:
                raise ValueError("take: indices below -1 with allow_fill=True")
            missing = idx == -1
            safe = np.where(missing, 0, idx)
            if len(self) == 0 and len(idx):
                if not missing.all():
                    raise IndexError("cannot take from an empty PayloadArray")
                return PayloadArray(
                    Payloads(
                        self._p.blob, np.full(len(idx), -1, np.int64), np.zeros(len(idx), np.uint32)
                    )
                )
            offsets = np.where(missing, -1, self._p.offsets[safe])
            sizes = np.where(missing, 0, self._p.sizes[safe]).astype(np.uint32)
            return PayloadArray(Payloads(self._p.blob, offsets, sizes))
        return PayloadArray(self._p.take(idx))

    def copy(self) -> PayloadArray:
        return PayloadArray(Payloads(self._p.blob, self._p.offsets.copy(), self._p.sizes.copy()))

    @classmethod
    def _concat_same_type(cls, to_concat: Sequence[PayloadArray]) -> PayloadArray:
        blobs, offsets, sizes = [], [], []
        base = 0
        for arr in to_concat:
            p = arr._p
            blobs.append(p.blob)
            offsets.append(np.where(p.offsets < 0, -1, p.offsets + base))
            sizes.append(p.sizes)
            base += len(p.blob)
        if not blobs:
            return cls(Payloads.empty())
        return cls(Payloads(np.concatenate(blobs), np.concatenate(offsets), np.concatenate(sizes)))

    def __eq__(self, other: Any) -> np.ndarray:  # type: ignore[override]
        if isinstance(other, (pd.Series, pd.Index, pd.DataFrame)):
            return NotImplemented
        values = self.to_numpy()
        if isinstance(other, (PayloadArray, np.ndarray, list)):
            others = list(other)
            if len(others) != len(values):
                raise ValueError("lengths must match to compare")
            return np.array([a == b for a, b in zip(values, others, strict=True)], dtype=bool)
        return np.array([v == other for v in values], dtype=bool)

    def __iter__(self) -> Iterator[Any]:
        block = 4096
        for lo in range(0, len(self), block):
            yield from self[lo : lo + block].to_numpy()

    def to_numpy(self, dtype: Any = None, copy: bool = False, na_value: Any = None) -> np.ndarray:
        out = np.empty(len(self), dtype=object)
        if len(self):
            na = self.isna()
            if na.any():
                good = ~na
                out[good] = PayloadArray(self._p.take(good))._decode_all()
                out[na] = na_value
            else:
                out[:] = self._decode_all()
        return out if dtype is None or np.dtype(dtype) == object else out.astype(dtype)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.to_numpy(dtype=dtype)

    def _formatter(self, boxed: bool = False) -> Callable[[Any], str | None]:
        def fmt(value: Any) -> str:
            text = repr(value)
            return text if len(text) <= 80 else text[:77] + "..."

        return fmt

    def _decode_all(self) -> list[Any]:
        return self._p.decode_all()

    # -- extras
    def raw(self, i: int) -> bytes:
        """The encoded (msgpack) bytes of element ``i``."""
        return self._p.raw(i)

    def field(self, key: str, default: Any = None) -> np.ndarray:
        """``payload.get(key, default)`` for every row, as an object array."""
        out = np.empty(len(self), dtype=object)
        with gc_paused():
            out[:] = [
                p.get(key, default) if isinstance(p, dict) else default for p in self.to_numpy()
            ]
        return out


# ------------------------------------------------------------------------------------------------
# Public readers


def _to_ns(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: expected a timestamp or int nanoseconds")
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name}={value!r} is not a timestamp: pass int nanoseconds since the epoch or "
            "anything pandas.Timestamp parses"
        ) from exc
    if ts is pd.NaT:
        raise ConfigError(f"{name}={value!r} is NaT")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")  # naive means UTC, as trace times are
    return int(ts.as_unit("ns").value)


def _kind_codes(kinds: Any) -> list[int]:
    if isinstance(kinds, (Kind, str, int, np.integer)):
        kinds = [kinds]
    codes = []
    for k in kinds:
        if isinstance(k, str):
            try:
                codes.append(int(Kind[k.upper()]))
            except KeyError:
                valid = ", ".join(m.name for m in Kind)
                raise ConfigError(f"unknown kind {k!r}: valid kinds are {valid}") from None
        else:
            codes.append(int(k))
    return codes


def _kind_categorical(kind: np.ndarray) -> pd.Categorical:
    members = list(Kind)
    names = [m.name for m in members]
    known = {int(m): i for i, m in enumerate(members)}
    present = np.flatnonzero(np.bincount(kind)) if len(kind) else np.empty(0, np.intp)
    extra = [int(v) for v in present if int(v) not in known]
    lut = np.full(max([*known, *extra, 0]) + 1, -1, np.int32)
    for code, i in known.items():
        lut[code] = i
    for j, code in enumerate(extra):
        lut[code] = len(names) + j
    return pd.Categorical.from_codes(lut[kind], categories=names + [f"KIND_{v}" for v in extra])


def _frame(cols: Mapping[str, Any], symbols: list[str]) -> pd.DataFrame:
    ts = cols["ts_ns"]
    return pd.DataFrame(
        {
            "seq": cols["seq"],
            "time": pd.to_datetime(ts, unit="ns", utc=True),
            "ts_ns": ts,
            "ts_exchange_ns": cols["ts_exchange_ns"],
            "kind": _kind_categorical(cols["kind"]),
            "asset": pd.Categorical.from_codes(cols["asset"], categories=symbols),
            "payload": PayloadArray(cols["payload"]),
        }
    )


def read_trace(
    path: str | Path,
    since: Any = None,
    until: Any = None,
    kinds: Any = None,
    assets: Any = None,
) -> pd.DataFrame:
    """The trace at ``path`` as a DataFrame, one row per event in seq order.

    Columns: ``seq`` (uint64), ``time`` (datetime64[ns, UTC] of ``ts_ns``), ``ts_ns``,
    ``ts_exchange_ns`` (-1 when the venue gave none), ``kind`` (categorical of Kind names),
    ``asset`` (categorical of symbols; NaN for events without one) and ``payload`` (a
    :class:`PayloadArray`: dicts decoded on access).

    Filters combine with AND: ``since <= ts_ns < until`` (int nanoseconds, or anything
    ``pandas.Timestamp`` parses; naive times are UTC); ``kinds``: Kind members, names or codes;
    ``assets``: symbols (``None`` selects events without an asset). Raises TraceError if the
    trace is missing or has an unknown schema version.
    """
    view = open_view(path)
    total = view.total
    filters: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if since is not None or until is not None:
        lo_ns = _to_ns(since, "since") if since is not None else None
        hi_ns = _to_ns(until, "until") if until is not None else None

        def ts_mask(ts: np.ndarray) -> np.ndarray:
            m = np.ones(len(ts), bool)
            if lo_ns is not None:
                m &= ts >= lo_ns
            if hi_ns is not None:
                m &= ts < hi_ns
            return m

        filters["ts_ns"] = ts_mask
    if kinds is not None:
        codes = np.array(_kind_codes(kinds), dtype=np.int64)
        filters["kind"] = lambda k: np.isin(k, codes)
    if assets is not None:
        wanted = [assets] if isinstance(assets, str) or assets is None else list(assets)
        index = {s: i for i, s in enumerate(view.symbols)}
        idx = np.array(
            [NO_ASSET if a is None else index.get(a, -2) for a in wanted], dtype=np.int64
        )
        filters["asset"] = lambda a: np.isin(a, idx)
    if not filters:
        return _frame(view.read(0, total), view.symbols)
    keys = list(filters)
    cols = view.read(0, total, keys)
    mask = np.ones(total, bool)
    for k in keys:
        mask &= filters[k](cols[k])
    sel = np.flatnonzero(mask)
    lo, hi = (int(sel[0]), int(sel[-1]) + 1) if len(sel) else (0, 0)
    others = [f for f in FIELDS if f not in filters]
    if len(sel) * _SPARSE < hi - lo:  # scattered rows: read only the chunks they touch
        out = view.read_at(sel, others)
    else:
        rest = view.read(lo, hi, others)
        rel = sel - lo
        out = {f: (rest[f].take(rel) if f == "payload" else rest[f][rel]) for f in rest}
    out.update({k: cols[k][sel] for k in keys})
    return _frame(out, view.symbols)


def _rows(cols: Mapping[str, Any]) -> Iterator[tuple[int, int, int, int, int, Any]]:
    """The rows of columns read with every field, as ``(seq, ts_ns, ts_exchange_ns, kind,
    asset, payload)`` tuples of Python values (payloads decoded, all at once)."""
    return zip(
        cols["seq"].tolist(),
        cols["ts_ns"].tolist(),
        cols["ts_exchange_ns"].tolist(),
        cols["kind"].tolist(),
        cols["asset"].tolist(),
        cols["payload"].decode_all(),
        strict=True,
    )


def _kind_name(code: int) -> str:
    try:
        return Kind(code).name
    except ValueError:
        return f"KIND_{code}"


def tail_records(path: str | Path, n: int = 10) -> list[dict[str, Any]]:
    """The last ``n`` events, oldest first, as dicts with keys ``seq``, ``ts_ns``,
    ``ts_exchange_ns``, ``kind`` (name), ``asset`` (symbol or None) and ``payload`` (decoded).
    Reads only the chunks holding those rows plus the WAL."""
    if n < 0:
        raise ConfigError(f"n={n}: the number of events must be >= 0")
    view = open_view(path)
    total = view.total
    rows = _rows(view.read(max(0, total - n), total))
    symbols = view.symbols
    with gc_paused():
        return [
            {
                "seq": seq,
                "ts_ns": ts,
                "ts_exchange_ns": tsx,
                "kind": _kind_name(kind),
                "asset": symbols[asset] if asset >= 0 else None,
                "payload": payload,
            }
            for seq, ts, tsx, kind, asset, payload in rows
        ]


_BASE = ("seq", "time", "kind", "asset", "ts_ns", "ts_exchange_ns")


def tail_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records from :func:`tail_records` as a DataFrame: the base columns, then every payload
    key flattened into its own column (nested keys joined with ``.``; a key that clashes with a
    base column becomes ``payload.<key>``)."""
    base = pd.DataFrame(
        {
            "seq": np.array([r["seq"] for r in records], dtype=np.uint64),
            "time": pd.to_datetime(
                np.array([r["ts_ns"] for r in records], dtype=np.int64), unit="ns", utc=True
            ),
            "kind": [r["kind"] for r in records],
            "asset": [r["asset"] for r in records],
            "ts_ns": np.array([r["ts_ns"] for r in records], dtype=np.int64),
            "ts_exchange_ns": np.array([r["ts_exchange_ns"] for r in records], dtype=np.int64),
        }
    )
    if not records:
        return base
    flat = pd.json_normalize([dict(r["payload"] or {}) for r in records], sep=".")
    flat.columns = [f"payload.{c}" if c in _BASE else c for c in flat.columns]
    return pd.concat([base, flat], axis=1)


class Event(NamedTuple):
    """One recorded event, as replay consumes it."""

    seq: int
    ts_ns: int
    ts_exchange_ns: int
    kind: Kind
    asset: str | None
    payload: dict[str, Any]


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


def runs_of(view: _View) -> list[RunInfo]:
    """Every run in the trace behind `view`, oldest first."""
    kinds = view.read(0, view.total, ["kind"])["kind"]
    marks = np.flatnonzero((kinds == Kind.RUN_STARTED) | (kinds == Kind.RUN_STOPPED))
    if not len(marks):
        return []
    cols = view.read_at(marks, ["seq", "ts_ns", "kind", "payload"])
    payloads = cols["payload"].decode_all()
    runs: list[RunInfo] = []
    current: dict[str, Any] | None = None

    def close(end: int, stop_seq: int | None, stopped_ns: int | None) -> None:
        assert current is not None
        runs.append(
            RunInfo(current["run_id"], current["seq"], end, stop_seq, current["ts"], stopped_ns)
        )

    for seq, ts, kind, payload in zip(
        cols["seq"].tolist(),
        cols["ts_ns"].tolist(),
        cols["kind"].tolist(),
        payloads,
        strict=True,
    ):
        run_id = str(payload.get("run_id")) if isinstance(payload, dict) else "None"
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


def iter_events(
    path: str | Path, run: int | str | None = None, *, block_rows: int = 65536
) -> Iterator[Event]:
    """Yield every event in seq order as :class:`Event` tuples
    ``(seq, ts_ns, ts_exchange_ns, kind, asset, payload)``; with ``run`` (an index into
    :func:`list_runs`, -1 for the last, or a run id) only that run's events, from its
    RUN_STARTED through its RUN_STOPPED. Reads and decodes ``block_rows`` rows at a time.
    Raises TraceError on an event kind this version does not know."""
    view = open_view(path)
    lo, hi = 0, view.total
    if run is not None:
        runs = runs_of(view)
        chosen = runs[choose_run(runs, run, view.path)]
        lo, hi = chosen.start_seq, chosen.end_seq
    symbols = view.symbols
    for start in range(lo, hi, block_rows):
        block = _rows(view.read(start, min(hi, start + block_rows)))
        for seq, ts, tsx, code, asset, payload in block:
            try:
                kind = Kind(code)
            except ValueError:
                raise TraceError(
                    f"trace {view.path}: event {seq} has kind code {code}, unknown to this "
                    f"vigil (schema {SCHEMA_VERSION}): upgrade vigil to replay it"
                ) from None
            yield Event(seq, ts, tsx, kind, symbols[asset] if asset >= 0 else None, payload)

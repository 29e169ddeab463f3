"""A trace's on-disk layout and a consistent view of it.

A view sees a snapshot: Zarr rows ``[:committed]`` plus the WAL records past them, up to the
last intact one. It never modifies a file, so it is safe next to a live writer and on a trace
whose writer crashed (a torn last record is skipped, leftover ``.partial`` files ignored).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numcodecs
import numpy as np
import zarr
import zarr.api.asynchronous as zarr_async
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.codecs.bytes import Endian
from zarr.core.sync import sync as _zarr_sync  # zarr's own sync bridge: one shared IO loop
from zarr.storage import LocalStore

from runtime._errors import TraceError
from traces._blobs import is_url
from traces._codec import Payloads
from traces._fetch import fetch
from traces._schema import ARRAYS, SCHEMA_VERSION, WAL_DIR
from traces._schema import LOCK_FILE as LOCK_FILE  # where the writer and tests look for it
from traces._wal import WalRecords, WalScan, scan_wal

FIELDS = ("seq", "ts_ns", "ts_exchange_ns", "kind", "asset", "payload")

SPARSE = 64  # a selection this much sparser than its span is read chunk by chunk
_RETRIES = 20  # a live writer can move `committed` and delete WAL segments between our reads


def _sync(coro: Any) -> Any:
    return _zarr_sync(coro)


# ------------------------------------------------------------------------------------------------
# Chunk files


def check_codecs(path: Path, arrays: Mapping[str, zarr.AsyncArray[Any]]) -> numcodecs.Zstd:
    """Check the layout the direct chunk reader and writer rely on: every array 1-D, zarr v3,
    codecs exactly little-endian bytes then zstd (with its content checksum, or without in
    traces made before it), one level and one checksum setting for all. Returns the matching
    numcodecs codec."""
    levels: set[tuple[int, bool]] = set()
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
        )
        if not ok:
            raise TraceError(
                f"trace {path}: array {name} is not laid out as vigil writes traces "
                f"(1-D, bytes + zstd codecs): {codecs}"
            )
        levels.add((codecs[1].level, bool(codecs[1].checksum)))
    if len(levels) != 1:
        raise TraceError(f"trace {path}: arrays use different zstd settings {sorted(levels)}")
    level, checksum = levels.pop()
    return numcodecs.Zstd(level=level, checksum=checksum)


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
        try:
            if len(pieces) == 1 and pieces[0][1] == slice(0, self.chunk):
                self.zstd.decode(raw, out=pieces[0][0])  # straight into place, no copy
                return
            full = np.frombuffer(self.zstd.decode(raw), self.dtype)
        except (RuntimeError, ValueError) as exc:  # numcodecs' zstd errors carry no path
            first = k * self.chunk
            rows = "payload bytes" if self.name == "payload" else "seqs"
            raise TraceError(
                f"trace {self.root.parent} is damaged: chunk file {path} ({rows} {first} to "
                f"{first + self.chunk - 1} of {self.name}) does not decode: {exc}"
            ) from None
        if len(full) != self.chunk:
            raise TraceError(
                f"trace {self.root.parent} is damaged: chunk file {path} holds {len(full)} "
                f"values, not {self.chunk} (a truncated or replaced chunk)"
            )
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
class TraceView:
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


def _is_json(file: Path) -> bool:
    try:
        json.loads(file.read_bytes())
    except ValueError:
        return False
    return True


def open_view(path: str | Path) -> TraceView:
    """Snapshot the trace at ``path`` (or at an object-store URL, read through a local copy
    brought up to date). Raises TraceError if it is missing or unreadable."""
    path = fetch(str(path)) if is_url(path) else Path(path)
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
        except json.JSONDecodeError as exc:  # zarr names no file: find the one that is broken
            broken = [str(meta) for meta in sorted(path.glob("**/zarr.json")) if not _is_json(meta)]
            raise TraceError(
                f"trace {path} is damaged: metadata file {', '.join(broken) or 'zarr.json'} is "
                f"not valid JSON ({exc})"
            ) from None
        if scan.gap_before:  # committed moved on and its segments went away: look again
            last = TraceError(
                f"trace {path} is damaged: its committed row count is {committed} but its WAL "
                f"starts at {scan.unreadable[0].name}: rows from seq {committed} up to it are "
                "missing (a deleted segment, or a committed count set too low)"
            )
            continue
        if scan.damage is not None:
            raise TraceError(
                f"trace {path} is damaged: {scan.damage}. Only a torn last record is dropped "
                "when reading; restore the trace from a copy"
            )
        zstd = check_codecs(path, arrays)
        files = {n: _ArrayFiles.of(path, n, a, zstd) for n, a in arrays.items()}
        symbols = list(attrs.get("symbols", []))
        for index, symbol in scan.symbols:
            if index == len(symbols):
                symbols.append(symbol)
        return TraceView(
            path, committed, int(attrs.get("chunk_rows", 8192)), symbols, files, scan.records
        )
    if isinstance(last, TraceError):
        raise last  # the same on every attempt: not a writer moving on, a damaged trace
    raise TraceError(f"trace {path} kept changing while being read ({_RETRIES} attempts): {last!r}")

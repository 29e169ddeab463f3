"""The trace writer: every event to the WAL at once, whole chunks to Zarr from a worker thread.

Appending to Zarr per event rewrites metadata and a chunk each time (61 events/s, DESIGN §6), so
``record`` only appends a frame to the write-ahead log and a row to an in-memory chunk. When a
chunk of ``chunk_rows`` rows is full, a background thread writes it to the Zarr arrays, then
advances the group's ``committed`` attribute, then deletes WAL segments that ``committed`` has
passed. A crash at any point leaves Zarr rows ``[:committed]`` plus a WAL that continues them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import logging
import os
import shutil
import struct
import threading
import weakref
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np
import trio
import zarr
import zarr.api.asynchronous as zarr_async
from zarr.abc.store import Store
from zarr.codecs import ZstdCodec
from zarr.core.buffer import Buffer
from zarr.storage import LocalStore

from runtime._errors import ConfigError, TraceError
from traces._codec import encode, encode_many, encode_redacted
from traces._schema import (
    COLUMNS,
    NO_ASSET,
    NUMERIC_KINDS,
    SCHEMA_VERSION,
    UNSCANNED,
    Kind,
    RecordPayload,
    Row,
)
from traces._view import ARRAYS, LOCK_FILE, WAL_DIR, _sync, check_codecs, check_trace_path
from traces._wal import (
    FSYNC_POLICIES,
    FsyncPolicy,
    WalRecords,
    WalWriter,
    batch_frame,
    event_frame,
    fsync_dir,
    scan_wal,
    segment_name,
    symbol_frame,
)

__all__ = ["TraceWriter"]

# Payload bytes live in one uint8 array chunked at this size. Each commit starts on a fresh blob
# chunk and pads its last one with zeros (compressed to nothing), so every Zarr chunk file is
# written exactly once, like the row columns.
PAYLOAD_CHUNK_BYTES = 1 << 18  # small enough that padding adds ~25%, not ~50%, to a read
ZSTD_LEVEL = 1  # on trace chunks: 670 MB/s vs 480 MB/s at level 3, and no worse a ratio (measured)
_BUFFER_BYTES = 1 << 18  # non-durable frames are written to the OS in batches of this size...
_FLUSH_INTERVAL_S = 0.05  # ...or at least this often, by the worker
_IOV_MAX = 1024
_MAX_WAITING_CHUNKS = 1  # full chunks not yet committed before a recorder waits for room
_KIND_CODES = frozenset(int(k) for k in Kind)

log = logging.getLogger("vigil.traces")


class _Store(LocalStore):
    """LocalStore (atomic: temp ``.partial`` file, then rename) that can also fsync each file
    and, on demand, the directories it renamed into: used to create a trace, so that with an
    fsync policy a new trace survives a power loss."""

    def __init__(self, root: Path | str, *, read_only: bool = False, fsync: bool = False) -> None:
        super().__init__(root, read_only=read_only)
        self.fsync = fsync
        self._dirty: set[Path] = set()

    def with_read_only(self, read_only: bool = False) -> _Store:
        return _Store(self.root, read_only=read_only, fsync=self.fsync)

    async def set(self, key: str, value: Buffer) -> None:
        await super().set(key, value)
        if self.fsync:
            path = self.root / key
            await asyncio.to_thread(_fsync_file, path)
            self._dirty.add(path.parent)

    def sync_dirs(self) -> None:
        for d in self._dirty:
            fsync_dir(d)
        self._dirty.clear()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Chunk:
    """Rows ``[start, start + n)`` waiting for their chunk to fill. ``array.array`` appends are
    several times cheaper than numpy scalar stores, and convert to numpy without a copy."""

    __slots__ = ("asset", "kind", "n", "parts", "sizes", "start", "ts", "tsx")

    def __init__(self, start: int) -> None:
        self.start = start
        self.n = 0
        self.ts = array("q")
        self.tsx = array("q")
        self.kind = array("H")
        self.asset = array("i")
        self.sizes = array("I")
        self.parts: list[bytes] = []

    def extend(
        self,
        ts: np.ndarray,
        tsx: np.ndarray,
        kind: np.ndarray,
        asset: np.ndarray,
        sizes: np.ndarray,
        payloads: bytes,
    ) -> None:
        self.ts.frombytes(ts.astype(np.int64, copy=False).tobytes())
        self.tsx.frombytes(tsx.astype(np.int64, copy=False).tobytes())
        self.kind.frombytes(kind.astype(np.uint16, copy=False).tobytes())
        self.asset.frombytes(asset.astype(np.int32, copy=False).tobytes())
        self.sizes.frombytes(sizes.astype(np.uint32, copy=False).tobytes())
        self.parts.append(payloads)
        self.n += len(ts)


def _check_int_array(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,) or arr.dtype.kind not in "iu":
        raise TraceError(
            f"{name} must be {n} integer nanoseconds (one per payload); got shape "
            f"{arr.shape} of {arr.dtype}"
        )
    return arr.astype(np.int64, copy=False)


class TraceWriter:
    """Appends events to the trace at ``path`` (a ``<strategy>.zarr`` directory, created if
    missing). Implements the runtime's ``Recorder`` protocol.

    Durability: a ``durable=True`` record, and every record before it, is in the OS when
    ``record`` returns, so it survives the process being killed. Other records are buffered
    and handed to the OS within 50 ms (or 256 KiB), and by ``flush()``/``close()``.
    ``fsync``: ``"never"``, ``"order"`` (durable records and Zarr commits are fsynced, so they
    also survive a power loss) or ``"always"`` (every record is fsynced).
    ``chunk_rows`` and the payload layout are fixed when the trace is created; reopening keeps
    the trace's own. ``symbols`` pre-registers symbols in the table (more are added as records
    name them). Reopening an existing trace continues its seq. One writer per trace: a second
    one (in any process) raises TraceError.

    ``record``/``record_many`` are thread-safe and never wait for Zarr: they append to the WAL
    (one ``write`` syscall for durable records) and return. Call ``close()`` (or use the writer
    as a context manager) to commit full chunks and release the trace; the trailing partial
    chunk stays in the WAL by design and is picked up by readers and by the next writer.

    ``on_commit`` is called by the worker thread after each commit, in commit order (the
    object-store mirror); an exception there is logged and does not stop the writer.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: FsyncPolicy = "never",
        chunk_rows: int = 8192,
        symbols: Iterable[str] = (),
        on_commit: Callable[[], object] | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ConfigError(
                f"fsync={fsync!r} is not a policy: use one of {', '.join(FSYNC_POLICIES)}"
            )
        if not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ConfigError(f"chunk_rows={chunk_rows!r} must be a positive int")
        self._path = Path(path)
        self._fsync: FsyncPolicy = fsync
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[bytes] = []  # frames not yet handed to the OS
        self._pending_bytes = 0
        self._full: list[_Chunk] = []  # full chunks waiting for the worker
        self._error: BaseException | None = None
        self._closed = False
        self._stopping = False
        self._lock_fd = -1
        self._on_commit = on_commit
        self._wal = WalWriter(self._path / WAL_DIR, fsync)
        self._worker: threading.Thread | None = None  # started once the trace is open
        try:
            self._open(chunk_rows, list(symbols))
        except BaseException:
            self._release()
            raise
        self._worker = threading.Thread(
            target=self._work, name=f"trace-writer {self._path.name}", daemon=True
        )
        self._worker.start()
        _open_writers.add(self)

    # ------------------------------------------------------------------------------ opening
    def _open(self, chunk_rows: int, symbols: list[str]) -> None:
        path = self._path
        partial_dir = path.with_name(path.name + ".partial")
        if partial_dir.exists():
            shutil.rmtree(partial_dir)  # a creation that crashed before its rename
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            self._create(chunk_rows, symbols)
        check_trace_path(path)
        self._lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TraceError(
                f"trace {path} is already open for writing (one writer per trace): close the "
                "other TraceWriter first"
            ) from None
        _remove_partials(path)
        self._store = _Store(path, fsync=self._fsync != "never")
        self._group, self._arrays = _sync(_open_group(self._store))
        self._zstd = check_codecs(path, self._arrays)
        self._group_doc = json.loads((path / "zarr.json").read_bytes())
        self._array_docs = {n: json.loads((path / n / "zarr.json").read_bytes()) for n in ARRAYS}
        attrs = dict(self._group.attrs)
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise TraceError(
                f"trace {path} has schema_version {version!r}; this vigil writes version "
                f"{SCHEMA_VERSION}: write to a new trace path instead"
            )
        self._rows = int(attrs["chunk_rows"])
        self._blob_chunk = int(attrs["payload_chunk_bytes"])
        self._committed = int(attrs["committed"])
        self._settled = self._committed  # committed, and its WAL segments deleted
        self._payload_end = int(attrs["payload_end"])
        table: list[str] = list(attrs["symbols"])

        wal_dir = path / WAL_DIR
        wal_dir.mkdir(exist_ok=True)
        scan = scan_wal(wal_dir, self._committed)
        if scan.gap_before:
            raise TraceError(
                f"trace {path} is damaged: committed is {self._committed} but the oldest WAL "
                f"segment starts later ({scan.unreadable[0].name}); rows in between are lost"
            )
        for index, symbol in scan.symbols:
            if index < len(table) and table[index] != symbol:
                raise TraceError(
                    f"trace {path} is damaged: WAL names symbol {index} {symbol!r}, the table "
                    f"has {table[index]!r}"
                )
            if index == len(table):
                table.append(symbol)
        if scan.damage is not None:  # nothing is cut or moved: the records after it are intact
            raise TraceError(
                f"trace {path} is damaged: {scan.damage}. Nothing was changed; copy the trace "
                "aside, or move the damaged segment out of its wal folder to write after what "
                "precedes it"
            )
        # Crash leftovers: cut the torn last frame, drop segments wholly before `committed`.
        for seg in scan.segments:
            if seg.valid_bytes < seg.size:
                os.truncate(seg.path, seg.valid_bytes)
        for old in scan.below:
            old.unlink(missing_ok=True)

        self._symbols = table
        self._symbol_index = {s: i for i, s in enumerate(table)}
        self._next_seq = scan.end_seq if len(scan.records) else self._committed
        self._chunk = _Chunk(self._committed)
        with self._cond:  # _hand_off notifies; the worker starts later
            self._refill(scan.records)
        self._wal.segments = [s.first_seq for s in scan.segments if s.first_seq < self._next_seq]
        self._wal.open_segment(self._next_seq, self._symbols)
        for s in symbols:
            self._symbol(s)
        self._write_out(sync=self._fsync != "never")

    def _create(self, chunk_rows: int, symbols: list[str]) -> None:
        """Build the empty group under ``<name>.partial`` and rename it into place, so a crash
        never leaves a half-made trace at ``path``."""
        path = self._path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        store = _Store(tmp, fsync=self._fsync != "never")
        table = list(dict.fromkeys(symbols))
        _sync(_create_group(store, chunk_rows, table))
        store.sync_dirs()  # no-op unless fsync: the new names inside tmp are durable
        (tmp / WAL_DIR).mkdir()
        if path.exists():
            path.rmdir()  # only an empty directory gets here
        os.replace(tmp, path)
        if self._fsync != "never":
            fsync_dir(path.parent)

    def _refill(self, records: WalRecords) -> None:
        """Put WAL records not yet in Zarr back into chunks, so they get committed."""
        n = len(records)
        pos = 0
        while pos < n:
            k = min(self._rows - self._chunk.n, n - pos)
            sl = slice(pos, pos + k)
            part = records.payloads.take(sl)
            self._chunk.extend(
                records.ts_ns[sl],
                records.ts_exchange_ns[sl],
                records.kind[sl],
                records.asset[sl],
                part.sizes,
                part.joined(),
            )
            pos += k
            if self._chunk.n == self._rows:
                self._hand_off()

    # ------------------------------------------------------------------------------ recording
    def record(
        self,
        kind: Kind,
        payload: RecordPayload,
        *,
        ts_ns: int,
        asset: str | None = None,
        ts_exchange_ns: int = -1,
        durable: bool = False,
    ) -> int:
        """Append one event and return its seq (contiguous from 0 over the trace's life).

        The payload is redacted, then msgpack-encoded. With ``durable=True`` the record (and
        every record before it) has been written to the OS when this returns, and fsynced if
        the policy is ``"order"`` or ``"always"``. Never waits for Zarr I/O. Raises TraceError
        if the writer is closed or broken, or a field is out of range.
        """
        if kind not in _KIND_CODES:
            raise TraceError(f"kind {kind!r} is not a Kind code: use a traces.Kind member")
        try:
            if type(payload) in UNSCANNED:
                data = encode(payload)
            else:
                data = encode_redacted(cast(Mapping[str, Any], payload))
        except (TypeError, ValueError, OverflowError) as exc:
            raise TraceError(f"cannot record a {Kind(kind).name} payload: {exc}") from exc
        with self._cond:
            self._check_open()
            seq = self._next_seq
            aidx = NO_ASSET if asset is None else self._symbol_index.get(asset)
            try:
                frame = event_frame(
                    seq,
                    ts_ns,
                    ts_exchange_ns,
                    kind,
                    len(self._symbols) if aidx is None else aidx,
                    data,
                )
            except struct.error as exc:
                raise TraceError(
                    f"cannot record seq {seq}: ts_ns={ts_ns!r} and ts_exchange_ns="
                    f"{ts_exchange_ns!r} must be int nanoseconds in int64 range ({exc})"
                ) from exc
            chunk = self._chunk
            if seq == chunk.start and seq != self._wal.first_seq:
                self._rotate(seq)
            if aidx is None:
                aidx = self._symbol(asset)  # type: ignore[arg-type]
            self._pending.append(frame)
            self._pending_bytes += len(frame)
            chunk.ts.append(ts_ns)
            chunk.tsx.append(ts_exchange_ns)
            chunk.kind.append(kind)
            chunk.asset.append(aidx)
            chunk.sizes.append(len(data))
            chunk.parts.append(data)
            chunk.n += 1
            self._next_seq = seq + 1
            if durable or self._fsync == "always" or self._pending_bytes >= _BUFFER_BYTES:
                self._write_out(
                    sync=self._fsync == "always" or (durable and self._fsync == "order")
                )
            if chunk.n == self._rows:
                self._hand_off()
        return seq

    def record_many(
        self,
        kind: Kind,
        payloads: Sequence[Mapping[str, Any]],
        ts_ns: Sequence[int] | np.ndarray,
        *,
        asset: str | Sequence[str | None] | None = None,
        ts_exchange_ns: Sequence[int] | np.ndarray | None = None,
        durable: bool = False,
    ) -> range:
        """Append ``len(payloads)`` events of one kind and return their seqs.

        ``ts_ns`` (and ``ts_exchange_ns``, default -1) give one int per payload; ``asset`` is
        one symbol for all or one per payload. Equivalent to calling :meth:`record` for each,
        but encoded and framed as a batch (one WAL frame per chunk it touches)."""
        if kind not in _KIND_CODES:
            raise TraceError(f"kind {kind!r} is not a Kind code: use a traces.Kind member")
        n = len(payloads)
        ts = _check_int_array(ts_ns, n, "ts_ns")
        tsx = (
            np.full(n, -1, np.int64)
            if ts_exchange_ns is None
            else _check_int_array(ts_exchange_ns, n, "ts_exchange_ns")
        )
        try:
            blob, sizes = encode_many(payloads)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TraceError(f"cannot record a {Kind(kind).name} payload: {exc}") from exc
        kinds = np.full(n, int(kind), np.uint16)
        with self._cond:
            self._check_open()
            if asset is None or isinstance(asset, str):
                one = NO_ASSET if asset is None else self._symbol(asset)
                assets = np.full(n, one, np.int32)
            else:
                if len(asset) != n:
                    raise TraceError(f"asset has {len(asset)} symbols for {n} payloads")
                assets = np.array(
                    [NO_ASSET if a is None else self._symbol(a) for a in asset], np.int32
                )
            seq0 = self._append_columns(ts, tsx, kinds, assets, sizes, blob, durable)
        return range(seq0, seq0 + n)

    def record_rows(self, rows: Sequence[Row], *, durable: bool = False) -> range:
        """Append ``rows``, each ``(kind, payload, ts_ns, asset, ts_exchange_ns)``, and return
        their seqs. Equivalent to calling :meth:`record` for each (``durable`` as on the last),
        but encoded and framed as one batch: how a backtest writes its events, a few hundred
        at a time, with one secret scan, one WAL frame and at most one write. Unlike the
        others it waits for the commits when more than one full chunk is waiting."""
        n = len(rows)
        if not n:
            with self._cond:
                self._check_open()
                return range(self._next_seq, self._next_seq)
        kind_codes, payloads, ts_list, symbols, tsx_list = zip(*rows, strict=True)
        if not _KIND_CODES.issuperset(kind_codes):
            bad = next(k for k in kind_codes if k not in _KIND_CODES)
            raise TraceError(f"kind {bad!r} is not a Kind code: use a traces.Kind member")
        scan = [
            k not in NUMERIC_KINDS and type(p) not in UNSCANNED
            for k, p in zip(kind_codes, payloads, strict=True)
        ]
        try:
            blob, sizes = encode_many(payloads, scan)
            ts = np.array(ts_list, np.int64)
            tsx = np.array(tsx_list, np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TraceError(f"cannot record a batch of {n} events: {exc}") from exc
        kinds = np.array(kind_codes, np.uint16)
        with self._cond:
            self._check_open()
            index = self._symbol_index
            assets = np.array(
                [
                    NO_ASSET if a is None else index[a] if a in index else self._symbol(a)
                    for a in symbols
                ],
                np.int32,
            )
            seq0 = self._append_columns(ts, tsx, kinds, assets, sizes, blob, durable)
            self._wait_for_room()
        return range(seq0, seq0 + n)

    def _wait_for_room(self) -> None:
        """Backpressure for batches: a backtest outruns the commits (its busy thread also
        starves the worker of the GIL) and would hold every waiting chunk in memory; measured,
        13 chunks behind on a 1M-bar run. Wait while more than one full chunk waits. Only
        `record_rows` waits: a live recorder must never wait for Zarr I/O. Caller holds the
        lock (released while waiting)."""
        worker = self._worker
        while len(self._full) > _MAX_WAITING_CHUNKS and self._error is None and worker is not None:
            if not worker.is_alive():
                break
            self._cond.wait(1.0)

    def _append_columns(
        self,
        ts: np.ndarray,
        tsx: np.ndarray,
        kinds: np.ndarray,
        assets: np.ndarray,
        sizes: np.ndarray,
        blob: bytes,
        durable: bool,
    ) -> int:
        """Append encoded rows given as columns: one WAL frame per chunk they touch, written
        to the OS if `durable` (or the buffer is full). Returns the first seq. Caller holds
        the lock."""
        n = len(ts)
        seq0 = self._next_seq
        pos = byte_pos = 0
        while pos < n:
            seq = seq0 + pos
            chunk = self._chunk
            if seq == chunk.start and seq != self._wal.first_seq:
                self._rotate(seq)
            k = min(self._rows - chunk.n, n - pos)
            sl = slice(pos, pos + k)
            part_sizes = sizes[sl]
            nbytes = int(part_sizes.sum(dtype=np.int64))
            part = blob[byte_pos : byte_pos + nbytes]
            frame = batch_frame(seq, ts[sl], tsx[sl], kinds[sl], assets[sl], part_sizes, part)
            self._pending.append(frame)
            self._pending_bytes += len(frame)
            chunk.extend(ts[sl], tsx[sl], kinds[sl], assets[sl], part_sizes, part)
            self._next_seq = seq + k
            pos += k
            byte_pos += nbytes
            if chunk.n == self._rows:
                self._hand_off()
        if durable or self._fsync == "always" or self._pending_bytes >= _BUFFER_BYTES:
            self._write_out(sync=self._fsync == "always" or (durable and self._fsync == "order"))
        return seq0

    def _check_open(self) -> None:
        if self._error is not None:
            raise TraceError(
                f"trace writer for {self._path} failed and stopped: {self._error!r}"
            ) from self._error
        if self._closed or self._stopping:
            raise TraceError(f"trace writer for {self._path} is closed")

    def _symbol(self, symbol: str) -> int:
        """Index of ``symbol``, adding it (and its WAL frame) if new. Caller holds the lock."""
        index = self._symbol_index.get(symbol)
        if index is None:
            if not isinstance(symbol, str) or not symbol:
                raise TraceError(f"asset must be a non-empty symbol string or None, not {symbol!r}")
            index = len(self._symbols)
            self._symbols.append(symbol)
            self._symbol_index[symbol] = index
            frame = symbol_frame(index, symbol)
            self._pending.append(frame)
            self._pending_bytes += len(frame)
        return index

    def _rotate(self, seq: int) -> None:
        """Start WAL segment ``seq`` (a chunk boundary), so the old one can be deleted whole
        once this chunk is committed. Caller holds the lock."""
        self._write_out(sync=self._fsync == "always")
        self._wal.open_segment(seq, self._symbols)

    def _write_out(self, *, sync: bool) -> None:
        """Hand every pending frame to the OS, in order. Caller holds the lock."""
        pending = self._pending
        try:
            while pending:
                batch = pending[:_IOV_MAX]
                total = sum(map(len, batch))
                written = os.writev(self._wal.fd, batch)
                if written < total:  # rare short write: finish this batch the slow way
                    self._wal.write(memoryview(b"".join(batch))[written:])
                del pending[: len(batch)]
            self._pending_bytes = 0
            if sync:
                self._wal.sync()
        except OSError as exc:
            # The WAL may now end in a partial frame; appending after it would hide the rest.
            self._error = exc
            raise TraceError(f"cannot write the WAL of trace {self._path}: {exc}") from exc

    def _hand_off(self) -> None:
        chunk = self._chunk
        self._full.append(chunk)
        self._chunk = _Chunk(chunk.start + self._rows)
        self._cond.notify_all()

    # ------------------------------------------------------------------------------ committing
    def _work(self) -> None:
        """Worker thread: commit full chunks; flush buffered frames every few ms when idle."""
        while True:
            with self._cond:
                while not self._full and not self._stopping and self._error is None:
                    if not self._cond.wait(_FLUSH_INTERVAL_S) and self._pending:
                        with contextlib.suppress(TraceError):  # stored in self._error
                            self._write_out(sync=False)
                if not self._full or self._error is not None:
                    return
                chunks = list(self._full)
                symbols = list(self._symbols)
            try:
                self._commit(chunks, symbols)
            except Exception as exc:
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                del self._full[: len(chunks)]
                self._committed = chunks[-1].start + self._rows
                doomed = self._prunable()
                self._cond.notify_all()  # a recorder may wait for room (`_hand_off`)
            # Unlinking a segment can take a millisecond in the kernel: not under the lock
            # that record() needs.
            for p in doomed:
                p.unlink(missing_ok=True)
            with self._cond:
                self._settled = self._committed  # flush() returns with the WAL trimmed
                self._cond.notify_all()
            if self._on_commit is not None:
                try:
                    self._on_commit()
                except Exception as exc:  # the WAL and Zarr hold every row: a mirror catches up
                    log.warning("trace %s: after-commit hook failed: %s", self._path, exc)

    def _prunable(self) -> list[Path]:
        """WAL segments wholly below ``committed`` (never the active one). Caller holds lock."""
        segs = self._wal.segments
        last = len(segs) - 1
        keep = [s for i, s in enumerate(segs) if i == last or segs[i + 1] > self._committed]
        doomed = [s for s in segs if s not in keep]
        self._wal.segments = keep
        return [self._wal.wal_dir / segment_name(s) for s in doomed]

    def _commit(self, chunks: list[_Chunk], symbols: list[str]) -> None:
        lo = chunks[0].start
        hi = chunks[-1].start + self._rows
        cols: dict[str, np.ndarray] = {
            "seq": np.arange(lo, hi, dtype=np.uint64),
            "ts_ns": _join(chunks, "ts", np.int64),
            "ts_exchange_ns": _join(chunks, "tsx", np.int64),
            "kind": _join(chunks, "kind", np.uint16),
            "asset": _join(chunks, "asset", np.int32),
        }
        sizes = _join(chunks, "sizes", np.uint32)
        data = b"".join(p for c in chunks for p in c.parts)
        blob_lo = self._payload_end
        offsets = np.empty(len(sizes), np.int64)
        offsets[0] = blob_lo
        np.cumsum(sizes[:-1], out=offsets[1:])
        offsets[1:] += blob_lo
        cols["payload_offset"] = offsets
        cols["payload_size"] = sizes
        padded_len = -(-len(data) // self._blob_chunk) * self._blob_chunk
        # A view of the joined bytes (no copy: a bar-heavy chunk set holds megabytes); the last
        # chunk is padded with zeros as it is written.
        payload = np.frombuffer(data, np.uint8)
        attrs = {
            "committed": hi,
            "payload_end": blob_lo + padded_len,
            "symbols": symbols,
        }
        cols["payload"] = payload
        chunk_index = {n: lo // self._rows for n in cols}
        chunk_index["payload"] = blob_lo // self._blob_chunk
        dirs: set[Path] = set()
        for name, values in cols.items():
            dirs |= self._write_chunks(name, values, chunk_index[name])
        if self._fsync != "never":
            for d in dirs:
                fsync_dir(d)
        shapes = {n: hi for n in cols}
        shapes["payload"] = blob_lo + padded_len
        self._commit_metadata(shapes, attrs)
        self._payload_end = blob_lo + padded_len

    def _write_chunks(self, name: str, values: np.ndarray, first: int) -> set[Path]:
        """Write ``values`` as whole chunks ``first, first+1, ...`` of array ``name`` (a short
        last one padded with zeros).

        Zarr's own write path costs ~10 ms of mostly-GIL time per chunk set (asyncio plumbing,
        a thread hop per codec and per file, an all-equal check per chunk: measured), which
        starves the caller's thread. These arrays' codecs are checked at open to be exactly
        bytes(little endian) + zstd, so a chunk file is ``zstd(values.tobytes())``, written to
        a ``.partial`` file and renamed into place as zarr's LocalStore does.
        """
        meta = self._arrays[name].metadata
        size = meta.chunks[0]
        root = self._path / name
        dirs: set[Path] = set()
        for j in range(-(-len(values) // size)):
            target = root / meta.encode_chunk_key((first + j,))
            part = values[j * size : (j + 1) * size]
            if len(part) < size:  # the payload's last chunk: zeros to the chunk's end
                part = np.concatenate((part, np.zeros(size - len(part), part.dtype)))
            encoded = self._zstd.encode(np.ascontiguousarray(part))
            _atomic_write(target, encoded, fsync=self._fsync != "never")
            dirs.add(target.parent)
        return dirs

    def _commit_metadata(self, shapes: dict[str, int], attrs: dict[str, Any]) -> None:
        """Grow each array's ``shape`` in its zarr.json, then publish ``committed`` in the
        group's. Written directly (atomic replace), like the chunks: zarr's resize and
        update_attributes cost ~11 ms per commit in its event loop (measured)."""
        sync = self._fsync != "never"
        for name, rows in shapes.items():
            doc = self._array_docs[name]
            doc["shape"] = [rows]
            _atomic_write(self._path / name / "zarr.json", _json(doc), fsync=sync)
        if sync:
            for name in shapes:
                fsync_dir(self._path / name)
        # Only now, with every chunk in place, may readers and the next writer trust them.
        self._group_doc.setdefault("attributes", {}).update(attrs)
        _atomic_write(self._path / "zarr.json", _json(self._group_doc), fsync=sync)
        if sync:
            fsync_dir(self._path)

    # ------------------------------------------------------------------------------ lifecycle
    def persist(self) -> None:
        """Make every record so far durable, as ``durable=True`` on the last one would have:
        written to the OS, and fsynced if the policy is ``"order"`` or ``"always"``. Never
        waits for Zarr I/O."""
        with self._cond:
            self._check_open()
            self._write_out(sync=self._fsync in ("order", "always"))

    def flush(self) -> None:
        """Write buffered records to the OS (fsynced unless the policy is ``"never"``) and wait
        until every full chunk is committed to Zarr. Raises TraceError if the worker failed."""
        with self._cond:
            if self._closed:
                return
            self._check_open()
            self._write_out(sync=self._fsync != "never")
            target = self._chunk.start
            while self._settled < target and self._error is None:
                self._cond.wait()
            self._check_open()

    def close(self) -> None:
        """Flush, commit full chunks, stop the worker and release the trace. The trailing
        partial chunk stays in the WAL. Idempotent. Raises TraceError if the worker failed
        (the WAL still holds every record)."""
        with self._cond:
            if self._closed:
                return
            with contextlib.suppress(TraceError):
                self._write_out(sync=self._fsync != "never")
            self._stopping = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join()
        with self._cond:
            self._closed = True
            error = self._error
        self._release()
        if error is not None:
            raise TraceError(
                f"trace writer for {self._path} failed: {error!r}; the WAL keeps every record, "
                "reopen the trace to retry committing"
            ) from error

    def _flush_at_exit(self) -> None:
        """Hand buffered frames to the OS at interpreter exit (the worker is a daemon thread,
        and a forgotten writer should still lose nothing it was given)."""
        if self._cond.acquire(timeout=1.0):
            try:
                if not self._closed and self._error is None and self._pending:
                    self._write_out(sync=self._fsync != "never")
            finally:
                self._cond.release()

    def _release(self) -> None:
        _open_writers.discard(self)
        self._wal.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # also drops the flock
            self._lock_fd = -1

    async def aflush(self) -> None:
        """:meth:`flush` in a worker thread, for trio tasks. Not cancellable: it waits for the
        commit in progress."""
        await trio.to_thread.run_sync(self.flush)

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread, for trio tasks. Not cancellable."""
        await trio.to_thread.run_sync(self.close)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------ state
    @property
    def path(self) -> Path:
        return self._path

    @property
    def next_seq(self) -> int:
        """The seq the next record will get (= the number of records in the trace)."""
        return self._next_seq

    @property
    def committed(self) -> int:
        """Rows written to the Zarr arrays; the rest are in the WAL only."""
        return self._committed

    @property
    def chunk_rows(self) -> int:
        return self._rows

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"next_seq={self._next_seq}"
        return (
            f"TraceWriter({str(self._path)!r}, fsync={self._fsync!r}, {state}, "
            f"committed={self._committed})"
        )


_open_writers: weakref.WeakSet[TraceWriter] = weakref.WeakSet()


@atexit.register
def _flush_open_writers() -> None:
    for w in list(_open_writers):
        with contextlib.suppress(Exception):
            w._flush_at_exit()


def _join(chunks: list[_Chunk], name: str, dtype: type[np.generic]) -> np.ndarray:
    parts = [np.frombuffer(getattr(c, name), dtype) for c in chunks]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, allow_nan=False).encode()


def _atomic_write(target: Path, data: bytes, *, fsync: bool) -> None:
    """Write ``target`` via ``<target>.partial`` and a rename, so readers see the old file or
    the new one, never a torn one; leftovers of a crash are removed when a writer opens."""
    tmp = target.with_name(target.name + ".partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def _remove_partials(root: Path) -> None:
    """Delete temp files a crashed Zarr write left behind (``*.partial``)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".partial"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))


async def _create_group(store: Store, chunk_rows: int, symbols: list[str]) -> None:
    group = await zarr_async.open_group(store=store, mode="w-")
    # The content checksum makes a damaged chunk fail to decode instead of reading as wrong
    # values (traces made before it carry none and still read).
    compressors = [ZstdCodec(level=ZSTD_LEVEL, checksum=True)]
    await asyncio.gather(
        *(
            group.create_array(
                name,
                shape=(0,),
                chunks=(PAYLOAD_CHUNK_BYTES if name == "payload" else chunk_rows,),
                dtype=dtype,
                compressors=compressors,
                fill_value=0,
            )
            for name, dtype in ARRAYS.items()
        )
    )
    await group.update_attributes(
        {
            "schema_version": SCHEMA_VERSION,
            "symbols": symbols,
            "committed": 0,
            "chunk_rows": chunk_rows,
            "payload_chunk_bytes": PAYLOAD_CHUNK_BYTES,
            "payload_end": 0,
            "columns": dict(COLUMNS),
        }
    )


async def _open_group(
    store: Store,
) -> tuple[zarr.AsyncGroup, dict[str, zarr.AsyncArray[Any]]]:
    group = await zarr_async.open_group(store=store, mode="r+")
    nodes = await asyncio.gather(*(group.getitem(n) for n in ARRAYS))
    arrays: dict[str, zarr.AsyncArray[Any]] = {}
    for name, node in zip(ARRAYS, nodes, strict=True):
        if not isinstance(node, zarr.AsyncArray):
            raise TraceError(f"trace {store} is damaged: {name} is not an array")
        arrays[name] = node
    return group, arrays

"""The recorder a strategy writes through: the trace path for a strategy, opened on first use.

A trace has one writer at a time. Within one process a newer strategy instance of the same
trace takes the writer over (the older instance reopens it if it records again), so creating
the same Sim strategy twice in a session just works; another process holding it is an error.

A root that is an object-store URL (``s3://bucket/prefix``) keeps the trace in a local cache
directory, WAL and all, and mirrors it to the store (`traces._mirror`): the lease on the store
is taken before the local writer opens, the store catches up on open and after each commit,
and `close` seals the tail and releases the lease.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from traces._blobs import is_url
from traces._fetch import cache_path
from traces._mirror import Mirror
from traces._schema import Kind, RecordPayload, Row
from traces._writer import TraceWriter

_holders: dict[Path, TraceRecorder] = {}
_lock = threading.Lock()


def trace_path(root: str | Path, exchange: str, account: str, strategy: str) -> Path:
    """``<root>/<exchange>/<account or "sandbox" or "sim">/<strategy>.zarr`` (DESIGN §6)."""
    return Path(root) / exchange / account / f"{strategy}.zarr"


class TraceRecorder:
    """A `Recorder` over a `TraceWriter` that opens lazily and can be taken over in-process."""

    def __init__(
        self,
        path: Path,
        *,
        fsync: str = "never",
        url: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path.resolve()
        self.url = url  # the object-store URL this trace is mirrored to, if any
        self._storage_options = storage_options
        self._fsync = fsync
        self._writer: TraceWriter | None = None
        self._mirror: Mirror | None = None

    def _acquire(self) -> TraceWriter:
        with _lock:
            other = _holders.get(self.path)
        if other is not None and other is not self:
            other.close()  # outside the lock: close() takes it too
        with _lock:
            mirror = None
            if self.url is not None:
                mirror = Mirror(self.path, self.url, self._storage_options)
                mirror.take_lease()  # before the local writer: one writer per remote trace
            try:
                if mirror is not None:
                    mirror.prepare_local()
                self._writer = TraceWriter(
                    self.path,
                    fsync=self._fsync,  # type: ignore[arg-type]
                    on_commit=None if mirror is None else mirror.catch_up,
                )
                if mirror is not None:
                    mirror.catch_up()  # what a killed writer committed but never uploaded
            except Exception:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                if mirror is not None:
                    mirror.release_lease()
                raise
            self._mirror = mirror
            _holders[self.path] = self
            return self._writer

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
        writer = self._writer or self._acquire()
        return writer.record(
            kind,
            payload,
            ts_ns=ts_ns,
            asset=asset,
            ts_exchange_ns=ts_exchange_ns,
            durable=durable,
        )

    def record_rows(self, rows: Sequence[Row], *, durable: bool = False) -> range:
        writer = self._writer or self._acquire()
        return writer.record_rows(rows, durable=durable)

    @property
    def next_seq(self) -> int:
        return (self._writer or self._acquire()).next_seq

    def persist(self) -> None:
        if self._writer is not None:
            self._writer.persist()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Commit whole chunks and release the trace (records after this reopen it)."""
        writer, self._writer = self._writer, None
        mirror, self._mirror = self._mirror, None
        try:
            next_seq = 0 if writer is None else writer.next_seq
            if writer is not None:
                writer.close()
            if mirror is not None:
                mirror.seal(next_seq)
        finally:
            if mirror is not None:
                mirror.release_lease()
        with _lock:
            if _holders.get(self.path) is self:
                del _holders[self.path]

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"<TraceRecorder {self.path} {state}>"


def default_trace_root(cwd: str | Path = ".") -> Path:
    """``./traces``, unless that folder is a Python package (a checkout of vigil, whose
    ``traces`` package it is): then ``./vigil-traces``, so no trace lands among the sources."""
    root = Path(cwd) / "traces"
    if (root / "__init__.py").exists():
        return Path(cwd) / "vigil-traces"
    return root


def open_recorder(
    root: str | Path | None,
    exchange: str,
    account: str,
    strategy: str,
    *,
    fsync: str = "never",
    storage_options: Mapping[str, Any] | None = None,
) -> TraceRecorder:
    """The recorder of a strategy's trace under `root`: a directory, or an object-store URL
    whose trace is written through a local cache (``$VIGIL_HOME/trace-cache``); None:
    `default_trace_root()`."""
    root = default_trace_root() if root is None else root
    if is_url(root):
        url = trace_url(str(root), exchange, account, strategy)
        return TraceRecorder(
            cache_path(url, "write"), fsync=fsync, url=url, storage_options=storage_options
        )
    return TraceRecorder(trace_path(root, exchange, account, strategy), fsync=fsync)


def trace_url(root: str, exchange: str, account: str, strategy: str) -> str:
    """``<root>/<exchange>/<account>/<strategy>.zarr`` for an object-store root."""
    return f"{root.rstrip('/')}/{exchange}/{account}/{strategy}.zarr"

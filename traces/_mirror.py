"""Traces on object storage: a local trace mirrored to blobs, and a remote trace read back.

Writing (`Mirror`). The trace is written locally as always (`TraceWriter`, its WAL and its
SIGKILL guarantee unchanged) under a cache directory, and mirrored to the store after each
commit, in commit order: the new chunk files first, then the arrays' metadata, then the group's
``zarr.json`` with ``committed``, so a remote reader never sees a count whose chunks are not
there. `seal` (at close) also uploads the WAL, the tail that is not a whole chunk yet. One
writer per remote trace: a lease object created by a conditional put (`put_if_absent`) names
the writer; a second writer is refused while its holder lives. A lease left by a killed writer
on this host is taken over, and the reopened writer first uploads what the store lacks.

Reading (`fetch`). A remote trace is copied into a local read cache, group metadata first
(the ``committed`` a reader will trust) and chunk files only when new (chunks are written
once), and the local readers read the copy: a remote reading equals the local one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runtime._errors import TraceError
from traces._blobs import Blobs, open_blobs
from traces._fetch import GROUP_META, IO_THREADS, LEASE, download
from traces._schema import ARRAYS, WAL_DIR
from traces._view import open_view

log = logging.getLogger("vigil.traces")

HEAD = "head.json"  # written at seal: the trace's next seq, to spot a stale local cache


class Mirror:
    """The remote copy of one local trace, kept in step by its writer."""

    def __init__(
        self, local: Path, url: str, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.local = local
        self.url = url
        self.blobs: Blobs = open_blobs(url, storage_options)
        self._lock = threading.Lock()
        self._uploaded: set[str] | None = None  # chunk keys the store has
        self._token = uuid.uuid4().hex
        self._leased = False
        self.puts = 0  # objects written, for benchmarks and tests

    # ----------------------------------------------------------------------------- the lease
    def take_lease(self) -> None:
        """Become the trace's one writer, or raise TraceError naming the one that is."""
        lease = json.dumps(
            {
                "token": self._token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.time(),
                "cache": str(self.local),
            }
        ).encode()
        for _ in range(2):
            if self.blobs.put_if_absent(LEASE, lease):
                self._leased = True
                return
            holder = self._holder()
            if holder is None or not _dead_here(holder):
                break
            log.warning(
                "trace %s: taking over the lease of dead writer pid %s", self.url, holder.get("pid")
            )
            self.blobs.delete(LEASE)
        holder = self._holder() or {}
        raise TraceError(
            f"trace {self.url} is already open for writing (one writer per trace): writer pid "
            f"{holder.get('pid')} on {holder.get('host')} holds {self.url}/{LEASE}; close it "
            "first, or delete that object if its writer is gone for good"
        )

    def release_lease(self) -> None:
        if not self._leased:
            return
        holder = self._holder()
        if holder is not None and holder.get("token") == self._token:
            self.blobs.delete(LEASE)
        self._leased = False

    def _holder(self) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads(self.blobs.get(LEASE))
        except FileNotFoundError:
            return None
        except ValueError:
            return {}
        return doc

    # ----------------------------------------------------------------------------- mirroring
    def prepare_local(self) -> None:
        """Before the local writer opens (lease held): a missing local trace starts as a copy
        of the store's; a local one behind the store's (written from elsewhere since) is
        refused rather than overwrite the store with less."""
        if not (self.local / GROUP_META).exists():
            download(self.blobs, self.local)
            return
        try:
            remote_next = int(json.loads(self.blobs.get(HEAD))["next_seq"])
        except FileNotFoundError:
            try:
                group = json.loads(self.blobs.get(GROUP_META))
            except FileNotFoundError:
                return
            remote_next = int(group.get("attributes", {}).get("committed", 0))
        local_next = open_view(self.local).total
        if local_next < remote_next:
            raise TraceError(
                f"trace {self.url} holds {remote_next} events but its local cache {self.local} "
                f"has {local_next}: it was written from elsewhere since. Move the cache aside "
                "to continue from the store's copy"
            )

    def catch_up(self) -> int:
        """Upload what the local trace has committed and the store lacks, in commit order;
        return the committed row count the store now has."""
        with self._lock:
            # Read `committed` first: chunk files at or below it are complete and final.
            group = (self.local / GROUP_META).read_bytes()
            attrs = json.loads(group).get("attributes", {})
            rows, blob = int(attrs["chunk_rows"]), int(attrs["payload_chunk_bytes"])
            limits = {n: int(attrs["committed"]) // rows for n in ARRAYS}
            limits["payload"] = int(attrs["payload_end"]) // blob
            if self._uploaded is None:
                self._uploaded = {k for k in self.blobs.list() if _chunk_index(k) is not None}
            new = [
                key
                for key in self._local_chunks()
                if key not in self._uploaded
                and (index := _chunk_index(key)) is not None
                and index < limits[key.split("/", 1)[0]]
            ]
            self._upload(new)
            self._uploaded.update(new)
            self._upload([f"{name}/{GROUP_META}" for name in ARRAYS])
            self.blobs.put(GROUP_META, group)  # last: now readers may trust the new chunks
            self.puts += 1
            return int(attrs["committed"])

    def seal(self, next_seq: int) -> None:
        """At close: mirror the last commits, then the WAL (the tail that is no whole chunk),
        drop the store's WAL segments the local trace no longer has, and record `next_seq`."""
        self.catch_up()
        with self._lock:
            local = {f"{WAL_DIR}/{p.name}" for p in (self.local / WAL_DIR).iterdir() if p.is_file()}
            self._upload(sorted(local))
            for key in self.blobs.list(f"{WAL_DIR}/"):
                if key not in local:
                    self.blobs.delete(key)
            self.blobs.put(HEAD, json.dumps({"next_seq": next_seq}).encode())
            self.puts += 1

    def _local_chunks(self) -> list[str]:
        out = []
        for name in ARRAYS:
            root = self.local / name
            for dirpath, _dirs, files in os.walk(root):
                for f in files:
                    if f != GROUP_META and not f.endswith(".partial"):
                        out.append((Path(dirpath) / f).relative_to(self.local).as_posix())
        return sorted(out, key=lambda k: (k.split("/", 1)[0], _chunk_index(k) or 0))

    def _upload(self, keys: list[str]) -> None:
        if not keys:
            return

        def put(key: str) -> None:
            self.blobs.put(key, (self.local / key).read_bytes())

        with ThreadPoolExecutor(min(IO_THREADS, len(keys))) as pool:
            list(pool.map(put, keys))
        self.puts += len(keys)


def _chunk_index(key: str) -> int | None:
    """The chunk number of an array chunk key (``seq/c/3`` -> 3), None for anything else."""
    parts = key.split("/")
    if len(parts) < 2 or parts[0] not in ARRAYS or parts[-1] == GROUP_META:
        return None
    last = parts[-1].rsplit(".", 1)[-1]
    return int(last) if last.isdigit() else None


def _dead_here(holder: Mapping[str, Any]) -> bool:
    """True when the lease's writer ran on this host and its process is gone."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False

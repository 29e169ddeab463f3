"""Reading a trace kept on object storage: copy it into a local cache, then read the copy.

The group metadata (with the ``committed`` count a reader will trust) is read first and
written into the copy last; chunk files are fetched only when new, since a chunk file is
written once; array metadata and WAL segments are fetched every time. The local readers then
read the copy, so a remote reading equals a local one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runtime._errors import TraceError
from traces._blobs import Blobs, open_blobs
from traces._schema import LOCK_FILE, WAL_DIR

LEASE = "writer.lease"
GROUP_META = "zarr.json"
IO_THREADS = 8  # object-store requests in flight


def vigil_home() -> Path:
    return Path(os.environ.get("VIGIL_HOME") or Path.home() / ".vigil")


def cache_path(url: str, kind: str) -> Path:
    """Where the local side of a remote trace lives: `kind` "write" (the writer's own trace,
    WAL included) or "read" (a reader's copy), under ``$VIGIL_HOME/trace-cache``."""
    name = Path(url.split("://", 1)[-1]).name
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return vigil_home() / "trace-cache" / kind / digest / name


def fetch(url: str, storage_options: Mapping[str, Any] | None = None) -> Path:
    """A local copy of the remote trace at `url`, brought up to date, for the local readers."""
    local = cache_path(url, "read")
    if not download(open_blobs(url, storage_options), local):
        raise TraceError(f"no trace at {url}: it has no {GROUP_META}")
    return local


def download(blobs: Blobs, local: Path) -> bool:
    """Bring the copy at `local` up to date with `blobs`; False if there is no trace there."""
    try:
        group = blobs.get(GROUP_META)  # first: the committed count the copy will trust
    except FileNotFoundError:
        return False
    remote = blobs.list()
    have = _sizes(local)
    todo = [
        key
        for key, size in remote.items()
        if key not in (GROUP_META, LEASE, LOCK_FILE)
        and (
            key.endswith(GROUP_META)
            or key.startswith(f"{WAL_DIR}/")
            or have.get(key) != size  # chunk files are written once: same size, same file
        )
    ]

    def get(key: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # a WAL segment the writer just dropped
            write_atomic(local / key, blobs.get(key))

    if todo:
        with ThreadPoolExecutor(min(IO_THREADS, len(todo))) as pool:
            list(pool.map(get, todo))
    wal = local / WAL_DIR
    wal.mkdir(parents=True, exist_ok=True)
    for p in wal.iterdir():
        if f"{WAL_DIR}/{p.name}" not in remote:
            p.unlink(missing_ok=True)
    write_atomic(local / GROUP_META, group)
    return True


def write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # A `.partial` name: the readers and the writer already ignore (and clean) those.
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _sizes(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if not root.exists():
        return out
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            path = Path(dirpath) / f
            with contextlib.suppress(FileNotFoundError):
                out[path.relative_to(root).as_posix()] = path.stat().st_size
    return out

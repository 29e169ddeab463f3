"""Blobs: the little a trace needs from a storage service, with a local and an object-store side.

`Blobs` is five calls on keys relative to a root: `get`, `put`, `put_if_absent` (the one
conditional write, which the writer's lease rests on), `list` and `delete`. `LocalBlobs` keeps
them as files under a directory; `ObjectBlobs` as objects behind a URL (``s3://bucket/prefix``
and the other schemes obstore reaches), through obstore.

Object-store credentials, region and endpoint come from the usual AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, and
``AWS_ENDPOINT_URL`` for a non-AWS server; plain http is allowed when the endpoint names it) or
from ``storage_options`` (obstore's config keys, e.g. ``{"endpoint": ..., "region": ...}``).
Errors of the service become TraceError naming the URL, never the credentials.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from runtime._errors import ConfigError, TraceError

# obstore is part of the `vigil[dist]` extra; local traces never need it.
try:
    import obstore
    from obstore.exceptions import AlreadyExistsError
    from obstore.store import from_url

    OBSTORE_MISSING: str | None = None
except ImportError as _exc:
    OBSTORE_MISSING = str(_exc)


class Blobs(Protocol):
    """Keys are ``/``-separated paths relative to the root."""

    url: str

    def get(self, key: str) -> bytes:
        """The blob's bytes; FileNotFoundError if there is none."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write the blob whole (a reader sees the old bytes or the new, never a mix)."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write the blob only if no blob has that key; False if one had."""
        ...

    def list(self, prefix: str = "") -> dict[str, int]:
        """Every key under `prefix`, with its size in bytes."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob (no error if there is none)."""
        ...


def is_url(root: str | Path) -> bool:
    """True for an object-store URL such as ``s3://bucket/prefix`` (not a path or file://)."""
    scheme = urlsplit(str(root)).scheme
    return len(scheme) > 1 and scheme != "file"


def open_blobs(url_or_path: str | Path, storage_options: Mapping[str, Any] | None = None) -> Blobs:
    """`ObjectBlobs` for an object-store URL, `LocalBlobs` for a path or file:// URL."""
    text = str(url_or_path)
    if not is_url(text):
        return LocalBlobs(Path(text.removeprefix("file://")))
    return ObjectBlobs(text, storage_options)


class LocalBlobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        try:
            os.link(tmp, target)  # fails if the target exists: the write is whole or not at all
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def list(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        base = self.root / prefix if prefix else self.root
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    out[path.relative_to(self.root).as_posix()] = path.stat().st_size
        return out

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


class ObjectBlobs:
    """Blobs in an object store, through obstore (S3 and S3-compatible servers, GCS, Azure)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        if OBSTORE_MISSING is not None:
            raise ConfigError(
                f"traces at {url} need obstore, which is not installed ({OBSTORE_MISSING}); "
                'install the distributed extra with pip install "vigil[dist]"'
            )
        self.url = url.rstrip("/")
        options = dict(storage_options or {})
        endpoint = str(options.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL") or "")
        client = {"allow_http": True} if endpoint.startswith("http://") else {}
        try:
            self._store = from_url(  # type: ignore[call-overload]  # options are per scheme
                self.url, config=options or None, client_options=client
            )
        except Exception as exc:  # obstore raises its own errors for a bad URL or option
            raise ConfigError(f"cannot open the object store at {self.url}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return bytes(obstore.get(self._store, key).bytes())
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._error("read", key, exc) from exc

    def put(self, key: str, data: bytes) -> None:
        try:
            obstore.put(self._store, key, data)
        except Exception as exc:
            raise self._error("write", key, exc) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        try:
            obstore.put(self._store, key, data, mode="create")
        except AlreadyExistsError:
            return False
        except Exception as exc:
            raise self._error("write", key, exc) from exc
        return True

    def list(self, prefix: str = "") -> dict[str, int]:
        try:
            return {
                meta["path"]: int(meta["size"])
                for batch in obstore.list(self._store, prefix=prefix or None)
                for meta in batch
            }
        except Exception as exc:
            raise self._error("list", prefix, exc) from exc

    def delete(self, key: str) -> None:
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._error("delete", key, exc) from exc

    def _error(self, action: str, key: str, exc: Exception) -> TraceError:
        # The first line of obstore's message names the request, not the credentials.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TraceError(f"cannot {action} {self.url}/{key}: {first}")

    def __reduce__(self) -> Any:
        # A pickled store would carry its credentials into a task graph: never ship one.
        raise TypeError(
            "ObjectBlobs are not pickled (a store carries credentials); ship the URL and open "
            "the blobs where they are used"
        )

"""Payload encoding for traces: msgpack, secret redaction, and a columnar bag of encoded payloads.

Payloads are ccxt dicts or the requests we sent. They are encoded with msgpack (binary-safe, keeps
ints and floats exact) and *always* pass through redaction first, so API keys, secrets, signatures
and listen keys never reach a WAL segment or a Zarr chunk.
"""

from __future__ import annotations

import gc
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgpack
import msgspec
import numpy as np

__all__ = [
    "MASK",
    "SECRET_KEYS",
    "Payloads",
    "decode",
    "encode",
    "encode_many",
    "encode_redacted",
    "gc_paused",
    "msgpack_array",
    "redact",
]

MASK = "***"

# Compared case-insensitively. Superset of the brief's list: every name ccxt or Binance uses for
# a credential or a value derived from one.
SECRET_KEYS: frozenset[str] = frozenset(
    {
        "apikey",
        "api_key",
        "secret",
        "secretkey",
        "secret_key",
        "apisecret",
        "api_secret",
        "password",
        "passphrase",
        "signature",
        "listenkey",
        "listen_key",
        "x-mbx-apikey",
        "privatekey",
        "private_key",
        "token",
    }
)

# `name=value` inside a string (a query string, a URL, a signed body): mask the value.
_PARAM_RE = re.compile(
    r"(?i)\b("
    + "|".join(sorted((re.escape(k) for k in SECRET_KEYS), key=len, reverse=True))
    + r")=([^&\s\"']*)"
)
_PARAM_RE_B = re.compile(_PARAM_RE.pattern.encode())

# Cheap prefilter over *encoded, lower-cased* bytes. Every secret key above contains one of these
# fragments, and msgpack stores str keys and values as raw UTF-8, so no match => nothing to
# redact. A match only sends the payload down the exact (slower) path.
_FRAGMENTS = (b"key", b"secret", b"pass", b"signature", b"token")
_FRAGMENT_RE = re.compile(b"|".join(_FRAGMENTS))


def _suspect(encoded: bytes) -> bool:
    low = encoded.lower()
    if len(low) < 4096:
        # One regex pass beats five substring searches on short inputs (measured).
        return _FRAGMENT_RE.search(low) is not None
    return any(f in low for f in _FRAGMENTS)


def _default(obj: Any) -> Any:
    """msgpack fallback for values ccxt and numpy hand us that msgpack does not know."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, Decimal):
        return str(obj)  # exact; a float would round
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(
        f"cannot encode a {type(obj).__name__} in a trace payload: use dict, list, str, bytes, "
        "int, float, bool, None or numpy scalars/arrays"
    )


# msgspec's encoder writes the same msgpack bytes as msgpack's Packer (str as str, bytes as
# bin, the smallest int forms, float64) at 2.5x its speed on an event payload (measured). One
# per thread: the hook runs Python code, so the GIL can switch mid-encode.
_local = threading.local()


def _encoder() -> msgspec.msgpack.Encoder:
    e: msgspec.msgpack.Encoder | None = getattr(_local, "encoder", None)
    if e is None:
        e = _local.encoder = payload_encoder()
    return e


def payload_encoder() -> msgspec.msgpack.Encoder:
    """A new payload encoder: msgspec's, with the fallback for numpy scalars and arrays, sets,
    Decimals and other mappings. For one thread at a time (see `_encoder`)."""
    return msgspec.msgpack.Encoder(enc_hook=_default)


def encode(payload: Any) -> bytes:
    """msgpack-encode ``payload`` as is (no redaction). Tuples and sets come back as lists."""
    return _encoder().encode(payload)


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Inverse of :func:`encode`: str stays str, bytes stays bytes, int map keys are allowed."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _redact_str(s: str) -> str:
    return _PARAM_RE.sub(r"\1=" + MASK, s) if "=" in s else s


def _redact(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() in SECRET_KEYS:
                out[k] = MASK if v is not None else None
            else:
                out[k] = _redact(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_redact(v) for v in obj]
    if isinstance(obj, str):
        return _redact_str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return _PARAM_RE_B.sub(rb"\1=" + MASK.encode(), bytes(obj)) if b"=" in obj else obj
    return obj


def redact(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``payload`` with every secret masked as ``"***"``.

    A value is secret when its key (at any depth, compared case-insensitively) is in
    :data:`SECRET_KEYS`, or when it is the value of such a ``name=value`` parameter inside a
    string (``"...&signature=abc"`` becomes ``"...&signature=***"``). ``None`` values stay
    ``None``. The input is never modified; tuples come back as lists.
    """
    out: dict[str, Any] = _redact(payload)
    return out


def encode_redacted(payload: Mapping[str, Any]) -> bytes:
    """Encode ``payload`` with secrets masked. Costs one encode plus a byte scan when nothing
    looks secret, which is the hot-path case."""
    data = encode(payload)
    if _suspect(data):
        data = encode(_redact(payload))
    return data


def encode_many(
    payloads: Sequence[Mapping[str, Any]], scan: Sequence[bool] | None = None
) -> tuple[bytes, np.ndarray]:
    """Encode and redact a batch. Returns the concatenated bytes and each payload's size
    (uint32). The secret prefilter runs once over the whole batch, or over the payloads whose
    `scan` is true (the others hold numbers only, whose bytes would only raise false alarms)."""
    pack = _encoder().encode
    parts = [pack(p) for p in payloads]
    blob = b"".join(parts)
    scanned = blob if scan is None else b"".join(p for p, s in zip(parts, scan, strict=True) if s)
    if _suspect(scanned):
        for i, part in enumerate(parts):
            if (scan is None or scan[i]) and _suspect(part):
                parts[i] = encode(_redact(payloads[i]))
        blob = b"".join(parts)
    sizes = np.fromiter(map(len, parts), dtype=np.uint32, count=len(parts))
    return blob, sizes


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def msgpack_array(values: np.ndarray) -> msgspec.Raw | None:
    """A column as the bytes msgspec gives the list of its Python numbers (a msgpack array of
    float64s, or of uint64s for ints from 2**32 up, as bar times in ms are), built by numpy
    rather than one Python object per value; to put in a payload, which encodes it as is.
    None for ints this does not cover (msgpack writes smaller ones in fewer bytes)."""
    n = len(values)
    if values.dtype.kind == "f":
        tag, layout = 0xCB, ">f8"
    elif values.dtype.kind in "iu" and (not n or int(values.min()) >= 1 << 32):
        tag, layout = 0xCF, ">u8"
    else:
        return None
    cells = np.empty(n, dtype=[("tag", "u1"), ("value", layout)])
    cells["tag"] = tag
    cells["value"] = values
    return msgspec.Raw(_array_header(n) + cells.tobytes())


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC around a bulk decode: building millions of small dicts otherwise
    triggers repeated full collections that dominate the cost (measured)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _view(arr: np.ndarray) -> memoryview:
    """A zero-copy byte view of a contiguous uint8 array."""
    return memoryview(arr.data)


@dataclass(frozen=True, slots=True)
class Payloads:
    """Encoded payloads stored column-wise: payload ``i`` is
    ``blob[offsets[i] : offsets[i] + sizes[i]]``. Selecting rows never copies the blob."""

    blob: np.ndarray  # uint8
    offsets: np.ndarray  # int64, into blob
    sizes: np.ndarray  # uint32

    @staticmethod
    def empty() -> Payloads:
        return Payloads(np.empty(0, np.uint8), np.empty(0, np.int64), np.empty(0, np.uint32))

    @staticmethod
    def from_bytes(parts: Sequence[bytes]) -> Payloads:
        sizes = np.fromiter(map(len, parts), dtype=np.uint32, count=len(parts))
        return Payloads.pack(b"".join(parts), sizes)

    @staticmethod
    def pack(blob: bytes | bytearray | np.ndarray, sizes: np.ndarray) -> Payloads:
        """Payloads laid out back to back in ``blob``."""
        offsets = np.zeros(len(sizes), np.int64)
        if len(sizes) > 1:
            np.cumsum(sizes[:-1], out=offsets[1:])
        arr = blob if isinstance(blob, np.ndarray) else np.frombuffer(blob, np.uint8)
        return Payloads(arr, offsets, sizes.astype(np.uint32, copy=False))

    @staticmethod
    def concat(parts: Sequence[Payloads]) -> Payloads:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Payloads.empty()
        if len(parts) == 1:
            return parts[0]
        bases = np.cumsum([0] + [len(p.blob) for p in parts[:-1]])
        return Payloads(
            np.concatenate([p.blob for p in parts]),
            np.concatenate([p.offsets + b for p, b in zip(parts, bases, strict=True)]),
            np.concatenate([p.sizes for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.offsets)

    def take(self, index: Any) -> Payloads:
        """Rows selected by a slice, boolean mask or integer array; shares the blob."""
        return Payloads(self.blob, self.offsets[index], self.sizes[index])

    def compact(self) -> Payloads:
        """A copy whose blob holds exactly these payloads, back to back."""
        return Payloads.pack(self.joined(), self.sizes)

    def joined(self) -> bytes:
        """These payloads' bytes concatenated in row order."""
        if not len(self):
            return b""
        ends = self.offsets + self.sizes
        lo, hi = int(self.offsets[0]), int(ends[-1])
        if np.array_equal(self.offsets[1:], ends[:-1]):  # already contiguous
            return self.blob[lo:hi].tobytes()
        buf = _view(self.blob)
        pairs = zip(self.offsets.tolist(), self.sizes.tolist(), strict=True)
        return b"".join(buf[o : o + s] for o, s in pairs)

    def raw(self, i: int) -> bytes:
        o = int(self.offsets[i])
        return self.blob[o : o + int(self.sizes[i])].tobytes()

    def decode(self, i: int) -> Any:
        o = int(self.offsets[i])
        return decode(_view(self.blob)[o : o + int(self.sizes[i])])

    def decode_all(self) -> list[Any]:
        """Decode every payload, with the GC paused."""
        mv = _view(self.blob)
        unpackb = msgpack.unpackb
        with gc_paused():
            return [
                unpackb(mv[o : o + s], raw=False, strict_map_key=False)
                for o, s in zip(self.offsets.tolist(), self.sizes.tolist(), strict=True)
            ]

"""The lazy payload column: a pandas ExtensionArray over encoded payloads, decoding an element
only when it is looked at."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray, ExtensionDtype

from traces._codec import Payloads, encode, gc_paused

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

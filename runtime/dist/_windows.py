"""Time windows for sweeps and walk-forward optimisation.

A `Span` is a half-open time range ``[start, end)``. A walk-forward `Window` pairs a train span
with the test span that follows it: parameters are fitted on the train span and judged on the
test span, which the fit never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from runtime._errors import ConfigError


@dataclass(frozen=True, slots=True)
class Span:
    """Bars with ``start <= time < end`` (UTC)."""

    start: pd.Timestamp
    end: pd.Timestamp

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start, "start"))
        object.__setattr__(self, "end", utc(self.end, "end"))
        if not self.start < self.end:
            raise ConfigError(
                f"window {self.start} .. {self.end} is empty; its start must come before its end"
            )


@dataclass(frozen=True, slots=True)
class Window:
    """One walk-forward step: fit on `train`, then judge on `test`."""

    train: Span
    test: Span


def walk_forward(
    start: Any,
    end: Any,
    *,
    train: Any,
    test: Any,
    step: Any = None,
    anchored: bool = False,
) -> list[Window]:
    """Walk-forward windows over ``[start, end)``: a `train` span then the `test` span after it,
    moved on by `step` (default `test`, so test spans tile the range) until a test span would
    pass `end`. With ``anchored=True`` every train span starts at `start` (an expanding
    window). Durations are pandas Timedeltas or strings such as ``"7D"`` or ``"12h"``."""
    first, last = utc(start, "start"), utc(end, "end")
    train_td, test_td = duration(train, "train"), duration(test, "test")
    step_td = test_td if step is None else duration(step, "step")
    windows: list[Window] = []
    offset = pd.Timedelta(0)
    while True:
        train_start = first if anchored else first + offset
        train_end = first + offset + train_td
        test_end = train_end + test_td
        if test_end > last:
            break
        windows.append(Window(Span(train_start, train_end), Span(train_end, test_end)))
        offset += step_td
    if not windows:
        raise ConfigError(
            f"walk_forward({first}, {last}, train={train!r}, test={test!r}) has no window: "
            "train + test is longer than the range; shorten them or widen the range"
        )
    return windows


def spans_of(windows: Sequence[Any]) -> list[tuple[int, str, Span]]:
    """Each window as (window index, segment, span): a walk-forward `Window` gives its "train"
    and its "test" span; a `Span` or a ``(start, end)`` pair gives one "span"."""
    out: list[tuple[int, str, Span]] = []
    for i, w in enumerate(windows):
        if isinstance(w, Window):
            out += [(i, "train", w.train), (i, "test", w.test)]
        elif isinstance(w, Span):
            out.append((i, "span", w))
        elif isinstance(w, tuple | list) and len(w) == 2:
            out.append((i, "span", Span(w[0], w[1])))
        else:
            raise ConfigError(
                f"window {w!r} is not a window; pass walk_forward(...) windows, Span(start, end) "
                "or (start, end) pairs"
            )
    return out


def utc(value: Any, what: str) -> pd.Timestamp:
    """A time as a UTC Timestamp; a naive time means UTC."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} {value!r} is not a time; pass e.g. '2024-01-01'") from exc
    if ts is pd.NaT:
        raise ConfigError(f"{what} {value!r} is not a time; pass e.g. '2024-01-01'")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def duration(value: Any, what: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}={value!r} is not a duration; pass e.g. '7D' or '12h'") from exc
    if td is pd.NaT or td <= pd.Timedelta(0):
        raise ConfigError(f"{what}={value!r} must be a positive duration, e.g. '7D'")
    return td

"""Shared fixtures: scripted bar series and a hands-on strategy wired to Sim."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
MANUAL = HERE / "manual_strategy.py"
SHARED_DATA = HERE.parents[1] / "shared" / "data"


def bars(
    closes: Sequence[float],
    *,
    spread: float = 0.001,
    volume: float | Sequence[float] = 100.0,
    start: str = "2024-01-01",
    freq: str = "1min",
) -> pd.DataFrame:
    """Bars whose close follows `closes`; open is the previous close, high/low add `spread`."""
    close = np.asarray(closes, dtype=float)
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    vol = np.broadcast_to(np.asarray(volume, dtype=float), close.shape).copy()
    time = pd.date_range(start, periods=len(close), freq=freq, tz="UTC")
    return pd.DataFrame(
        {"timestamp": time, "open": open_, "high": high, "low": low, "close": close, "volume": vol}
    )


@pytest.fixture
def manual_path() -> Path:
    """A strategy file whose hooks do nothing, so a test drives `call` by hand."""
    return MANUAL


@pytest.fixture(autouse=True)
def _vigil_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own VIGIL_HOME, so no test reads or writes ~/.vigil (the markets
    cache a Live or Paper run saves lands here)."""
    home = tmp_path_factory.mktemp("vigil_home")
    monkeypatch.setenv("VIGIL_HOME", str(home))
    return home

"""Fixtures for the trace tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def trace_path(tmp_path: Path) -> Path:
    """Where a trace goes, as the runtime lays them out (the directory does not exist yet)."""
    return tmp_path / "binance" / "sandbox" / "demo.zarr"

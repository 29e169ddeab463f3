"""Without the `vigil[dist]` extra: a serial sweep still runs; the rest names the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import HERE

SCRIPT = textwrap.dedent(
    """
    import sys
    for name in ("dask", "distributed", "optuna", "obstore"):
        sys.modules[name] = None  # as if not installed: importing it raises ImportError

    from runtime import ConfigError, Sim, optimize, sweep

    rows = sweep("sma_cross", {"fast": [5, 10]}, mode=Sim(bars=300), client="serial",
                 trace_root=sys.argv[1])
    print("serial rows", len(rows), int(rows["error"].isna().sum()))
    for attempt in (
        lambda: sweep("sma_cross", {"fast": [5]}, client=None, trace_root=sys.argv[1]),
        lambda: sweep("sma_cross", {"fast": [5]}, client="tcp://127.0.0.1:8786",
                      trace_root=sys.argv[1]),
        lambda: optimize("sma_cross", {"fast": (3, 9)}, client="serial", trace_root=sys.argv[1]),
    ):
        try:
            attempt()
        except ConfigError as exc:
            print("refused:", exc)
    """
)


def test_serial_sweep_without_dask_and_a_clear_message_otherwise(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "serial rows 2 2"
    refusals = [line for line in lines if line.startswith("refused:")]
    assert len(refusals) == 3
    for line in refusals:
        assert 'pip install "vigil[dist]"' in line
    assert "LocalCluster" in refusals[0]
    assert "tcp://127.0.0.1:8786" in refusals[1]
    assert "optuna" in refusals[2]

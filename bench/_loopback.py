"""The loopback exchange the network benchmarks talk to, run in its own process.

A real exchange is remote: with the server in another process, the client under test does not
share its GIL. Started as ``vigil exchange serve`` would be (manual bars, fixed keys), stopped on
leaving the block.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "benchKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
SECRET = "benchSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
_SERVE = "import sys; from runtime.testing.loopback import serve; sys.exit(serve(sys.argv[1:]))"


@contextmanager
def serve_in_process(spot_balances: Mapping[str, float]) -> Iterator[dict[str, str]]:
    """A loopback exchange on 127.0.0.1 with KEY/SECRET, manual bars and ``spot_balances``;
    yields the ``VIGIL_BINANCE_*`` lines it printed, as an environment."""
    argv = ["--port", "0", "--manual", "--api-key", KEY, "--secret", SECRET]
    argv += [f"--balance=spot:{asset}={amount:f}" for asset, amount in spot_balances.items()]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, *argv], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        env: dict[str, str] = {}
        assert proc.stdout is not None
        for text in proc.stdout:
            if text.startswith("# serving"):
                break
            name, sep, value = text.strip().partition("=")
            if sep and name.startswith("VIGIL_"):
                env[name] = value
        if "VIGIL_BINANCE_URL" not in env:
            raise RuntimeError("the loopback server did not start (no VIGIL_BINANCE_URL line)")
        yield env
    finally:
        proc.terminate()
        proc.wait(10)

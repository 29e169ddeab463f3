"""``vigil exchange serve`` (``runtime.testing.loopback.serve``)."""

from __future__ import annotations

import threading
import time

import pytest

from runtime.testing.loopback import serve
from runtime.testing.loopback._cli import build
from tests.runtime.testing.loopback.support import KEY, SECRET


def test_balances_keys_and_timing_options() -> None:
    ex = build(
        [
            "--port",
            "0",
            "--api-key",
            KEY,
            "--secret",
            SECRET,
            "--balance",
            "USDT=5000",
            "--balance",
            "spot:BTC=1.5",
            "--manual",
        ]
    )
    assert ex.credentials.api_key == KEY
    assert ex.bar_interval_ms is None
    with ex:
        assert ex.call(lambda: ex.spot.sim.ledger.balance("BTC").total) == 1.5
        assert ex.call(lambda: ex.spot.sim.ledger.balance("USDT").total) == 5000.0
        assert ex.call(lambda: ex.futures.sim.ledger.balance("USDT").total) == 5000.0
        assert ex.call(lambda: ex.futures.sim.ledger.balance("BTC").total) == 0.0
    defaults = build(["--port", "0"])
    assert defaults.bar_interval_ms == 60_000  # real time for 1m bars
    assert defaults.credentials.api_key != KEY  # generated
    assert build(["--port", "0", "--bar-ms", "250"]).bar_interval_ms == 250


@pytest.mark.parametrize(
    "argv",
    [["--balance", "USDT"], ["--balance", "margin:USDT=1"], ["--api-key", KEY]],
)
def test_bad_arguments_exit_with_the_rule(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        build(argv)


def test_serve_prints_the_environment_and_runs_until_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(serve(["--port", "0", "--manual"], until=stop))
    )
    thread.start()
    deadline = time.monotonic() + 10
    out = ""
    while "# serving" not in out and time.monotonic() < deadline:
        time.sleep(0.01)
        out += capsys.readouterr().out
    stop.set()
    thread.join(10)
    assert result == [0]
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert set(lines) == {
        f"VIGIL_{name}_{part}"
        for name in ("BINANCE", "BINANCEUSDM")
        for part in ("URL", "API_KEY", "SECRET")
    }
    assert lines["VIGIL_BINANCE_URL"].startswith("http://127.0.0.1:")
    assert lines["VIGIL_BINANCE_URL"] == lines["VIGIL_BINANCEUSDM_URL"]
    assert len(lines["VIGIL_BINANCE_SECRET"]) == 64

"""The live console and the exit summary of `vigil run`, driven as a user drives them."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from runtime.testing.loopback import LoopbackExchange
from tests.conftest import HERE

ROOT = HERE.parent
UPDOWN = HERE / "three_modes_strategy.py"


def _read_until(fd: int, buf: list[str], done: object, timeout: float) -> str:
    """Read the pty into `buf` until ``done(text)`` or the deadline; returns the text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = "".join(buf)
        if callable(done) and done(text):
            return text
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the pty (Linux: EIO)
                break
            if not chunk:
                break
            buf.append(chunk.decode("utf-8", "replace"))
    return "".join(buf)


def vigil_run(*args: str, trace_root: Path) -> list[str]:
    """`vigil run` of the up/down strategy as a command line (the module: no install needed)."""
    cli = [sys.executable, "-m", "runtime.app._cli", "run", str(UPDOWN)]
    return [*cli, *args, "--trace-root", str(trace_root)]


def test_live_run_on_a_terminal_prints_orders_status_and_a_summary_after_ctrl_c(
    running_market: LoopbackExchange, tmp_path: Path
) -> None:
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = vigil_run("--mode", "live", "--no-sandbox", trace_root=tmp_path)
    proc = subprocess.Popen(
        cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path, close_fds=True
    )
    os.close(slave)
    buf: list[str] = []
    try:
        text = _read_until(
            master,
            buf,
            lambda t: t.count(" FILLED ") >= 2 and t.count(" STATUS ") >= 2,
            timeout=60,
        )
        assert text.count(" FILLED ") >= 2, text
        proc.send_signal(signal.SIGINT)
        text = _read_until(master, buf, lambda t: "vigil: stopped" in t, timeout=30)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.returncode == 130, text
    lines = text.replace("\r\n", "\n").splitlines()
    # One line per order event, each starting with the time and the event's word.
    sent = [ln for ln in lines if re.match(r"\d\d:\d\d:\d\d SENT +BTC/USDT:USDT (buy|sell) ", ln)]
    acked = [ln for ln in lines if re.match(r"\d\d:\d\d:\d\d ACKED ", ln)]
    filled = [
        ln
        for ln in lines
        if re.match(r"\d\d:\d\d:\d\d FILLED +BTC/USDT:USDT (buy|sell) 0.002 @ [\d.]+ fee=", ln)
    ]
    status = [
        ln
        for ln in lines
        if re.match(r"\d\d:\d\d:\d\d STATUS .*equity=[\d.]+ USDT pnl=.* orders=\d+ ", ln)
    ]
    assert len(sent) >= 2, text
    assert len(acked) >= 2, text
    assert len(filled) >= 2, text
    assert len(status) >= 2, text
    assert all("watchers=" in ln for ln in status), text
    # After Ctrl-C: the summary with the statistics, the refusals and the trace path.
    summary = text[text.index("stopped after") :]
    for label in ("total return", "max drawdown", "sharpe", "trades", "fees", "refused orders"):
        assert label in summary, summary
    trace = re.search(r"^trace +(\S+)", summary, re.M)
    assert trace is not None, summary
    assert Path(trace.group(1)) == tmp_path / "binance" / "live" / "three_modes_strategy.zarr"
    assert Path(trace.group(1)).is_dir()
    assert "Traceback" not in text
    assert "Unclosed" not in text  # the exchange's sessions are closed on the way out


def test_quiet_paper_run_prints_only_the_summary(
    running_market: LoopbackExchange, tmp_path: Path
) -> None:
    from traces import read_trace

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = vigil_run("--mode", "paper", "--quiet", trace_root=tmp_path)
    proc = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    path = tmp_path / "binance" / "paper" / "three_modes_strategy.zarr"
    try:
        deadline = time.monotonic() + 60
        # The strategy orders every tick; order intents reach the file at once, and a tick's
        # MARK with the next tick's intent: three intents mean two ticks are on record.
        while time.monotonic() < deadline:
            if path.is_dir():
                try:
                    if len(read_trace(path, kinds=["ORDER_INTENT"])) >= 3:
                        break
                except Exception:
                    pass
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # closes the pipes too
    assert proc.returncode == 130, err
    assert " SENT " not in out
    assert " STATUS " not in out
    assert out.startswith("three_modes_strategy (paper, binance) stopped after"), out
    ticks = int(re.search(r"stopped after [\d.]+ s: (\d+) ticks", out).group(1))  # type: ignore[union-attr]
    assert ticks >= 2
    assert re.search(r"^trades +[1-9]\d*$", out, re.M), out
    assert f"trace          {path}" in out
    # A clean shutdown: no unclosed aiohttp session or connector, no traceback.
    assert "Unclosed" not in err
    assert "Traceback" not in err


def test_console_lines_for_refusals_errors_and_alerts() -> None:
    import io

    from runtime import Sim, strategy
    from runtime.app._console import Console
    from traces import Kind

    s = strategy("sma_cross", mode=Sim(bars=100), config={"trace": False})
    out = io.StringIO()
    console = Console(s, out=out)
    console.attach(payloads=True)
    refusal = {
        "type": "MarketOrder[Buy]",
        "amount": 5.0,
        "rule": "amount_max",
        "reason": "amount 5 above the market maximum 1 for LTC/BTC",
    }
    for _ in range(3):
        console.on_record(Kind.ORDER_CHECK_FAILED, refusal, "LTC/BTC")
    error = {
        "error": "ZeroDivisionError('division by zero')",
        "bar": "2024-01-01T00:31:00",
        "in_a_row": 1,
    }
    console.on_record(Kind.STRATEGY_ERROR, error, None)
    console.on_record(Kind.ALERT, {"kind": "strategy_error", "message": "on_tick raised"}, None)
    console.on_record(Kind.ALERT, {"kind": "drift", "message": "balance drifted"}, None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5, lines
    assert all(re.match(r"\d\d:\d\d:\d\d [A-Z_]+ ", ln) for ln in lines)
    assert lines[0].split()[1:3] == ["REFUSED", "LTC/BTC"]
    assert 'rule=amount_max reason="amount 5 above the market maximum 1' in lines[0]
    # The strategy's exception: one line, with the bar it happened on.
    assert [ln for ln in lines if "division by zero" in ln] == [lines[3]]
    assert "STRATEGY_ERROR" in lines[3]
    assert "bar=2024-01-01T00:31:00" in lines[3]
    assert lines[4].endswith("ALERT     -             drift: balance drifted")
    assert console.refusals[("amount_max", "LTC/BTC")] == 3

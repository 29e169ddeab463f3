"""Risk and operations in Live on the loopback exchange through real ccxt (DESIGN §9): the kill
switch, the capital cap, alerts and the webhook, health waits, the periodic reconcile, `stop`
against a runaway `on_tick`, and SIGTERM to `vigil run`."""

from __future__ import annotations

import http.server
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime import (
    Buy,
    GTCOrder,
    Live,
    MarketOrder,
    Pending,
    Risk,
    Trade,
    call,
    halt,
    resume,
    start,
    stop,
    strategy,
)
from runtime.exchanges.ccxt import CcxtExchange
from runtime.model import WatcherConfig
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.testing.loopback.support import BTC
from traces import read_trace

HERE = Path(__file__).resolve().parent
WATCHFUL = HERE / "watchful_strategy.py"
RUNAWAY = HERE / "runaway_strategy.py"
RESTING = HERE / "resting_strategy.py"
MARGIN = HERE.parents[1] / "manual_margin_strategy.py"
FAST = WatcherConfig(stall_timeout_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.5)
ROOT = HERE.parents[2]


@asynccontextmanager
async def running(
    root: Path, path: Path = WATCHFUL, mode: Live | None = None, **kwargs: Any
) -> AsyncIterator[Any]:
    s = strategy(
        path,
        mode=mode or Live(watchers=FAST),
        sandbox=False,
        config={"trace_root": str(root), **kwargs.pop("config", {})},
        **kwargs,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        try:
            yield s
        finally:
            await stop(s)


async def exchange(margin: bool = False) -> dict[str, Any]:
    """What the loopback holds for BTC: open orders, the base balance, the position."""
    async with CcxtExchange.open(
        "binance", sandbox=False, margin="isolated" if margin else None
    ) as ex:
        symbol = "BTC/USDT:USDT" if margin else BTC
        out: dict[str, Any] = {"open": await ex.fetch_open_orders(symbol)}
        if margin:
            positions = await ex.fetch_positions([symbol])
            out["contracts"] = sum(float(p.get("contracts") or 0) for p in positions)
        else:
            out["btc"] = (await ex.fetch_balance()).get("BTC", {}).get("total") or 0.0
        return out


async def test_halt_leaves_no_open_order_on_the_exchange_and_resume_sends(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(tmp_path) as s:
        ai = s.universe[BTC]
        for price in (55_000.0, 54_000.0):
            assert isinstance(
                await call(s, ai, GTCOrder[Buy], amount=0.01, price=price, waitfor=0), Pending
            )
        assert len((await exchange())["open"]) == 2
        await halt(s, "test")
        assert not s.trading
        assert ai.orders == ()
        assert (await exchange())["open"] == []
        assert await call(s, ai, MarketOrder[Buy], amount=0.01) is None
        assert str(s.errors[-1]).startswith("halted: test")
        assert (await s.alert_of("halt")).message.startswith("halted: test")
        resume(s)
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)


async def test_halt_with_flatten_sells_the_holding(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(tmp_path, risk=Risk(on_halt="flatten")) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        await call(s, ai, GTCOrder[Buy], amount=0.01, price=55_000.0, waitfor=0)
        await halt(s, "test")
        state = await exchange()
        assert state["open"] == []
        assert state["btc"] == pytest.approx(0.0, abs=1e-12)


async def test_halt_with_flatten_closes_the_position(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(tmp_path, MARGIN, risk=Risk(on_halt="flatten")) as s:
        ai = s.universe["BTC/USDT:USDT"]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.01), Trade)
        await call(s, ai, GTCOrder[Buy], amount=0.01, price=55_000.0, waitfor=0)
        await halt(s, "test")
        state = await exchange(margin=True)
        assert state["open"] == []
        assert state["contracts"] == 0.0
        with trio.fail_after(10):  # the position stream brings the close home
            while ai.long is not None or ai.short is not None:
                await s._rt.account_changed.wait()


async def test_initial_cash_caps_the_strategy_not_the_account(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(tmp_path, initial_cash=100.0) as s:
        ai = s.universe[BTC]
        assert s.cash == pytest.approx(100_000.0)  # the account holds far more
        assert s.budget_left == pytest.approx(100.0)
        assert await call(s, ai, MarketOrder[Buy], amount=1_000.0 / 60_000.0) is None
        refusal = s.errors[-1]
        assert refusal.rule == "initial_cash"
        assert "initial_cash=100" in str(refusal)
        trade = await call(s, ai, MarketOrder[Buy], amount=0.0008)  # 48 USDT
        assert isinstance(trade, Trade)
        assert s.budget_left == pytest.approx(100.0 - trade.value - trade.fee)
        assert await call(s, ai, MarketOrder[Buy], amount=0.0009) is None  # 54 > 52 left
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.0008), Trade)


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))  # type: ignore[attr-defined]
        self.server.arrived.set()  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.bodies = []  # type: ignore[attr-defined]
    server.arrived = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def posted(server: Any, kind: str) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            found = [b for b in server.bodies if b["kind"] == kind]
            if found:
                return found[0]
            server.arrived.clear()
            await trio.to_thread.run_sync(server.arrived.wait, 1.0)


async def test_alerts_reach_on_alert_and_the_webhook_without_secrets(
    loopback: LoopbackExchange, tmp_path: Path, webhook: Any
) -> None:
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hook?token=abc"
    async with running(tmp_path, config={"webhook_url": url}) as s:
        ai = s.universe[BTC]
        # A watcher going stale: user data held past the stall timeout while an order is due.
        loopback.faults.pause_user_data(2.5)
        await call(s, ai, GTCOrder[Buy], amount=0.01, price=55_000.0, waitfor=0)
        stale = await s.alert_of("health")
        assert "stale" in stale.message
        # An unknown outcome: the order is placed but its reply is lost.
        loopback.faults.drop_next_order_response()
        # (A deadline that outlasts the pause: the call waits for the watcher to recover.)
        await call(s, ai, GTCOrder[Buy], amount=0.01, price=54_000.0, waitfor=10.0)
        unknown = await s.alert_of("unknown_outcome")
        assert "unknown outcome" in unknown.message
        await halt(s, "test")
        await s.alert_of("halt")
        for kind in ("health", "unknown_outcome", "halt"):
            body = await posted(webhook, kind)
            assert body["strategy"] == s.name
            mine = next(a for a in s.alerts if a.kind == kind)
            assert body["message"] == mine.message
    key = loopback.credentials.api_key
    secret = loopback.credentials.secret
    everything = json.dumps(webhook.bodies) + repr(s.alerts)
    s.flush_trace()
    alerts = read_trace(s.trace_path, kinds=["ALERT"])["payload"]
    assert len(alerts) >= 3
    everything += json.dumps([dict(p) for p in alerts], default=str)
    assert key not in everything
    assert secret not in everything
    assert "signature=" not in everything.replace("signature=***", "")


async def test_a_dead_webhook_never_stops_trading(
    loopback: LoopbackExchange, tmp_path: Path, caplog: Any
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="vigil.alerts")
    async with running(tmp_path, config={"webhook_url": f"http://127.0.0.1:{port}/x"}) as s:
        ai = s.universe[BTC]
        guard = s._rt.guard
        for n in range(3):
            await halt(s, f"test {n}")
            resume(s)
            assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.001), Trade)
        with trio.fail_after(20):
            while guard.webhook.failed < 6:
                await guard.webhook.attempted.wait()
    lines = [r for r in caplog.records if "alert webhook" in r.getMessage()]
    assert len(lines) == 1  # at most once a minute
    assert str(port) not in lines[0].getMessage() or "127.0.0.1" in lines[0].getMessage()


async def test_call_waits_for_a_reconnecting_watcher_then_refuses(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    async with running(tmp_path) as s:
        ai = s.universe[BTC]
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.001), Trade)
        watchers = s._rt.driver.account_watchers
        loopback.faults.fail_next(200, path="/api/v3/account")  # the gap fill cannot finish
        loopback.faults.close_websockets()
        with trio.fail_after(10):
            while all(w.health == "healthy" for w in watchers):
                await s._rt.driver.clock.health_changed.wait()
        t0 = trio.current_time()
        assert await call(s, ai, MarketOrder[Buy], amount=0.001, waitfor=1.0) is None
        assert 0.9 <= trio.current_time() - t0 < 5.0  # it waited out its deadline
        assert s.errors[-1].rule == "watchers_unhealthy"
        assert "balance (reconnecting)" in str(s.errors[-1])
        loopback.faults.reset()  # the exchange answers again: the next call waits, then sends
        assert isinstance(await call(s, ai, MarketOrder[Buy], amount=0.001, waitfor=20.0), Trade)


async def test_periodic_reconcile_corrects_an_order_the_stream_never_told(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    mode = Live(watchers=FAST, reconcile_every_s=1.0)
    async with running(tmp_path, mode=mode) as s:
        ai = s.universe[BTC]
        p = await call(s, ai, GTCOrder[Buy], amount=0.01, price=55_000.0, waitfor=0)
        assert isinstance(p, Pending)
        loopback.faults.suppress_user_data(20)  # the cancel's events never arrive
        async with CcxtExchange.open("binance", sandbox=False) as other:
            await other.cancel_order(p.order.id, BTC)
        assert p.order.is_open  # nothing told the strategy
        with trio.fail_after(1.0 + 5.0):
            while p.order.is_open:
                await s._rt.account_changed.wait()
        assert p.order.status == "canceled"
        drift = await s.alert_of("drift")
        assert "reconcile corrected" in drift.message
    frame = read_trace(s.trace_path, kinds=["RECONCILE"])
    assert any((payload.get("client_id") == p.order.client_id) for payload in frame["payload"])


async def test_stop_ends_a_runaway_on_tick_within_5_s(
    running_market: LoopbackExchange, tmp_path: Path
) -> None:
    s = strategy(
        RUNAWAY, mode=Live(watchers=FAST), sandbox=False, config={"trace_root": str(tmp_path)}
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        with trio.fail_after(30):
            while s.sent < 5:
                await s._rt.account_changed.wait()
        t0 = trio.current_time()
        await stop(s)
        assert trio.current_time() - t0 < 5.0
    frame = read_trace(s.trace_path)
    kinds = list(frame["kind"])
    last_stop = len(kinds) - 1 - kinds[::-1].index("RUN_STOPPED")
    assert "ORDER_INTENT" not in kinds[last_stop:]
    intents = {p["client_id"] for p in read_trace(s.trace_path, kinds=["ORDER_INTENT"])["payload"]}
    async with CcxtExchange.open("binance", sandbox=False) as ex:
        placed = await ex.fetch_closed_orders(BTC, limit=1000) + await ex.fetch_open_orders(BTC)
    assert {o["clientOrderId"] for o in placed} <= intents


def test_sigterm_to_vigil_run_live_cancels_and_records_the_stop(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "runtime.app._cli", "run", str(RESTING), "--mode", "live",
        "--no-sandbox", "--on-stop", "cancel", "--trace-root", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the strategy is resting its orders
            assert line.strip() == "READY", proc.communicate()[1]
            assert len(trio.run(exchange)["open"]) == 2
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 143, err
    assert "stopped (SIGTERM)" in err
    assert trio.run(exchange)["open"] == []
    traces = list(tmp_path.rglob("resting_strategy.zarr"))
    frame = read_trace(traces[0])
    assert frame["kind"].iloc[-1] == "RUN_STOPPED"
    assert len(frame[frame["kind"] == "CANCEL_REQUEST"]) == 2

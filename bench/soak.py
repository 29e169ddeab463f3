"""Soak: a Live strategy on the loopback exchange under random order flow and random faults.

The loopback Binance runs in this process; the strategy runs in a child process
(`bench/_soak_child.py`) placing market and limit orders and cancelling at random, while the
price walks. Meanwhile this process injects, at random: lost order replies, 5xx bursts, 429s,
websocket drops, paused user data, and SIGKILLs of the strategy, which is then started again
on the same trace (a restart replays the trace and reconciles with the exchange). At the end
the faults stop, the strategy stops cleanly, and the soak checks:

* the strategy's state equals the exchange's: balances, open orders, fills;
* its trace replays to that state;
* no client order id was placed twice on the exchange, and no fill of its orders was lost.

    python bench/soak.py [--minutes N] [--seed S]

It prints the count of each fault injected and every check, and exits 1 on any divergence.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from runtime.model import FillModel
from runtime.testing import LoopbackExchange

HERE = Path(__file__).resolve().parent
SYMBOL = "BTC/USDT"
KEY = "soakKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
SECRET = "soakSecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
FAULTS = ("lost_reply", "5xx", "429", "ws_drop", "paused_user_data", "sigkill")


class Child:
    """The strategy process, started again after each SIGKILL."""

    def __init__(self, root: Path, env: dict[str, str], seed: int) -> None:
        self.root, self.env, self.seed = root, env, seed
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.root / "child.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "_soak_child.py"), str(self.root), str(self.seed)],
                env={**os.environ, **self.env},
                cwd=HERE.parent,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.seed += 1  # a new order flow after each restart

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def walk_price(ex: LoopbackExchange, rng: random.Random, done: threading.Event) -> None:
    price = ex.price(SYMBOL)
    while not done.wait(0.05):
        price *= 1 + rng.gauss(0, 0.0005)
        ex.set_price(SYMBOL, round(price, 2))


def inject(ex: LoopbackExchange, child: Child, kind: str, rng: random.Random) -> None:
    faults = ex.faults
    if kind == "lost_reply":
        faults.drop_next_order_response(1, mode=rng.choice(("close", "500")))
    elif kind == "5xx":
        faults.fail_next(rng.randint(1, 3), status=rng.choice((500, 502, 503, 504)))
    elif kind == "429":
        faults.rate_limit_next(1, retry_after_s=rng.choice((0, 1)))
    elif kind == "ws_drop":
        faults.close_websockets()
    elif kind == "paused_user_data":
        faults.pause_user_data(rng.uniform(0.3, 1.5))
    else:
        child.kill()
        child.start()


def exchange_view(ex: LoopbackExchange, tag: str) -> dict[str, Any]:
    """The account as the exchange holds it: balances, our open orders, our fills, and how
    many exchange orders each of our client ids has."""

    def read() -> dict[str, Any]:
        ledger = ex.spot.sim.ledger
        ai = ledger.assets[SYMBOL]
        per_client = collections.Counter(
            o.client_id for o in ledger.orders_by_id.values() if o.client_id.startswith(tag)
        )
        return {
            "balances": {c: b.total for c, b in ledger.balances.items()},
            "open": sorted(
                (o.client_id, o.filled)
                for o in ai.open_orders.values()
                if o.client_id.startswith(tag)
            ),
            "fills": sorted(t.id for t in ai.trades if t.order.client_id.startswith(tag)),
            "duplicates": sorted(c for c, n in per_client.items() if n > 1),
        }

    return ex.call(read)


def compare(local: dict[str, Any], remote: dict[str, Any]) -> list[str]:
    problems = []
    for currency in ("BTC", "USDT"):
        mine = local["balances"].get(currency, {}).get("total", 0.0)
        theirs = remote["balances"].get(currency, 0.0)
        if abs(mine - theirs) > 1e-6 * max(1.0, abs(theirs)):
            problems.append(f"balance {currency}: strategy {mine!r}, exchange {theirs!r}")
    asset = local["assets"][SYMBOL]
    mine_open = sorted((o["client_id"], o["filled"]) for o in asset["open_orders"])
    if mine_open != remote["open"]:
        problems.append(f"open orders: strategy {mine_open}, exchange {remote['open']}")
    mine_fills = {str(t[0]) for t in asset["trades"]}
    lost = sorted(set(remote["fills"]) - mine_fills)
    extra = sorted(mine_fills - set(remote["fills"]))
    if lost:
        problems.append(f"lost fills (on the exchange, not in the strategy): {lost[:10]}")
    if extra:
        problems.append(f"fills the exchange does not have: {extra[:10]}")
    return problems


def run_soak(
    seconds: float,
    seed: int,
    root: Path,
    kill_every_s: float = 10.0,
    min_fills: int = 0,
    fills_grace_s: float = 60.0,
) -> dict[str, Any]:
    """Run the soak for `seconds`; returns the counts and the problems found (none is a pass).
    Faults come every 0.2-1.0 s, a SIGKILL about every `kill_every_s`. With `min_fills`, the
    strategy then runs on without faults until the exchange holds that many of its fills (at
    most `fills_grace_s` more), so a slow host's long restarts still leave fills to check."""
    rng = random.Random(seed)
    counts: collections.Counter[str] = collections.Counter()
    deaths: list[str] = []  # the end of the strategy's log each time it died on its own
    with LoopbackExchange(
        api_key=KEY,
        secret=SECRET,
        spot_balances={"USDT": 100_000.0},
        fill_model=FillModel(spread_bps=0.0, impact=0.0, volume_cap=1.0),
        history=300,
    ) as ex:
        ex.set_price(SYMBOL, 60_000.0)
        done = threading.Event()
        walker = threading.Thread(target=walk_price, args=(ex, random.Random(seed), done))
        walker.start()
        child = Child(root, ex.env(), seed)
        child.start()
        # Faults begin once the first start is done (markets, bars, watchers): on a busy
        # machine a start takes longer than any fixed wait. The child says so with a file.
        ready = root / "started"
        give_up = time.monotonic() + 120.0
        while not ready.exists() and child.alive() and time.monotonic() < give_up:
            time.sleep(0.1)  # another process: nothing to wait on but its file
        deadline = time.monotonic() + seconds
        next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every_s
        try:
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.2, 1.0))
                if time.monotonic() >= next_kill:
                    kind = "sigkill"
                    next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every_s
                else:
                    kind = rng.choice(FAULTS[:-1])
                if not child.alive():  # it died on its own: a finding; keep why, start it again
                    counts["child_died"] += 1
                    log = (root / "child.log").read_text(errors="replace").splitlines()
                    deaths.append("\n".join(log[-30:]))
                    child.start()
                inject(ex, child, kind, rng)
                counts[kind] += 1
        finally:
            ex.faults.reset()
        try:
            give_up = time.monotonic() + fills_grace_s
            while (
                len(exchange_view(ex, "")["fills"]) < min_fills
                and child.alive()
                and time.monotonic() < give_up
            ):
                time.sleep(0.5)  # another process trades: nothing to wait on but the exchange
        finally:
            done.set()
            walker.join()
        (root / "stop").write_text("")
        assert child.proc is not None
        try:
            code = child.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            child.kill()
            code = -9
        summary_file = root / "summary.json"
        problems = [f"the strategy died on its own:\n{d}" for d in deaths]
        if code != 0 or not summary_file.exists():
            problems.append(f"the strategy did not stop cleanly (exit {code}); see child.log")
            return {"counts": dict(counts), "starts": child.starts, "problems": problems}
        summary = json.loads(summary_file.read_text())
        local = summary["state"]
        remote = exchange_view(ex, summary["client_id_prefix"])
        problems += compare(local, remote)
        if not summary["replay_equal"]:
            problems.append("the trace does not replay to the strategy's final state")
        if remote["duplicates"]:
            problems.append(f"client ids placed twice: {remote['duplicates'][:10]}")
        return {
            "counts": dict(counts),
            "starts": child.starts,
            "fills": len(remote["fills"]),
            "open_orders": len(remote["open"]),
            "problems": problems,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-every", type=float, default=10.0, help="seconds between SIGKILLs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-soak-") as tmp:
        t0 = time.monotonic()
        report = run_soak(args.minutes * 60, args.seed, Path(tmp), args.kill_every)
        elapsed = time.monotonic() - t0
        print(f"soak: {elapsed:.0f} s, seed {args.seed}")
        for kind in FAULTS:
            print(f"  {kind:<18} {report['counts'].get(kind, 0):>5}")
        if report["counts"].get("child_died"):
            print(f"  strategy died on its own: {report['counts']['child_died']}")
        print(f"  strategy starts    {report['starts']:>5}")
        print(f"  fills              {report.get('fills', 0):>5}")
        print(f"  open orders at end {report.get('open_orders', 0):>5}")
        for problem in report["problems"]:
            print(f"  DIVERGENCE: {problem}")
        print(
            "soak: no divergence, no duplicate, no lost fill"
            if not report["problems"]
            else f"soak: {len(report['problems'])} problem(s)"
        )
        return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""The live console of `vigil run`: one line per order event, a status line per tick, and
reconnects, health changes and alerts, for a person and for `grep` alike.

Lines look like::

    23:42:21 SENT      BTC/USDT      buy 0.002 market id=vg1a2b3c-0-7
    23:42:21 FILLED    BTC/USDT      buy 0.002 @ 60123.4 fee=0.0481 USDT id=vg1a2b3c-0-7
    23:42:22 REFUSED   LTC/BTC       buy 2345.1 market rule=amount_max reason="amount ... above ..."
    23:42:22 STATUS    -             equity=99998.12 USDT pnl=-1.88 (-0.00%) orders=0
                                     positions=BTC/USDT:0.002 watchers=5/5 healthy  (one line)

The first word after the time is the event, so ``grep FILLED`` or ``grep -E 'REFUSED|STALE'``
select what a person wants. Every line is flushed at once (a pipe or a pty sees it live).
The same observer counts refused orders by rule and market in every mode, for the summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections import Counter
from collections.abc import Mapping
from typing import IO, Any

from runtime.engine._results import mark_equity
from runtime.engine._strategy import Strategy, runtime_of
from runtime.model import Sim
from traces import Kind, summarise

# Kinds the risk layer records: each its own word (HALTED, RESUMED, STRATEGY_ERROR ...).
_RISK_KINDS = {"HALTED", "RESUMED", "STRATEGY_ERROR", "LIQUIDATION"}
# Alerts that repeat a line already printed for their own event.
_ALERTS_SHOWN = {"health", "strategy_error", "halt", "resume"}
_REFUSALS = (Kind.ORDER_CHECK_FAILED, Kind.ORDER_REFUSED)


def _num(v: Any) -> str:
    return f"{v:.10g}" if isinstance(v, int | float) else str(v)


class Console:
    """Observes a strategy's records (`Runtime.observe`) and prints them as lines; counts
    refusals (`refusals`) whether or not it prints. ``verbose=False`` prints nothing."""

    def __init__(self, s: Strategy, *, out: IO[str] | None = None, verbose: bool = True) -> None:
        self.s = s
        self.rt = runtime_of(s)
        self.out = out if out is not None else sys.stdout
        self.verbose = verbose
        # (rule, market) -> count, and one full reason of each as the example.
        self.refusals: Counter[tuple[str, str]] = Counter()
        self.refusal_example: dict[tuple[str, str], str] = {}
        self.health: dict[str, str] = {}
        self.reconnects = 0
        self.alerts = 0

    def attach(self, *, payloads: bool) -> None:
        """Start observing. ``payloads=False`` (Sim): only what is recorded anyway, such as
        refusals, so an untraced backtest stays as fast."""
        if payloads:
            self.rt.observe(self.on_record)
        else:
            self.rt.observers.append(self.on_record)

    # Lines.
    def _print(self, word: str, asset: str | None, text: str) -> None:
        if not self.verbose:
            return
        when = dt.datetime.fromtimestamp(self.rt.now_ms() / 1000, dt.UTC)
        self.out.write(f"{when:%H:%M:%S} {word:<9} {asset or '-':<13} {text}\n")
        self.out.flush()

    def on_record(self, kind: Kind, payload: Mapping[str, Any], asset: str | None) -> None:
        event = payload.get("event")
        if kind in _REFUSALS or (kind is Kind.ORDER_REJECTED and event is None):
            self._refused(payload, asset)
        elif kind is Kind.ORDER_INTENT:
            price = payload.get("price")
            at = f" @ {_num(price)}" if price is not None else ""
            self._print(
                "SENT",
                asset,
                f"{payload.get('side')} {_num(payload.get('amount'))} {payload.get('type')}{at} "
                f"id={payload.get('client_id')}",
            )
        elif event == "OrderAcknowledged" or (
            event == "OrderCreated" and payload.get("id") is not None
        ):
            self._print("ACKED", asset, f"id={payload.get('client_id')} order={payload.get('id')}")
        elif event == "OrderFilled":
            order = self.rt.state.orders.get(str(payload.get("client_id")))
            side = order.side if order is not None else "?"
            self._print(
                "FILLED",
                asset,
                f"{side} {_num(payload.get('amount'))} @ {_num(payload.get('price'))} "
                f"fee={_num(payload.get('fee'))} {payload.get('fee_currency')} "
                f"id={payload.get('client_id')}",
            )
        elif event == "OrderCancelled":
            word = "EXPIRED" if payload.get("status") == "expired" else "CANCELLED"
            reason = f' reason="{payload["reason"]}"' if payload.get("reason") else ""
            self._print(word, asset, f"id={payload.get('client_id')}{reason}")
        elif event == "OrderRejected":
            self._print(
                "REJECTED", asset, f'id={payload.get("client_id")} reason="{payload.get("reason")}"'
            )
        elif kind is Kind.MARK:
            self._status(payload)
        elif kind is Kind.RECONNECT:
            self.reconnects += 1
            self._print("RECONNECT", asset, summarise(payload))
        elif kind is Kind.HEALTH:
            self._health(payload, asset)
        elif kind is Kind.ORDER_UNKNOWN:
            self._print("UNKNOWN", asset, summarise(payload))
        elif kind.name in _RISK_KINDS:
            self.alerts += 1
            self._print(kind.name, asset, summarise(payload))
        elif kind.name == "ALERT":
            self.alerts += 1
            if payload.get("kind") not in _ALERTS_SHOWN:
                self._print("ALERT", asset, f"{payload.get('kind')}: {payload.get('message')}")
        elif kind in (Kind.ERROR, Kind.HOOK_ERROR):
            self._print("ERROR", asset, summarise(payload))

    def _refused(self, payload: Mapping[str, Any], asset: str | None) -> None:
        key = (str(payload.get("rule") or "refused"), asset or "-")
        self.refusals[key] += 1
        self.refusal_example.setdefault(key, str(payload.get("reason")))
        self._print(
            "REFUSED",
            asset,
            f"{payload.get('type')} {_num(payload.get('amount'))} rule={key[0]} "
            f'reason="{payload.get("reason")}"',
        )

    def _health(self, payload: Mapping[str, Any], asset: str | None) -> None:
        watcher = str(payload.get("watcher"))
        health = str(payload.get("health"))
        before = self.health.get(watcher)
        self.health[watcher] = health
        # Watchers start unhealthy and turn healthy: only a fall, or a recovery from one,
        # is news.
        if health != "healthy" or (before is not None and before != "healthy"):
            self._print(health.upper(), asset, f"watcher={watcher}")

    def _status(self, payload: Mapping[str, Any]) -> None:
        rt = self.rt
        equity = payload.get("equity")
        history = rt.tick_history
        start = mark_equity(rt, history.start) if history and history.start else math.nan
        if isinstance(equity, int | float) and math.isfinite(start) and start:
            pnl = f"pnl={equity - start:+.2f} ({(equity / start - 1) * 100:+.2f}%)"
        else:
            pnl = "pnl=n/a"
        orders = sum(len(ai.open_orders) for ai in rt.universe)
        held = []
        for ai in rt.universe:
            if rt.margin:
                for pos in (ai.long, ai.short):
                    if pos is not None and pos.contracts:
                        held.append(f"{ai.symbol}:{pos.side}:{_num(pos.contracts)}")
            elif abs(ai.cash) > 0:
                held.append(f"{ai.symbol}:{_num(ai.cash)}")
        healthy = sum(h == "healthy" for h in self.health.values())
        eq = f"{equity:.2f}" if isinstance(equity, int | float) else "n/a"
        self._print(
            "STATUS",
            None,
            f"equity={eq} {rt.cash_currency} {pnl} orders={orders} "
            f"positions={','.join(held) or 'none'} "
            f"watchers={healthy}/{len(self.health)} healthy",
        )


def add_console_args(parser: argparse.ArgumentParser) -> None:
    """`--quiet` and `--log-level` on `vigil run` (the latter also before the command)."""
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="Live and Paper: no order or status lines, only the summary at the end",
    )
    parser.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default WARNING)",
    )


def console_for(s: Strategy, args: argparse.Namespace) -> Console:
    """The console of a `vigil run`: printing in Live and Paper unless --quiet; in Sim it only
    counts refusals for the summary (a line per order of a backtest would drown it)."""
    simulated = isinstance(runtime_of(s).mode, Sim)
    console = Console(s, verbose=not (simulated or getattr(args, "quiet", False)))
    console.attach(payloads=not simulated)
    return console

"""The `vigil` command.

vigil demo                         backtest sma_cross on generated bars and print a summary
vigil run STRATEGY --mode sim      run a bundled strategy or a strategy file
vigil data download|list           market data into and out of the store (``_cli_data``)
vigil markets save|list EXCHANGE   the markets cache (runtime.app._cli_markets)
vigil sweep STRATEGY --param ...   run a strategy over a grid of parameters (runtime.dist)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import trio

from runtime._errors import VigilError
from runtime._progress import Progress
from runtime.app._cli_data import add_data_parser, cmd_data
from runtime.app._cli_markets import add_markets_parser, cmd_markets
from runtime.app._cli_new import add_new_parser, new_main
from runtime.app._cli_run import (
    add_override_args,
    check_time_flags,
    params_from_args,
    sandbox_for,
)
from runtime.app._cli_sweep import add_sweep_parser, cmd_sweep
from runtime.app._console import Console, add_console_args, console_for
from runtime.app._lifecycle import start, stop
from runtime.app._report import report_main
from runtime.app._summary import print_summary
from runtime.data import StoreData
from runtime.engine import replay_from_trace, runtime_of
from runtime.model import Live, Mode, Paper, Sim, load_bars
from runtime.modes import strategy
from runtime.modes._sim import SimDriver
from runtime.testing.loopback import serve
from traces import Kind, event_line, read_trace, tail_records

log = logging.getLogger("vigil")


class _LogfmtFormatter(logging.Formatter):
    """Structured log lines: ``ts=... level=... logger=... msg="..."`` (logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace('"', "'")
        line = (
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname} "
            f'logger={record.name} msg="{msg}"'
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class UsageError(VigilError):
    """A flag's value is not valid: exits with status 2, like argparse's own errors."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil", description="vigil strategy runtime")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default WARNING)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="backtest sma_cross on generated data and print a summary")
    demo.add_argument("--bars", type=int, default=20_000, help="generated 1m bars (default 20000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-trace", action="store_true", help="do not write an event trace")

    run = sub.add_parser("run", help="run a strategy (bundled name or .py path)")
    run.add_argument("strategy")
    run.add_argument("--mode", choices=["sim", "paper", "live"], default="sim")
    run.add_argument("--exchange", default=None)
    run.add_argument(
        "--sandbox",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the exchange's test network (default: on for Live; Paper reads production data)",
    )
    run.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="[SYMBOL=]PATH",
        help="bars file (CSV/Parquet); repeat as SYMBOL=PATH for several markets; 'store' "
        "reads the market-data store (`vigil data download`)",
    )
    run.add_argument("--since", default=None, help="first bar time (Sim), e.g. 2024-01-01")
    run.add_argument("--until", default=None, help="last bar time (Sim)")
    run.add_argument("--bars", type=int, default=20_000, help="generated bars without --data")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--cash", type=float, default=None, help="initial cash")
    run.add_argument(
        "--trace-root",
        default=None,
        help="where traces are written (default ./traces; ./vigil-traces in a vigil checkout)",
    )
    run.add_argument("--no-trace", action="store_true")
    risk = run.add_argument_group("risk and operations")
    risk.add_argument(
        "--max-drawdown",
        type=float,
        default=None,
        metavar="FRACTION",
        help="halt once equity is this fraction below its peak, e.g. 0.1",
    )
    risk.add_argument(
        "--max-daily-loss",
        type=float,
        default=None,
        metavar="AMOUNT",
        help="halt once the day's loss (cash currency, since 00:00 UTC) reaches this",
    )
    risk.add_argument(
        "--on-stop",
        choices=["cancel", "flatten", "leave"],
        default="leave",
        help="Live: on any way out (stop, error, Ctrl-C, SIGTERM) cancel the open orders, "
        "flatten orders and positions, or leave them (default leave)",
    )
    risk.add_argument("--webhook-url", default=None, help="POST every alert there as JSON")
    add_console_args(run)
    add_override_args(run)

    trace = sub.add_parser("trace", help="read an event trace")
    trace_sub = trace.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    tail = trace_sub.add_parser("tail", help="the last events of a trace")
    tail.add_argument("path")
    tail.add_argument("-n", type=int, default=20, help="how many events (default 20)")
    show = trace_sub.add_parser("show", help="events of a trace, filtered")
    show.add_argument("path")
    show.add_argument(
        "--kind", action="append", default=None, help="event kind, e.g. TRADE (repeatable)"
    )
    show.add_argument("--asset", action="append", default=None, help="symbol (repeatable)")
    show.add_argument("--since", default=None)
    show.add_argument("--until", default=None)
    show.add_argument("-n", type=int, default=None, help="show only the last N matches")

    report = sub.add_parser("report", help="statistics and plots of a run, from its trace")
    report.add_argument(
        "path",
        metavar="TRACE_OR_RESULT",
        help="a trace directory, e.g. traces/binance/sim/sma_cross.zarr",
    )
    report.add_argument(
        "--html", default=None, metavar="PATH", help="write a self-contained HTML page"
    )
    report.add_argument("--png", default=None, metavar="PATH", help="write the plots as a PNG")
    report.add_argument("--run", default="-1", help="run index (-1 = last) or run id")

    replay = sub.add_parser("replay", help="rebuild a strategy's state from its trace")
    replay.add_argument("path")
    replay.add_argument("--run", default="-1", help="run index (-1 = last) or run id")

    add_new_parser(sub)
    add_data_parser(sub)
    add_sweep_parser(sub)

    exchange = sub.add_parser("exchange", help="the loopback exchange")
    exchange_sub = exchange.add_subparsers(dest="exchange_command", required=True, metavar="ACTION")
    exchange_sub.add_parser("serve", help="serve a loopback Binance on 127.0.0.1", add_help=False)
    add_markets_parser(sub)
    return parser


def _load_data(specs: list[str] | None, since: str | None, until: str | None) -> Any:
    if not specs:
        return None
    if specs == ["store"]:  # the market-data store (`vigil data download`)
        return StoreData(since=since, until=until)
    data: dict[str, Any] | str
    if len(specs) == 1 and "=" not in specs[0]:
        data = specs[0]
    else:
        data = {}
        for spec in specs:
            symbol, sep, path = spec.partition("=")
            if not sep:
                raise UsageError(f"--data {spec!r}: with several files write SYMBOL=PATH")
            data[symbol] = path
    if since is None and until is None:
        return data
    # Cut by time after loading so any accepted time format works.
    symbols = list(data) if isinstance(data, dict) else ["_"]
    bars = load_bars(data if isinstance(data, dict) else {"_": data}, symbols)
    out = {}
    for sym in symbols:
        frame = bars.to_frame(sym)
        if since is not None:
            frame = frame[frame.index >= pd.Timestamp(since, tz="UTC")]
        if until is not None:
            frame = frame[frame.index <= pd.Timestamp(until, tz="UTC")]
        out[sym] = frame
    return out if isinstance(data, dict) else out["_"]


class Terminated(Exception):
    """The run was ended by SIGTERM (and stopped cleanly, like Ctrl-C)."""


async def _stop_on_sigterm(s: Any, stopped: list[bool]) -> None:
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            stopped.append(True)
            await stop(s)
            return


async def _run(s: Any, stopped: list[bool]) -> None:
    """Run `s`; SIGTERM stops it as `stop(s)` does (Live's on_stop applies, run_stopped is
    written)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_sigterm, s, stopped)
        await start(s)
        nursery.cancel_scope.cancel()


def _trio_run(s: Any) -> None:
    """Run the strategy; a Ctrl-C that surfaces inside an exception group is still Ctrl-C."""
    stopped: list[bool] = []
    try:
        trio.run(_run, s, stopped)
    except BaseExceptionGroup as group:
        interrupts, rest = group.split(KeyboardInterrupt)
        if interrupts is not None and rest is None:
            raise KeyboardInterrupt from None
        raise
    if stopped:
        raise Terminated


def _run_with_summary(s: Any, console: Console) -> None:
    """Run `s`, then print the summary: also after Ctrl-C, which still ends the command."""
    t0 = time.perf_counter()
    try:
        _trio_run(s)
    except (KeyboardInterrupt, Terminated):
        print_summary(s, time.perf_counter() - t0, console, stopped=True)
        raise
    print_summary(s, time.perf_counter() - t0, console)


# The demo's sma_cross: hourly against 8-hourly averages with a 0.2% band, so it trades a few
# times a day instead of whipsawing on every minute (which only pays fees on random bars).
DEMO_PARAMS = {"fast": 120, "slow": 480, "band": 0.002, "warmup": 480}


def _cmd_demo(args: argparse.Namespace) -> int:
    params = " ".join(f"--param {k}={v}" for k, v in DEMO_PARAMS.items())
    print(f"vigil demo: vigil run sma_cross --bars {args.bars} --seed {args.seed} {params}")
    s = strategy(
        "sma_cross",
        mode=Sim(bars=args.bars, seed=args.seed),
        config={"trace": not args.no_trace},
        params=DEMO_PARAMS,
    )
    _show_progress(s)
    console = Console(s, verbose=False)
    console.attach(payloads=False)
    _run_with_summary(s, console)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    modes: dict[str, Mode] = {
        "sim": Sim(bars=args.bars, seed=args.seed),
        "paper": Paper(),
        "live": Live(on_stop=args.on_stop),
    }
    check_time_flags(args)
    sandbox = sandbox_for(args.mode, args.sandbox)
    limits: dict[str, Any] = {}
    if args.max_drawdown is not None:
        limits["max_drawdown"] = args.max_drawdown
    if args.max_daily_loss is not None:
        limits["max_daily_loss"] = args.max_daily_loss
    config: dict[str, Any] = {"trace": not args.no_trace, "trace_root": args.trace_root}
    if args.webhook_url:
        config["webhook_url"] = args.webhook_url
    s = strategy(
        args.strategy,
        mode=modes[args.mode],
        data=_load_data(args.data, args.since, args.until),
        exchange=args.exchange,
        sandbox=sandbox,
        initial_cash=args.cash,
        config=config,
        risk=limits or None,
        params=params_from_args(args),
    )
    _show_progress(s)
    _run_with_summary(s, console_for(s, args))
    return 0


def _show_progress(s: Any) -> None:
    """A progress bar for Sim runs when stderr is a terminal."""
    driver = runtime_of(s).driver
    if isinstance(driver, SimDriver) and Progress.wanted():
        driver.progress = Progress(driver.n_total)


def _cmd_trace(args: argparse.Namespace) -> int:
    if args.trace_command == "tail":
        # One line per event, payloads summarised: bar arrays and snapshots are elided.
        records = tail_records(args.path, args.n)
        print("\n".join(event_line(r) for r in records) if records else "(no events)")
        return 0
    else:
        kinds = None
        if args.kind:
            valid = [k.name for k in Kind]
            bad = [k for k in args.kind if k.upper() not in valid]
            if bad:
                raise UsageError(
                    f"--kind {bad[0]!r} is not an event kind; kinds are " + ", ".join(valid)
                )
            kinds = [k.upper() for k in args.kind]
        frame = read_trace(
            args.path, since=args.since, until=args.until, kinds=kinds, assets=args.asset
        )
        if args.n is not None:
            frame = frame.tail(args.n)
        if len(frame) <= 10_000:  # flatten payload keys into columns, as `trace tail` does
            payloads = pd.json_normalize([dict(p or {}) for p in frame["payload"]], sep=".")
            frame = pd.concat(
                [frame.drop(columns="payload").reset_index(drop=True), payloads], axis=1
            )
    with pd.option_context(
        "display.max_rows",
        500,
        "display.max_columns",
        30,
        "display.width",
        200,
        "display.max_colwidth",
        60,
    ):
        print(frame.to_string(index=False) if len(frame) else "(no events)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    return report_main(args)


def _cmd_replay(args: argparse.Namespace) -> int:
    run: int | str = int(args.run) if args.run.lstrip("-").isdigit() else args.run
    t0 = time.perf_counter()
    s = replay_from_trace(args.path, run=run, progress=Progress.wanted())
    elapsed = time.perf_counter() - t0
    print(f"replayed {args.path} (run {args.run}) in {elapsed:.2f} s: state matches the trace")
    print(s)
    for ai in s.universe:
        print(f"  {ai!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["exchange", "serve"]:
        return serve(argv[2:])
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    logging.basicConfig(level=args.log_level, handlers=[handler])
    commands = {
        "demo": _cmd_demo,
        "run": _cmd_run,
        "trace": _cmd_trace,
        "replay": _cmd_replay,
        "report": _cmd_report,
        "new": new_main,
        "data": cmd_data,
        "markets": cmd_markets,
        "sweep": cmd_sweep,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        # Ctrl-C is how a Live or Paper run is ended: the run was recorded as stopped.
        print("vigil: stopped", file=sys.stderr)
        return 130
    except Terminated:
        print("vigil: stopped (SIGTERM)", file=sys.stderr)
        return 143
    except UsageError as exc:
        print(f"vigil {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

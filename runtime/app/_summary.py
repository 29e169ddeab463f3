"""The summary every `vigil run` and `vigil demo` ends with, in every mode: what ran, the
statistics (with how they are annualised), refused orders by rule and market, the trace."""

from __future__ import annotations

from typing import IO

from runtime._errors import VigilError
from runtime.app._console import Console
from runtime.engine._strategy import Strategy, runtime_of


def summary_text(s: Strategy, elapsed: float, console: Console | None, *, stopped: bool) -> str:
    rt = runtime_of(s)
    mode = type(rt.mode).__name__.lower()
    lines: list[str] = []
    try:
        results = s.results
    except VigilError as exc:
        results = None
        why = str(exc)
    markets = ", ".join(rt.universe.keys())
    if mode == "sim" and results is not None:
        bars = len(results.equity)
        lines.append(
            f"{s.name}: {bars:,} bars of {markets} in {elapsed:.2f} s "
            f"({bars / max(elapsed, 1e-9):,.0f} bars/s)"
        )
    else:
        ticks = len(results.equity) if results is not None else 0
        how = "stopped" if stopped else "ended"
        lines.append(
            f"{s.name} ({mode}, {rt.exchange_id}) {how} after {elapsed:.1f} s: "
            f"{ticks:,} ticks of {markets}"
        )
    if results is not None:
        lines.append(results.summary())
    else:
        lines.append(f"no results yet: {why}")
    halted = rt.state.halted
    if halted is not None:
        lines.append(f"{'halted':<14} {halted}")
    if console is not None:
        total = sum(console.refusals.values())
        lines.append(f"{'refused orders':<14} {total:>14}")
        for (rule, market), count in console.refusals.most_common():
            example = console.refusal_example[(rule, market)]
            lines.append(f"  {count:>6} {rule} on {market}, e.g. {example}")
    path = s.trace_path
    lines.append(f"{'trace':<14} {path if path is not None else '(not recorded)'}")
    return "\n".join(lines)


def print_summary(
    s: Strategy,
    elapsed: float,
    console: Console | None,
    *,
    stopped: bool = False,
    out: IO[str] | None = None,
) -> None:
    print(summary_text(s, elapsed, console, stopped=stopped), file=out, flush=True)

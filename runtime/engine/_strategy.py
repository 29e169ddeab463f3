"""`Strategy`, the base class of every strategy file, and `strategy(...)`, which loads one."""

from __future__ import annotations

import importlib.resources
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from runtime._errors import ConfigError
from runtime.engine._results import Results, compute_results

if TYPE_CHECKING:
    from runtime.engine._runtime import Runtime
    from runtime.model._assets import AssetInstance, Balance, Universe
    from runtime.model._modes import Mode
    from runtime.model._orders import Order, Trade


class Strategy:
    """Subclass this in a strategy file. Class attributes describe the strategy; hooks act.

    The runtime calls `on_tick(ts)` once per bar in Sim and once per timeframe in Paper and
    Live, after `warmup` bars are visible; `ts` is the close time of the newest bar.
    """

    exchange: ClassVar[str] = "binance"
    markets: ClassVar[list[str]] = ["BTC/USDT"]
    timeframe: ClassVar[str] = "1m"
    margin: ClassVar[str | None] = None  # or "isolated"
    warmup: ClassVar[int] = 0
    leverage: ClassVar[float] = 1.0  # initial leverage of margin assets
    # Sim and Paper starting cash in the cash currency; None: the default for that currency
    # (10,000 of a dollar or euro, 0.25 BTC, 5 ETH ...: see `runtime.modes.default_cash`).
    initial_cash: ClassVar[float | None] = None
    # A `runtime.Risk(...)` for this strategy (`strategy(..., risk=)` overrides it); None: the
    # defaults (halt after 3 on_tick exceptions in a row, no other limit).
    risk: ClassVar[Any] = None

    _rt: Runtime

    async def on_start(self) -> None:
        """Called once, before the first tick."""

    async def on_tick(self, ts: Any) -> None:
        """Called at each tick. Override it."""

    async def on_trade(self, ai: AssetInstance, trade: Trade) -> None:
        """Called for every new fill of one of the strategy's orders."""

    async def on_order_error(
        self, ai: AssetInstance, order: Order | None, error: Exception
    ) -> None:
        """Called when an order is refused, by a local check or by the exchange."""

    async def on_stop(self) -> None:
        """Called once when the run ends."""

    async def on_alert(self, alert: Any) -> None:
        """Called with every `runtime.risk.Alert`: halts, breaches, watcher health changes,
        unknown order outcomes and strategy errors. Its exceptions are logged, never raised."""

    # State, read-only for strategies.
    @property
    def universe(self) -> Universe:
        return self._rt.universe

    @property
    def cash(self) -> float:
        """Total cash in the strategy's cash currency (the settle currency on margin)."""
        return self._rt.state.balance(self._rt.cash_currency).total

    @property
    def cash_committed(self) -> float:
        """Cash reserved by open orders (and, on margin, held as position margin)."""
        return self._rt.state.balance(self._rt.cash_currency).committed

    @property
    def balances(self) -> dict[str, Balance]:
        """Every currency's balance, by currency."""
        return self._rt.state.balances

    @property
    def trading(self) -> bool:
        """True while orders may be sent: False after a halt, until `resume(s)`."""
        return self._rt.state.halted is None

    @property
    def budget_left(self) -> float:
        """What the strategy may still commit, in its cash currency: in Live with
        `initial_cash`, that cap less its net spend; otherwise its free cash."""
        guard = self._rt.guard
        if guard is None:
            return self._rt.state.balance(self._rt.cash_currency).free
        return guard.budget_left()

    @property
    def mode(self) -> Mode:
        return self._rt.mode

    @property
    def name(self) -> str:
        return self._rt.name

    @property
    def results(self) -> Results:
        """Sim results: `.trades`, `.equity`, `.stats` (computed at the end of a run)."""
        return compute_results(self._rt)

    @property
    def trace_path(self) -> Path | None:
        """Where this strategy's trace is, or None when it records none (config trace=False)."""
        path = getattr(self._rt.recorder, "path", None)
        return None if path is None else Path(path)

    def flush_trace(self) -> None:
        """Make every recorded event readable by trace readers (`traces.TraceOwner`)."""
        flush = getattr(self._rt.recorder, "flush", None)
        if flush is not None:
            flush()

    def __repr__(self) -> str:
        if not hasattr(self, "_rt"):
            return f"<{type(self).__name__} (not loaded)>"
        rt = self._rt
        orders = sum(len(ai.open_orders) for ai in rt.universe)
        mode = type(rt.mode).__name__
        pnl = ""
        if rt.margin:
            upnl = sum(p.unrealized_pnl for ai in rt.universe for p in (ai.long, ai.short) if p)
            pnl = f" upnl={upnl:+.2f}"
        return (
            f"<{type(self).__name__} {rt.name} {mode} {rt.exchange_id} "
            f"cash={self.cash:.2f} {rt.cash_currency} committed={self.cash_committed:.2f}{pnl} "
            f"open_orders={orders} markets={','.join(rt.universe.keys())}>"
        )


def bundled_strategies() -> list[str]:
    """Names of the strategies shipped in the `strategies` package."""
    folder = importlib.resources.files("strategies")
    return sorted(
        p.name.removesuffix(".py")
        for p in folder.iterdir()
        if p.name.endswith(".py") and not p.name.startswith("_")
    )


def load_strategy_class(name_or_path: str | Path) -> tuple[str, type[Strategy]]:
    """The one `Strategy` subclass defined in a bundled strategy or a file."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".py") or path.exists():
        if not path.is_file():
            raise ConfigError(f"strategy file {text!r} does not exist")
        module_name = f"vigil_user_strategy_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot load strategy file {text!r}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            del sys.modules[module_name]
            line = (exc.text or "").rstrip("\n")
            caret = " " * max((exc.offset or 1) - 1, 0) + "^" if line else ""
            raise ConfigError(
                f"strategy file {text}, line {exc.lineno}: {exc.msg}"
                + (f"\n    {line}\n    {caret}" if line else "")
            ) from None
        except Exception as exc:
            del sys.modules[module_name]
            where = _line_in(exc, path)
            raise ConfigError(
                f"strategy file {text}{where} raised {type(exc).__name__}: {exc} while loading"
            ) from exc
        name = path.stem
    else:
        available = bundled_strategies()
        if text not in available:
            raise ConfigError(
                f"unknown strategy {text!r}; bundled strategies are {', '.join(available)} "
                "(or pass a path to a strategy file)"
            )
        module = importlib.import_module(f"strategies.{text}")
        name = text
    classes = [
        c
        for c in vars(module).values()
        if inspect.isclass(c) and issubclass(c, Strategy) and c.__module__ == module.__name__
    ]
    if len(classes) != 1:
        found = ", ".join(c.__name__ for c in classes) or "none"
        raise ConfigError(
            f"strategy {text!r} must define exactly one Strategy subclass; found {found}"
        )
    return name, classes[0]


def _line_in(exc: BaseException, path: Path) -> str:
    """ ", line N" of the deepest frame of `exc`'s traceback in the file `path`, or ""."""
    line = ""
    tb = exc.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = f", line {tb.tb_lineno}"
        tb = tb.tb_next
    return line


def bind(s: Strategy, rt: Runtime) -> None:
    """Wire `s` to `rt` (the modes' wiring, replay and reports): its state, hooks and trace."""
    s._rt = rt
    rt.strategy = s


def runtime_of(s: Strategy) -> Runtime:
    """The runtime a strategy is wired to; ConfigError for an instance made without
    `strategy(...)`."""
    rt = getattr(s, "_rt", None)
    if rt is None:
        raise ConfigError(f"{s!r} is not wired to a mode; create it with strategy(..., mode=...)")
    return cast("Runtime", rt)

"""`strategy(...)`: load a strategy and wire it to its mode, through ONE function for every mode.

`wire` builds the complete runtime: the markets, the state, the starting cash, the exchange, the
clock and the trace recorder. The modes differ only in what it plugs in:

* **Sim**: the simulated exchange matching against recorded or generated bars, and a clock
  that moves with those bars;
* **Paper**: the simulated exchange matching against the venue's live book and tape, and the
  wall clock;
* **Live**: the venue itself through ccxt (opened at `start`), and the wall clock.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from runtime._errors import ConfigError
from runtime.data import FundingRates, StoreData, store_bars
from runtime.engine._engine import BalanceUpdated, LeverageChanged, apply
from runtime.engine._runtime import Runtime, build_runtime
from runtime.engine._strategy import Strategy, bind, load_strategy_class
from runtime.exchanges import ccxt as ccxt_venue  # loads ccxt on first use (never in Sim)
from runtime.exchanges.sim._exchange import SimExchange
from runtime.exchanges.sim._paper import PaperExchange, PaperFeed
from runtime.model._assets import BarWindow, Cursor
from runtime.model._bars import Bars, generate_bars, load_bars, timeframe_ns
from runtime.model._modes import Live, Mode, Paper, RunConfig, Sim
from runtime.modes._live import LiveDriver, LiveSends
from runtime.modes._paper import PaperDriver
from runtime.modes._sim import BarFeed, SimDriver, SimulatedSends
from runtime.modes._venues import require_credentials, strategy_markets, venue_id
from runtime.risk import Risk, RiskGuard
from traces import open_recorder

log = logging.getLogger("vigil")


def strategy(
    name_or_path: str | Path,
    *,
    mode: Mode,
    data: Any = None,
    exchange: str | None = None,
    sandbox: bool = True,
    margin: str | None = None,
    initial_cash: float | Mapping[str, float] | None = None,
    config: Mapping[str, Any] | RunConfig | None = None,
    risk: Risk | Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Strategy:
    """Load a strategy (bundled name or file path) and wire it to `mode`.

    `params` overrides class attributes the strategy declares (`with_params`), e.g.
    ``{"fast": 20, "markets": ["ETH/USDT"], "timeframe": "5m"}``.

    In Sim, `data` is a DataFrame, a CSV or Parquet path, or a dict from market to either;
    without it Sim generates seeded bars. `initial_cash` is an amount of the cash currency or a
    mapping from currency to amount: the account in Sim and Paper; in Live, a cap on what the
    strategy may spend of the account's cash (DESIGN §9). `risk` (a `Risk`, or the class's
    ``risk`` attribute) sets its limits.
    `params` overrides class attributes the strategy declares (`{"fast": 5}`).
    """
    if not isinstance(mode, Sim | Paper | Live):
        raise ConfigError(f"mode must be Sim(), Paper() or Live(), not {mode!r}")
    if margin not in (None, "isolated"):
        raise ConfigError(f"margin={margin!r} is not supported; use None (spot) or 'isolated'")
    name, cls = load_strategy_class(name_or_path)
    cls = with_params(cls, params)
    text = str(name_or_path)
    source = str(Path(text).resolve()) if text.endswith(".py") or Path(text).exists() else text
    s = cls()
    wire(
        s,
        name=name,
        source=source,
        mode=mode,
        data=data,
        exchange=exchange or cls.exchange,
        margin=margin if margin is not None else cls.margin,
        sandbox=sandbox,
        initial_cash=initial_cash,
        config=RunConfig.from_mapping(config),
        risk=_risk(risk, cls.risk),
    )
    return s


def _coerce(name: str, value: Any, default: Any) -> Any:
    """A text value (from the command line) as the type of the declared default."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list | tuple):
            return type(default)(v.strip() for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"parameter {name}={value!r} is not of type {type(default).__name__} like its default "
            f"{default!r}"
        ) from None
    return value


def wire(
    s: Strategy,
    *,
    name: str,
    source: str,
    mode: Mode,
    data: Any,
    exchange: str,
    margin: str | None,
    sandbox: bool,
    initial_cash: float | Mapping[str, float] | None,
    config: RunConfig,
    risk: Risk | None = None,
) -> Runtime:
    """Wire `s` to `mode`: the one place a strategy's runtime is assembled (module docstring).
    Live refuses missing credentials at once; the network is touched only when Paper or Live
    must load markets the cache and the bundled snapshots lack (`runtime.modes._venues`)."""
    cls = type(s)
    if isinstance(mode, Live):
        require_credentials(exchange, margin)
    symbols = [normalize_symbol(m, margin) for m in (config.markets or cls.markets)]
    if not symbols:
        raise ConfigError(f"strategy {name!r} lists no markets; set markets = ['BTC/USDT']")
    bars = None
    funding: dict[str, FundingRates] = {}
    if isinstance(mode, Sim):
        request = StoreData.of(data)
        if request is not None:  # data="store": bars and funding from the market-data store
            venue = venue_id(exchange, margin)
            data, funding = store_bars(
                request, exchange, symbols, cls.timeframe, fallback_exchange=venue
            )
        bars = _sim_bars(name, cls.timeframe, mode, data, symbols, margin)
    markets = strategy_markets(exchange, margin, symbols, mode=mode, bars=bars, sandbox=sandbox)
    first = markets[symbols[0]]
    rt = build_runtime(
        name=name,
        mode=mode,
        config=config,
        exchange_id=exchange,
        margin=margin,
        markets=markets,
        cash_currency=config.cash_currency or first.get("settle") or first["quote"],
        source=source,
        timeframe=cls.timeframe,
        warmup=cls.warmup,
    )
    bind(s, rt)
    # The currencies whose balance reports the strategy takes: an account holds others too.
    if margin:
        rt.balance_scope = {ai.settle for ai in rt.universe}
    else:
        rt.balance_scope = {c for ai in rt.universe for c in (ai.base, ai.quote)}
        rt.balance_scope.add(rt.cash_currency)
    cap = None
    if isinstance(mode, Live):  # the account's own cash, read from the exchange at start
        _plug_live(rt, mode, exchange, margin, sandbox)
        if initial_cash is not None:  # a cap on the strategy's spend, not the account
            cap = _initial_cash(initial_cash, 0.0, rt.cash_currency).get(rt.cash_currency, 0.0)
    elif isinstance(mode, Sim):
        assert bars is not None
        cash = _initial_cash(initial_cash, cls.initial_cash, rt.cash_currency)
        _plug_sim(rt, mode, bars, markets, cash, exchange, margin)
        if funding:
            cast(SimDriver, rt.driver).set_funding(funding)
    else:
        cash = _initial_cash(initial_cash, cls.initial_cash, rt.cash_currency)
        _plug_paper(rt, markets, cash, exchange, margin, sandbox)
    rt.guard = RiskGuard(
        rt,
        risk or Risk(),
        cap=cap,
        # A backtest's alerts are history: they reach on_alert and the trace, not a phone.
        webhook_url=None if isinstance(mode, Sim) else config.webhook_url,
    )
    if config.trace:
        account = {"Sim": "sim", "Paper": "paper"}.get(type(mode).__name__)
        account = account or ("sandbox" if sandbox else "live")
        rt.recorder = open_recorder(
            config.trace_root,
            exchange,
            account,
            name,
            fsync=config.fsync,
            storage_options=config.storage_options,
        )
    if isinstance(rt.exchange, SimExchange):  # Live starts its run at `start`, after its replay
        _start_simulated_account(rt, rt.exchange, float(config.leverage or cls.leverage))
    return rt


def with_params(cls: type[Strategy], params: Mapping[str, Any] | None) -> type[Strategy]:
    """`cls` with `params` overriding its declared class attributes, as a subclass of the same
    name, so the strategy file's class itself is left untouched for the next run."""
    if not params:
        return cls
    valid = strategy_params(cls)
    unknown = sorted(str(k) for k in params if k not in valid)
    if unknown:
        raise ConfigError(
            f"strategy {cls.__name__} has no parameter {', '.join(unknown)}; "
            f"the parameters it declares are {', '.join(sorted(valid))}"
        )
    # Text values (the command line's --param) take the declared default's type.
    overrides = {k: _coerce(str(k), v, valid[k]) for k, v in params.items()}
    return type(cls.__name__, (cls,), {"__module__": cls.__module__, **overrides})


def strategy_params(cls: type[Strategy]) -> dict[str, Any]:
    """The class attributes a strategy declares (its own and the `Strategy` defaults such as
    `warmup`), by name with their values: plain data, not hooks, properties or private names."""
    names: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):  # without `object`
        for attr, value in vars(klass).items():
            if attr.startswith("_") or callable(value) or hasattr(value, "__get__"):
                continue
            names[attr] = getattr(cls, attr)
    return names


def _risk(given: Risk | Mapping[str, Any] | None, declared: Any) -> Risk:
    """The run's limits: `given`, or the class's ``risk``; a mapping changes only the fields
    it names of the class's (how the CLI's --max-drawdown and friends apply)."""
    if isinstance(given, Mapping):
        base = Risk.of(declared)
        valid = {f.name for f in dataclasses.fields(Risk)}
        unknown = sorted(set(given) - valid)
        if unknown:
            raise ConfigError(
                f"unknown Risk field(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
            )
        return dataclasses.replace(base, **dict(given))
    return Risk.of(given if given is not None else declared)


def normalize_symbol(symbol: str, margin: str | None) -> str:
    """A margin strategy's "BTC/USDT" is the linear perpetual "BTC/USDT:USDT"."""
    if margin and ":" not in symbol:
        quote = symbol.split("/")[1]
        return f"{symbol}:{quote}"
    return symbol


def _sim_bars(
    name: str, timeframe: str, mode: Sim, data: Any, symbols: list[str], margin: str | None
) -> Bars:
    if data is None:
        data = generate_bars(symbols, mode.bars, timeframe=timeframe, seed=mode.seed)
    elif isinstance(data, Mapping):
        data = {normalize_symbol(str(k), margin): v for k, v in data.items()}
    bars = load_bars(data, symbols)
    if bars.timeframe_ns != timeframe_ns(timeframe):
        log.warning(
            "strategy %s has timeframe %s but its data has %d s bars; ticking once per bar",
            name,
            timeframe,
            bars.timeframe_ns // 1_000_000_000,
        )
    if len(bars.time_ns) < 1:
        raise ConfigError(f"strategy {name!r}: the data has no bars")
    return bars


# Default Sim and Paper cash per cash currency: about 10,000 US dollars' worth, in round
# numbers, so a strategy on ETH/BTC starts with 0.25 BTC and not 10,000 BTC (whose orders
# would all fail the market's maximum amount).
DEFAULT_CASH: dict[str, float] = {
    **dict.fromkeys(("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USD", "EUR"), 10_000.0),
    "BTC": 0.25,
    "ETH": 5.0,
    "BNB": 20.0,
    "SOL": 100.0,
}


def default_cash(currency: str) -> float:
    """The starting cash when neither `strategy(initial_cash=)` nor the class sets it."""
    if currency not in DEFAULT_CASH:
        raise ConfigError(
            f"no default starting cash for {currency}; defaults exist for "
            f"{', '.join(sorted(DEFAULT_CASH))}: set initial_cash on the strategy class or pass "
            "strategy(..., initial_cash=...) (vigil run --cash)"
        )
    return DEFAULT_CASH[currency]


def _initial_cash(
    initial_cash: float | Mapping[str, float] | None, default: float | None, currency: str
) -> dict[str, float]:
    if initial_cash is None:
        cash = {currency: float(default if default is not None else default_cash(currency))}
    elif isinstance(initial_cash, Mapping):
        cash = {str(c): float(v) for c, v in initial_cash.items()}
    else:
        cash = {currency: float(initial_cash)}
    for c, amount in cash.items():
        if not (amount >= 0 and np.isfinite(amount)):
            raise ConfigError(f"initial cash {amount!r} {c} must be finite and not negative")
    return cash


def _plug_sim(
    rt: Runtime,
    mode: Sim,
    bars: Bars,
    markets: dict[str, dict[str, Any]],
    cash: dict[str, float],
    exchange: str,
    margin: str | None,
) -> None:
    cursor = Cursor(0)
    for ai in rt.universe:
        ai.ohlcv = BarWindow(bars.time_ns, bars.columns[ai.symbol], cursor)
    sim_exchange = SimExchange(
        markets,
        BarFeed(bars, cursor),
        balances=cash,
        margin=margin,
        fill_model=mode.fill_model,
        exchange_id=exchange,
    )
    rt.initial_cash = dict(cash)
    rt.exchange = sim_exchange
    cursor.n = min(max(rt.strategy_warmup, 1), len(bars.time_ns))
    driver = SimDriver(rt, bars, cursor, sim_exchange)
    rt.driver = driver
    rt.sends = SimulatedSends(rt)
    rt.bar_history = driver
    sim_exchange.direct = rt  # its reports as ledger events: no ccxt dicts in a backtest


def _plug_paper(
    rt: Runtime,
    markets: dict[str, dict[str, Any]],
    cash: dict[str, float],
    exchange: str,
    margin: str | None,
    sandbox: bool,
) -> None:
    paper = PaperExchange(markets, PaperFeed(), balances=cash, margin=margin, exchange_id=exchange)
    rt.initial_cash = dict(cash)
    rt.exchange = paper
    paper.add_listener(rt.on_exchange)

    def open_market() -> Any:
        # Public endpoints need no keys: whatever is in the environment is not used here.
        return ccxt_venue.CcxtExchange.open(
            exchange, sandbox=sandbox, margin=margin, env=_public_env(exchange, margin)
        )

    rt.driver = PaperDriver(rt, open_market=open_market, paper=paper)
    rt.sends = SimulatedSends(rt)


def _plug_live(rt: Runtime, mode: Live, exchange: str, margin: str | None, sandbox: bool) -> None:
    def open_exchange() -> Any:
        return ccxt_venue.CcxtExchange.open(exchange, sandbox=sandbox, margin=margin)

    driver = LiveDriver(rt, mode, open_exchange=open_exchange, watcher_config=mode.watchers)
    rt.driver = driver
    rt.sends = LiveSends(driver)


def _start_simulated_account(rt: Runtime, exchange: SimExchange, leverage: float) -> None:
    """Open a Sim or Paper run: its starting cash and leverage, recorded like exchange reports."""
    rt.record_run_start(fresh=True)
    now = rt.now_ms()
    for currency, amount in sorted(rt.initial_cash.items()):
        # Stamped at the epoch: the starting cash, before every fill of the run.
        rt.emit(BalanceUpdated(currency, amount, 0))
    if rt.margin:
        for ai in rt.universe:
            apply(exchange.ledger, LeverageChanged(ai.symbol, leverage, now))
            rt.emit(LeverageChanged(ai.symbol, leverage, now))


def _public_env(exchange: str, margin: str | None) -> dict[str, str]:
    """The environment for the market-data connection: the URL override only, no keys."""
    name = f"VIGIL_{venue_id(exchange, margin).upper()}_URL"
    return {k: v for k, v in os.environ.items() if k == name}

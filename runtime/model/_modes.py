"""Run modes (Sim, Paper, Live) and the run configuration."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime._errors import ConfigError

ON_STOP = ("cancel", "flatten", "leave")


@dataclass(frozen=True, slots=True, kw_only=True)
class FillModel:
    """Parameters of the Sim bar fill model (see `runtime.exchanges.sim`)."""

    spread_bps: float = 2.0
    impact: float = 0.1
    volume_cap: float = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class WatcherConfig:
    """Timing of every watcher (seconds)."""

    poll_interval_s: float = 2.0  # REST polling where the exchange has no websocket
    stall_timeout_s: float = 5.0  # silence while news is expected -> gap fill, stale
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    idle_stop_s: float = 300.0  # per-asset watchers stop after this long without open orders

    def __post_init__(self) -> None:
        for name in ("poll_interval_s", "stall_timeout_s", "backoff_initial_s", "backoff_max_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"watcher {name}={value!r} must be a positive number of seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sim:
    """Backtest on recorded or generated bars against the simulated exchange.

    `bars` and `seed` size and seed the generated data used when `strategy(...)` gets no
    `data`. `fill_model` sets slippage and volume caps (see `runtime.exchanges.sim`).
    """

    fill_model: FillModel = field(default_factory=FillModel)
    bars: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.bars < 2:
            raise ConfigError(f"Sim(bars={self.bars}): generated data needs at least 2 bars")


@dataclass(frozen=True, slots=True, kw_only=True)
class Paper:
    """Live market data, fills simulated locally; no keys needed, no order reaches the exchange."""

    fill_model: FillModel = field(default_factory=FillModel)


@dataclass(frozen=True, slots=True, kw_only=True)
class Live:
    """Real orders on a real exchange through ccxt. Credentials come from the environment
    (``VIGIL_<EXCHANGE>_API_KEY`` / ``_SECRET`` / ``_PASSWORD``; ``VIGIL_<EXCHANGE>_URL`` for
    another host such as the loopback exchange).

    * ``on_stop``: on every way out (stop, an error, Ctrl-C, SIGTERM), "cancel" the strategy's
      open orders, "flatten" them and its positions, or "leave" them (the next run adopts them).
    * ``reconcile_every_s``: compare local state with a full REST read this often and apply
      the differences (None or 0: only at start and after gaps).
    * ``cancel_on_stop``: the older spelling of ``on_stop="cancel"``.
    * ``watchers``: watcher timing (poll interval, stall timeout, backoff, idle stop).
    """

    on_stop: str = "leave"
    reconcile_every_s: float | None = 60.0
    cancel_on_stop: bool = False
    watchers: WatcherConfig = field(default_factory=WatcherConfig)

    def __post_init__(self) -> None:
        if self.on_stop not in ON_STOP:
            raise ConfigError(f"Live(on_stop={self.on_stop!r}): use 'cancel', 'flatten' or 'leave'")
        if self.cancel_on_stop and self.on_stop == "leave":
            object.__setattr__(self, "on_stop", "cancel")
        every = self.reconcile_every_s
        if every is not None and not (
            isinstance(every, int | float) and math.isfinite(every) and every >= 0
        ):
            raise ConfigError(
                f"Live(reconcile_every_s={every!r}): a number of seconds, or None for never"
            )


Mode = Sim | Paper | Live


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Options of one strategy run. Build it from a dict with `RunConfig.from_mapping`.

    * ``trace``: record an event trace (Sim runs too).
    * ``trace_root``: where traces live: ``<root>/<exchange>/<account>/<strategy>.zarr``;
      None: ``./traces``, or ``./vigil-traces`` where ``./traces`` is a Python package (a
      vigil checkout's own `traces`), so traces never land inside a package.
    * ``fsync``: "never", "order" (order-path events) or "always".
    * ``cash_currency``: the currency of ``s.cash``; default the first market's quote (settle).
    * ``leverage``: initial leverage of every margin asset.
    * ``markets``: trade these markets instead of the strategy's own list.
    * ``trace_market``: also record each bar the strategy sees (Sim), for analysis.
    * ``webhook_url``: POST every alert there as JSON (Paper and Live; DESIGN §9).
    * ``storage_options``: for a ``trace_root`` on object storage (``s3://bucket/prefix``),
      settings beyond the AWS environment variables (obstore's keys, e.g. ``endpoint``).
    """

    trace: bool = True
    trace_root: str | None = None
    fsync: str = "never"
    cash_currency: str | None = None
    leverage: float | None = None
    markets: tuple[str, ...] | None = None
    trace_market: bool = False
    webhook_url: str | None = None
    storage_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.fsync not in ("never", "order", "always"):
            raise ConfigError(
                f"config fsync={self.fsync!r} is not a policy; use 'never', 'order' or 'always'"
            )
        if self.markets is not None:
            if isinstance(self.markets, str) or not self.markets:
                raise ConfigError(
                    f"config markets={self.markets!r} must be a non-empty list of symbols"
                )
            object.__setattr__(self, "markets", tuple(self.markets))
        if self.webhook_url is not None and not str(self.webhook_url).startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                f"config webhook_url={self.webhook_url!r} must be an http:// or https:// URL"
            )
        if self.leverage is not None and not self.leverage >= 1:
            raise ConfigError(f"config leverage={self.leverage!r} must be 1 or more")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | RunConfig | None) -> RunConfig:
        if values is None:
            return cls()
        if isinstance(values, RunConfig):
            return values
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(unknown)}; valid keys are {', '.join(valid)}"
            )
        return cls(**values)

"""`Risk`: the limits a strategy trades under (DESIGN §9), a plain value checked at construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from runtime._errors import ConfigError

ON_HALT = ("cancel", "flatten")


@dataclass(frozen=True, slots=True, kw_only=True)
class Risk:
    """Limits that run the same in Sim, Paper and Live. None turns a limit off.

    * ``max_drawdown``: halt once equity is this fraction below its peak (0.10 = 10%).
    * ``max_daily_loss``: halt once equity is this much (cash currency) below its value at
      00:00 UTC; the day's loss starts again at each midnight.
    * ``max_order_notional`` / ``max_position_notional``: refuse an order worth more, or one that
      takes the market's position past this value (cash currency).
    * ``max_open_orders``: refuse a new order while this many are open.
    * ``max_orders_per_minute``: refuse an order past this many sent in the last 60 s.
    * ``price_band``: refuse a limit price further than this fraction from the last price.
    * ``max_strategy_errors``: halt after this many `on_tick` exceptions in a row.
    * ``on_halt``: "cancel" the open orders on a halt, or also "flatten" the positions.
    """

    max_drawdown: float | None = None
    max_daily_loss: float | None = None
    max_order_notional: float | None = None
    max_position_notional: float | None = None
    max_open_orders: int | None = None
    max_orders_per_minute: int | None = None
    price_band: float | None = None
    max_strategy_errors: int | None = 3
    on_halt: str = "cancel"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "on_halt" or value is None:
                continue
            if not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0
            ):
                raise ConfigError(
                    f"Risk({f.name}={value!r}): must be a positive number, or None for no limit"
                )
        for name in ("max_open_orders", "max_orders_per_minute", "max_strategy_errors"):
            value = getattr(self, name)
            if value is not None and int(value) != value:
                raise ConfigError(f"Risk({name}={value!r}): must be a whole number")
        for name in ("max_drawdown", "price_band"):
            value = getattr(self, name)
            if value is not None and value >= 1:
                raise ConfigError(
                    f"Risk({name}={value!r}): a fraction below 1 (0.05 = 5%), not a percentage"
                )
        if self.on_halt not in ON_HALT:
            raise ConfigError(
                f"Risk(on_halt={self.on_halt!r}): use 'cancel' (open orders) or 'flatten' "
                "(open orders and positions)"
            )

    @classmethod
    def of(cls, value: Any) -> Risk:
        """`value` as a Risk: a Risk, a mapping of its fields, or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Risk):
            return value
        if isinstance(value, dict):
            valid = [f.name for f in dataclasses.fields(cls)]
            unknown = sorted(set(value) - set(valid))
            if unknown:
                raise ConfigError(
                    f"unknown Risk field(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
                )
            return cls(**value)
        raise ConfigError(f"risk={value!r} must be a Risk(...) or None")

    @property
    def watches_equity(self) -> bool:
        return self.max_drawdown is not None or self.max_daily_loss is not None

"""`strategy(..., params=)`: class attributes the strategy declares, overridden per run."""

from __future__ import annotations

import pytest
import trio

from runtime import ConfigError, Sim, start, strategy
from strategies.sma_cross import SmaCross


def test_params_override_declared_attributes_for_this_run_only() -> None:
    s = strategy(
        "sma_cross",
        mode=Sim(bars=200),
        params={"fast": 5, "slow": 50, "markets": ["ETH/USDT"]},
        config={"trace": False},
    )
    assert (type(s).fast, type(s).slow) == (5, 50)
    assert isinstance(s, SmaCross)
    assert list(s.universe.keys()) == ["ETH/USDT"]  # wiring reads the overridden class
    assert (SmaCross.fast, SmaCross.slow) == (10, 30)  # the file's class is untouched


def test_params_change_the_run() -> None:
    def run(params: dict[str, int]) -> dict[str, float]:
        s = strategy("sma_cross", mode=Sim(bars=2_000), params=params, config={"trace": False})
        trio.run(start, s)
        return s.results.stats

    assert run({"fast": 5, "slow": 20}) != run({"fast": 20, "slow": 60})
    assert run({"fast": 10}) == run({})  # the declared default


def test_unknown_param_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="no parameter fats") as info:
        strategy("sma_cross", mode=Sim(bars=200), params={"fats": 5})
    message = str(info.value)
    for name in ("fast", "slow", "allocation", "warmup"):
        assert name in message
    assert "on_tick" not in message
    assert "cash" not in message.replace("initial_cash", "")

"""Settings from the strategy and the environment; refusals that name the fix."""

from __future__ import annotations

import pytest
import trio

from runtime._errors import ConfigError
from runtime.exchanges.ccxt import CcxtExchange, Credentials
from runtime.exchanges.ccxt._bridge import current_shared_bridge
from runtime.exchanges.ccxt._config import env_name, resolve_settings
from runtime.testing.loopback import LoopbackExchange
from tests.runtime.exchanges.ccxt.support import FAST


def settings(exchange: str = "binance", **kwargs: object) -> object:
    kwargs.setdefault("sandbox", True)
    kwargs.setdefault("margin", None)
    kwargs.setdefault("options", None)
    kwargs.setdefault("config", None)
    kwargs.setdefault("env", {})
    return resolve_settings(exchange, **kwargs)  # type: ignore[arg-type]


def test_credentials_and_url_come_from_the_exchanges_variables() -> None:
    env = {
        "VIGIL_BINANCEUSDM_API_KEY": "key",
        "VIGIL_BINANCEUSDM_SECRET": "secret",
        "VIGIL_BINANCEUSDM_URL": "http://127.0.0.1:8765",
        "VIGIL_BINANCE_API_KEY": "spot-key",
    }
    s = resolve_settings(
        "binance", sandbox=False, margin="isolated", options=None, config=None, env=env
    )
    assert s.exchange_id == "binanceusdm"  # a margin strategy on binance trades USDⓈ-M
    assert s.requested == "binance"
    assert s.credentials == Credentials("key", "secret", None)
    assert s.url == "http://127.0.0.1:8765"
    assert env_name("binanceusdm", "PASSWORD") == "VIGIL_BINANCEUSDM_PASSWORD"
    assert s.missing_credentials({"apiKey": True, "secret": True}) == []
    assert "key" not in repr(s)
    assert "secret=set" in repr(s.credentials)


def test_missing_credentials_are_named() -> None:
    s = settings(env={"VIGIL_BINANCE_API_KEY": "key", "VIGIL_BINANCE_SECRET": "  "})
    assert s.missing_credentials(  # type: ignore[attr-defined]
        {"apiKey": True, "secret": True, "password": True}
    ) == ["VIGIL_BINANCE_SECRET", "VIGIL_BINANCE_PASSWORD"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"exchange": "binanse"}, "not a ccxt exchange id.*did you mean 'binance'"),
        ({"margin": "portfolio"}, "margin 'portfolio' is not a margin mode"),
        ({"sandbox": "yes"}, "sandbox='yes' must be True or False"),
        ({"config": {"apiKey": "x"}}, "never come from strategy settings.*VIGIL_BINANCE_API_KEY"),
        ({"options": {"secret": "x"}}, "VIGIL_BINANCE_SECRET"),
        ({"config": {"verbose": True}}, "prints signed requests"),
        ({"config": {"enableRateLimit": False}}, "rate_limit="),
    ],
)
def test_bad_settings_are_refused_with_the_fix(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        settings(**kwargs)  # type: ignore[arg-type]


async def test_a_bad_url_variable_is_named_and_nothing_is_left_running() -> None:
    env = {"VIGIL_BINANCE_URL": "ftp://example"}
    with pytest.raises(ConfigError, match="VIGIL_BINANCE_URL='ftp://example'"):
        await CcxtExchange.connect("binance", env=env, load_markets=False)
    shared = current_shared_bridge()
    assert shared is None or not shared.running


async def test_an_exchange_without_a_sandbox_is_refused_in_sandbox_mode() -> None:
    with pytest.raises(ConfigError, match=r"has no sandbox.*sandbox=False"):
        await CcxtExchange.connect("upbit", sandbox=True, env={}, load_markets=False)


async def test_unknown_methods_and_streams_are_refused(loopback: LoopbackExchange) -> None:
    async with CcxtExchange.open(
        "binance", sandbox=False, env=loopback.env(), rate_limit=FAST
    ) as ex:
        with pytest.raises(ConfigError, match="no ccxt method 'fetch_nothing'"):
            await ex.call("fetch_nothing")
        with pytest.raises(ConfigError, match="'fetch_ticker' is not a stream; valid: watch_"):
            ex.open_stream("fetch_ticker", "BTC/USDT")
        assert "binance live via http://127.0.0.1" in repr(ex)
    assert "closed" in repr(ex)
    await ex.aclose()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        await ex.fetch_balance()

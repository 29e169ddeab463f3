"""The one mapping of ccxt's errors onto vigil's, and the scrubbing of secrets."""

from __future__ import annotations

import aiohttp
import ccxt
import pytest

from runtime._errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    NetworkError,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from runtime.exchanges.ccxt import Scrubber, map_ccxt_error
from runtime.exchanges.ccxt._errors import RETRY_AFTER_ATTR, retry_after_s, scrub_exception_chain

KEY = "k" * 20 + "KEYKEYKEY"
SIG = "a3f1" * 16  # 64 hex digits, like Binance's HMAC-SHA256


def mapped(exc: BaseException, operation: str = "fetch_balance") -> ExchangeError | None:
    return map_ccxt_error(exc, exchange="binance", operation=operation, scrub=Scrubber([KEY]))


@pytest.mark.parametrize(
    ("ccxt_error", "vigil_error"),
    [
        (ccxt.RequestTimeout, NetworkError),
        (ccxt.ExchangeNotAvailable, NetworkError),
        (ccxt.OnMaintenance, NetworkError),
        (ccxt.NetworkError, NetworkError),
        (ccxt.BadResponse, NetworkError),
        (ccxt.ChecksumError, NetworkError),
        (ccxt.DDoSProtection, RateLimited),
        (ccxt.RateLimitExceeded, RateLimited),
        (ccxt.AuthenticationError, AuthenticationError),
        (ccxt.PermissionDenied, AuthenticationError),
        (ccxt.AccountSuspended, AuthenticationError),
        (ccxt.InvalidNonce, AuthenticationError),
        (ccxt.OrderNotFound, OrderNotFound),
        (ccxt.InsufficientFunds, InsufficientFunds),
        (ccxt.InvalidOrder, OrderRejected),
        (ccxt.OrderImmediatelyFillable, OrderRejected),
        (ccxt.OrderNotFillable, OrderRejected),
        (ccxt.DuplicateOrderId, OrderRejected),
        (ccxt.BadSymbol, ExchangeError),
        (ccxt.NotSupported, ExchangeError),
        (ccxt.ExchangeError, ExchangeError),
        (aiohttp.ClientConnectionError, NetworkError),
        (TimeoutError, NetworkError),
    ],
)
def test_each_ccxt_error_maps_to_one_vigil_error(
    ccxt_error: type[Exception], vigil_error: type[ExchangeError]
) -> None:
    result = mapped(ccxt_error("binance said no"))
    assert type(result) is vigil_error
    assert str(result).startswith("binance fetch_balance: ")


def test_bad_request_is_a_rejection_only_for_an_order() -> None:
    assert type(mapped(ccxt.BadRequest("-1013 NOTIONAL"), "create_order")) is OrderRejected
    assert type(mapped(ccxt.OperationRejected("no"), "create_order")) is OrderRejected
    assert type(mapped(ccxt.BadRequest("-1100 bad param"), "fetch_ohlcv")) is ExchangeError


def test_programming_errors_are_not_mapped() -> None:
    assert mapped(TypeError("bad argument")) is None


def test_rate_limited_carries_retry_after() -> None:
    exc = ccxt.DDoSProtection("binance 429 Too Many Requests")
    setattr(exc, RETRY_AFTER_ATTR, 3.0)
    result = mapped(exc)
    assert isinstance(result, RateLimited)
    assert result.retry_after == 3.0
    assert "retry after 3 s" in str(result)
    assert mapped(ccxt.RateLimitExceeded("slow down")).retry_after is None  # type: ignore[union-attr]


def test_messages_are_scrubbed_and_so_is_the_original() -> None:
    exc = ccxt.ExchangeNotAvailable(
        f"binance GET https://api.binance.com/api/v3/account?timestamp=1&signature={SIG}"
    )
    result = mapped(exc)
    assert SIG not in str(result)
    assert "signature=***" in str(result)
    assert SIG not in str(exc)  # the cause a traceback prints is scrubbed too


def test_authentication_errors_name_the_fix() -> None:
    result = map_ccxt_error(
        ccxt.AuthenticationError('binance requires "apiKey" credential'),
        exchange="binance",
        operation="fetch_balance",
        scrub=Scrubber(),
        credentials_hint="check VIGIL_BINANCE_API_KEY",
    )
    assert "check VIGIL_BINANCE_API_KEY" in str(result)


@pytest.mark.parametrize(
    "text",
    [
        f"GET /api/v3/order?symbol=BTCUSDT&signature={SIG}",
        f'{{"method":"userDataStream.subscribe.signature","params":{{"signature":"{SIG}"}}}}',
        "POST /fapi/v1/listenKey listenKey=pqr123",
        '{"listenKey":"pqr123"}',
        "{'X-MBX-APIKEY': 'abcdef', 'User-Agent': 'python'}",
        f"headers: X-MBX-APIKEY: {KEY}",
        f"the key {KEY} leaked",
        "wss://fstream.binance.com/ws/" + "Z" * 60,
    ],
)
def test_the_scrubber_removes_each_kind_of_secret(text: str) -> None:
    out = Scrubber([KEY])(text)
    for secret in (SIG, KEY, "pqr123", "abcdef", "Z" * 60):
        assert secret not in out
    assert "***" in out


def test_the_scrubber_keeps_ordinary_text_and_reads_dynamic_secrets() -> None:
    text = 'binance {"code":-2010,"msg":"Account has insufficient balance."} order 12345'
    assert Scrubber([KEY])(text) == text
    live: list[str] = ["lk-1"]
    scrub = Scrubber(dynamic=lambda: live)
    assert scrub("key lk-1 here") == "key *** here"

    def broken() -> list[str]:
        raise RuntimeError("dictionary changed size during iteration")

    assert Scrubber(dynamic=broken)(f"sig={SIG}") == "sig=***"  # never raises
    assert "s3cr3t" not in repr(Scrubber(["s3cr3t"]))


def test_a_chain_link_that_cannot_be_scrubbed_is_cut() -> None:
    class Stubborn(Exception):
        def __str__(self) -> str:
            return f"request to https://x/?signature={SIG}"

    outer = ccxt.NetworkError(f"failed {KEY}")
    outer.__cause__ = Stubborn()
    scrub_exception_chain(outer, Scrubber([KEY]))
    assert KEY not in str(outer)
    assert outer.__cause__ is None
    assert outer.__suppress_context__


def test_retry_after_is_read_from_the_header_or_binances_ban_message() -> None:
    assert retry_after_s({"Retry-After": "2"}) == 2.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after_s({}, "IP banned until 9999999999999.") > 1e6  # type: ignore[operator]
    assert retry_after_s(None) is None
    assert retry_after_s({"Retry-After": "soon"}) is None

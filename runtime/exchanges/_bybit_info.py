"""Bybit v5 ``/v5/market/instruments-info`` bodies (spot and linear), built in pure Python.

Two consumers share them, as with :mod:`._binance_info`: ``runtime.testing._snapshot`` feeds them
to real ``ccxt.bybit`` parsing to produce the shipped ``markets/bybit.json``, and the loopback's
Bybit dialect serves them. Field names follow Bybit's v5 documentation (and the samples in
ccxt's ``bybit.py``): decimals are strings; spot sizes by ``basePrecision``, linear by
``qtyStep``; a linear perpetual's ``contractType`` is ``LinearPerpetual``.

Fees are not part of instruments-info: ccxt applies 0.1% on spot and 0.01% maker / 0.06% taker
on linear contracts, which the constants below mirror so the loopback charges what the snapshot
says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "LINEAR_INSTRUMENTS",
    "LINEAR_MAKER_FEE",
    "LINEAR_TAKER_FEE",
    "SPOT_INSTRUMENTS",
    "SPOT_MAKER_FEE",
    "SPOT_TAKER_FEE",
    "Instrument",
    "instruments_info",
]

SPOT_MAKER_FEE: Final = "0.001"
SPOT_TAKER_FEE: Final = "0.001"
LINEAR_MAKER_FEE: Final = "0.0001"
LINEAR_TAKER_FEE: Final = "0.0006"
# 2020-03-25T00:00:00Z: a launch time for the perpetuals.
_LAUNCH_MS: Final = 1_585_094_400_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """One Bybit instrument's trading rules (strings, as Bybit sends them)."""

    base: str
    quote: str
    linear: bool
    tick: str  # priceFilter.tickSize
    step: str  # spot lotSizeFilter.basePrecision; linear lotSizeFilter.qtyStep
    min_qty: str
    max_qty: str
    min_amount: str  # spot minOrderAmt; linear minNotionalValue
    max_amount: str  # spot maxOrderAmt; linear maxMktOrderQty
    max_leverage: str = "100.00"
    price_scale: str = "2"

    @property
    def id(self) -> str:
        """Bybit's symbol, e.g. ``"BTCUSDT"`` (spot and linear share it)."""
        return self.base + self.quote

    @property
    def symbol(self) -> str:
        """ccxt's unified symbol: ``"BTC/USDT"`` or ``"BTC/USDT:USDT"``."""
        pair = f"{self.base}/{self.quote}"
        return f"{pair}:{self.quote}" if self.linear else pair

    def body(self) -> dict[str, Any]:
        """This instrument as one row of instruments-info's ``result.list``."""
        if not self.linear:
            return {
                "symbol": self.id,
                "baseCoin": self.base,
                "quoteCoin": self.quote,
                "innovation": "0",
                "status": "Trading",
                "marginTrading": "utaOnly",
                "stTag": "0",
                "lotSizeFilter": {
                    "basePrecision": self.step,
                    "quotePrecision": "0.00000001",
                    "minOrderQty": self.min_qty,
                    "maxOrderQty": self.max_qty,
                    "minOrderAmt": self.min_amount,
                    "maxOrderAmt": self.max_amount,
                },
                "priceFilter": {"tickSize": self.tick},
                "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
            }
        return {
            "symbol": self.id,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": self.base,
            "quoteCoin": self.quote,
            "launchTime": str(_LAUNCH_MS),
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": self.price_scale,
            "leverageFilter": {
                "minLeverage": "1",
                "maxLeverage": self.max_leverage,
                "leverageStep": "0.01",
            },
            "priceFilter": {"minPrice": self.tick, "maxPrice": "1999999.80", "tickSize": self.tick},
            "lotSizeFilter": {
                "maxOrderQty": self.max_qty,
                "minOrderQty": self.min_qty,
                "qtyStep": self.step,
                "postOnlyMaxOrderQty": self.max_qty,
                "maxMktOrderQty": self.max_amount,
                "minNotionalValue": self.min_amount,
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "settleCoin": self.quote,
            "copyTrading": "both",
            "upperFundingRate": "0.00375",
            "lowerFundingRate": "-0.00375",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": "",
            "symbolType": "",
        }


def _spot(base: str, tick: str, step: str, min_qty: str, max_qty: str) -> Instrument:
    return Instrument(
        base=base,
        quote="USDT",
        linear=False,
        tick=tick,
        step=step,
        min_qty=min_qty,
        max_qty=max_qty,
        min_amount="1",
        max_amount="4000000",
    )


def _linear(base: str, tick: str, step: str, max_qty: str, scale: str) -> Instrument:
    return Instrument(
        base=base,
        quote="USDT",
        linear=True,
        tick=tick,
        step=step,
        min_qty=step,
        max_qty=max_qty,
        min_amount="5",
        max_amount=max_qty,
        price_scale=scale,
    )


#: Spot instruments by Bybit symbol.
SPOT_INSTRUMENTS: Final = {
    i.id: i
    for i in (
        _spot("BTC", "0.01", "0.000001", "0.000048", "71.73956243"),
        _spot("ETH", "0.01", "0.00001", "0.00062", "1229.2336343"),
        _spot("SOL", "0.01", "0.001", "0.011", "27162.2"),
        _spot("XRP", "0.0001", "0.01", "1.72", "1219512.19"),
        _spot("DOGE", "0.00001", "0.1", "13.3", "4618195"),
    )
}
#: Linear USDT perpetuals by Bybit symbol.
LINEAR_INSTRUMENTS: Final = {
    i.id: i
    for i in (
        _linear("BTC", "0.10", "0.001", "1190.000", "2"),
        _linear("ETH", "0.01", "0.01", "7240.00", "2"),
        _linear("SOL", "0.010", "0.1", "79770.0", "3"),
        _linear("XRP", "0.0001", "1", "4050000", "4"),
        _linear("DOGE", "0.00001", "1", "46560000", "5"),
    )
}


def instruments_info(category: str, now_ms: int) -> dict[str, Any]:
    """``GET /v5/market/instruments-info?category=...``: every spot or linear instrument
    (an empty list for the categories the loopback does not list: inverse, option)."""
    chosen = {"spot": SPOT_INSTRUMENTS, "linear": LINEAR_INSTRUMENTS}.get(category, {})
    result: dict[str, Any] = {"category": category, "list": [i.body() for i in chosen.values()]}
    if category != "spot":
        result["nextPageCursor"] = ""
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms}

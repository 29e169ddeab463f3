"""vigil's runtime: the trading model, strategies, modes, `call` dispatch and the engine.

Everything a strategy file or a user session needs is exported here; the packages behind it
are `model` (plain values), `engine` (all state changes, the replica), `exchanges` (the
interface, ccxt and the simulated exchange), `data` (market-data download and store), `modes`
(Sim, Paper, Live and `call`), `app` (the CLI, IPython, reports) and `testing` (the loopback
exchange and the conformance suite).

The names load on first use: the error classes are the ground floor that `traces` builds on,
so importing them (or `traces`) must not pull in the modes, the exchanges or the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime._errors import AuthenticationError as AuthenticationError
    from runtime._errors import ConfigError as ConfigError
    from runtime._errors import ExchangeError as ExchangeError
    from runtime._errors import InsufficientFunds as InsufficientFunds
    from runtime._errors import NetworkError as NetworkError
    from runtime._errors import OrderCheckFailed as OrderCheckFailed
    from runtime._errors import OrderNotFound as OrderNotFound
    from runtime._errors import OrderRejected as OrderRejected
    from runtime._errors import RateLimited as RateLimited
    from runtime._errors import ReplayMismatch as ReplayMismatch
    from runtime._errors import StrategyStopped as StrategyStopped
    from runtime._errors import TraceError as TraceError
    from runtime._errors import VigilError as VigilError
    from runtime.app import Session as Session
    from runtime.app import load_ipython_extension as load_ipython_extension
    from runtime.app import start as start
    from runtime.app import stop as stop
    from runtime.app import unload_ipython_extension as unload_ipython_extension
    from runtime.data import download_ohlcv as download_ohlcv
    from runtime.data import load_ohlcv as load_ohlcv
    from runtime.dist import OptimizeResult as OptimizeResult
    from runtime.dist import optimize as optimize
    from runtime.dist import sweep as sweep
    from runtime.dist import walk_forward as walk_forward
    from runtime.engine import Results as Results
    from runtime.engine import Strategy as Strategy
    from runtime.model import AssetInstance as AssetInstance
    from runtime.model import Balance as Balance
    from runtime.model import Buy as Buy
    from runtime.model import CancelOrders as CancelOrders
    from runtime.model import FOKOrder as FOKOrder
    from runtime.model import GTCOrder as GTCOrder
    from runtime.model import IOCOrder as IOCOrder
    from runtime.model import Live as Live
    from runtime.model import MarketOrder as MarketOrder
    from runtime.model import Order as Order
    from runtime.model import Paper as Paper
    from runtime.model import Position as Position
    from runtime.model import PositionClose as PositionClose
    from runtime.model import PostOnlyOrder as PostOnlyOrder
    from runtime.model import RunConfig as RunConfig
    from runtime.model import Sell as Sell
    from runtime.model import Sim as Sim
    from runtime.model import StopOrder as StopOrder
    from runtime.model import TakeProfitOrder as TakeProfitOrder
    from runtime.model import Trade as Trade
    from runtime.model import UpdateLeverage as UpdateLeverage
    from runtime.modes import Pending as Pending
    from runtime.modes import call as call
    from runtime.modes import flatten as flatten
    from runtime.modes import halt as halt
    from runtime.modes import resume as resume
    from runtime.modes import strategy as strategy
    from runtime.risk import Alert as Alert
    from runtime.risk import Risk as Risk

_EXPORTS: dict[str, str] = {
    "AssetInstance": "runtime.model",
    "Balance": "runtime.model",
    "Buy": "runtime.model",
    "CancelOrders": "runtime.model",
    "FOKOrder": "runtime.model",
    "GTCOrder": "runtime.model",
    "IOCOrder": "runtime.model",
    "Live": "runtime.model",
    "MarketOrder": "runtime.model",
    "Order": "runtime.model",
    "Paper": "runtime.model",
    "Position": "runtime.model",
    "PositionClose": "runtime.model",
    "PostOnlyOrder": "runtime.model",
    "StopOrder": "runtime.model",
    "TakeProfitOrder": "runtime.model",
    "RunConfig": "runtime.model",
    "Sell": "runtime.model",
    "Sim": "runtime.model",
    "Trade": "runtime.model",
    "UpdateLeverage": "runtime.model",
    "AuthenticationError": "runtime._errors",
    "ConfigError": "runtime._errors",
    "ExchangeError": "runtime._errors",
    "InsufficientFunds": "runtime._errors",
    "NetworkError": "runtime._errors",
    "OrderCheckFailed": "runtime._errors",
    "OrderNotFound": "runtime._errors",
    "OrderRejected": "runtime._errors",
    "RateLimited": "runtime._errors",
    "ReplayMismatch": "runtime._errors",
    "TraceError": "runtime._errors",
    "VigilError": "runtime._errors",
    "OptimizeResult": "runtime.dist",
    "optimize": "runtime.dist",
    "sweep": "runtime.dist",
    "walk_forward": "runtime.dist",
    "Results": "runtime.engine",
    "Strategy": "runtime.engine",
    "Pending": "runtime.modes",
    "flatten": "runtime.modes",
    "halt": "runtime.modes",
    "resume": "runtime.modes",
    "Alert": "runtime.risk",
    "Risk": "runtime.risk",
    "StrategyStopped": "runtime._errors",
    "call": "runtime.modes",
    "strategy": "runtime.modes",
    "Session": "runtime.app",
    "load_ipython_extension": "runtime.app",
    "start": "runtime.app",
    "stop": "runtime.app",
    "unload_ipython_extension": "runtime.app",
    "download_ohlcv": "runtime.data",
    "load_ohlcv": "runtime.data",
}

__all__ = [
    "Alert",
    "AssetInstance",
    "AuthenticationError",
    "Balance",
    "Buy",
    "CancelOrders",
    "ConfigError",
    "ExchangeError",
    "FOKOrder",
    "GTCOrder",
    "IOCOrder",
    "InsufficientFunds",
    "Live",
    "MarketOrder",
    "NetworkError",
    "OptimizeResult",
    "Order",
    "OrderCheckFailed",
    "OrderNotFound",
    "OrderRejected",
    "Paper",
    "Pending",
    "Position",
    "PositionClose",
    "PostOnlyOrder",
    "RateLimited",
    "ReplayMismatch",
    "Results",
    "Risk",
    "RunConfig",
    "Sell",
    "Session",
    "Sim",
    "StopOrder",
    "Strategy",
    "StrategyStopped",
    "TakeProfitOrder",
    "TraceError",
    "Trade",
    "UpdateLeverage",
    "VigilError",
    "call",
    "download_ohlcv",
    "flatten",
    "halt",
    "load_ipython_extension",
    "load_ohlcv",
    "optimize",
    "resume",
    "start",
    "stop",
    "strategy",
    "sweep",
    "unload_ipython_extension",
    "walk_forward",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

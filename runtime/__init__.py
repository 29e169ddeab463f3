"""vigil's runtime: the trading model, strategies, modes, `call` dispatch and the engine.

Everything a strategy file or a user session needs is re-exported here; the modules behind
it are private.
"""

from ._assets import AssetInstance as AssetInstance
from ._assets import Balance as Balance
from ._assets import Position as Position
from ._dispatch import Pending as Pending
from ._dispatch import call as call
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ConfigError as ConfigError
from ._errors import ExchangeError as ExchangeError
from ._errors import InsufficientFunds as InsufficientFunds
from ._errors import NetworkError as NetworkError
from ._errors import OrderCheckFailed as OrderCheckFailed
from ._errors import OrderNotFound as OrderNotFound
from ._errors import OrderRejected as OrderRejected
from ._errors import RateLimited as RateLimited
from ._errors import ReplayMismatch as ReplayMismatch
from ._errors import TraceError as TraceError
from ._errors import VigilError as VigilError
from ._interactive import Session as Session
from ._interactive import load_ipython_extension as load_ipython_extension
from ._interactive import unload_ipython_extension as unload_ipython_extension
from ._lifecycle import start as start
from ._lifecycle import stop as stop
from ._modes import Live as Live
from ._modes import Paper as Paper
from ._modes import RunConfig as RunConfig
from ._modes import Sim as Sim
from ._orders import Buy as Buy
from ._orders import CancelOrders as CancelOrders
from ._orders import FOKOrder as FOKOrder
from ._orders import GTCOrder as GTCOrder
from ._orders import IOCOrder as IOCOrder
from ._orders import MarketOrder as MarketOrder
from ._orders import Order as Order
from ._orders import PositionClose as PositionClose
from ._orders import PostOnlyOrder as PostOnlyOrder
from ._orders import Sell as Sell
from ._orders import Trade as Trade
from ._orders import UpdateLeverage as UpdateLeverage
from ._results import Results as Results
from ._strategy import Strategy as Strategy
from ._strategy import strategy as strategy

"""The trading model: orders and their types, asset instances, balances and positions, bars,
and the run configuration (`Sim`, `Paper`, `Live`, `RunConfig`). Plain values; no I/O."""

from runtime.model._assets import AssetInstance as AssetInstance
from runtime.model._assets import Balance as Balance
from runtime.model._assets import BarWindow as BarWindow
from runtime.model._assets import Position as Position
from runtime.model._assets import Universe as Universe
from runtime.model._bars import Bars as Bars
from runtime.model._bars import generate_bars as generate_bars
from runtime.model._bars import load_bars as load_bars
from runtime.model._bars import timeframe_ns as timeframe_ns
from runtime.model._modes import FillModel as FillModel
from runtime.model._modes import Live as Live
from runtime.model._modes import Mode as Mode
from runtime.model._modes import Paper as Paper
from runtime.model._modes import RunConfig as RunConfig
from runtime.model._modes import Sim as Sim
from runtime.model._modes import WatcherConfig as WatcherConfig
from runtime.model._orders import Buy as Buy
from runtime.model._orders import CancelOrders as CancelOrders
from runtime.model._orders import FOKOrder as FOKOrder
from runtime.model._orders import GTCOrder as GTCOrder
from runtime.model._orders import IOCOrder as IOCOrder
from runtime.model._orders import MarketOrder as MarketOrder
from runtime.model._orders import Order as Order
from runtime.model._orders import PositionClose as PositionClose
from runtime.model._orders import PostOnlyOrder as PostOnlyOrder
from runtime.model._orders import Sell as Sell
from runtime.model._orders import StopOrder as StopOrder
from runtime.model._orders import TakeProfitOrder as TakeProfitOrder
from runtime.model._orders import Trade as Trade
from runtime.model._orders import UpdateLeverage as UpdateLeverage

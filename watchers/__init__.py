"""Watchers that keep local state in step with an exchange (Live and Paper modes): balance,
positions, and per asset orders and trades; market data (book, public trades, ticker, bars).
Each is ``async def run(self, send, *, task_status)``, websocket first, REST as the truth."""

from watchers._account import BalanceWatcher as BalanceWatcher
from watchers._account import OrdersWatcher as OrdersWatcher
from watchers._account import PositionsWatcher as PositionsWatcher
from watchers._account import TradesWatcher as TradesWatcher
from watchers._base import Watcher as Watcher
from watchers._base import WatcherConfig as WatcherConfig
from watchers._market import BookWatcher as BookWatcher
from watchers._market import OHLCVWatcher as OHLCVWatcher
from watchers._market import PublicTradesWatcher as PublicTradesWatcher
from watchers._market import TickerWatcher as TickerWatcher

"""Market data: OHLCV bars and funding rates downloaded through ccxt into a Zarr v3 store,
and read back for analysis and Sim (DESIGN §11).

- :func:`download_ohlcv` (``vigil data download``) pages ccxt's ``fetch_ohlcv`` (and
  ``fetch_funding_rate_history`` with ``funding=True``) into the store; resumable, idempotent.
- :func:`load_ohlcv` reads stored bars as a DataFrame; :func:`load_funding` funding rates.
- :class:`MarketStore` is the store (``$VIGIL_HOME/data`` by default); ``.catalog()`` is what
  ``vigil data list`` shows.
- :class:`StoreData` (or ``data="store"``) makes a Sim strategy read its markets from the
  store, with the stored funding charged on perpetual positions.
"""

from runtime.data._download import Downloaded as Downloaded
from runtime.data._download import download_ohlcv as download_ohlcv
from runtime.data._download import download_ohlcv_async as download_ohlcv_async
from runtime.data._load import FundingRates as FundingRates
from runtime.data._load import StoreData as StoreData
from runtime.data._load import load_funding as load_funding
from runtime.data._load import load_ohlcv as load_ohlcv
from runtime.data._load import store_bars as store_bars
from runtime.data._store import MarketStore as MarketStore
from runtime.data._store import data_root as data_root

__all__ = [
    "Downloaded",
    "FundingRates",
    "MarketStore",
    "StoreData",
    "data_root",
    "download_ohlcv",
    "download_ohlcv_async",
    "load_funding",
    "load_ohlcv",
    "store_bars",
]

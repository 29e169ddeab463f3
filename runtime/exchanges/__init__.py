"""The exchange interface and its implementations: `ccxt` (every real venue, through ccxt) and
`sim` (the in-process simulated exchange). The scripted exchange for unit tests and the
loopback Binance are test helpers in `runtime.testing`."""

from runtime.exchanges._interface import Exchange as Exchange
from runtime.exchanges._interface import StreamingExchange as StreamingExchange
from runtime.exchanges._markets import market_for as market_for

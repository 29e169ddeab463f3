"""Public test helpers, as `trio.testing` and `zarr.testing` are: the loopback exchanges (a local
Binance and a local Bybit that real ccxt talks to, `runtime.testing.loopback`), the scripted
exchange for unit tests, and the exchange conformance suite every implementation passes
(`runtime.testing.conformance`, which needs pytest and is imported by name)."""

from runtime.testing._scripted import ScriptedExchange as ScriptedExchange
from runtime.testing.loopback import BybitLoopbackExchange as BybitLoopbackExchange
from runtime.testing.loopback import Faults as Faults
from runtime.testing.loopback import LoopbackExchange as LoopbackExchange

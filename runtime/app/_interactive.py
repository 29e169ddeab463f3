"""Interactive and scripted use: a persistent trio loop on a background thread.

* **IPython.** ``%load_ext runtime`` makes this loop IPython's loop runner: top-level ``await``
  in a cell runs on it, and tasks started with ``start(s, foreground=False)`` keep running
  between cells (a plain ``%autoawait trio`` gives each cell its own ``trio.run``, which ends
  them when the cell ends).
* **Scripts.** `Session` is the sync facade over the same loop::

      from runtime import Session, strategy, Sim, MarketOrder, Buy

      with Session() as v:
          s = strategy("sma_cross", mode=Sim())
          ai = s.universe["BTC/USDT"]
          trade = v.call(s, ai, MarketOrder[Buy], amount=0.01)
          v.start(s)                 # runs to the end of the data (Sim) or until v.stop(s)

The loop itself is `runtime.app._loop`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from runtime.app._lifecycle import start, stop
from runtime.app._loop import background_loop, spawn_strategy
from runtime.modes._dispatch import call

if TYPE_CHECKING:
    from runtime.engine._strategy import Strategy

T = TypeVar("T")


class Session:
    """The sync facade: drive strategies from a plain script, on the background loop."""

    def __init__(self) -> None:
        loop = background_loop()
        assert loop is not None
        self.loop = loop

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, s: Strategy, ai: Any, what: Any, **kwargs: Any) -> Any:
        """`runtime.call`, blocking until it returns."""

        async def run() -> Any:
            return await call(s, ai, what, **kwargs)

        return self.loop.run(run)

    def start(self, s: Strategy, *, background: bool = False) -> None:
        """Run the strategy: to the end (Sim) or until `stop`; with ``background=True``
        return at once and let it run on the loop."""
        if background:
            spawn_strategy(s, start)
        else:
            self.loop.run(start, s)

    def stop(self, s: Strategy) -> None:
        self.loop.run(stop, s)

    def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Any other coroutine function, e.g. ``session.run(p.wait, 10)``."""
        return self.loop.run(afn, *args)

    def close(self) -> None:
        """Nothing to release per session: the loop lives as long as the process."""


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext runtime``: top-level await runs on the persistent background loop."""
    loop = background_loop()
    assert loop is not None
    ipython.loop_runner = loop.run_coroutine
    ipython.autoawait = True
    print(
        "vigil: top-level await now runs on a persistent trio loop; "
        "start(s, foreground=False) keeps strategies running between cells"
    )


def unload_ipython_extension(ipython: Any) -> None:
    ipython.autoawait = True
    ipython.loop_runner = "asyncio"

"""The engine: the only code that changes strategy state.

* `apply(state, event)` and the event types (`runtime.engine._engine`);
* ccxt reports translated into events (`_translate`);
* the per-strategy `Runtime`, whose `emit` records an event in the trace and applies it, and
  the `Strategy` base class that reads its state;
* the state replica that rebuilds state from a trace for `replay_from_trace` and restarts,
  failing loudly on a missing seq (`_replica`), and results computed from a state (`_results`).
"""

from runtime.engine._engine import Event as Event
from runtime.engine._engine import State as State
from runtime.engine._engine import apply as apply
from runtime.engine._replay import replay_from_trace as replay_from_trace
from runtime.engine._replica import Replica as Replica
from runtime.engine._replica import snapshot as snapshot
from runtime.engine._results import Results as Results
from runtime.engine._runtime import Runtime as Runtime
from runtime.engine._runtime import build_runtime as build_runtime
from runtime.engine._strategy import Strategy as Strategy
from runtime.engine._strategy import runtime_of as runtime_of

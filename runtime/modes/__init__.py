"""The modes: `strategy(...)` wires a strategy to Sim, Paper or Live through one function
(`runtime.modes._wiring.wire`), and `call` dispatches its orders the same way in all three.
The modes differ only by their exchange and their clock."""

from runtime.modes._dispatch import Pending as Pending
from runtime.modes._dispatch import call as call
from runtime.modes._operations import flatten as flatten
from runtime.modes._operations import halt as halt
from runtime.modes._operations import resume as resume
from runtime.modes._wiring import strategy as strategy
from runtime.modes._wiring import wire as wire

"""Sweeps and optimisation beyond one process (DESIGN §12).

`sweep` runs one Sim job per combination of parameters (× markets × windows) in this process or
on a dask.distributed cluster and returns one row per job; `optimize` searches parameters with
optuna, its trials run as the same jobs; `walk_forward` makes train/test windows for both.
dask and optuna are the `vigil[dist]` extra; without it `sweep(..., client="serial")` works.
"""

from runtime.dist._optimize import OptimizeResult as OptimizeResult
from runtime.dist._optimize import optimize as optimize
from runtime.dist._sweep import sweep as sweep
from runtime.dist._windows import Span as Span
from runtime.dist._windows import Window as Window
from runtime.dist._windows import walk_forward as walk_forward

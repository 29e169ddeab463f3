"""`optimize`: an optuna search over a strategy's parameters, its trials run as sweep jobs.

optuna's ask/tell drives the search: a batch of trials (as many as there are workers) is asked
for, run as jobs, and told back **in trial order** once the whole batch is in. Completion order
on a cluster varies from run to run; telling in trial order keeps the sampler's history, and so
the search, the same for a fixed seed. With walk-forward windows, each window has its own search
on its train span, and its best parameters are then run once on its test span.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import pandas as pd

from runtime._errors import ConfigError
from runtime._progress import Progress
from runtime.dist._engines import Engine, open_engine
from runtime.dist._sweep import Plan, plan, rows_frame, run_jobs
from runtime.dist._windows import Span, Window
from runtime.model._modes import Sim

# optuna is part of the `vigil[dist]` extra.
try:
    import optuna

    OPTUNA_MISSING: str | None = None
except ImportError as _exc:
    OPTUNA_MISSING = str(_exc)

Objective = str | Callable[[Mapping[str, Any]], float]

# Statistics where smaller is better; every other one is maximised unless told otherwise.
MINIMISED = frozenset({"max_drawdown", "fees"})


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    """What `optimize` found.

    * ``best_params``: the best trial's parameters, with the fixed ``params`` (ready for
      ``strategy(..., params=best_params)``); with windows, those of the last window;
    * ``best_value``: its objective value;
    * ``trials``: one row per trial (``trial``, ``value``, then the sweep row's columns);
    * ``windows``: with walk-forward windows, one row per window: its spans, its best params,
      their train value and their test value and statistics; otherwise None;
    * ``study``: the optuna Study (of the last window).
    """

    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame
    windows: pd.DataFrame | None
    study: Any


def optimize(
    name_or_path: str | Path,
    space: Mapping[str, Any],
    *,
    objective: Objective = "sharpe",
    direction: str | None = None,
    n_trials: int = 100,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    data: Any = None,
    markets: Sequence[str] | None = None,
    windows: Sequence[Window] | None = None,
    mode: Sim | None = None,
    initial_cash: float | None = None,
    client: Any = None,
    trace_root: str | Path = "traces",
    sweep_id: str | None = None,
    in_flight: int | None = None,
    progress: bool | None = None,
) -> OptimizeResult:
    """Search `space` for the parameters that give the best `objective`.

    * `space`: ``{"fast": (5, 50), "slow": (20, 200)}``: a pair of ints is an integer range, a
      pair with a float a float range (a third item is the step), a list a set of choices.
    * `objective`: a statistic name (``"sharpe"``, ``"total_return"``, ...) or a function of a
      row; `direction` defaults to "minimize" for max_drawdown and fees, else "maximize".
    * `params`: fixed parameters every trial uses. `seed` seeds optuna's TPE sampler: the same
      seed gives the same trials, and the same best parameters, on any number of workers as
      long as `in_flight` (default: the number of workers) is the same.
    * `windows`: `walk_forward(...)` windows: a search of `n_trials` on each train span, then
      its best parameters on the test span.
    * `data`, `mode`, `initial_cash`, `client`, `trace_root`, `sweep_id`: as for `sweep`.
    """
    if OPTUNA_MISSING is not None:
        raise ConfigError(
            f"optimize needs optuna, which is not installed ({OPTUNA_MISSING}); install the "
            'distributed extra with pip install "vigil[dist]"'
        )
    if n_trials < 1:
        raise ConfigError(f"n_trials={n_trials} must be at least 1")
    direction = direction or ("minimize" if objective in MINIMISED else "maximize")
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"direction={direction!r} must be 'maximize' or 'minimize'")
    way = cast("Literal['maximize', 'minimize']", direction)
    fixed = dict(params or {})
    _check_space(space)
    p = plan(
        name_or_path,
        data=data,
        mode=mode,
        initial_cash=initial_cash,
        trace_root=trace_root,
        sweep_id=sweep_id,
    )
    p.check_params([*space, *fixed])
    market_set = None if markets is None else tuple(markets)
    search = _Search(p, space, fixed, market_set, objective, way, seed)
    spans: list[tuple[int | None, Window | None]] = (
        [(None, None)] if windows is None else [(i, _window(w)) for i, w in enumerate(windows)]
    )
    engine = open_engine(client)
    bar = (
        Progress(n_trials * len(spans), unit="trials")
        if (Progress.wanted() if progress is None else progress)
        else None
    )
    try:
        batch = in_flight or engine.n_workers
        trials: list[dict[str, Any]] = []
        per_window: list[dict[str, Any]] = []
        study: Any = None
        for index, window in spans:
            span = None if window is None else window.train
            study, rows = search.run(engine, span, index, n_trials, batch, bar, len(trials))
            trials += rows
            if window is not None and index is not None:
                per_window.append(search.test(engine, study, window, index))
    finally:
        engine.close()
    if bar is not None:
        bar.finish(len(trials))
    return OptimizeResult(
        best_params={**fixed, **study.best_params},
        best_value=float(study.best_value),
        trials=rows_frame(trials),
        windows=None if windows is None else pd.DataFrame(per_window),
        study=study,
    )


@dataclass(frozen=True, slots=True)
class _Search:
    plan: Plan
    space: Mapping[str, Any]
    fixed: dict[str, Any]
    markets: tuple[str, ...] | None
    objective: Objective
    direction: Literal["maximize", "minimize"]
    seed: int

    def run(
        self,
        engine: Engine,
        span: Span | None,
        window: int | None,
        n_trials: int,
        batch: int,
        bar: Progress | None,
        done_before: int,
    ) -> tuple[Any, list[dict[str, Any]]]:
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        study = optuna.create_study(direction=self.direction, sampler=sampler)
        rows: list[dict[str, Any]] = []
        segment = None if span is None else "train"
        while len(study.trials) < n_trials:
            asked = [study.ask() for _ in range(min(batch, n_trials - len(study.trials)))]
            jobs = [
                self.plan.job(
                    {**self.fixed, **_suggest(trial, self.space)},
                    markets=self.markets,
                    span=span,
                    window=window,
                    segment=segment,
                )
                for trial in asked
            ]
            results = run_jobs(jobs, self.plan.frames, engine=engine, progress=False)
            for trial, row in zip(asked, results, strict=True):
                value = self.score(row)
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
                rows.append({"trial": trial.number, "value": value, **row})
            if bar is not None:
                bar.update(done_before + len(rows))
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            errors = [r["error"] for r in rows if r.get("error")]
            raise ConfigError(
                f"all {n_trials} trials failed"
                + (f"; the first error: {errors[0]}" if errors else " (no objective value)")
            )
        return study, rows

    def test(self, engine: Engine, study: Any, window: Window, index: int) -> dict[str, Any]:
        """The window's best parameters run on its test span."""
        best = {**self.fixed, **study.best_params}
        job = self.plan.job(
            best, markets=self.markets, span=window.test, window=index, segment="test"
        )
        [row] = run_jobs([job], self.plan.frames, engine=engine, progress=False)
        stats = {k: v for k, v in row.items() if k not in job.head()}
        return {
            "window": index,
            "train_start": window.train.start,
            "train_end": window.train.end,
            "test_start": window.test.start,
            "test_end": window.test.end,
            **best,
            "train_value": float(study.best_value),
            "test_value": self.score(row),
            **stats,
        }

    def score(self, row: Mapping[str, Any]) -> float | None:
        """The objective of a row, or None when the job failed or gave no finite value."""
        if row.get("error"):
            return None
        if callable(self.objective):
            value = float(self.objective(row))
        else:
            if self.objective not in row:
                names = [k for k, v in row.items() if isinstance(v, float)]
                raise ConfigError(
                    f"objective {self.objective!r} is not a statistic of a run; "
                    f"use one of {', '.join(names)} or a function of the row"
                )
            value = float(row[self.objective])
        return value if math.isfinite(value) else None


def _suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            chosen[name] = trial.suggest_categorical(name, spec)
            continue
        low, high, *rest = spec
        step = rest[0] if rest else None
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, *rest)):
            chosen[name] = trial.suggest_int(name, low, high, step=step or 1)
        else:
            chosen[name] = trial.suggest_float(name, float(low), float(high), step=step)
    return chosen


def _check_space(space: Mapping[str, Any]) -> None:
    if not space:
        raise ConfigError("space is empty; give at least one parameter, e.g. {'fast': (5, 50)}")
    for name, spec in space.items():
        if isinstance(spec, list) and spec:
            continue
        ok = (
            isinstance(spec, tuple)
            and len(spec) in (2, 3)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec)
            and spec[0] < spec[1]
        )
        if not ok:
            raise ConfigError(
                f"space[{name!r}]={spec!r} is not a search range; use (low, high) with "
                "low < high, (low, high, step), or a list of choices"
            )


def _window(w: Any) -> Window:
    if not isinstance(w, Window):
        raise ConfigError(
            f"optimize windows must be walk_forward(...) windows (train and test spans), not {w!r}"
        )
    return w

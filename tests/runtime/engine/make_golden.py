"""Regenerate the golden traces: `python -m tests.runtime.engine.make_golden`.

One spot run (sma_cross) and one margin run (margin_trend), each on 5,000 generated bars with
the bars recorded too, so each trace has committed Zarr chunks as well as a WAL tail.
Regenerate them when the trace schema or the engine's accounting changes on purpose, and keep
the previous ones in a folder of their own (as ``golden/before_reports``) while vigil still
replays them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import trio

from runtime import Sim, start, strategy
from traces._view import LOCK_FILE

GOLDEN = Path(__file__).resolve().parent / "golden"


async def make(name: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        config = {"trace_root": root, "trace_market": True}  # bars too: past one chunk
        s = strategy(name, mode=Sim(bars=5_000, seed=11), config=config)
        await start(s)
        assert s.trace_path is not None
        target = GOLDEN / f"{name}.zarr"
        shutil.rmtree(target, ignore_errors=True)
        # The writer's lock file belongs to a writer, not to the trace's content.
        shutil.copytree(s.trace_path, target, ignore=shutil.ignore_patterns(LOCK_FILE))
        print(f"{target}: {sum(len(ai.trades) for ai in s.universe)} fills")


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name in ("sma_cross", "margin_trend"):
        trio.run(make, name)


if __name__ == "__main__":
    main()

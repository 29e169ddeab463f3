"""Traces store and read bytes and know nothing of strategies (DESIGN §1): importing `traces`
pulls in no part of the runtime but its error classes, and no traces module imports the
runtime at module level except for those."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TRACES = Path(__file__).resolve().parents[2] / "traces"


def test_importing_traces_imports_only_the_runtimes_errors() -> None:
    code = (
        "import sys, traces\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('runtime', 'watchers')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['runtime', 'runtime._errors']"


def test_replay_from_trace_is_still_importable_from_traces() -> None:
    code = "from traces import replay_from_trace; print(replay_from_trace.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "runtime.engine._replay"


def test_no_traces_module_imports_the_runtime_beyond_its_errors() -> None:
    modules = sorted(TRACES.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level; TYPE_CHECKING blocks are not executed
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("runtime"):
                assert node.module == "runtime._errors", f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("runtime")]
                assert not names, f"{path.name} imports {names}"

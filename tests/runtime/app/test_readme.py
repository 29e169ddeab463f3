"""The README's examples run as written, in order, as a reader follows them: in an empty
folder, with the loopback exchange serving (the README starts one before its Paper and Live
examples; here a fixture does, with its `VIGIL_*` lines exported).

It runs the blocks of the sections in RUN; NOT_RUN names every other section with the reason
(network access, fragments, other issues' own tests), and a section in neither fails the test.
Rules, so that every block counts and none is skipped by accident:

* a ```python block after "Save this as `NAME`" is written to NAME; every other one runs, all
  in one Python process and namespace, in order (later blocks use names earlier ones made);
* a ```sh block runs line by line (comments cut): ``pip install ... &&`` is the setup this
  test runs under, ``vigil`` is ``python -m runtime.app._cli``; ``python -m pytest`` is this
  very suite and ``vigil exchange serve`` the fixture, so those two are the only commands
  not run; a ``vigil run --mode live|paper`` runs until its trace records its start, then
  gets Ctrl-C and must end with its summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from runtime.testing.loopback import LoopbackExchange
from traces import read_trace

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SAVE_AS = re.compile(r"Save this as\s+`([^`]+)`[^`]*$", re.S)

# Runs the README's Python blocks, sent one JSON line each on stdin, in one namespace that
# lives as long as the test (a later block uses names an earlier one made); answers with a
# marker line per block.
MARK = "@@readme-block@@"
RUNNER = f"""
import json, sys, traceback
scope = {{"__name__": "__main__"}}
for raw in sys.stdin:
    line, code = json.loads(raw)
    try:
        exec(compile(code, f"README.md:{{line}}", "exec"), scope)
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        print("{MARK} failed", line, flush=True)
        sys.exit(1)
    print("{MARK} ran", line, flush=True)
"""


class PythonSession:
    """One Python process running the README's blocks in order."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        runner = cwd / "_readme_runner.py"
        runner.write_text(RUNNER)
        self.proc = subprocess.Popen(
            [sys.executable, str(runner)],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ran = 0

    def run(self, line: int, code: str) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([line, code]) + "\n")
        self.proc.stdin.flush()
        output = []
        for out in self.proc.stdout:
            if out.startswith(MARK):
                assert out.split()[1] == "ran", "".join(output)
                self.ran += 1
                return
            output.append(out)
        raise AssertionError(f"README block at line {line}: the process ended\n" + "".join(output))

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


# The sections whose examples this test runs: the quick start and tutorial (issue 18) and the
# traces. Each other section is named with why its blocks are not run here, so a new section
# has to be placed in one list or the other.
RUN = {
    "Setup",
    "Quick start",
    "A strategy",
    "Paper and Live",
    "Risk and operations",
    "Reports",
    "Traces",
}
NOT_RUN = {
    "vigil": "no code",
    "Venues: any ccxt exchange, and a loopback Bybit": "reaches okx over the network",
    "Protective orders": "`await call(...)` lines, to read inside a strategy",
    "Market data": "downloads from Binance over the network",
    "Beyond one machine": "its own tests (tests/runtime/dist): a dask cluster, an s3:// bucket",
    "Layout": "a picture of the tree",
    "Performance": "benchmark figures",
}


def blocks() -> list[tuple[int, str, str, str]]:
    """(line, language, code, the text before it) of every fenced block of the RUN sections."""
    text = README.read_text("utf-8")
    headings = [(m.start(), m.group(1)) for m in re.finditer(r"^#{1,2} (.+)$", text, re.M)]
    names = {name for _, name in headings}
    assert names == RUN | set(NOT_RUN), (
        f"README sections changed: place {sorted(names - RUN - set(NOT_RUN))} in RUN or NOT_RUN"
    )
    out = []
    last = 0
    for m in FENCE.finditer(text):
        section = [name for start, name in headings if start < m.start()][-1]
        line = text.count("\n", 0, m.start()) + 1
        if section in RUN:
            out.append((line, m.group(1), m.group(2), text[last : m.start()]))
        last = m.end()
    return out


def shell_commands(code: str) -> list[str]:
    commands = []
    for raw in code.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("pip install"):
            line = line.partition("&&")[2].strip()  # installed: this test runs in it
        if not line or line.startswith("python -m pytest") or "exchange serve" in line:
            continue
        commands.append(line)
    return commands


def run_shell(command: str, cwd: Path, env: dict[str, str]) -> str:
    argv = command.split()
    assert argv[0] == "vigil", f"README command {command!r}: only vigil commands are expected"
    argv = [sys.executable, "-m", "runtime.app._cli", *argv[1:]]
    if "--mode" in argv and argv[argv.index("--mode") + 1] in ("live", "paper"):
        return run_until_started(command, argv, cwd, env)
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    return out.stdout


def run_until_started(command: str, argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    mode = argv[argv.index("--mode") + 1]
    account = "paper" if mode == "paper" else "live" if "--no-sandbox" in argv else "sandbox"
    trace = cwd / "traces" / "binance" / account / f"{argv[4]}.zarr"
    try:
        deadline = time.monotonic() + 60
        started = False
        while not started and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if trace.is_dir():
                with contextlib.suppress(Exception):  # the trace is still being created
                    started = len(read_trace(trace, kinds=["RUN_STARTED"])) > 0
        assert started, f"{command} did not start"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # closes the pipes too
    assert proc.returncode == 130, f"{command}\n{out}\n{err}"
    assert "Traceback" not in err, err
    assert "Unclosed" not in err, err
    assert f"trace          {trace}" in out, out
    return out


def test_readme_examples_run_as_written(running_market: LoopbackExchange, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(running_market.env())
    ran = {"sh": 0, "saved": 0}
    python = PythonSession(tmp_path, env)
    try:
        for line, language, code, before in blocks():
            saved = SAVE_AS.search(before[-300:])
            if language == "python" and saved:
                (tmp_path / saved.group(1)).write_text(code)
                ran["saved"] += 1
            elif language == "python":
                python.run(line, code)
            elif language == "sh":
                for command in shell_commands(code):
                    run_shell(command, tmp_path, env)
                    ran["sh"] += 1
    finally:
        python.close()
    assert ran["saved"] >= 2
    assert python.ran >= 5
    assert ran["sh"] >= 10
    assert not (tmp_path / "traces" / "__init__.py").exists()

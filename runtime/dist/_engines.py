"""Where sweep jobs run: in this process, or on a dask.distributed cluster.

`open_engine(client)` turns the `client=` argument into an engine:

* ``"serial"``: each job in turn, in this process (needs nothing beyond vigil);
* ``None``: a dask `LocalCluster` on 127.0.0.1, one single-threaded worker process per core,
  closed with the engine;
* ``"tcp://host:8786"``: a client to that scheduler, closed with the engine;
* a `distributed.Client`: that client, left open.

`Engine.run(jobs, frames)` yields ``(job, row)`` as jobs finish, in any order. A job the cluster
could not run (its worker died more often than dask allows, or it was cancelled) still yields a
row, carrying the error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from runtime._errors import ConfigError
from runtime.dist._jobs import Job, describe, run_job

# The distributed engine is the `vigil[dist]` extra; the serial one works without it.
try:
    import dask
    from distributed import Client, Future, LocalCluster, as_completed

    DIST_MISSING: str | None = None
except ImportError as _exc:
    DIST_MISSING = str(_exc)

INSTALL_DIST = 'pip install "vigil[dist]"'


class Engine(Protocol):
    n_workers: int

    def run(self, jobs: Sequence[Job], frames: Any) -> Iterator[tuple[Job, dict[str, Any]]]: ...

    def close(self) -> None: ...


def require_dist(what: str) -> None:
    """ConfigError naming the extra to install when the dist extra is missing."""
    if DIST_MISSING is not None:
        raise ConfigError(
            f"{what} needs the distributed extra, which is not installed ({DIST_MISSING}); "
            f'install it with {INSTALL_DIST}, or run the sweep with client="serial"'
        )


def open_engine(client: Any) -> Engine:
    if client == "serial":
        return SerialEngine()
    if client is None:
        require_dist("client=None (a dask LocalCluster)")
        return DaskEngine.local()
    if isinstance(client, str):
        require_dist(f"client={client!r} (a dask scheduler)")
        return DaskEngine.connect(client)
    if DIST_MISSING is None and isinstance(client, Client):
        return DaskEngine(client, owned=False)
    raise ConfigError(
        f'client={client!r} is not an engine; pass None (a local dask cluster), "serial", '
        'a scheduler address like "tcp://127.0.0.1:8786" or a distributed.Client'
    )


class SerialEngine:
    """Every job in this process, one after the other."""

    n_workers = 1

    def run(self, jobs: Sequence[Job], frames: Any) -> Iterator[tuple[Job, dict[str, Any]]]:
        done: dict[str, dict[str, Any]] = {}
        for job in jobs:
            if job.key not in done:
                done[job.key] = run_job(job, frames)
            yield job, done[job.key]

    def close(self) -> None:
        pass


class DaskEngine:
    """Jobs as dask tasks, results streamed back as they finish (`as_completed`)."""

    def __init__(
        self,
        client: Client,
        *,
        owned: bool,
        cluster: LocalCluster | None = None,
        scratch: str | None = None,
        config: Any = None,
    ) -> None:
        self.client = client
        self._owned = owned
        self._cluster = cluster
        self._scratch = scratch
        self._config = config
        self._scattered: dict[int, Future] = {}
        workers = client.scheduler_info().get("workers", {})
        self.n_workers = max(len(workers), 1)

    @classmethod
    def local(cls, n_workers: int | None = None) -> DaskEngine:
        """A LocalCluster on 127.0.0.1: single-threaded worker processes (one per core unless
        `n_workers` says), its dashboard on a free port (a fixed 8787 clashes with a second
        cluster), its spill files in a private temporary directory. The workers' statistical
        profiler is off: it samples the job's thread every 10 ms, and a backtest's deep Python
        stacks made that cost 5-20% of a job (`bench/sweep.py`)."""
        scratch = tempfile.mkdtemp(prefix="vigil-dask-")
        config = dask.config.set(
            {"temporary-directory": scratch, "distributed.worker.profile.enabled": False}
        )
        n = n_workers or os.cpu_count() or 1
        started = False
        try:
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                local_directory=scratch,
            )
            client = Client(cluster)
            client.wait_for_workers(n)
            started = True
        finally:
            if not started:
                config.__exit__(None, None, None)
                shutil.rmtree(scratch, ignore_errors=True)
        return cls(client, owned=True, cluster=cluster, scratch=scratch, config=config)

    @classmethod
    def connect(cls, address: str) -> DaskEngine:
        try:  # as long as dask's own connect timeout (30 s unless configured)
            client = Client(address, timeout=dask.config.get("distributed.comm.timeouts.connect"))
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the dask scheduler at {address}: {describe(exc)}; start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`"
            ) from exc
        return cls(client, owned=True)

    def run(self, jobs: Sequence[Job], frames: Any) -> Iterator[tuple[Job, dict[str, Any]]]:
        payload = self._scatter(frames)
        nonce = uuid.uuid4().hex[:8]  # a key of an earlier, failed submit is not reused
        futures: dict[str, Future] = {}
        by_future: dict[Any, list[Job]] = {}
        for job in jobs:
            if job.key not in futures:
                futures[job.key] = self.client.submit(
                    run_job, job, payload, key=f"vigil-job-{job.key}-{nonce}", pure=False
                )
            by_future.setdefault(futures[job.key].key, []).append(job)
        try:
            for future in as_completed(list(futures.values())):
                row: dict[str, Any] | None = None
                if future.status == "finished":
                    row = future.result()
                for job in by_future[future.key]:
                    yield job, row if row is not None else self._failed(job, future)
        finally:
            for future in futures.values():
                future.release()

    def _failed(self, job: Job, future: Future) -> dict[str, Any]:
        if future.status == "error":
            error = describe(future.exception())
        else:
            error = f"the cluster dropped the job ({future.status})"
        return job.head() | {"trace": None, "seconds": None, "error": error}

    def _scatter(self, frames: Any) -> Any:
        """Caller-held DataFrames go to the cluster once, then travel between workers."""
        if frames is None:
            return None
        if id(frames) not in self._scattered:
            [future] = self.client.scatter([frames], hash=False)
            self._scattered[id(frames)] = future
        return self._scattered[id(frames)]

    def close(self) -> None:
        for future in self._scattered.values():
            future.release()
        self._scattered.clear()
        if self._owned:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        if self._config is not None:
            self._config.__exit__(None, None, None)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

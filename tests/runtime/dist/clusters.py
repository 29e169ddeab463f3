"""A LocalCluster of two single-threaded worker processes on 127.0.0.1, for the tests."""

from __future__ import annotations

from pathlib import Path

from distributed import Client, LocalCluster


def local_cluster(scratch: Path) -> tuple[LocalCluster, Client]:
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # None still binds 8787
        local_directory=str(scratch),
    )
    client = Client(cluster)
    client.wait_for_workers(2)
    return cluster, client

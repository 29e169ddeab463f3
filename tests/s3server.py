"""moto's real S3 server on 127.0.0.1 for the object-storage tests, with dummy credentials
(so no AWS SDK ever probes the instance-metadata address) and a fresh bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto.server import ThreadedMotoServer


@contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on a free port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def use_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the AWS variables at `endpoint` with dummy keys; create and return a new bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"vigil-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return bucket


def keys(endpoint: str, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every object under `prefix`, with its size, as the server lists them."""
    client = boto3.client("s3", endpoint_url=endpoint)
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out |= {obj["Key"]: obj["Size"] for obj in page.get("Contents", [])}
    return out

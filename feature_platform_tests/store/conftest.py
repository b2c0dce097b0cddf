"""The offline store's two backends for tests: a local directory and an S3 API server.

The S3 server is moto's real HTTP server (`moto[server]`), started on loopback once per test
session; the offline store reaches it through `pyarrow.fs.S3FileSystem` over HTTP exactly as
it would reach MinIO or AWS, with the endpoint and credentials given in the environment."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pyarrow.fs as pafs
import pytest
from store_test_support import BUCKET

_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "fp-test-key",
    "AWS_SECRET_ACCESS_KEY": "fp-test-secret",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """`http://127.0.0.1:<port>` of a moto S3 server holding the empty bucket `BUCKET`."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    admin = pafs.S3FileSystem(
        endpoint_override=f"{host}:{port}",
        scheme="http",
        access_key=_S3_ENV["AWS_ACCESS_KEY_ID"],
        secret_key=_S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region=_S3_ENV["AWS_REGION"],
        allow_bucket_creation=True,
    )
    admin.create_dir(BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> str:
    """Point the AWS environment at the test server; returns a fresh `s3://` root."""
    for name, value in {**_S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/offline"


@pytest.fixture(params=["local", "s3"])
def offline_root(request, tmp_path) -> str:
    """An offline store root on each backend: a directory, then an S3 prefix."""
    if request.param == "local":
        return str(tmp_path / "offline")
    return request.getfixturevalue("s3_env")

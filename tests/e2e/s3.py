"""A real S3-protocol server for the tests: moto's standalone server on a free port of 127.0.0.1.

Helpers only; the fixtures that use them are in tests/e2e/conftest.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BUCKET = "flightdelay-test"
URL = f"s3://{BUCKET}/cache"
# A param another run already tried (it reruns predict and what follows, not train: the fixture stays cheap).
VARIANT = ("evaluate", "importance_repeats")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"{what} did not listen on {port} within {seconds}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - only when the server ignores SIGTERM
        proc.kill()
        proc.wait()


S3_CALL = """
import json, sys
import boto3
endpoint, op, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
if op == "keys":
    pages = client.get_paginator("list_objects_v2").paginate(**kwargs)
    print(json.dumps([item["Key"] for page in pages for item in page.get("Contents", [])]))
else:
    getattr(client, op)(**kwargs)
"""


def s3_call(endpoint: str, op: str, **kwargs: str) -> str:
    """One S3 call with boto3, in a subprocess (the test process stays free of boto's warnings)."""
    proc = subprocess.run(
        [sys.executable, "-c", S3_CALL, endpoint, op, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def bucket_keys(endpoint: str, prefix: str = "") -> list[str]:
    return json.loads(s3_call(endpoint, "keys", Bucket=BUCKET, Prefix=prefix))


def delete_key(endpoint: str, key: str) -> None:
    s3_call(endpoint, "delete_object", Bucket=BUCKET, Key=key)


def aws_env(tmp: Path, endpoint: str | None = None, attempts: int = 5) -> dict[str, str | None]:
    """Fake credentials and nothing from the user's ~/.aws; the endpoint from the environment when given."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": str(attempts),
        "AWS_ENDPOINT_URL": endpoint,
    }

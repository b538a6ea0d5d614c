"""benchmarks/serve.py's request bodies for `mlflow models serve` (one feature row each, missing values as null,
JSON having no NaN; categorical values as their text) and its load client (the bodies sent, answers and errors
counted, chunked answers read)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from benchmarks.serve import feature_bodies, load, read_response


def test_each_row_is_one_dataframe_split_body_with_missing_values_as_null():
    features = pd.DataFrame({"origin": ["EWR", "JFK"], "temp": [np.nan, 41.5], "hour": [5, 17]})
    bodies = [json.loads(body) for body in feature_bodies(features)]
    assert bodies == [
        {"dataframe_split": {"columns": ["origin", "temp", "hour"], "data": [["EWR", None, 5]]}},
        {"dataframe_split": {"columns": ["origin", "temp", "hour"], "data": [["JFK", 41.5, 17]]}},
    ]


# ------------------------------------------------------------------------------------------------ the load client


class Handler(http.server.BaseHTTPRequestHandler):
    """A keep-alive HTTP/1.1 server: 200 with the body echoed on POST /ok, 500 elsewhere; counts the bodies."""

    protocol_version = "HTTP/1.1"
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.received.append(body)
        status = 200 if self.path == "/ok" else 500
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    Handler.received = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_the_load_client_counts_answers_and_errors_and_sends_the_bodies(server):
    bodies = [b'{"flights": [1]}', b'{"flights": [2]}']
    good = load(server, bodies, 2, 0.3, path="/ok")
    assert good["requests"] > 0 and good["errors"] == 0 and good["p50_ms"] is not None
    assert set(Handler.received) == set(bodies)
    bad = load(server, bodies, 2, 0.3, path="/bad")
    assert bad["requests"] == 0 and bad["errors"] > 0 and bad["p99_ms"] is None


def test_a_chunked_response_is_read_whole():
    async def read() -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1")
        return await read_response(reader)

    status, body = asyncio.run(read())
    assert status == 200 and body.startswith(b"hello")

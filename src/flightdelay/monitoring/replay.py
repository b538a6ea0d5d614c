"""`flightdelay replay`: send the real rows of a month through a running service, as a client would.

Reads the month's raw partition of the main table (`<raw>/<table>/<YYYY-MM>.csv`, params dataset.table, typed by the
schema file), keeps only the fields the service's input schema lists (GET /openapi.json: its Row; so outcome
columns, known only after the fact, are never sent), and POSTs the rows in batches to `<url>/predict` as
`{"<table>": [...]}` with at most --concurrency requests open at once and at most --rate requests a second. Nothing
is retried: a 4xx is the service's answer to bad input, and a 5xx or a lost connection is what monitoring is there
to see. Progress goes to the log; the counts (sent, ok, 4xx, 5xx, failed) to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from flightdelay.core.config import ConfigError, load_params, load_schema
from flightdelay.core.errors import PipelineError
from flightdelay.core.layout import PARAMS_FILE

log = logging.getLogger(__name__)

PROGRESS_STEPS = 10


class ReplayError(PipelineError):
    """A replay that cannot start: no such month, a bad URL or option."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the running service, e.g. http://127.0.0.1:8000")
    parser.add_argument("--month", required=True, help="the month to send, YYYY-MM (e.g. 2013-12)")
    parser.add_argument("--raw", type=Path, help="raw data folder holding <table>/ (default: params data.raw_dir)")
    parser.add_argument("--batch", type=int, default=1, help="rows per request (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=0.0, help="most requests a second; 0: no limit (default)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests open at once (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="send only the first N rows of the month")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    parser.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


# ------------------------------------------------------------------------------------------------ pure logic


def records(frame: pd.DataFrame, fields: list[str] | None) -> list[dict[str, Any]]:
    """The rows as JSON-ready objects with only `fields` (None: every column): missing values as null, numbers as
    Python numbers."""
    kept = frame if fields is None else frame[[c for c in frame.columns if c in fields]]
    kept = kept.astype(object).where(kept.notna(), None)
    return [dict(zip(kept.columns, (_plain(v) for v in row), strict=True)) for row in kept.itertuples(index=False)]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


@dataclasses.dataclass
class Counts:
    """What the replay sent and what came back."""

    sent: int = 0
    rows: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    failed: int = 0  # no answer: connection refused or reset, timeout
    statuses: dict[int, int] = dataclasses.field(default_factory=dict)

    def add(self, status: int | None, rows: int) -> None:
        self.sent += 1
        self.rows += rows
        if status is None:
            self.failed += 1
            return
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.ok += 200 <= status < 300
        self.client_errors += 400 <= status < 500
        self.server_errors += status >= 500

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        return out


# ------------------------------------------------------------------------------------------------ I/O


def read_month(raw_dir: Path, table: str, month: str, schema_file: str) -> pd.DataFrame:
    """The month's raw rows of `table`, typed by the schema (integers stay integers, missing values stay missing)."""
    path = raw_dir / table / f"{month}.csv"
    if not path.is_file():
        raise ReplayError(f"{path}: no raw {table} rows for {month}; run `dvc repro raw` or pass --raw DIR")
    columns = load_schema(schema_file).table(table).columns
    dtypes = {"int": "Int64", "float": "float64", "str": "string", "datetime": "string"}
    types = {name: dtypes[spec.dtype] for name, spec in columns.items()}
    try:
        return pd.read_csv(path, dtype=types, keep_default_na=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ReplayError(f"{path}: cannot read it as the schema's {table} table ({exc})") from None


class Client:
    """POSTs to one service with a kept-alive connection per thread."""

    def __init__(self, url: str, timeout: float, key: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ReplayError(f"--url {url!r} is not an http(s) URL like http://127.0.0.1:8000")
        self.scheme, self.host, self.port = parsed.scheme, parsed.hostname, parsed.port
        self.base = parsed.path.rstrip("/")
        self.path = self.base + "/predict"
        self.key = key  # the body's key: the main table
        self.timeout = timeout
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []  # every thread's connection, closed by close()
        self.lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "connection", None) is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self.local.connection = kind(self.host, self.port, timeout=self.timeout)
            with self.lock:
                self.opened.append(self.local.connection)
        return self.local.connection

    def close(self) -> None:
        with self.lock:
            for connection in self.opened:
                connection.close()
            self.opened.clear()

    def fields(self) -> list[str] | None:
        """The fields of a row the service takes (its OpenAPI schema's Row), or None when it does not say (no
        answer, or another schema): then every column is sent, and the service refuses what it does not take."""
        connection = self._connection()
        try:
            connection.request("GET", self.base + "/openapi.json")
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                return None
            row = json.loads(body)["components"]["schemas"]["Row"]["properties"]
            return [str(name) for name in row]
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as exc:
            log.debug("replay: no input schema from the service: %s: %s", type(exc).__name__, exc)
            connection.close()
            self.local.connection = None
            return None

    def post(self, rows: list[dict[str, Any]]) -> int | None:
        """The status of one POST /predict, or None when no answer came (never retried)."""
        body = json.dumps({self.key: rows}, allow_nan=False).encode("utf-8")
        connection = self._connection()
        try:
            connection.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                self.local.connection = None
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            log.debug("replay: no answer: %s: %s", type(exc).__name__, exc)
            connection.close()
            self.local.connection = None
            return None


def replay(rows: list[dict[str, Any]], client: Client, batch: int, concurrency: int, rate: float) -> Counts:
    """Send `records` in batches with at most `concurrency` open at once and `rate` requests a second (0: no
    limit)."""
    counts, lock = Counts(), threading.Lock()
    chunks = list(batches(rows, batch))
    step = max(1, len(chunks) // PROGRESS_STEPS)
    started = time.monotonic()

    def send(index: int, rows: list[dict[str, Any]]) -> None:
        if rate > 0:
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        status = client.post(rows)
        with lock:
            counts.add(status, len(rows))
            if counts.sent % step == 0 or counts.sent == len(chunks):
                log.info(
                    "replay: %d/%d requests (ok %d, 4xx %d, 5xx %d, failed %d)",
                    counts.sent,
                    len(chunks),
                    counts.ok,
                    counts.client_errors,
                    counts.server_errors,
                    counts.failed,
                )

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="replay") as pool:
        for future in [pool.submit(send, i, chunk) for i, chunk in enumerate(chunks)]:
            future.result()
    return counts


def run(args: argparse.Namespace) -> str:
    if args.batch < 1 or args.concurrency < 1 or args.rate < 0 or (args.limit is not None and args.limit < 1):
        raise ReplayError("--batch, --concurrency and --limit must be 1 or more, --rate 0 or more")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        raise ReplayError(f"--month {args.month!r} is not a month like 2013-12")
    try:
        params = load_params(args.params)
    except ConfigError as exc:
        raise ReplayError(str(exc)) from None
    table = params.dataset.table
    client = Client(args.url, args.timeout, table)
    frame = read_month(args.raw or Path(params.data.raw_dir), table, args.month, params.data.schema)
    fields = client.fields()
    if fields is None:
        log.warning(
            "replay: the service at %s lists no input fields (GET /openapi.json); sending every column", args.url
        )
    rows = records(frame.head(args.limit) if args.limit else frame, fields)
    log.info("replay: %d %s rows of %s to %s in batches of %d", len(rows), table, args.month, args.url, args.batch)
    try:
        counts = replay(rows, client, args.batch, args.concurrency, args.rate)
    finally:
        client.close()
    return json.dumps({"month": args.month, **counts.as_dict()}, sort_keys=True)

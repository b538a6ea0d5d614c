"""The request log: one JSON object per line per request, written by a background thread.

The event loop only puts a dict on a queue; a thread serialises and appends it, so a slow disk never stalls a
request. The thread takes what has queued up every BATCH_S seconds (one wake-up for many requests under load: a
wake-up per request cost the event loop ~0.1 ms of contention for the GIL each), so a line lands within about
BATCH_S of its request, and close() writes what is left.

Keys (the contract `flightdelay monitor` reads): time (UTC ISO-8601 with "Z"), request_id, method, path, status,
latency_ms, model_hash, batch_size, error, predictions; `features` and `inputs` only when `serve.log_features` /
`serve.log_inputs` are true (the caller leaves them out otherwise).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_STOP = object()
BATCH_S = 0.05


def finite_or_null(value: Any) -> Any:
    """NaN and infinities as null: the log stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    return value


class RequestLog:
    """Append JSON lines to `path` from a daemon thread; `close()` drains the queue and closes the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="request-log", daemon=True)
        self._thread.start()

    def write(self, entry: dict[str, Any]) -> None:
        self._queue.put(entry)

    def _drain(self) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            while True:
                entry = self._queue.get()  # idle: wait for the next request
                time.sleep(BATCH_S)  # busy: let the requests of the next BATCH_S queue up, then write them together
                while True:
                    if entry is _STOP:
                        out.flush()
                        return
                    try:
                        out.write(json.dumps(finite_or_null(entry), default=str, allow_nan=False) + "\n")
                    except (TypeError, ValueError) as exc:  # never lose the loop over one odd value
                        log.warning("request log: cannot write an entry: %s", exc)
                    try:
                        entry = self._queue.get_nowait()
                    except queue.Empty:
                        break
                out.flush()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)

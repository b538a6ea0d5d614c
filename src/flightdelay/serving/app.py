"""The HTTP service: a FastAPI app over one served package (see docs/serving.md, "Running the service").

POST /predict scores 1..serve.max_batch raw rows of the package's main table ({"<table>": [...]}); GET /health,
/ready, /metadata, /metrics, /docs and /openapi.json; POST /admin/reload deploys or rolls back (bearer token,
disabled without one). Every refusal is a defined status with the JSON error shape {"error": {"code", "message",
"field"?, "limit"?}, "request_id"}, never a traceback. The /predict body is read and parsed here, not by FastAPI, so
the size limit is checked while the bytes arrive (chunked bodies too), NaN/Infinity are refused, and the batch cap
is a 413 before any row is validated; the OpenAPI schema still shows the package's real input fields (built from its
input_schema in `schema.py`).

The model runs in a small thread pool whose threads each use one OpenMP/BLAS thread (threadpoolctl), so the event
loop never blocks on scoring and a request over serve.timeout_s is answered 504. Work still queued when its request
times out is cancelled (it never runs); work already running cannot be interrupted and keeps its pool thread until
it ends. Such orphaned work is counted (`Orphans`), and while it holds every pool thread a new request is answered
503 `busy` with Retry-After at once, instead of joining a queue that nothing is draining.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import itertools
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flightdelay.core.config import ServeParams
from flightdelay.core.errors import PipelineError
from flightdelay.serving import schema
from flightdelay.serving.metrics import ServiceMetrics
from flightdelay.serving.predictor import records_frame
from flightdelay.serving.reqlog import RequestLog
from flightdelay.serving.runtime import (
    Deployed,
    DeployError,
    Loader,
    Slot,
    append_history,
    deploy_into,
    history_entry,
    now_iso,
    refusal_reason,
    rollback_target,
    write_alert,
)
from flightdelay.serving.schema import ApiError

log = logging.getLogger(__name__)

CANARY_JOIN_S = 60.0  # at shutdown, how long to wait for a canary still running
DESCRIPTION = "Scores raw rows of the served package's main table (its input schema: POST /predict below)."
PATHS = ("/predict", "/health", "/ready", "/metadata", "/metrics", "/docs", "/openapi.json", "/admin/reload")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schema.ErrorResponse, "description": text}
    for code, text in {
        400: "the body is not JSON (or holds NaN/Infinity, or a key twice in one object)",
        413: "the body is over serve.max_body_bytes, or the batch over serve.max_batch",
        422: "a row breaks the input schema (the error names the row, field and rule), or the batch is empty",
        503: "the model is not ready (its canary has not passed), or timed-out work holds every scoring thread",
        504: "scoring took longer than serve.timeout_s",
    }.items()
}


RELOAD_BODY = {
    "type": "object",
    "description": 'deploy a package: {"package": "/abs/path/model-<hash>", "channel": "prod"}; or {"rollback": true}',
    "properties": {
        "package": {"type": "string", "description": "the package directory, as the service's machine sees it"},
        "channel": {"type": "string", "description": "the release channel it comes from, shown in /metadata"},
        "rollback": {"type": "boolean", "description": "return to the previous good package"},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Settings:
    params: ServeParams
    request_log: Path
    history: Path
    alerts_dir: Path
    reload_token: str | None = None
    version: str = "0.1.0"


def _one_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # for this worker thread's OpenMP and BLAS pools (OMP_NUM_THREADS=1 is set too)


def request_id(header: str | None) -> str:
    """The caller's X-Request-ID when it is well formed, else a new one (`new_request_id`)."""
    return header if header and _REQUEST_ID.fullmatch(header) else new_request_id()  # `$` alone allows a final "\n"


_ID_PREFIX = uuid.uuid4().hex[:16]  # random per process
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """32 hex digits, unique in this process and, by its random prefix, across processes: no uuid4 per request
    (each one a getrandom system call, ~0.1 ms of the event loop's time per request under load)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def parse_json(body: bytes) -> Any:
    """The body as JSON, or ApiError 400: empty, not UTF-8 JSON, NaN/Infinity (not JSON), or nested too deep."""
    if not body.strip():
        raise ApiError(400, "invalid_json", 'the body is empty; send {"<table>": [ {...} ]} as JSON (GET /docs)')

    def no_constants(name: str) -> Any:
        raise ApiError(400, "invalid_json", f"{name} is not JSON; send null for a missing value")

    try:
        return json.loads(body, parse_constant=no_constants, object_pairs_hook=_unique_keys)
    except ApiError:
        raise
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply to be a batch of rows") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long to convert
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:160]}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a key given twice is refused (400 naming it), never settled by
    "the last one wins", which would score a value the caller may not have meant."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            shown = key[:80]
            raise ApiError(
                400, "duplicate_key", f"the key {shown!r} appears twice in one object; send each key once", field=shown
            )
        out[key] = value
    return out


async def read_body(request: Request, limit: int) -> bytes:
    """The body, counted while it arrives (chunked bodies have no Content-Length): ApiError 413 past `limit`."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "body_too_large", f"the body is over serve.max_body_bytes = {limit} bytes; send fewer rows", limit=limit
    )


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII text escaped: a caller's lone surrogate ("\\ud800", which json.loads accepts) echoed in
    an error cannot make the body unencodable as UTF-8 (a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _json(status: int, content: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return AsciiJSONResponse(content, status_code=status, headers=headers)


def frame_of(rows: list[dict[str, Any]], fields: list[Any]) -> pd.DataFrame:
    """The validated rows as a DataFrame with the input schema's columns in order and a dtype per kind
    (integer: nullable Int64, number: float64 with NaN for null, string: object with None)."""
    return records_frame(rows, fields)


class Observe:
    """Outermost middleware: request id, Content-Length limit, latency, metrics and the request log for every
    request; an unexpected error becomes a JSON 500 without a traceback (logged)."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = Headers(scope=scope)
        info: dict[str, Any] = {"request_id": request_id(headers.get("x-request-id")), "time": now_iso()}
        scope["flightdelay"] = info
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", info["request_id"].encode())]
            await send(message)

        try:
            length = headers.get("content-length")
            limit = self.service.settings.params.max_body_bytes
            if length is not None and (not length.isdigit() or int(length) > limit):
                error = _too_large(limit) if length.isdigit() else ApiError(400, "bad_length", "bad Content-Length")
                info["error"] = error.code
                await _json(error.status, error.body(info["request_id"]))(scope, receive, send_with_id)
            elif scope["method"] == "POST" and scope["path"] == "/predict":
                await self.predict(scope, receive, send_with_id, info)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            info["error"] = f"internal_error: {type(exc).__name__}"
            if status == 0:
                body = ApiError(500, "internal_error", "an unexpected error; the service log has the details")
                await _json(500, body.body(info["request_id"]))(scope, receive, send_with_id)
        finally:
            self.service.finish(scope, info, status or 500, time.perf_counter() - start)

    async def predict(self, scope: Scope, receive: Receive, send: Send, info: dict[str, Any]) -> None:
        """POST /predict without FastAPI's routing and middleware stack (about half of the event loop's time per
        one-row request): the same handler (`answer_predict`), its ApiError answered as the app's handler does."""
        try:
            response: Response = await answer_predict(self.service, Request(scope, receive), info)
        except ApiError as exc:
            info["error"] = exc.code
            response = _json(exc.status, exc.body(info["request_id"]), exc.headers)
        await response(scope, receive, send)


class Service:
    """The app's state: settings, the served slot, the loader for deploys, metrics, the request log, the pool."""

    def __init__(self, settings: Settings, slot: Slot, loader: Loader) -> None:
        self.settings = settings
        self.slot = slot
        self.loader = loader
        self.metrics = ServiceMetrics(settings.params.drift_window, settings.params.drift_min_rows)
        self.request_log = RequestLog(settings.request_log)
        workers = min(4, os.cpu_count() or 1)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="model", initializer=_one_thread
        )
        self.orphans = Orphans(workers)
        self._models: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {}
        if slot.current is not None:
            self.metrics.model_changed(slot.current)

    def models(self, deployed: Deployed) -> tuple[type[BaseModel], type[BaseModel]]:
        """The Row and PredictRequest models of a package (built once per package); the body's key is the
        package's main table."""
        key = deployed.predictor.package_hash
        if key not in self._models:
            p = self.settings.params
            row = schema.row_model(list(deployed.predictor.input_schema), p.max_string_length)
            self._models[key] = (row, schema.request_model(row, p.max_batch, deployed.predictor.table))
        return self._models[key]

    def finish(self, scope: Scope, info: dict[str, Any], status: int, seconds: float) -> None:
        path = scope.get("path", "")
        label = path if path in PATHS else "other"
        self.metrics.observe_request(label, status, seconds)
        entry: dict[str, Any] = {
            "time": info.get("time") or now_iso(),
            "request_id": info["request_id"],
            "method": scope.get("method"),
            "path": label,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "model_hash": info.get("model_hash"),
            "batch_size": info.get("batch_size", 0),
            "error": info.get("error"),
            "predictions": info.get("predictions"),
        }
        if "features" in info:
            entry["features"] = info["features"]
        if "inputs" in info:
            entry["inputs"] = info["inputs"]
        self.request_log.write(entry)

    def initial_canary(self) -> None:
        """The canary of the package the service started with; /ready turns true when it passes. It holds the
        deploy lock (a reload meanwhile is told a deploy is running), and its "started" entry is in the history
        before /ready says so: a deploy's entry always comes after it, so a rollback finds the right package."""
        with self.slot.lock:
            deployed = self.slot.current
            if deployed is None or self.slot.ready:
                return
            try:
                deployed.predictor.canary()
            except Exception as exc:  # any failure of the canary refuses the package (runtime.refusal_reason)
                self.slot.reason = f"the canary failed: {refusal_reason(exc)}"
                entry = history_entry("refused", deployed.path, deployed.predictor, reason=self.slot.reason)
                append_history(self.settings.history, entry)
                write_alert(self.settings.alerts_dir, entry, None)
                return
            append_history(self.settings.history, history_entry("started", deployed.path, deployed.predictor))
            self.slot.ready, self.slot.reason = True, ""
        log.info("serving %s: the canary passed, ready", deployed.predictor.name)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.request_log.close()


class Orphans:
    """Scoring work still running after its request timed out, counted against the pool's threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.running = 0
        self._lock = threading.Lock()

    def full(self) -> bool:
        return self.running >= self.threads

    def orphan(self, job: Job) -> None:
        """The request of `job` gave up: if the work has not ended, it counts until it does."""
        with self._lock:
            if not job.ended:
                job.orphaned = True
                self.running += 1

    def ended(self, job: Job) -> None:
        with self._lock:
            job.ended = True
            if job.orphaned:
                self.running -= 1


@dataclass
class Job:
    ended: bool = False
    orphaned: bool = False


def _score(
    orphans: Orphans, job: Job, deployed: Deployed, rows: list[dict[str, Any]], want_features: bool
) -> tuple[Any, pd.DataFrame | None]:
    """Score in a pool thread. The rows passed the request model, so the predictor skips the checks it already
    made (Predictor.predict_records)."""
    try:
        scores = deployed.predictor.predict_records(rows, checked=True)
        features = None
        if want_features:
            features = deployed.predictor.features(frame_of(rows, list(deployed.predictor.input_schema)))
        return scores, features
    finally:
        orphans.ended(job)


async def _score_in_pool(
    service: Service, deployed: Deployed, rows: list[dict[str, Any]], p: ServeParams
) -> tuple[Any, pd.DataFrame | None]:
    """Score in a pool thread under serve.timeout_s (a 504 past it; the work still running counts against the
    pool until it ends; a 503 when timed-out work holds every thread)."""
    if service.orphans.full():
        retry = max(1, math.ceil(p.timeout_s))
        raise ApiError(
            503,
            "busy",
            f"every scoring thread is still busy with requests that timed out; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
    job = Job()
    submitted = service.pool.submit(_score, service.orphans, job, deployed, rows, p.log_features)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(submitted), timeout=p.timeout_s)
    except TimeoutError:
        if not submitted.cancel():  # still queued: cancelled, never runs; running: an orphan until it ends
            service.orphans.orphan(job)
        raise ApiError(
            504,
            "timeout",
            f"scoring took over serve.timeout_s = {p.timeout_s} s; send fewer rows",
            limit=p.timeout_s,
        ) from None


async def answer_predict(service: Service, request: Request, info: dict[str, Any]) -> JSONResponse:
    """POST /predict: check the body, score it (a few rows the predictor scores in microseconds on the event loop,
    anything else in the pool), answer (ApiError for a refusal)."""
    slot, settings = service.slot, service.settings
    deployed = _serving(slot, need_ready=True)  # read once: a swap during this request does not affect it
    info["model_hash"] = deployed.predictor.package_hash
    p = settings.params
    payload = parse_json(await read_body(request, p.max_body_bytes))
    key = deployed.predictor.table
    items = schema.check_body(payload, p.max_batch, key)
    info["batch_size"] = len(items)
    row_model, _ = service.models(deployed)
    rows = schema.check_rows(items, row_model, key)
    try:
        features = None  # the model inputs as a frame, for the request log: only in the pool, with log_features
        scored = None if p.log_features else deployed.predictor.inline_scores(rows)
        if scored is None:
            scored, features = await _score_in_pool(service, deployed, rows, p)
    except PipelineError as exc:
        if hasattr(exc, "field"):  # the predictor's InputError: a value its own checks refuse
            row = getattr(exc, "row", None)
            raise ApiError(
                422,
                "invalid_input",
                str(exc).splitlines()[0],
                field=getattr(exc, "field", None),
                row=row if isinstance(row, int) else None,
                rule=getattr(exc, "rule", None),
            ) from None
        log.error("scoring failed: %s", exc)
        raise ApiError(503, "scoring_failed", f"the model could not score this batch: {exc}") from None
    probabilities, labels, fallbacks = (scored[i].tolist() for i in range(3))
    if not len(probabilities) == len(labels) == len(fallbacks) == len(rows):
        raise RuntimeError(f"the predictor returned {len(probabilities)} scores for {len(rows)} rows")
    predictions = [
        {"probability": float(prob), "label": int(label), "context_fallback": bool(fb)}
        for prob, label, fb in zip(probabilities, labels, fallbacks, strict=True)
    ]
    service.metrics.observe_predictions(probabilities, sum(fallbacks))
    if getattr(scored, "features", None):
        service.metrics.observe_features(scored.features)
    info["predictions"] = probabilities
    if features is not None:
        info["features"] = {c: features[c].tolist() for c in features.columns}
    if p.log_inputs:
        info["inputs"] = rows
    return _json(200, {"request_id": info["request_id"], "model": deployed.ref(), "predictions": predictions})


def create_app(settings: Settings, slot: Slot, loader: Loader) -> FastAPI:
    """The service over `slot`; if its model's canary has not run, it runs when the app starts (/ready waits)."""
    service = Service(settings, slot, loader)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        canary = threading.Thread(target=service.initial_canary, name="canary", daemon=True)
        canary.start()
        try:
            yield
        finally:
            # A canary still running (its first scoring compiles the kernel) finishes before the service closes,
            # so it never writes its history entry or log line after the files and streams are gone.
            await anyio.to_thread.run_sync(canary.join, CANARY_JOIN_S)
            service.close()

    app = FastAPI(
        title=schema.SERVICE_TITLE,
        version=settings.version,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(Observe, service=service)

    def info_of(request: Request) -> dict[str, Any]:
        found: dict[str, Any] | None = request.scope.get("flightdelay")
        if found is None:  # Observe sets it for every HTTP request; a new id only without it
            found = request.scope.setdefault("flightdelay", {"request_id": new_request_id()})
        return found

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        info = info_of(request)
        info["error"] = exc.code
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
        return _json(exc.status, exc.body(info["request_id"]), headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 404:
            message += f"; the endpoints are {', '.join(PATHS)}"
        return await api_error(request, ApiError(exc.status_code, code, message))

    @app.get("/health", summary="the process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="a model is loaded and its canary passed", responses={503: _ERRORS[503]})
    async def ready() -> dict[str, Any]:
        deployed = slot.current
        if deployed is None or not slot.ready:
            raise ApiError(503, "not_ready", slot.reason)
        return {"ready": True, "model": deployed.ref()}

    @app.get("/metadata", summary="what is served: name, hash, version, channel, params, metrics, data, lineage")
    async def metadata(request: Request) -> dict[str, Any]:
        deployed = _serving(slot, need_ready=False)
        info_of(request)["model_hash"] = deployed.predictor.package_hash
        m = deployed.predictor.manifest
        return {
            **deployed.ref(),
            "channel": deployed.channel,
            "path": str(deployed.path),
            "loaded_at": deployed.loaded_at,
            "ready": slot.ready,
            "threshold": deployed.predictor.threshold,
            "params": m.get("params"),
            "metrics": m.get("metrics"),
            "data_window": data_window(m),
            "lineage": m.get("lineage"),
            "gate": m.get("gate"),
            "model": m.get("model"),
        }

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def metrics() -> Response:
        text = service.metrics.render(slot.current if slot.ready else None)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post(
        "/predict",
        summary="score one row or a batch",
        response_model=schema.PredictResponse,
        responses={code: spec for code, spec in _ERRORS.items()},
    )
    async def predict(request: Request) -> JSONResponse:
        """Registered for the OpenAPI schema and /docs; Observe answers POST /predict itself (`answer_predict`)."""
        return await answer_predict(service, request, info_of(request))

    @app.post(
        "/admin/reload",
        summary="deploy a package or roll back (Authorization: Bearer $FLIGHTDELAY_RELOAD_TOKEN)",
        responses={
            401: {"model": schema.ErrorResponse, "description": "missing or wrong token"},
            403: {"model": schema.ErrorResponse, "description": "reload is disabled (no token set)"},
            409: {"model": schema.ErrorResponse, "description": "refused: the old model keeps serving"},
            **{c: _ERRORS[c] for c in (400, 413)},
        },
    )
    async def reload(request: Request) -> JSONResponse:
        info = info_of(request)
        _check_token(settings.reload_token, request.headers.get("authorization"))
        payload = parse_json(await read_body(request, settings.params.max_body_bytes))
        package, channel, rollback = _reload_body(payload)
        if not slot.lock.acquire(blocking=False):
            raise ApiError(409, "reload_in_progress", "another deploy is running; try again when it has finished")
        try:
            if rollback:
                try:
                    target = rollback_target(settings.history)
                except DeployError as exc:
                    raise ApiError(409, "nothing_to_roll_back", str(exc)) from None
                path, outcome, channel = Path(target["path"]), "rolled_back", channel
                expected = str(target.get("hash") or "") or None  # the loaded package must be the one recorded
            else:
                path, outcome, expected = Path(str(package)), "deployed", None
            result = await anyio.to_thread.run_sync(
                deploy_into,
                slot,
                service.loader,
                path,
                channel,
                settings.history,
                settings.alerts_dir,
                outcome,
                expected,
            )
        finally:
            slot.lock.release()
        if not result.ok:
            raise ApiError(409, "deploy_refused", f"{result.entry['reason']}; still serving {result.entry['previous']}")
        deployed = slot.current
        assert deployed is not None
        service.metrics.model_changed(deployed)
        app.openapi_schema = None  # the new package's input schema
        info["model_hash"] = deployed.predictor.package_hash
        return _json(200, {"request_id": info["request_id"], **result.entry, "model": deployed.ref()})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        deployed = slot.current
        described = app.description if deployed is None else description(deployed.predictor.manifest)
        spec = get_openapi(title=app.title, version=app.version, description=described, routes=app.routes)
        if deployed is not None:
            _, request_model = service.models(deployed)
            body = request_model.model_json_schema(ref_template="#/components/schemas/{model}")
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["PredictRequest"] = body
            spec["paths"]["/predict"]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
            }
        spec["paths"]["/admin/reload"]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": RELOAD_BODY}},
        }
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
    return app


def description(manifest: dict[str, Any]) -> str:
    """The API's description from the package's dataset params: what it predicts, from which rows."""
    dataset = (manifest.get("params") or {}).get("dataset") or {}
    task = (manifest.get("model") or {}).get("task", "classification")
    predicts = ((dataset.get("target") or {}).get(task) or {}).get("predicts")
    if not predicts or not dataset.get("table"):
        return DESCRIPTION
    return f"Predicts {predicts}, from the raw fields of a row of the {dataset['table']} table."


def data_window(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The months the model learned from and was tested on, from the params its manifest records."""
    if "data_window" in manifest:
        return dict(manifest["data_window"])
    params = manifest.get("params") or {}
    split = (params.get("features") or {}).get("split")
    window = (params.get("ingest") or {}).get("window")
    if split is None and window is None:
        return None
    return {"ingested": window, "train": (split or {}).get("train"), "test": (split or {}).get("test"),
            "train_rows": (manifest.get("model") or {}).get("train_rows")}  # fmt: skip


def _serving(slot: Slot, need_ready: bool) -> Deployed:
    deployed = slot.current
    if deployed is None or (need_ready and not slot.ready):
        raise ApiError(503, "not_ready", f"no model is ready: {slot.reason}")
    return deployed


def _check_token(expected: str | None, header: str | None) -> None:
    if not expected:
        raise ApiError(
            403, "reload_disabled", "reload is disabled: start the service with FLIGHTDELAY_RELOAD_TOKEN set"
        )
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "send the header 'Authorization: Bearer <FLIGHTDELAY_RELOAD_TOKEN>'")


def _reload_body(payload: Any) -> tuple[str | None, str | None, bool]:
    if not isinstance(payload, dict) or set(payload) - {"package", "channel", "rollback"}:
        raise ApiError(
            422, "invalid_body", 'send {"package": "/path/to/model-<hash>", "channel"?: "prod"} or {"rollback": true}'
        )
    package, channel, rollback = payload.get("package"), payload.get("channel"), payload.get("rollback", False)
    if rollback is not True and rollback is not False:
        raise ApiError(422, "invalid_body", "rollback: expected true or false", field="rollback")
    if channel is not None and not isinstance(channel, str):
        raise ApiError(422, "invalid_body", "channel: expected a text", field="channel")
    if rollback == bool(isinstance(package, str) and package):
        raise ApiError(422, "invalid_body", "give exactly one of package (a path) or rollback: true", field="package")
    return package, channel, rollback

"""`flightdelay serve`: verify a package, then serve it over HTTP with uvicorn (docs/serving.md).

The package is verified and loaded before the port is opened for requests: a tampered package is refused with a
non-zero exit and one line saying why, never served. Its canary runs as the service starts; /ready answers 503
until it passes. A port in use is one line naming the port and how to pick another.
"""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import os
import socket
from pathlib import Path

from flightdelay.core.config import load_params
from flightdelay.core.layout import ALERTS_DIR, DEPLOY_HISTORY, PARAMS_FILE, REQUEST_LOG, VALIDATED_DIR
from flightdelay.release.package_format import verify
from flightdelay.release.record import CHANNELS
from flightdelay.serving.runtime import (
    Deployed,
    DeployError,
    Slot,
    load_context,
    load_predictor,
    now_iso,
    resolve_package,
)

log = logging.getLogger(__name__)
PORT_ENV = "FLIGHTDELAY_PORT"
TOKEN_ENV = "FLIGHTDELAY_RELOAD_TOKEN"
DEFAULT_PORT = 8000


class ServeError(DeployError):
    """The service cannot start: the message names what (a port, a package) and how to fix it."""


def default_port() -> int:
    raw = os.environ.get(PORT_ENV)
    if raw is None:
        return DEFAULT_PORT
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ServeError(f"{PORT_ENV}={raw!r} is not a port number (1 to 65535)")
    return int(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--package", metavar="PATH", help="a package directory, e.g. models/package/model-<hash>")
    source.add_argument(
        "--stage",
        dest="channel",
        choices=CHANNELS,
        help="serve the package a release channel holds (registry/<channel>.json)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, help=f"port (default: ${PORT_ENV}, else {DEFAULT_PORT})")
    parser.add_argument(
        "--request-log", default=REQUEST_LOG, metavar="FILE", help="JSON lines, one per request (default: %(default)s)"
    )
    parser.add_argument("--params", default=PARAMS_FILE, help="params file; its serve: section (default: %(default)s)")
    parser.add_argument(
        "--deploy-history",
        default=DEPLOY_HISTORY,
        metavar="FILE",
        help="deploy history, JSON lines (default: %(default)s)",
    )
    parser.add_argument(
        "--alerts",
        default=ALERTS_DIR,
        metavar="DIR",
        help="where refused deploys write an alert (default: %(default)s)",
    )
    parser.add_argument(
        "--context",
        metavar="DIR",
        help="where the rows' context comes from (the other records their features read, as the package's feature "
        f"builder says): validated partitions, a path or fsspec URL (default: {VALIDATED_DIR} if it exists; 'none' "
        "for no context, every row then gets the fallback and is flagged context_fallback)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")
    parser.epilog = (
        f"POST /admin/reload (and `flightdelay deploy`) needs ${TOKEN_ENV} set when the service starts; "
        "without it reloading is disabled. Endpoints: POST /predict; GET /health, /ready, /metadata, /metrics, /docs."
    )


def context_location(given: str | None) -> str | None:
    """--context as given; by default the validate stage's partitions when they are there, else none."""
    if given:
        return given
    if Path(VALIDATED_DIR).is_dir():
        return VALIDATED_DIR
    log.warning("no %s here: serving without context, every row gets the fallback (see --context)", VALIDATED_DIR)
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or ServeError naming the port when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of a socket that says it is TCP, and
    # without it Nagle holds the response body until the client acknowledges the headers (~40 ms, its ACK timer).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use; pick another with --port N (or {PORT_ENV}=N)") from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> str:
    # One OpenMP thread per worker: set before scikit-learn's OpenMP runtime starts (docs/serving.md measures it).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from flightdelay.serving.app import Settings, create_app

    params = load_params(args.params).serve
    path = resolve_package(args.package, args.channel)
    port = args.port if args.port is not None else default_port()
    verify(path)  # a tampered package ends the command here, before anything else is read
    context = load_context(context_location(args.context))
    loader = functools.partial(load_predictor, context=context)
    predictor = loader(path)
    log.info("loaded %s (hash %s) from %s", predictor.name, predictor.package_hash, path)
    sock = bind(args.host, port)
    slot = Slot(current=Deployed(predictor, path, args.channel, now_iso()), ready=False, reason="the canary is running")
    settings = Settings(
        params=params,
        request_log=Path(args.request_log),
        history=Path(args.deploy_history),
        alerts_dir=Path(args.alerts),
        reload_token=os.environ.get(TOKEN_ENV) or None,
    )
    app = create_app(settings, slot, loader)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10)
    log.info("serving %s on http://%s:%d (docs at /docs)", predictor.name, args.host, port)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return f"stopped serving {predictor.name}"

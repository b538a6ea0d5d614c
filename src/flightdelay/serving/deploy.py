"""`flightdelay deploy`: ask a running service to deploy a package, roll back, or print the deploy history.

The service does the work (POST /admin/reload with the bearer token from $FLIGHTDELAY_RELOAD_TOKEN): it loads the
package beside the serving one, runs its canary and swaps only if it passes. A refused package (tampered, failing
canary) keeps the old model; this command prints the reason and exits 1, and the service writes an alert file.
`--rollback` returns the service to the previous good package; `--history` reads the history file (no service).
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flightdelay.core.layout import DEPLOY_HISTORY
from flightdelay.release.record import CHANNELS
from flightdelay.serving.runtime import DeployError, read_history, render_history, resolve_package
from flightdelay.serving.serve import DEFAULT_PORT, PORT_ENV, TOKEN_ENV, default_port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--package", metavar="PATH", help="deploy this package directory (models/package/model-<hash>)")
    what.add_argument("--stage", dest="channel", choices=CHANNELS, help="deploy the package this release channel holds")
    what.add_argument("--rollback", action="store_true", help="return to the previous good package")
    what.add_argument("--history", action="store_true", help="print the deploy history and exit")
    parser.add_argument(
        "--url", help=f"the running service (default: http://127.0.0.1:${PORT_ENV}, else port {DEFAULT_PORT})"
    )
    parser.add_argument("--deploy-history", default=DEPLOY_HISTORY, metavar="FILE", help="(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the service's answer")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


def post(url: str, body: dict[str, Any], token: str, timeout: float) -> dict[str, Any]:
    """POST JSON; the decoded JSON answer, or DeployError with the service's own message."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # the service's own URL
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code} {exc.reason}"
        raise DeployError(f"{url}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeployError(
            f"cannot reach the service at {url} ({reason}); is `flightdelay serve` running there? pass --url"
        ) from None


def run(args: argparse.Namespace) -> str:
    if args.history:
        return render_history(read_history(Path(args.deploy_history))).rstrip("\n")
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise DeployError(f"set {TOKEN_ENV} to the token the service was started with")
    base = (args.url or f"http://127.0.0.1:{default_port()}").rstrip("/")
    if args.rollback:
        body: dict[str, Any] = {"rollback": True}
    else:
        body = {"package": str(resolve_package(args.package, args.channel))}
        if args.channel:
            body["channel"] = args.channel
    answer = post(f"{base}/admin/reload", body, token, args.timeout)
    model = answer.get("model", {})
    return (
        f"{answer.get('outcome')}: {model.get('name')} (version {model.get('version')}, hash {model.get('hash')}) "
        f"at {base}; was {answer.get('previous')}"
    )

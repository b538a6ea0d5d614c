"""`flightdelay monitor`: measure the service from its request log, per window, and alert on thresholds.

Reads the log as a stream (windows.py), writes one JSON line per window to --out (sorted keys, no wall-clock time:
the same log and package give the same bytes), judges each window against `monitor:` in params.yaml (rules.py)
and, if any rule is broken, writes the alert files first, then posts to ALERT_WEBHOOK_URL when it is set
(alerts.py), and exits non-zero. Malformed lines are counted and reported, never fatal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from flightdelay.core.config import load_params
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import atomic_path
from flightdelay.core.layout import PACKAGE_DIR, PARAMS_FILE
from flightdelay.monitoring import alerts, figures, rules, windows
from flightdelay.monitoring.requestlog import Skipped, read_requests
from flightdelay.release.record import RegistryError, read_record, record_file

log = logging.getLogger(__name__)


class MonitorAlert(PipelineError):
    """A window crossed a threshold; the message names the alert file."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request-log", required=True, type=Path, help="the service's request log (JSON lines)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--package", type=Path, help="the served package, e.g. models/package/model-<hash>")
    which.add_argument("--stage", dest="channel", help="the release channel whose package is served: staging or prod")
    parser.add_argument("--out", required=True, type=Path, help="where the windows go (JSON lines)")
    parser.add_argument(
        "--alerts", default=Path("reports/alerts"), type=Path, help="alert folder (default: %(default)s)"
    )
    parser.add_argument("--figure", type=Path, help="also draw latency and PSI per window into this PNG")
    parser.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument("--repo", default=".", type=Path, help="repository root, for --stage (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


def package_dir(package: Path | None, stage: str | None, repo: Path) -> Path:
    """The package to monitor against: --package, or the one registry/<stage>.json says is promoted."""
    if package is not None:
        return package
    promoted = read_record(record_file(str(stage), repo))
    if promoted is None:
        raise RegistryError(f"{record_file(str(stage), repo)}: nothing is promoted to {stage}; pass --package PATH")
    path = repo / PACKAGE_DIR / promoted["package"]["name"]
    if not path.is_dir():
        raise RegistryError(f"{path}: the package promoted to {stage} is not here; run `dvc pull` or pass --package")
    return path


def window_lines(summaries: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(s, sort_keys=True, ensure_ascii=False) + "\n" for s in summaries)


def load_predictor(path: Path) -> Any:
    """The verified package's predictor (flightdelay.serving.predictor.Predictor); a tampered one is refused."""
    from flightdelay.serving.predictor import Predictor

    return Predictor.load(path)


def run(args: argparse.Namespace) -> Path:
    mp = load_params(args.params).monitor
    predictor = load_predictor(package_dir(args.package, args.channel, args.repo))
    package = {"name": predictor.name, "hash": predictor.package_hash}
    skipped = Skipped()
    try:
        with open(args.request_log, encoding="utf-8", errors="replace") as lines:
            requests = read_requests(lines, skipped)
            summaries = list(
                windows.windows(requests, mp.window, mp.window_seconds(), predictor.reference, mp.min_psi_rows, skipped)
            )
    except OSError as exc:
        raise PipelineError(
            f"{args.request_log}: cannot read the request log ({exc.strerror}); check --request-log"
        ) from None
    breaches = []
    for summary in summaries:
        found = rules.judge(summary, mp)
        summary["breaches"] = [f"{b.rule}:{b.subject}" for b in found]
        breaches += found
    alert_file = None
    if breaches:  # the alert is written before anything else that could fail
        alert = alerts.build_alert(breaches, package, str(args.request_log), len(summaries))
        alert_file = alerts.write_alert(args.alerts, alert)
    with atomic_path(args.out) as tmp:
        tmp.write_text(window_lines(summaries), encoding="utf-8")
    if args.figure:
        with atomic_path(args.figure) as tmp:
            tmp.write_bytes(figures.monitoring_png(summaries, mp.max_p99_ms, mp.max_psi))
    if skipped.count:
        log.warning(
            "monitor: skipped %d line(s) of %s: %s", skipped.count, args.request_log, "; ".join(skipped.examples)
        )
    log.info(
        "monitor: %d window(s) of %s against %s written to %s",
        len(summaries),
        args.request_log,
        predictor.name,
        args.out,
    )
    if alert_file is None:
        return Path(args.out)
    for breach in breaches:
        log.error("monitor alert: %s", breach.describe())
    url = os.environ.get(alerts.WEBHOOK_ENV)
    if url:
        try:
            attempts = alerts.post_webhook(url, alerts.slack_message(alert, str(alert_file)), mp.webhook)
            log.info("monitor: alert posted to the webhook (%s) in %d attempt(s)", alerts.WEBHOOK_ENV, attempts)
        except alerts.WebhookFailed as exc:
            log.error("monitor: the webhook (%s) failed: %s; the alert is in %s", alerts.WEBHOOK_ENV, exc, alert_file)
    raise MonitorAlert(f"{len(breaches)} threshold breach(es); alert: {alert_file}")

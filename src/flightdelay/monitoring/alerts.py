"""Alerts of the monitor: a JSON file and a Markdown file a human reads, then an optional Slack-compatible webhook.

The files are written first, atomically, before anything that can fail or hang (the webhook), so an alert is
never lost. The webhook URL is a secret (it lets anyone post to the channel): it is read from the environment
(ALERT_WEBHOOK_URL), used, and never logged or written; errors name the variable, not the URL.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tenacity

from flightdelay.core.config import WebhookParams
from flightdelay.core.files import write_json, write_text
from flightdelay.core.hashing import sha256_bytes
from flightdelay.core.tables import markdown_table
from flightdelay.monitoring.rules import Breach

log = logging.getLogger(__name__)

WEBHOOK_ENV = "ALERT_WEBHOOK_URL"
# Breaches listed in the webhook message; the alert file has all of them.
MESSAGE_LINES = 10


def build_alert(breaches: list[Breach], package: dict[str, str], request_log: str, windows: int) -> dict[str, Any]:
    """The alert record: which rules, values, thresholds and windows, for which package and log. No wall-clock
    time: the same log gives the same alert."""
    return {
        "source": "flightdelay monitor",
        "package": package,
        "request_log": request_log,
        "windows": windows,
        "windows_breached": len({(b.start, b.end) for b in breaches}),
        "breaches": [
            {
                "rule": b.rule,
                "subject": b.subject,
                "value": b.value,
                "threshold": b.threshold,
                "window": {"start": b.start, "end": b.end},
            }
            for b in breaches
        ],
    }


def headline(alert: dict[str, Any]) -> str:
    rules = sorted({b["rule"] for b in alert["breaches"]})
    return (
        f"flightdelay monitor: {len(alert['breaches'])} threshold breach(es) ({', '.join(rules)}) in "
        f"{alert['windows_breached']} of {alert['windows']} window(s), package {alert['package']['name']}"
    )


def _line(b: dict[str, Any]) -> list[str]:
    return [
        f"`{b['rule']}`",
        b["subject"],
        f"{b['value']:.4g}",
        f"{b['threshold']:g}",
        f"{b['window']['start']} .. {b['window']['end']}",
    ]


def render_markdown(alert: dict[str, Any]) -> str:
    package = alert["package"]
    lines = [
        "# Monitoring alert",
        "",
        headline(alert) + ".",
        "",
        f"Package: `{package['name']}` (hash `{package['hash']}`). Request log: `{alert['request_log']}`.",
        "",
        *markdown_table(
            ["rule", "measure", "value", "threshold", "window"], [_line(b) for b in alert["breaches"]], "--->-"
        ),
        "",
        "The thresholds are `monitor:` in params.yaml; what each measures is in docs/monitoring.md. The windows'",
        "measures are in the monitor's --out file.",
    ]
    return "\n".join(lines) + "\n"


def alert_stem(alert: dict[str, Any]) -> str:
    """`monitor-<first breached window start>-<digest>`: a rerun on the same log replaces its own alert."""
    first = alert["breaches"][0]["window"]["start"]
    compact = first.replace("-", "").replace(":", "")[:13]
    digest = sha256_bytes(json.dumps(alert, sort_keys=True).encode("utf-8"))[:8]
    return f"monitor-{compact}-{digest}"


def write_alert(alerts_dir: str | Path, alert: dict[str, Any]) -> Path:
    """Write the alert as JSON and Markdown; returns the Markdown file."""
    stem = Path(alerts_dir) / alert_stem(alert)
    write_json(stem.with_suffix(".json"), alert)
    markdown = stem.with_suffix(".md")
    write_text(markdown, render_markdown(alert))
    return markdown


def slack_message(alert: dict[str, Any], alert_file: str) -> dict[str, Any]:
    """A Slack-compatible message: `text` (the fallback every receiver shows) and `blocks`."""
    lines = [
        f"• {b['subject']}: `{b['rule']}` {b['value']:.4g} > {b['threshold']:g} ({b['window']['start']})"
        for b in alert["breaches"][:MESSAGE_LINES]
    ]
    more = len(alert["breaches"]) - MESSAGE_LINES
    if more > 0:
        lines.append(f"… and {more} more")
    text = headline(alert)
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert file: `{alert_file}`"}]},
        ],
    }


class WebhookFailed(Exception):
    """One failed POST; `retry` says whether waiting could help. The message never holds the URL."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def _post_once(url: str, body: bytes, timeout: float) -> None:
    try:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        raise WebhookFailed(f"HTTP {exc.code}", retry=exc.code == 429 or exc.code >= 500) from None
    except urllib.error.URLError as exc:
        raise WebhookFailed(f"cannot connect ({type(exc.reason).__name__})", retry=True) from None
    except (TimeoutError, ConnectionError) as exc:
        raise WebhookFailed(f"{type(exc).__name__}", retry=True) from None
    except (http.client.InvalidURL, ValueError) as exc:  # their messages quote the URL's path or port: not shown
        raise WebhookFailed(f"{WEBHOOK_ENV} is not a valid URL ({type(exc).__name__})", retry=False) from None
    except (http.client.HTTPException, OSError) as exc:  # a broken response or connection: worth another try
        raise WebhookFailed(f"{type(exc).__name__}", retry=True) from None


def post_webhook(
    url: str,
    message: dict[str, Any],
    policy: WebhookParams,
    sleep: Callable[[float], None] = tenacity.nap.sleep,
) -> int:
    """POST `message` to `url`, retrying connection errors, 429 and 5xx with exponential backoff; returns the
    attempts made. Raises WebhookFailed (without the URL) once the attempts are spent or on another 4xx."""
    if not url.startswith(("https://", "http://")):
        raise WebhookFailed(f"{WEBHOOK_ENV} is not an http(s) URL", retry=False)
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "webhook: attempt %d of %d failed (%s); retrying in %.2fs", state.attempt_number, policy.attempts, exc, wait
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=tenacity.wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait),
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, WebhookFailed) and exc.retry),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    retrying(_post_once, url, body, policy.timeout_s)
    return retrying.statistics.get("attempt_number", 1)

"""The alert webhook URL is a secret: a malformed ALERT_WEBHOOK_URL (a space pasted into the path, a bad port, a
broken IPv6 host) must be one clear line that names the variable, never a traceback that quotes the URL."""

from __future__ import annotations

import pytest

from tests.integration import test_monitor as monitoring
from tests.integration.test_monitor import run_monitor, write_log

workdir = monitoring.workdir  # the monitor tests' fixture: a work directory with params and a package


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/services/T0/B0/secret-token-xyz extra",
        "http://127.0.0.1:secret-token-xyz/hook",
        "http://[::1/secret-token-xyz",
    ],
    ids=["space-in-path", "bad-port", "broken-ipv6"],
)
def test_a_malformed_webhook_url_is_one_line_without_the_url(workdir, monkeypatch, capfd, url):
    # urllib raised http.client.InvalidURL / ValueError with the path or port in the message; monitor caught only
    # WebhookFailed, so the secret was printed in a traceback
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    assert run_monitor(workdir, write_log(workdir / "requests.jsonl", errors=5)) == 1
    err = capfd.readouterr().err
    logged = (workdir / "logs" / "monitor.log").read_text()
    assert "ALERT_WEBHOOK_URL" in err and "secret-token-xyz" not in err + logged and "Traceback" not in err
    assert len(list((workdir / "alerts").glob("monitor-*.json"))) == 1

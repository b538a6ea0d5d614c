"""Retrying reads from sources (files, fsspec URLs, SQL) on transient errors only.

Backoff is exponential with full jitter (tenacity), bounded by `ingest.retry` in params; each retry is
logged. Errors that will not go away by waiting (a missing file, a permission problem, bad SQL) are raised
at once.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

from flightdelay.core.config import RetryParams
from flightdelay.core.errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_ERRNOS = frozenset(
    {errno.EAGAIN, errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE}
)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: network and timeout errors, and database errors the driver flags as connection loss."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return False
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, sa_exc.OperationalError)
    return False


def with_retry(what: str, fn: Callable[[], T], policy: RetryParams) -> T:
    """Call `fn`, retrying transient errors up to `policy.attempts` times in all."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "retry %d/%d of %s in %.2fs after %s: %s",
            state.attempt_number,
            policy.attempts - 1,
            what,
            wait,
            type(exc).__name__,
            exc,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=tenacity.wait_random_exponential(multiplier=policy.initial_wait, max=policy.max_wait),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        if is_transient(exc):
            raise DataError(
                f"{what}: still failing after {policy.attempts} attempts ({type(exc).__name__}: {exc}); "
                "check the source is reachable, or raise ingest.retry.attempts"
            ) from exc
        raise

"""tests/conftest.py `release_log_handlers`: no handler of `logs.configure` outlives the test that made it."""

from __future__ import annotations

import io
import logging
import sys

from flightdelay.core import logs
from tests.conftest import release_log_handlers


class PytestLike(logging.StreamHandler):
    """pytest's capture handlers subclass StreamHandler."""


def test_a_handler_on_a_closed_stream_is_gone_and_subclassed_handlers_stay(tmp_path, monkeypatch, capsys):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure("stage", log_dir=tmp_path)
    root = logging.getLogger()
    ours = list(root.handlers)
    assert {type(h) for h in ours} == {logging.StreamHandler, logging.FileHandler}
    other = PytestLike(io.StringIO())
    root.addHandler(other)
    stream.close()  # what pytest does to a test's captured stream when the test ends
    try:
        release_log_handlers()
        assert root.handlers == [other]
    finally:
        root.removeHandler(other)
    logging.getLogger("flightdelay.serving.app").info("the canary passed, ready")  # a later record
    assert "Logging error" not in capsys.readouterr().err
    assert all(h.stream is None for h in ours if isinstance(h, logging.FileHandler))  # the log file released

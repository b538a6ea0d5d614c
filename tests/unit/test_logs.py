"""core/logs.configure: our DEBUG records reach the stage's log file; libraries' DEBUG chatter does not."""

from __future__ import annotations

import json
import logging

import pytest

from flightdelay.core import logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_our_debug_records_are_kept_and_numba_s_are_not(tmp_path, restore_logging):
    log_file = logs.configure("serve", log_dir=tmp_path)
    logging.getLogger("flightdelay.modeling.fast_model").debug("ours")
    logging.getLogger("numba.core.ssa").debug("numba's")
    logging.getLogger("numba.core.ssa").warning("numba's warning")
    for handler in logging.getLogger().handlers:
        handler.flush()
    messages = [json.loads(line)["message"] for line in log_file.read_text().splitlines()]
    assert messages == ["ours", "numba's warning"]

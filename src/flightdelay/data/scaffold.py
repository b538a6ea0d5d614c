"""`flightdelay new-dataset`: make this repository a pipeline for another data set, from one CSV file.

    python -m flightdelay new-dataset --csv weather.csv --time-column date --target "precipitation shift -1 > 0"

1. reads the CSV and infers its schema (each column's type, range, allowed values and nullability) into the schema
   file (params `data.schema`), as the main table `--table`; the time column is read as a date-time, and `year` and
   `month` (the table's period columns) are derived from it;
2. writes the rows as monthly partitions `<raw_dir>/<table>/<YYYY-MM>.csv` (raw_dir: data/raw/<table>), the shape
   ingest reads;
3. writes params.yaml: the `dataset` section (names, entity keys, the target: `SOURCE [shift N] [RULE]`, e.g.
   "precipitation shift -1 > 0" is 1 where the next row's precipitation is above 0), the ingest window, the split
   (the last `--test-months` months are the test months) and the generic feature builder (`features.builder:
   generic`: the numeric and text columns, lags and rolling windows of the target's source, calendar parts, a
   history encoding per text column); the params file keeps its comments and layout where a key stays (a
   round-trip YAML edit: ruamel.yaml, which DVC itself uses for params files);
4. moves the bundled `raw` stage out of dvc.yaml (into `<schema folder>/raw-stage.yaml`, to put back by hand) and
   names the `artifacts:` entry after the data set;
5. runs `dvc add` on the partitions, and prints what to check before `dvc repro`.

The logic is plain functions over DataFrames and dicts (tested on small frames); `run` does the files.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from flightdelay.core.config import read_yaml
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import write_text
from flightdelay.core.layout import PARAMS_FILE

log = logging.getLogger(__name__)

TARGET = re.compile(
    r"^\s*(?P<source>[A-Za-z_][A-Za-z0-9_]*)(\s+shift\s+(?P<shift>-?\d+))?(\s*(?P<rule>(>=|<=|==|!=|>|<)\s*-?\d+(\.\d+)?))?\s*$"
)
MAX_ALLOWED = 20  # a text column with at most this many distinct values gets them as its allowed values
CALENDAR = ["month", "day_of_year", "day_of_week"]
GROUPS = ["current", "lags", "rolling", "calendar", "history"]


class ScaffoldError(PipelineError):
    """A CSV or an option the scaffold cannot use; the message names it and the fix."""


# ------------------------------------------------------------------------------------------------ pure logic


def parse_target(text: str) -> dict[str, Any]:
    """`SOURCE [shift N] [RULE]` as dataset.target keys: {"source", "shift", "rule" (None: a regression target)}."""
    match = TARGET.match(text)
    if not match:
        raise ScaffoldError(
            f"--target {text!r}: expected COLUMN [shift N] [RULE], e.g. 'precipitation shift -1 > 0' (1 where the "
            "next row's precipitation is above 0) or 'rain_mm shift -1' (a number to predict)"
        )
    shift = int(match["shift"] or 0)
    if shift > 0:
        raise ScaffoldError(f"--target {text!r}: shift {shift} looks back; use a negative shift (-1: the next row)")
    rule = re.sub(r"\s+", "", match["rule"]) if match["rule"] else None
    if rule is not None:
        op = re.match(r"[<>=!]+", rule)
        assert op is not None
        rule = f"{op.group(0)} {rule[op.end() :]}"
    return {"source": match["source"], "shift": shift, "rule": rule}


def _number(value: Any) -> int | float:
    number = value.item() if hasattr(value, "item") else value
    return int(number) if float(number).is_integer() else float(number)


def infer_column(values: pd.Series, *, is_time: bool) -> dict[str, Any]:
    """A column's schema entry (config/schema.yaml) from its values: dtype, nullable, min/max or allowed values."""
    spec: dict[str, Any] = {}
    present = values.dropna()
    if is_time:
        spec["dtype"] = "datetime"
    elif pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        spec["dtype"] = "str"
        distinct = sorted(present.astype(str).unique().tolist())
        if len(distinct) <= MAX_ALLOWED:
            spec["allowed"] = distinct
    else:
        whole = pd.api.types.is_integer_dtype(values) or bool((present == present.round()).all())
        spec["dtype"] = "int" if whole and pd.api.types.is_integer_dtype(values) else "float"
        if len(present):
            spec["min"], spec["max"] = _number(present.min()), _number(present.max())
    if values.isna().any():
        spec["nullable"] = True
    return spec


def infer_table(frame: pd.DataFrame, time_column: str, entity_keys: list[str]) -> dict[str, Any]:
    """The main table's schema entry: partitioned by month (year and month derived from the time column), keyed by
    entity and time, every column's type and rules inferred from the data."""
    columns = {
        "year": {"dtype": "int", "min": 1900, "max": 2100},
        "month": {"dtype": "int", "min": 1, "max": 12},
        **{c: infer_column(frame[c], is_time=c == time_column) for c in frame.columns if c not in ("year", "month")},
    }
    return {
        "partitioned": True,
        "period": {"year": "year", "month": "month"},
        "key": [*entity_keys, time_column],
        "columns": columns,
    }


def read_table(frame: pd.DataFrame, time_column: str, entity_keys: list[str], source: str) -> pd.DataFrame:
    """The CSV's rows with the time column as date-times and `year`, `month` from it; one line per problem."""
    missing = [c for c in [time_column, *entity_keys] if c not in frame.columns]
    if missing:
        raise ScaffoldError(f"{source}: no column(s) {missing}; it has {list(frame.columns)}")
    clash = [c for c in ("year", "month") if c in frame.columns]
    if clash:
        raise ScaffoldError(f"{source}: columns {clash} are derived from the time column; rename them in the CSV")
    times = pd.to_datetime(frame[time_column], errors="coerce")
    bad = times.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ScaffoldError(
            f"{source}: row {row + 2}, column {time_column!r}: {frame[time_column].iloc[row]!r} is not a date or "
            "date-time; fix the value or choose another --time-column"
        )
    out = frame.copy()
    out[time_column] = times
    out["year"], out["month"] = times.dt.year, times.dt.month
    doubled = out.duplicated([*entity_keys, time_column])
    if doubled.any():
        row = int(doubled.to_numpy().nonzero()[0][0])
        raise ScaffoldError(
            f"{source}: row {row + 2} repeats {[*entity_keys, time_column]} of an earlier row; one row per entity "
            "and time (give --entity-keys)"
        )
    return out


def monthly_csv(frame: pd.DataFrame, time_column: str) -> dict[str, str]:
    """'YYYY-MM' -> the CSV text of that month's rows (time column as ISO text), in time order."""
    rows = frame.sort_values(time_column, kind="stable")
    periods = rows[time_column].dt.strftime("%Y-%m")
    text = rows.assign(**{time_column: rows[time_column].dt.strftime("%Y-%m-%dT%H:%M:%S")})
    return {p: part.to_csv(index=False, lineterminator="\n") for p, part in text.groupby(periods.to_numpy())}


def scaffold_params(
    params: dict[str, Any],
    *,
    table: str,
    name: str,
    time_column: str,
    entity_keys: list[str],
    target: dict[str, Any],
    schema: dict[str, Any],
    periods: list[str],
    test_months: int,
    raw_dir: str,
) -> dict[str, Any]:
    """params.yaml for the new data set: the committed params with the sections that describe the data replaced."""
    if len(periods) <= test_months:
        raise ScaffoldError(
            f"the data covers {len(periods)} month(s), {periods[0]} to {periods[-1]}: too few for {test_months} "
            "test month(s) and at least one training month; lower --test-months"
        )
    columns = schema["columns"]
    source = target["source"]
    if source not in columns or columns[source]["dtype"] not in ("int", "float"):
        raise ScaffoldError(f"--target: {source!r} is not a numeric column of the CSV (it has {sorted(columns)})")
    task = "classification" if target["rule"] is not None else "regression"
    skip = {"year", "month", time_column, *entity_keys}
    numeric = [c for c, s in columns.items() if c not in skip and s["dtype"] in ("int", "float")]
    text = [c for c, s in columns.items() if c not in skip and s["dtype"] == "str"]
    if target["shift"] == 0:  # the target's own value is not a feature of its row; its past is
        numeric = [c for c in numeric if c != source]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"
    column = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "target"
    out = {**params}
    out["dataset"] = {
        "name": name,
        "artifact": slug,
        "table": table,
        "rows": "rows",
        "entity_keys": entity_keys,
        "target": {
            "classification": {
                "column": column if task == "classification" else f"{column}_class",
                "name": name,
                "predicts": f"whether {source} {target['rule'] or '> 0'}, {-target['shift']} row(s) later",
                # never yes/no: `dvc exp run -S` rewrites params.yaml unquoted, and YAML 1.1 reads them as booleans
                "labels": {0: f"not {name}", 1: name},
                **({"source": source, "shift": target["shift"], "rule": target["rule"]} if target["rule"] else {}),
            },
            "regression": {
                "column": column if task == "regression" else f"{source}_later",
                "name": name,
                "predicts": f"{source}, {-target['shift']} row(s) later",
                "unit": "units",
                "source": source,
                "shift": target["shift"],
            },
        },
    }
    out["data"] = {**params["data"], "raw_dir": raw_dir}
    out["ingest"] = {
        **params["ingest"],
        "window": {"start": periods[0], "end": periods[-1]},
        "sources": {table: {"kind": "files"}},
    }
    split_at = len(periods) - test_months
    history = {f"hist_{c}": [c] for c in text}
    out["features"] = {
        "builder": "generic",
        "split": {
            "train": {"start": periods[0], "end": periods[split_at - 1]},
            "test": {"start": periods[split_at], "end": periods[-1]},
        },
        "missing_target": "drop",
        "holiday_country": params["features"].get("holiday_country", "US"),
        "history_smoothing": params["features"].get("history_smoothing", 50),
        "generic": {
            "time_column": time_column,
            "numeric": numeric,
            "categorical": text,
            "lags": {source: [1, 2, 7]},
            "rolling": {source: {"windows": [3, 7, 30], "stats": ["mean", "max"]}},
            "calendar": CALENDAR,
            "joins": [],
            "history": history,
        },
    }
    out["train"] = {**params["train"], "task": task, "feature_groups": GROUPS if history else GROUPS[:-1]}
    if task == "regression" and out["train"].get("model") == "logistic_regression":
        out["train"]["model"] = "hist_gradient_boosting"
    out["evaluate"] = {**params["evaluate"], "slices": list(entity_keys)}  # slices are of id columns
    out["compute"] = {**params["compute"], "engine": "local"}  # the generic builder runs in one process
    out["drift"] = {**params["drift"], "expected": CALENDAR}
    if "monitor" in params:
        out["monitor"] = {**params["monitor"], "expected": CALENDAR}
    return out


def keep_comments(original: str, params: dict[str, Any]) -> str:
    """`params` as YAML, written over the text `original`: a key that stays keeps its comments and layout (flow
    lists, quotes), a key that goes takes its comments with it, a new key is added at the end of its mapping.

    ruamel.yaml's round-trip mode keeps comments, which PyYAML drops; the stages read the result with PyYAML (YAML
    1.1), so a new text that YAML 1.1 reads as something else (`yes`, `on`, `2013-01-01`) is written quoted.
    """
    from ruamel.yaml import YAML

    rt = YAML()  # round-trip: comments, key order, flow and block styles as they were
    rt.width = 4096  # no wrapping of long texts
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.preserve_quotes = True
    doc = rt.load(original)
    if not isinstance(doc, dict):
        raise ScaffoldError(
            "the params file is not a mapping of sections; restore it with `git checkout -- params.yaml`"
        )
    _update(doc, params)
    out = io.StringIO()
    rt.dump(doc, out)
    text = out.getvalue()
    if yaml.safe_load(text) != params:  # the promise of this function; a failure is a bug here, not in the input
        raise ScaffoldError("the rewritten params file does not read back as written (a bug in new-dataset)")
    return text


def _update(node: dict[str, Any], new: dict[str, Any]) -> None:
    """Make the round-trip mapping `node` equal to `new`, keeping what is unchanged (and its comments) as it is."""
    from ruamel.yaml.scalarstring import ScalarString

    for key in [k for k in node if k not in new]:
        del node[key]
    for key, value in new.items():
        old = node.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            _update(old, value)
        elif isinstance(old, ScalarString) and isinstance(value, str):  # a quoted text stays quoted the same way
            node[key] = type(old)(value)
        elif key not in node or not _same(old, value):
            node[key] = _quoted(value)


def _same(old: Any, new: Any) -> bool:
    """Equal and of the same kind (1, 1.0 and True are equal in Python, not in a params file)."""
    if isinstance(old, list) and isinstance(new, list):  # a round-trip list is a list subclass
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, dict) or isinstance(new, dict):
        return False
    kinds = (bool, float, str)
    return old == new and all(isinstance(old, k) == isinstance(new, k) for k in kinds)


_STR = "tag:yaml.org,2002:str"


def _quoted(value: Any) -> Any:
    """`value` with each text that YAML 1.1 would read as another type (a bool, a date, a number) quoted."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, dict):
        return {k: _quoted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_quoted(v) for v in value]
    if isinstance(value, str) and yaml.SafeLoader("").resolve(yaml.ScalarNode, value, (True, False)) != _STR:
        return DoubleQuotedScalarString(value)
    return value


def without_raw_stage(dvc_text: str) -> tuple[str, str]:
    """dvc.yaml's text without its `raw` stage, and that stage's text (to keep aside)."""
    match = re.search(r"^  raw:\n(?:(?:    .*|\s*)\n)*", dvc_text, re.M)
    if not match:
        return dvc_text, ""
    return dvc_text[: match.start()] + dvc_text[match.end() :], match.group(0)


def with_artifact(dvc_text: str, artifact: str) -> str:
    """dvc.yaml's text with its (one) `artifacts:` entry renamed to `artifact`."""
    return re.sub(r"^(artifacts:\n  )[^\s:]+:", rf"\g<1>{artifact}:", dvc_text, count=1, flags=re.M)


def checklist(schema_file: str, params_file: str, table: str, schema: dict[str, Any], params: dict[str, Any]) -> str:
    cols = schema["columns"]
    ranges = ", ".join(
        f"{c} {s['min']}..{s['max']}" if "min" in s else f"{c} in {s['allowed']}" if "allowed" in s else c
        for c, s in cols.items()
        if c not in ("year", "month")
    )
    split = params["features"]["split"]
    return "\n".join(
        [
            "Check before `dvc repro`:",
            f"- {schema_file}, table {table}: the ranges and allowed values are those seen in this CSV ({ranges}); "
            "widen them to what later data may hold, or later rows are quarantined",
            f"- {params_file} dataset: the names, class labels and unit shown in the report",
            f"- {params_file} features.split: train {split['train']['start']}..{split['train']['end']}, "
            f"test {split['test']['start']}..{split['test']['end']}",
            f"- {params_file} features.generic: the features (docs/own-data.md); gate: the thresholds to pass",
            "- registry/prod.json: the gate compares with the model promoted there; if one of the old data set is, "
            "write it back as promoted: null (it is no baseline for this one)",
            "Then: git add -A && dvc repro",
        ]
    )


# ------------------------------------------------------------------------------------------------ entry point


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv", type=Path, required=True, help="the data set: one CSV file, one row per entity and time"
    )
    parser.add_argument("--time-column", required=True, help="the column holding each row's date or date-time")
    parser.add_argument(
        "--target", required=True, help="COLUMN [shift N] [RULE], e.g. 'precipitation shift -1 > 0' (rain tomorrow)"
    )
    parser.add_argument("--name", help="what the target is called, e.g. 'rain tomorrow' (default: from --target)")
    parser.add_argument("--table", default=None, help="the main table's name (default: the CSV's file name)")
    parser.add_argument(
        "--entity-keys", nargs="*", default=[], help="columns naming what a row is about (default: none)"
    )
    parser.add_argument("--test-months", type=int, default=12, help="the last N months are the test months")
    parser.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument("--dvc-file", default="dvc.yaml", help="pipeline file (default: %(default)s)")
    parser.add_argument("--no-dvc-add", action="store_true", help="write the partitions without `dvc add`")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


def run(args: argparse.Namespace) -> str:
    target = parse_target(args.target)
    table = args.table or re.sub(r"[^a-z0-9_]+", "_", args.csv.name.split(".")[0].lower()).strip("_")
    name = args.name or f"{target['source']} {target['rule'] or 'later'}".strip()
    try:
        frame = pd.read_csv(args.csv)
    except (OSError, ValueError) as exc:
        raise ScaffoldError(f"{args.csv}: cannot read it as CSV ({exc})") from None
    rows = read_table(frame, args.time_column, list(args.entity_keys), str(args.csv))
    spec = infer_table(rows.drop(columns=["year", "month"]), args.time_column, list(args.entity_keys))
    params_file = Path(args.params)
    params = read_yaml(params_file, "params file", "run from the repository root or pass --params")
    params_text = params_file.read_text(encoding="utf-8")  # its comments are kept in the file written back
    schema_file = params["data"]["schema"]
    raw_dir = f"data/raw/{table}"
    parts = monthly_csv(rows, args.time_column)
    new_params = scaffold_params(
        params,
        table=table,
        name=name,
        time_column=args.time_column,
        entity_keys=list(args.entity_keys),
        target=target,
        schema=spec,
        periods=sorted(parts),
        test_months=args.test_months,
        raw_dir=raw_dir,
    )
    for period, text in parts.items():
        write_text(Path(raw_dir) / table / f"{period}.csv", text)
    header = "# Inferred by `flightdelay new-dataset` from " + args.csv.name + "; check ranges and allowed values.\n"
    write_text(schema_file, header + yaml.safe_dump({"tables": {table: spec}}, sort_keys=False))
    write_text(params_file, keep_comments(params_text, new_params))
    dvc_file = Path(args.dvc_file)
    dvc_text, raw_stage = without_raw_stage(dvc_file.read_text(encoding="utf-8"))
    if raw_stage:
        write_text(Path(schema_file).parent / "raw-stage.yaml", raw_stage)
    write_text(dvc_file, with_artifact(dvc_text, new_params["dataset"]["artifact"]))
    if not args.no_dvc_add:
        done = subprocess.run(["dvc", "add", raw_dir], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ScaffoldError(f"dvc add {raw_dir} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    log.info("new-dataset: %d rows, %d months in %s", len(rows), len(parts), raw_dir)
    return (
        f"wrote {len(parts)} monthly partitions to {raw_dir}/{table}/, the schema {schema_file}, {params_file}"
        + (", moved the raw stage to " + str(Path(schema_file).parent / "raw-stage.yaml") if raw_stage else "")
        + "\n"
        + checklist(schema_file, str(params_file), table, spec, new_params)
    )

"""benchmarks/serve.py's request bodies for `mlflow models serve`: one feature row each, missing values as null
(JSON has no NaN), categorical values as their text."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from benchmarks.serve import feature_bodies


def test_each_row_is_one_dataframe_split_body_with_missing_values_as_null():
    features = pd.DataFrame({"origin": ["EWR", "JFK"], "temp": [np.nan, 41.5], "hour": [5, 17]})
    bodies = [json.loads(body) for body in feature_bodies(features)]
    assert bodies == [
        {"dataframe_split": {"columns": ["origin", "temp", "hour"], "data": [["EWR", None, 5]]}},
        {"dataframe_split": {"columns": ["origin", "temp", "hour"], "data": [["JFK", 41.5, 17]]}},
    ]

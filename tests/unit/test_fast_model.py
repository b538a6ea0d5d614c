"""The fast scorer (flightdelay.modeling.fast_model) gives predict_proba's probabilities of the same fitted pipeline.

A hist-gradient-boosting pipeline is built as the train stage builds it (modeling.model.build_pipeline) on a
small synthetic frame whose categories drive the label, then scored on rows with missing values, categories the
model never saw, and a mix of both, through every evaluation path: the numba kernel (one thread and several), and
the paths kept for where numba is missing (all trees walked at once in numpy, and each tree's compiled predictor).
The kernel is also held to scikit-learn's own compiled predictor on inputs no encoder gives: every numeric split's
exact threshold and the floats next to it, negative and unseen category codes, NaN everywhere.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import flightdelay.modeling.fast_model as fast_model
from flightdelay.modeling.fast_model import FastModel
from flightdelay.modeling.model import build_pipeline, prepare

NUMERIC = ["x", "y"]
CATEGORICAL = ["carrier", "origin"]
PARAMS = {"max_iter": 40, "min_samples_leaf": 5}


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "carrier": rng.choice(["AA", "B6", "DL", "UA", "WN"], n).astype(object),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n).astype(object),
            "x": rng.normal(size=n),
            "y": rng.uniform(0, 100, n),
        }
    )
    out.loc[rng.random(n) < 0.1, "x"] = np.nan
    out.loc[rng.random(n) < 0.1, "carrier"] = None
    return out


def fitted(categorical: list[str] = CATEGORICAL) -> object:
    train = frame(2000, 1)
    logit = (train["carrier"] == "B6") * 1.5 - (train["origin"] == "LGA") + 0.5 * train["x"].fillna(0)
    label = (logit + np.random.default_rng(2).normal(size=len(train)) > 0.3).astype(int)
    model = build_pipeline("classification", "hist_gradient_boosting", NUMERIC, categorical, PARAMS, seed=3)
    model.fit(prepare(train, NUMERIC, categorical), label)
    return model


@pytest.fixture(scope="module")
def model() -> object:
    return fitted()


def scored(n: int, seed: int) -> pd.DataFrame:
    rows = frame(n, seed)
    rows.loc[rows.index[::7], "carrier"] = "ZZ"  # a category the model never saw
    rows.loc[rows.index[::11], "origin"] = None
    rows.loc[rows.index[::13], "y"] = np.nan
    return prepare(rows, NUMERIC, CATEGORICAL)


def without_kernel(fast: FastModel) -> FastModel:
    """The FastModel as it scores where numba cannot be imported."""
    fast._kernel = None
    return fast


@pytest.mark.parametrize(
    ("kernel", "walk_cells"), [(True, 0), (False, 0), (False, 10**9)], ids=["kernel", "compiled-trees", "numpy-walk"]
)
@pytest.mark.parametrize("n", [1, 3, 500])
def test_the_fast_scorer_gives_predict_proba_to_1e_12(model, monkeypatch, kernel, walk_cells, n):
    monkeypatch.setattr(fast_model, "WALK_CELLS", walk_cells)
    fast = FastModel.build(model)
    assert fast is not None
    assert fast._kernel is not None  # numba is a dependency: the kernel is what scores
    if not kernel:
        without_kernel(fast)
    rows = scored(n, 10 + n)
    want = model.predict_proba(rows)[:, 1]
    got = fast.predict_proba(rows)
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "compiled-trees"])
def test_a_large_batch_split_between_threads_and_in_chunks_gives_predict_proba(model, monkeypatch, kernel):
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    monkeypatch.setattr(fast_model, "THREAD_ROWS", 1)
    monkeypatch.setattr(fast_model, "BATCH_THREADS", 3)
    monkeypatch.setattr(fast_model, "CHUNK_ROWS", 128)
    monkeypatch.setattr(fast_model, "KERNEL_BLOCK", 64)  # a global of the kernel: read when it compiles, not here
    fast = FastModel.build(model)
    assert fast is not None
    if not kernel:
        without_kernel(fast)
    rows = scored(700, 21)
    np.testing.assert_allclose(fast.predict_proba(rows), model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12)


def test_text_with_the_string_dtype_scores_as_object_text(model):
    rows = scored(50, 4)
    as_string = rows.astype({c: "string" for c in CATEGORICAL})  # what compute_features gives
    fast = FastModel.build(model)
    assert fast is not None
    np.testing.assert_allclose(fast.predict_proba(as_string), model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12)


def test_an_unseen_category_scores_as_a_missing_one(model):
    fast = FastModel.build(model)
    assert fast is not None
    rows = scored(20, 5)
    unseen, missing = rows.copy(), rows.copy()
    unseen["carrier"] = "ZZ"
    missing["carrier"] = np.nan
    np.testing.assert_array_equal(fast.predict_proba(unseen), fast.predict_proba(missing))


def test_other_models_get_no_fast_scorer():
    train = frame(300, 6)
    label = (train["y"] > 50).astype(int)
    logistic = build_pipeline("classification", "logistic_regression", NUMERIC, CATEGORICAL, {}, seed=1)
    logistic.fit(prepare(train, NUMERIC, CATEGORICAL), label)
    assert FastModel.build(logistic) is None
    regressor = build_pipeline("regression", "hist_gradient_boosting", NUMERIC, CATEGORICAL, PARAMS, seed=1)
    regressor.fit(prepare(train, NUMERIC, CATEGORICAL), train["y"])
    assert FastModel.build(regressor) is None
    assert FastModel.build(object()) is None


def test_the_numpy_walk_follows_the_compiled_trees_on_codes_no_encoder_gives(model, monkeypatch):
    """Codes the encoders never produce (a category code the trees did not see, a negative one) take the same
    branch in the numpy walk as in scikit-learn's compiled predictor: the rules are the same, not just the data."""
    fast = FastModel.build(model)
    assert fast is not None
    X = fast.matrix(scored(60, 7))
    X[::3, 0] = 40.0  # a carrier code the trees never saw
    X[1::3, 0] = -1.0
    X[2::3, 1] = 200.0
    kernel = fast.raw(X)
    without_kernel(fast)
    monkeypatch.setattr(fast_model, "WALK_CELLS", 10**9)
    walked = fast.raw(X)
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    compiled = fast.raw(X)
    np.testing.assert_array_equal(walked, compiled)
    np.testing.assert_array_equal(kernel, compiled)


def edge_rows(fast: FastModel) -> np.ndarray:
    """Rows whose numeric values sit exactly on every numeric split's threshold and on the floats just below and
    above it, with NaN, negative, unseen and fractional category codes mixed in."""
    nodes = fast._nodes
    split = (nodes[:, fast_model.FEATURE] >= 0) & (nodes[:, fast_model.FLAGS] & fast_model.CATEGORICAL == 0)
    features, thresholds = nodes[split, fast_model.FEATURE], fast._n["threshold"][split]
    assert len(thresholds) > 20  # the model has numeric splits to test
    base = fast.matrix(scored(3 * len(thresholds), 8))
    rows = []
    for k, (feature, threshold) in enumerate(zip(features, thresholds, strict=True)):
        for j, value in enumerate((np.nextafter(threshold, -np.inf), threshold, np.nextafter(threshold, np.inf))):
            row = base[3 * k + j].copy()
            row[feature] = value
            rows.append(row)
    X = np.array(rows)
    X[::5, 0] = np.nan
    X[1::5, 0] = -3.0
    X[2::5, 1] = 17.0  # an origin code the trees never saw
    X[3::5, 1] = 250.0  # the last uint8 codes (beyond 255 the compiled predictor's C cast is undefined; `matrix`
    X[3::10, 1] = 2.5  # gives only the codes of known categories); a fraction: truncated, as the C cast does
    X[4::7, 2:] = np.nan
    return X


def test_the_kernel_takes_every_branch_the_compiled_predictor_takes(model, monkeypatch):
    """At each numeric threshold, the float below and the float above, and on NaN, negative, unseen and
    fractional codes, the kernel's sums equal scikit-learn's compiled predictors' bit for bit."""
    fast = FastModel.build(model)
    assert fast is not None and fast._kernel is not None
    X = edge_rows(fast)
    kernel = fast.raw(X)  # blocks of KERNEL_BLOCK rows: every row of a block walked in lockstep
    one_by_one = np.concatenate([fast.raw(X[i : i + 1]) for i in range(len(X))])  # one row, trees in lockstep
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    want = without_kernel(fast).raw(X)
    np.testing.assert_array_equal(kernel, want)
    np.testing.assert_array_equal(one_by_one, want)


def test_the_kernels_bins_keep_every_threshold_comparison(model):
    """A numeric value's bin (how many of its feature's thresholds are below it) is <= a threshold's rank exactly
    when the value is <= the threshold: checked on every threshold and the floats either side of it."""
    fast = FastModel.build(model)
    assert fast is not None and fast._kernel_args is not None
    n_categorical, thresholds, n_thresholds = fast._kernel_args[:3]
    checked = 0
    for j in range(n_categorical, len(n_thresholds)):
        distinct = thresholds[j, : n_thresholds[j]]
        for rank, threshold in enumerate(distinct):
            for x in (np.nextafter(threshold, -np.inf), threshold, np.nextafter(threshold, np.inf), -np.inf, np.inf):
                assert (np.searchsorted(distinct, x, side="left") <= rank) == (x <= threshold)
                checked += 1
    assert checked > 100


def trees(model: object) -> list[object]:
    return [predictors[0] for predictors in model[-1]._predictors]  # type: ignore[index]


def nan_threshold(model: object) -> None:
    nodes = trees(model)[3].nodes  # type: ignore[attr-defined]
    numeric = np.flatnonzero((nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0))
    nodes["num_threshold"][numeric[0]] = np.nan


def code_255_goes_left(model: object) -> None:
    tree = next(t for t in trees(model) if len(t.raw_left_cat_bitsets))  # type: ignore[attr-defined]
    tree.raw_left_cat_bitsets[0, 7] |= np.uint32(1 << 31)  # type: ignore[attr-defined]


def many_thresholds(model: object) -> None:
    """Every numeric split a threshold of its own: more distinct thresholds on a feature than bins."""
    offset = 0
    for tree in trees(model):
        nodes = tree.nodes  # type: ignore[attr-defined]
        numeric = (nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)
        nodes["num_threshold"][numeric] += 1e-6 * (offset + np.arange(numeric.sum()))
        offset += int(numeric.sum())
    assert offset > 2 * fast_model.MAX_THRESHOLDS  # two numeric features: one of them has more than its bins


@pytest.mark.parametrize("edit", [nan_threshold, code_255_goes_left, many_thresholds])
def test_trees_the_binned_kernel_cannot_hold_are_scored_by_the_numpy_paths(model, edit, monkeypatch):
    """A NaN threshold, a category code 255 in a left bitset (it would share the missing bin), more thresholds on
    a feature than bins: no binned layout, no kernel; the numpy walk still gives the compiled predictors' sums."""
    crafted = copy.deepcopy(model)
    edit(crafted)
    fast = FastModel.build(crafted)
    assert fast is not None and fast._kernel_args is None and not fast.compiled
    X = edge_rows(fast)
    X[::4, : len(CATEGORICAL)] = 255.0  # the code the crafted bitset sends left
    monkeypatch.setattr(fast_model, "WALK_CELLS", 10**9)
    walked = fast.raw(X)
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    np.testing.assert_array_equal(walked, fast.raw(X))
    control = FastModel.build(model)
    assert control is not None and control.compiled  # the untouched model: the kernel scores
    assert not np.array_equal(walked, control.raw(X))  # and the edit changed some sum: the crafted trees scored


def test_a_feature_with_every_bin_a_threshold_and_the_last_bins_inf_keeps_the_kernel(model, monkeypatch):
    """scikit-learn's most: 254 finite thresholds on a feature (255 bins) and +inf (a split after the last bin).
    Their values take bins 0..254, the missing bin stays apart: the layout holds them, with the same sums."""
    crafted = copy.deepcopy(model)
    splits = [
        (tree.nodes, np.flatnonzero((tree.nodes["is_leaf"] == 0) & (tree.nodes["is_categorical"] == 0)))  # type: ignore[attr-defined]
        for tree in trees(crafted)
    ]
    feature = np.bincount(np.concatenate([nodes["feature_idx"][on] for nodes, on in splits])).argmax()
    grid = [*np.linspace(-3.0, 3.0, fast_model.MAX_THRESHOLDS), np.inf]
    k = 0
    for nodes, on in splits:
        for node in on[nodes["feature_idx"][on] == feature]:
            nodes["num_threshold"][node] = grid[k % len(grid)]
            k += 1
    assert k >= len(grid)  # every grid value is some node's threshold
    fast = FastModel.build(crafted)
    assert fast is not None and fast.compiled and fast._kernel_args is not None
    assert fast._kernel_args[2][feature] == len(grid)
    X = edge_rows(fast)
    X[::9, feature] = np.inf
    X[1::9, feature] = -np.inf
    kernel = fast.raw(X)
    one_by_one = np.concatenate([fast.raw(X[i : i + 1]) for i in range(len(X))])
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    want = without_kernel(fast).raw(X)
    np.testing.assert_array_equal(kernel, want)
    np.testing.assert_array_equal(one_by_one, want)


def test_a_node_reached_from_two_parents_is_walked_as_the_compiled_predictor_walks_it(model, monkeypatch):
    """Crafted trees where both sides of a split lead to one subtree: the kernel's layout copies it under each
    parent (a tree that would grow past its own size gets no layout), and the sums stay the compiled predictors'."""
    crafted = copy.deepcopy(model)
    nodes = trees(crafted)[3].nodes  # type: ignore[attr-defined]
    parent = int(np.flatnonzero(nodes["is_leaf"] == 0)[0])
    nodes["right"][parent] = nodes["left"][parent]
    fast = FastModel.build(crafted)
    assert fast is not None and fast.compiled
    X = edge_rows(fast)
    kernel = fast.raw(X)
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    np.testing.assert_array_equal(kernel, without_kernel(fast).raw(X))


@pytest.mark.parametrize(
    "tamper",
    ["child-past-the-tree", "child-before-itself", "leaf-leaves", "feature-past-the-columns", "deeper-than-the-tree"],
)
def test_a_binned_layout_with_an_index_out_of_range_is_not_well_formed(model, tamper):
    """well_formed covers every index `_raw_kernel` reads in its own layout, not only the stacked nodes."""
    fast = FastModel.build(model)
    assert fast is not None and fast._kernel_args is not None and fast.well_formed()
    n_categorical, thresholds, n_thresholds, record, goes_left, value, roots, depth, lockstep, baseline = (
        fast._kernel_args
    )
    record, goes_left, depth = record.copy(), goes_left.copy(), depth.copy()
    split = np.flatnonzero((record >> 8) != np.arange(len(record)))
    last_split_of_first_tree = int(split[split < roots[1]][-1])
    if tamper == "child-past-the-tree":
        record[last_split_of_first_tree] = (np.uint32(roots[1]) << 8) | (record[last_split_of_first_tree] & 255)
    elif tamper == "child-before-itself":
        record[last_split_of_first_tree] = record[last_split_of_first_tree] & 255
    elif tamper == "leaf-leaves":
        goes_left[(roots[1] - 1) * fast_model.WORDS] = 0  # the first tree's last node is a leaf
    elif tamper == "feature-past-the-columns":
        record[0] = (record[0] & ~np.uint32(255)) | np.uint32(255)
    else:
        depth[0] = roots[1]
    fast._kernel_args = (
        n_categorical, thresholds, n_thresholds, record, goes_left, value, roots, depth, lockstep, baseline
    )  # fmt: skip
    assert not fast.well_formed()


@pytest.mark.parametrize("steps", ["none", "every-level", "built"])
def test_how_far_rows_walk_in_lockstep_changes_no_sum(model, steps, monkeypatch):
    """Rows walk a tree together for `lockstep` steps, then each on to its leaf: from none to the whole depth,
    the sums are the compiled predictors'."""
    fast = FastModel.build(model)
    assert fast is not None and fast._kernel_args is not None
    args = list(fast._kernel_args)
    depth = args[7]
    args[8] = {"none": np.zeros_like(depth), "every-level": depth.copy(), "built": args[8]}[steps]
    assert 0 < args[8].mean() < depth.mean() or steps != "built"  # the built one stops before the deepest leaf
    fast._kernel_args = tuple(args)
    assert fast.well_formed()
    X = edge_rows(fast)
    kernel = fast.raw(X)
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    np.testing.assert_array_equal(kernel, without_kernel(fast).raw(X))


def test_the_kernel_gives_the_estimators_own_raw_predictions(model):
    """The same sums as HistGradientBoostingClassifier._raw_predict on the inputs it sees (the outer encoder's
    codes): the baseline and the order of additions are scikit-learn's."""
    fast = FastModel.build(model)
    assert fast is not None
    rows = scored(300, 9)
    encoded = model[0].transform(rows)
    want = model[-1]._raw_predict(encoded).ravel()
    np.testing.assert_array_equal(fast.raw(fast.matrix(rows)), want)


@pytest.mark.parametrize(
    ("column", "value"),
    [("right", "self"), ("left", 10**6), ("feature_idx", 99), ("left", "root")],
    ids=["a-cycle", "a-child-past-the-tree", "a-feature-past-the-columns", "a-child-before-its-parent"],
)
def test_trees_with_an_index_out_of_range_get_no_fast_scorer(model, column, value):
    """The kernel reads the node arrays without bounds checks: crafted numbers in verified bytes must not reach it."""
    crafted = copy.deepcopy(model)
    nodes = crafted[-1]._predictors[3][0].nodes
    split = int(np.flatnonzero(nodes["is_leaf"] == 0)[-1])  # the last split node of the fourth tree
    nodes[column][split] = {"self": split, "root": 0}.get(value, value) if isinstance(value, str) else value
    assert FastModel.build(model) is not None  # the control: the untouched model has one
    assert FastModel.build(crafted) is None


def test_leaves_of_any_trees_add_up_to_raw_in_the_models_order_with_or_without_the_kernel(model):
    """`leaves` gives each named tree's value per row (the kernel walks only those trees); the baseline plus every
    tree's value, added in the model's order, is `raw` bit for bit, and the paths without numba give the same."""
    fast = FastModel.build(model)
    assert fast is not None and fast.compiled
    X = fast.matrix(frame(300, 9))
    n_trees = len(fast.split_columns())
    every = fast.leaves(X, np.arange(n_trees))
    assert every.shape == (n_trees, len(X))
    total = np.full(len(X), fast.baseline)
    for values in every:
        total += values
    assert np.array_equal(total, fast.raw(X))
    some = np.array([n_trees - 1, 0, 3])
    assert np.array_equal(fast.leaves(X, some), every[some])
    assert fast.leaves(X, np.array([], dtype=int)).shape == (0, len(X))
    assert np.array_equal(without_kernel(copy.copy(fast)).leaves(X, some), every[some])

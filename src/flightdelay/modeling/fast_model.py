"""A faster scorer for the packaged model: the same fitted trees, without scikit-learn's per-call overhead.

The packaged model is a scikit-learn Pipeline: a ColumnTransformer (OrdinalEncoder over the categorical columns,
the numeric columns passed through) and a HistGradientBoostingClassifier (which encodes its categorical inputs
once more with its own OrdinalEncoder). `predict_proba` of one row costs milliseconds, nearly all of it input
validation, DataFrame handling and the two encoders; the trees themselves take microseconds.

`FastModel.build(pipeline)` reads the fitted pipeline (already verified and loaded from the package's skops bytes;
nothing here reads a file) into:

- one dict per categorical column, from the text to the code the trees see (both encoders composed; a missing or
  unknown value is NaN, as the encoders give it);
- every tree's nodes in flat arrays, and from them the layout of one numba-compiled kernel (`_raw_kernel`, our
  code: the package gives only these arrays, nothing in it is ever executed): each block of rows binned once (one
  uint8 per value: a numeric value's rank among its feature's split thresholds, which keeps every float64
  comparison exact; a category's code; NaN a bin of its own), then each tree walked by the block's rows in
  lockstep and branch free as deep as most training rows went, then each row on to its leaf, one 256-bit
  "goes left" set per node (right child = left + 1), each row's leaf values added in scikit-learn's order
  from the same baseline, then the same link function. A large batch splits its rows between a few threads
  (the kernel releases the GIL). 10,000 rows cost ~105-110 ms of CPU (the earlier kernel, a branching walk
  over per-field node arrays, ~220-250 ms; scikit-learn's per-tree predictors ~580 ms); one row ~0.03-0.04 ms
  (800 calls of scikit-learn's compiled predictors: ~10 ms of per-call overhead). The kernel is compiled once
  per process, at the first call (~1-3 s; no on-disk cache: numba's cache writes beside the source or in the
  user's cache folder, and a read-only install must not fail or write). Trees the layout cannot hold
  (`_binned_layout`) are scored by the paths below;
- where numba cannot be imported (`numba_kernel()` gives None), the earlier paths, which give the same numbers: a
  few rows walked through all trees at once in numpy (every split decided in one step, then one step per level),
  and for a large batch each tree's own compiled predictor (scikit-learn's TreePredictor, with the known-category
  bitsets computed once), the trees split between threads, the leaf matrix summed tree by tree.

So the probabilities are the very numbers `predict_proba` gives (tests/unit/test_fast_model.py requires 1e-12;
they are equal in practice). `build` returns None for a pipeline of another shape (another estimator, a regressor,
more classes), and the predictor then keeps `predict_proba`; the predictor also checks a built FastModel against
`predict_proba` on the package's example rows before using it.

Chosen over ONNX Runtime / treelite / lleaves: none is in the project's environment, each adds a converter and a
runtime to verify, and each computes in its own way (float32 thresholds, another order of sums), where this kernel
follows scikit-learn's predictor rule for rule, so its numbers are predict_proba's bit for bit
(tests/unit/test_fast_model.py: NaN, unseen and negative codes, values exactly at and next to every threshold).
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

NAN = float("nan")
# Up to this many (row, tree) pairs, all trees are walked at once in numpy (every split decided in one step, then
# one step per tree level); above it, each tree's compiled predictor is called once (the rows in C).
WALK_CELLS = 12_800
# A batch of at least THREAD_ROWS rows splits its trees between BATCH_THREADS threads; CHUNK_ROWS caps the leaf
# matrix (trees x rows) held at once.
BATCH_THREADS = min(4, os.cpu_count() or 1)
THREAD_ROWS = 2_000
CHUNK_ROWS = 4_096
_POOL: list[concurrent.futures.ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads large batches share (made on first need, one per process)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(concurrent.futures.ThreadPoolExecutor(BATCH_THREADS, thread_name_prefix="trees"))
        return _POOL[0]


# Node columns of `FastModel._nodes` (int32, one row per node of every tree, children as global rows)
FEATURE, LEFT, RIGHT, FLAGS, BITSET, KNOWN = range(6)
MISSING_LEFT, CATEGORICAL = 1, 2  # FLAGS bits
KERNEL_BLOCK = 256  # rows walked tree by tree together: their bins stay in cache while each tree's nodes do
LOCKSTEP_ROWS = 16  # a block of fewer rows: each row walks TREE_GROUP trees at once instead (its walks overlap)
TREE_GROUP = 16
MISSING_BIN = 255  # the bin of NaN and of a negative category code: every node sends it to its missing side
# A numeric feature's distinct split thresholds below +inf (its values get bins 0..254; +inf, scikit-learn's
# threshold for a split after the last bin, adds none), and the slots of its row in the thresholds table
MAX_THRESHOLDS = MISSING_BIN - 1
THRESHOLD_SLOTS = 256
WORDS = 8  # uint32 words of a node's 256-bit "goes left" set, one bit per bin
NO_LEAVES = np.empty((0, 0), dtype="float64")  # the kernel's `leaves` when only the sums are wanted
_KERNEL: list[Callable[..., None] | None] = []


def _raw_kernel(
    X: np.ndarray,
    start: int,
    stop: int,
    n_categorical: int,
    thresholds: np.ndarray,
    n_thresholds: np.ndarray,
    record: np.ndarray,
    goes_left: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    lockstep: np.ndarray,
    baseline: float,
    out: np.ndarray,
    leaves: np.ndarray,
) -> None:
    """out[start:stop] = baseline + each tree's leaf value for rows X[start:stop], added tree by tree in order
    (scikit-learn's `_raw_predict`). Compiled by numba (`numba_kernel`); the layout is `FastModel._binned_layout`.
    A `leaves` with rows (trees x rows of X) also gets each tree's leaf value, leaves[t, i]; the trees are those
    `roots` names, which may be any of the layout's (`FastModel.leaves`).

    Each block of rows is first binned, one uint8 per value: NaN -> MISSING_BIN; a categorical code: negative ->
    MISSING_BIN, else the compiled predictor's uint8 cast (`int(min(x, 255))`); a numeric value: how many of its
    feature's sorted split thresholds are < x, so that x <= thresholds[t] exactly when bin <= t (no rounding:
    the float64 comparisons the predictor makes). Then every tree walks the block's rows in lockstep, branch
    free, for the tree's `lockstep` steps: `node = left + 1 - goes_left[node][bin]` (right is left + 1; a leaf
    leads to itself), where a node's 256-bit set holds TreePredictor's rule for every bin (`_binned_layout`).
    The rows of a block are independent, so the processor overlaps their walks instead of waiting on one chain
    of loads and branches. Then each row finishes its walk alone, to its leaf: a tree's depth is about twice its
    mean path here, so walking every row for the whole depth wastes steps, and `lockstep` is the depth by which
    most of the training rows had reached a leaf (`_binned_layout`). A block of fewer than LOCKSTEP_ROWS rows (one
    row) overlaps trees instead: each row walks TREE_GROUP consecutive trees in lockstep, for the deepest
    one's depth, then adds their leaf values in tree order. Dropping the rows that reached a leaf from each
    lockstep step cost as much as it saved (tried)."""
    width = X.shape[1]
    keep = leaves.shape[0] > 0
    bins = np.empty(KERNEL_BLOCK * width, dtype=np.uint8)
    node = np.empty(max(KERNEL_BLOCK, TREE_GROUP), dtype=np.uint32)
    base = np.empty(KERNEL_BLOCK, dtype=np.uint32)
    for first in range(start, stop, KERNEL_BLOCK):
        last = min(first + KERNEL_BLOCK, stop)
        m = last - first
        for k in range(m):
            i = first + k
            out[i] = baseline
            base[k] = k * width
            for j in range(width):
                x = X[i, j]
                if x != x:  # NaN
                    b = MISSING_BIN
                elif j < n_categorical:
                    b = MISSING_BIN if x < 0 else int(min(x, 255.0))
                else:
                    lo, hi = 0, n_thresholds[j]
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if thresholds[j, mid] < x:
                            lo = mid + 1
                        else:
                            hi = mid
                    b = lo
                bins[k * width + j] = b
        if m < LOCKSTEP_ROWS:  # a few rows: each row walks TREE_GROUP consecutive trees in lockstep instead
            for k in range(m):
                for group in range(0, roots.shape[0], TREE_GROUP):
                    trees = min(TREE_GROUP, roots.shape[0] - group)
                    steps = 0
                    for g in range(trees):
                        node[g] = roots[group + g]
                        steps = max(steps, depth[group + g])
                    for _ in range(steps):
                        for g in range(trees):
                            n = node[g]
                            r = record[n]
                            v = np.uint32(bins[base[k] + (r & np.uint32(255))])
                            left = (
                                goes_left[n * np.uint32(WORDS) + (v >> np.uint32(5))] >> (v & np.uint32(31))
                            ) & np.uint32(1)
                            node[g] = (r >> np.uint32(8)) + np.uint32(1) - left
                    for g in range(trees):  # the leaf values in tree order: the same sum
                        out[first + k] += value[node[g]]
                        if keep:
                            leaves[group + g, first + k] = value[node[g]]
            continue
        for t in range(roots.shape[0]):
            root = np.uint32(roots[t])
            for k in range(m):
                node[k] = root
            for _ in range(lockstep[t]):
                for k in range(m):
                    n = node[k]
                    r = record[n]
                    v = np.uint32(bins[base[k] + (r & np.uint32(255))])
                    left = (goes_left[n * np.uint32(WORDS) + (v >> np.uint32(5))] >> (v & np.uint32(31))) & np.uint32(1)
                    node[k] = (r >> np.uint32(8)) + np.uint32(1) - left
            for k in range(m):  # the rest of each row's walk, to its leaf (a leaf leads to itself)
                n = node[k]
                while True:
                    r = record[n]
                    v = np.uint32(bins[base[k] + (r & np.uint32(255))])
                    left = (goes_left[n * np.uint32(WORDS) + (v >> np.uint32(5))] >> (v & np.uint32(31))) & np.uint32(1)
                    after = (r >> np.uint32(8)) + np.uint32(1) - left
                    if after == n:
                        break
                    n = after
                out[first + k] += value[n]
                if keep:
                    leaves[t, first + k] = value[n]


def numba_kernel() -> Callable[..., None] | None:
    """`_raw_kernel` compiled by numba (once per process, lazily: compiling costs ~1 s, on the first call); None
    where numba cannot be imported, and FastModel then keeps its numpy and TreePredictor paths."""
    with _POOL_LOCK:
        if not _KERNEL:
            try:
                import numba
            except ImportError:  # pragma: no cover - numba is a declared dependency; a platform without its wheel
                _KERNEL.append(None)
            else:
                _KERNEL.append(numba.njit(nogil=True, cache=False)(_raw_kernel))
        return _KERNEL[0]


LOCKSTEP_SHARE = 0.8  # the kernel walks a batch's rows in lockstep until about this share has reached a leaf


def _lockstep_depth(nodes: np.ndarray, depth: int) -> int:
    """The depth by which LOCKSTEP_SHARE of the tree's training rows had reached their leaf (its nodes' `count`
    and `depth`, as scikit-learn recorded them while growing it), at most the tree's depth; half the depth where
    the counts say nothing. Only the kernel's speed depends on it (on this model 104-112 ms of CPU for 10,000
    rows against 135-145 walking every row for the whole depth), never a sum: each row then walks to its leaf."""
    leaf = nodes["is_leaf"] == 1
    counts = nodes["count"][leaf].astype("float64")
    levels = nodes["depth"][leaf].astype(np.int64)
    total = counts.sum()
    if not (np.isfinite(total) and total > 0 and np.all(counts >= 0)):
        return depth // 2
    order = np.argsort(levels, kind="stable")
    share = np.cumsum(counts[order]) / total
    reached = int(levels[order][min(int(np.searchsorted(share, LOCKSTEP_SHARE)), len(order) - 1)])
    return max(0, min(reached, depth))


def _bits(words: np.ndarray) -> np.ndarray:
    """(n, 256) booleans of n 256-bit sets held as (n, WORDS) uint32 words (bit b: word b >> 5, bit b & 31)."""
    every_bin = np.arange(256)
    return ((np.asarray(words, dtype=np.uint32)[:, every_bin >> 5] >> (every_bin & 31).astype(np.uint32)) & 1) == 1


def columns_split_on(iterations: Sequence[Sequence[Any]], n_columns: int) -> np.ndarray:
    """(iterations x columns) booleans: whether a tree of each boosting iteration (scikit-learn's TreePredictors,
    one per iteration for a binary model) splits on each column of the estimator's input."""
    reads = np.zeros((len(iterations), n_columns), dtype=bool)
    for i, trees in enumerate(iterations):
        for tree in trees:
            nodes = tree.nodes
            reads[i, np.unique(nodes["feature_idx"][nodes["is_leaf"] == 0])] = True
    return reads


def _text_codes(outer: np.ndarray, inner: np.ndarray | None) -> dict[str, float]:
    """Text -> the code the trees see: the outer encoder's position, mapped through the estimator's encoder."""
    inner_position: dict[float, float] = {}
    if inner is not None:
        for position, value in enumerate(inner):
            if not (isinstance(value, float) and math.isnan(value)):
                inner_position[float(value)] = float(position)
    codes: dict[str, float] = {}
    for position, value in enumerate(outer):
        if isinstance(value, str):
            codes[value] = inner_position.get(float(position), NAN) if inner is not None else float(position)
    return codes


def _passthrough(step: Any) -> bool:
    """'passthrough', or what a fitted ColumnTransformer makes of it (an identity FunctionTransformer)."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(step, str):
        return step == "passthrough"
    return type(step) is FunctionTransformer and step.func is None and step.validate is False


class FastModel:
    """The fitted trees of a binary HistGradientBoostingClassifier behind its encoders (see the module docstring)."""

    def __init__(
        self, estimator: Any, categorical: list[str], numeric: list[str], codes: list[dict[str, float]]
    ) -> None:
        self.categorical = categorical
        self.numeric = numeric
        self._codes = codes
        self._estimator = estimator
        self._trees = [predictors[0] for predictors in estimator._predictors]
        self._baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
        self._known, self._index = estimator._bin_mapper.make_known_categories_bitsets()
        self._stack()
        self._kernel = numba_kernel()  # None: the numpy walk and the compiled predictors (same numbers)
        self._kernel_args = self._binned_layout() if self._kernel is not None and self._trees else None

    def _stack(self) -> None:
        """Every tree's nodes in one set of flat arrays (children as global positions), for `_walk`."""
        nodes, bitsets, offset, bitset_offset, roots = [], [], 0, 0, []
        for tree in self._trees:
            n = tree.nodes
            roots.append(offset)
            nodes.append(
                {
                    "feature": n["feature_idx"].astype(np.intp),
                    "threshold": n["num_threshold"].astype("float64"),
                    "missing_left": n["missing_go_to_left"].astype(bool),
                    "left": n["left"].astype(np.intp) + offset,
                    "right": n["right"].astype(np.intp) + offset,
                    "leaf": n["is_leaf"].astype(bool),
                    "value": n["value"].astype("float64"),
                    "categorical": n["is_categorical"].astype(bool),
                    "bitset": n["bitset_idx"].astype(np.intp) + bitset_offset,
                }
            )
            bitsets.append(np.asarray(tree.raw_left_cat_bitsets, dtype=np.uint32).reshape(-1, 8))
            offset += len(n)
            bitset_offset += len(bitsets[-1])
        self._n: dict[str, np.ndarray] = (
            {key: np.concatenate([part[key] for part in nodes]) for key in nodes[0]} if nodes else {}
        )
        self._roots = np.asarray(roots, dtype=np.intp)
        self._bitsets = np.concatenate([*bitsets, np.zeros((1, 8), dtype=np.uint32)])
        self._known_bits = np.concatenate(
            [np.asarray(self._known, dtype=np.uint32).reshape(-1, 8), np.zeros((1, 8), np.uint32)]
        )
        self._f_index = np.asarray(self._index, dtype=np.intp)
        n = self._n
        if n:  # for `_raw_kernel`: one int32 row per node (a leaf's feature is -1), thresholds and values
            is_leaf = n["leaf"]
            flags = n["missing_left"].astype(np.int32) * MISSING_LEFT + n["categorical"].astype(np.int32) * CATEGORICAL
            self._nodes = np.ascontiguousarray(
                np.stack(
                    [
                        np.where(is_leaf, -1, n["feature"]),
                        n["left"],
                        n["right"],
                        np.where(is_leaf, 0, flags),
                        n["bitset"],
                        self._f_index[np.where(is_leaf, 0, n["feature"])],
                    ],
                    axis=1,
                ).astype(np.int32)
            )
        if self._n:  # for `_walk`: a leaf leads to itself, and the categorical split nodes' own arrays
            n = self._n
            position = np.arange(len(n["leaf"]), dtype=np.intp)
            self._left_of = np.where(n["leaf"], position, n["left"])
            self._right_of = np.where(n["leaf"], position, n["right"])
            cat = np.flatnonzero(n["categorical"] & ~n["leaf"])
            self._cat_nodes = cat
            self._cat_feature = n["feature"][cat]
            self._cat_missing_left = n["missing_left"][cat]
            self._cat_bitset = n["bitset"][cat]
            self._cat_known = self._f_index[n["feature"][cat]]

    def _binned_layout(self) -> tuple[Any, ...] | None:
        """The arrays `_raw_kernel` reads after its own arguments, from the stacked nodes; None where the trees do
        not fit the layout (a numeric feature with more than MAX_THRESHOLDS distinct finite thresholds, a NaN one, a
        split on a column of the other kind, a category code 255 in a bitset, a tree that unrolls to more nodes
        than it has): the numpy paths then score, with the same numbers.

        - thresholds, n_thresholds: each numeric feature's sorted distinct split thresholds (padded with inf);
        - record (uint32): a node's left child << 8 | its feature, the nodes of each tree renumbered breadth first
          so that a split's right child is left + 1; a leaf is its own left child;
        - goes_left (uint32, WORDS per node): bit b says whether bin b goes left, TreePredictor's rule for every
          bin: numeric, b <= the threshold's rank; categorical, b in the left bitset, or (not a known category of
          the feature) and the node's missing side is left; MISSING_BIN, the missing side. A leaf's are all set.
        - value (float64), roots, depth (the longest walk of each tree), lockstep (`_lockstep_depth`)."""
        nodes, n_columns = self._nodes, len(self.categorical) + len(self.numeric)
        n_categorical = len(self.categorical)
        if n_columns > 256 or len(nodes) >= 1 << 24:
            return None
        ends = np.append(self._roots[1:], len(nodes))
        order: list[int] = []
        left_new: list[int] = []
        level: list[int] = []
        roots, depth, lockstep = [], [], []
        for root, end in zip(self._roots.tolist(), ends.tolist(), strict=True):
            base = len(order)
            roots.append(base)
            order.append(root)
            level.append(0)
            k = base
            while k < len(order):
                old = order[k]
                if nodes[old, FEATURE] >= 0:
                    if len(order) + 2 - base > end - root:  # shared children: more nodes than the tree has
                        return None
                    left_new.append(len(order))
                    order.extend((int(nodes[old, LEFT]), int(nodes[old, RIGHT])))
                    level.extend((level[k] + 1, level[k] + 1))
                else:
                    left_new.append(k)
                k += 1
            depth.append(max(level[base:]))
            lockstep.append(_lockstep_depth(self._trees[len(roots) - 1].nodes, depth[-1]))
        old_of = np.asarray(order, dtype=np.intp)
        feature = nodes[old_of, FEATURE]
        flags = nodes[old_of, FLAGS]
        split = feature >= 0
        categorical = split & (flags & CATEGORICAL != 0)
        numeric = split & ~categorical
        if np.any(categorical & (feature >= n_categorical)) or np.any(numeric & (feature < n_categorical)):
            return None
        threshold = self._n["threshold"][old_of]
        if np.any(np.isnan(threshold[numeric])):
            return None
        thresholds = np.full((n_columns, THRESHOLD_SLOTS), np.inf)
        n_thresholds = np.zeros(n_columns, dtype=np.int32)
        rank = np.zeros(len(old_of), dtype=np.intp)
        for j in range(n_categorical, n_columns):
            on = numeric & (feature == j)
            distinct = np.unique(threshold[on])
            if np.count_nonzero(distinct < np.inf) > MAX_THRESHOLDS:  # a value's bin would reach MISSING_BIN
                return None
            thresholds[j, : len(distinct)] = distinct
            n_thresholds[j] = len(distinct)
            rank[on] = np.searchsorted(distinct, threshold[on])
        missing_left = flags & MISSING_LEFT != 0
        every_bin = np.arange(256)
        left = np.zeros((len(old_of), 256), dtype=bool)
        left[numeric] = every_bin[None, :] <= rank[numeric, None]
        if np.any(categorical):
            codes_left = _bits(self._bitsets[nodes[old_of[categorical], BITSET]])
            known = _bits(self._known_bits[nodes[old_of[categorical], KNOWN]])
            if np.any(codes_left[:, MISSING_BIN]) or np.any(known[:, MISSING_BIN]):
                return None  # code 255 would share the missing bin
            left[categorical] = codes_left | (~known & missing_left[categorical, None])
        left[split, MISSING_BIN] = missing_left[split]
        left[~split] = True
        position = np.arange(len(old_of))
        record = (np.where(split, np.asarray(left_new), position).astype(np.uint32) << 8) | np.where(split, feature, 0)
        weights = np.uint32(1) << np.arange(32, dtype=np.uint32)
        words = (left.reshape(len(old_of), WORDS, 32).astype(np.uint32) * weights).sum(axis=2, dtype=np.uint32)
        return (
            n_categorical,
            thresholds,
            n_thresholds,
            np.ascontiguousarray(record, dtype=np.uint32),
            np.ascontiguousarray(words.ravel()),
            np.ascontiguousarray(self._n["value"][old_of]),
            np.asarray(roots, dtype=np.uint32),
            np.asarray(depth, dtype=np.int32),
            np.asarray(lockstep, dtype=np.int32),
            self._baseline,
        )

    @staticmethod
    def build(pipeline: Any) -> FastModel | None:
        """A FastModel for a Pipeline(ColumnTransformer(OrdinalEncoder, passthrough), binary HGB classifier) as
        the train stage fits it; None for any other shape."""
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OrdinalEncoder

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None
        encode, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(encode, ColumnTransformer) or type(estimator) is not HistGradientBoostingClassifier:
            return None
        if getattr(estimator, "n_trees_per_iteration_", None) != 1 or len(estimator.classes_) != 2:
            return None
        parts = [(name, step, list(columns)) for name, step, columns in encode.transformers_ if name != "remainder"]
        remainder = [t for t in encode.transformers_ if t[0] == "remainder"]
        if remainder and remainder[0][1] != "drop" and len(remainder[0][2]):
            return None
        if len(parts) != 2 or not isinstance(parts[0][1], OrdinalEncoder) or not _passthrough(parts[1][1]):
            return None
        if any(isinstance(c, int | np.integer) for c in parts[0][2] + parts[1][2]):
            return None
        categorical, numeric = parts[0][2], parts[1][2]
        outer = parts[0][1]
        if not (np.isnan(outer.unknown_value) and np.isnan(outer.encoded_missing_value)):
            return None
        mask = estimator.is_categorical_
        n_cat = len(categorical)
        if mask is None:
            if n_cat:
                return None
            inner_categories: Sequence[np.ndarray | None] = []
        else:
            if list(mask) != [True] * n_cat + [False] * len(numeric):  # the estimator keeps the order only then
                return None
            inner = estimator._preprocessor.named_transformers_["encoder"]
            inner_categories = list(inner.categories_)
        codes = [
            _text_codes(
                np.asarray(outer.categories_[j], dtype=object), inner_categories[j] if mask is not None else None
            )
            for j in range(n_cat)
        ]
        try:
            fast = FastModel(estimator, categorical, numeric, codes)
        except IndexError:  # a node's index past an array while stacking them: see well_formed
            return None
        return fast if fast.well_formed() else None

    def well_formed(self) -> bool:
        """Every index the walks follow is in range, and every child comes after its parent within its own tree
        (so every walk ends at a leaf). The kernel reads the node arrays without bounds checks: a package whose
        trees break this (verified bytes, crafted numbers) gets no fast scorer, not a read outside an array."""
        if not self._trees:
            return True
        nodes, n_features = self._nodes, len(self.categorical) + len(self.numeric)
        ends = np.repeat(np.append(self._roots[1:], len(nodes)), np.diff(np.append(self._roots, len(nodes))))
        position = np.arange(len(nodes))
        split = nodes[:, FEATURE] >= 0
        categorical = split & (nodes[:, FLAGS] & CATEGORICAL != 0)
        checks = [
            np.all(nodes[:, FEATURE] < n_features) and np.all(nodes[:, FEATURE] >= -1),
            np.all((nodes[split, LEFT] > position[split]) & (nodes[split, LEFT] < ends[split])),
            np.all((nodes[split, RIGHT] > position[split]) & (nodes[split, RIGHT] < ends[split])),
            np.all((nodes[categorical, BITSET] >= 0) & (nodes[categorical, BITSET] < len(self._bitsets))),
            np.all((nodes[categorical, KNOWN] >= 0) & (nodes[categorical, KNOWN] < len(self._known_bits))),
            self._bitsets.shape[1] == 8 and self._known_bits.shape[1] == 8,
        ]
        return bool(all(checks)) and (self._kernel_args is None or self._layout_in_range(n_features))

    def _layout_in_range(self, n_features: int) -> bool:
        """`well_formed` for the arrays `_raw_kernel` reads: every feature a column of X, every split's children
        (left, left + 1) after it within its own tree, every leaf its own left child with every bin going left (so
        a walk stays on it), one goes_left set and one value per node, each tree's depth within its size, and each
        numeric feature's thresholds inside their table."""
        assert self._kernel_args is not None
        n_categorical, thresholds, n_thresholds, record, goes_left, value, roots, depth, lockstep, _ = self._kernel_args
        n = len(record)
        if len(roots) != len(self._trees) or len(depth) != len(roots) or n == 0 or int(roots[0]) != 0:
            return False
        starts = roots.astype(np.int64)
        ends = np.append(starts[1:], n)
        if np.any(ends <= starts):
            return False
        end_of = np.repeat(ends, ends - starts)
        position = np.arange(n)
        feature, left = (record & 255).astype(np.int64), (record >> 8).astype(np.int64)
        leaf = left == position
        full = np.uint32(0xFFFFFFFF)
        checks = [
            0 <= n_categorical <= n_features,
            thresholds.shape == (n_features, THRESHOLD_SLOTS) and n_thresholds.shape == (n_features,),
            bool(np.all((n_thresholds >= 0) & (n_thresholds < THRESHOLD_SLOTS))),
            bool(np.all(np.sum(thresholds < np.inf, axis=1) <= MAX_THRESHOLDS)),
            len(goes_left) == WORDS * n and len(value) == n,
            bool(np.all(feature < n_features)),
            bool(np.all(leaf | ((left > position) & (left + 1 < end_of)))),
            bool(np.all(goes_left.reshape(n, WORDS)[leaf] == full)),
            bool(np.all((depth >= 0) & (depth < ends - starts))),
            len(lockstep) == len(roots) and bool(np.all((lockstep >= 0) & (lockstep <= depth))),
        ]
        return all(checks)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The float64 rows the trees read: categorical codes by dict lookup, numeric columns as float64."""
        n = len(frame)
        out = np.empty((n, len(self.categorical) + len(self.numeric)), dtype="float64")
        for j, name in enumerate(self.categorical):  # each distinct value looked up once (pandas' factorize)
            positions, distinct = pd.factorize(frame[name], use_na_sentinel=True)  # missing: -1
            get = self._codes[j].get
            table = [get(v, NAN) if isinstance(v, str) else NAN for v in np.asarray(distinct, dtype=object)]
            out[:, j] = np.asarray([*table, NAN], dtype="float64")[positions]  # -1: the NaN at the end
        out[:, len(self.categorical) :] = frame[self.numeric].to_numpy(dtype="float64", na_value=np.nan)
        return out

    def matrix_of_columns(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """`matrix` of model inputs given as plain columns (serving.record_features: text or None,
        numbers as floats), without a DataFrame."""
        n = len(columns[self.numeric[0]]) if self.numeric else len(columns[self.categorical[0]])
        out = np.empty((n, len(self.categorical) + len(self.numeric)), dtype="float64")
        for j, name in enumerate(self.categorical):
            get = self._codes[j].get
            out[:, j] = [get(v, NAN) if isinstance(v, str) else NAN for v in columns[name]]
        if self.numeric:
            out[:, len(self.categorical) :] = np.array([columns[c] for c in self.numeric], dtype="float64").T
        return out

    def _walk(self, X: np.ndarray) -> np.ndarray:
        """Leaf values (rows x trees), for a few rows: every split node of every tree decided at once with numpy
        (the compiled predictor's rules: missing -> the node's missing side; a category in the left bitset ->
        left, another known one -> right, an unknown or negative one -> the missing side; a number <= threshold ->
        left), then each tree followed from its root through those decisions, one step per level."""
        n = self._n
        value = X[:, n["feature"]]  # rows x nodes
        missing = np.isnan(value)
        left = np.where(missing, n["missing_left"], value <= n["threshold"])
        if len(self._cat_nodes):
            cat_value = value[:, self._cat_nodes]
            cat_missing = missing[:, self._cat_nodes]
            negative = cat_value < 0
            code = np.where(cat_missing | negative, 0, np.minimum(np.where(cat_missing, 0, cat_value), 255))
            code = code.astype(np.intp)
            word, bit = code >> 5, (code & 31).astype(np.uint32)
            in_left = ((self._bitsets[self._cat_bitset, word] >> bit) & 1).astype(bool)
            known = ((self._known_bits[self._cat_known, word] >> bit) & 1).astype(bool)
            cat_left = np.where(negative, self._cat_missing_left, in_left | (~known & self._cat_missing_left))
            left[:, self._cat_nodes] = np.where(cat_missing, self._cat_missing_left, cat_left)
        following = np.where(left, self._left_of, self._right_of)  # rows x nodes: where each node leads
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self._roots, (len(X), len(self._roots)))
        while True:
            after = following[rows, node]
            if np.array_equal(after, node):  # every walk has reached its leaf (a leaf leads to itself)
                return n["value"][node]
            node = after

    @property
    def compiled(self) -> bool:
        """Whether the trees are walked by the compiled kernel (else the numpy walk: slower for one row)."""
        return self._kernel is not None and self._kernel_args is not None

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The summed leaf values of each row (scikit-learn's `_raw_predict`: same trees, same order of sums)."""
        X = np.ascontiguousarray(X, dtype="float64")
        if self.compiled:
            return self._raw_by_kernel(X)
        if len(X) * len(self._trees) <= WALK_CELLS:  # a few rows: each walked through every tree at once
            out = np.empty(len(X), dtype="float64")
            for i in range(len(X)):
                leaves = self._walk(X[i : i + 1])[0]
                out[i] = np.cumsum(np.concatenate([[self._baseline], leaves]))[-1]  # sequential, as sklearn adds
            return out
        raw = np.full(len(X), self._baseline, dtype="float64")
        for start in range(0, len(X), CHUNK_ROWS):
            part = X[start : start + CHUNK_ROWS]
            for leaves in self._leaves(part):  # tree by tree, in order: the same sums as sklearn's
                raw[start : start + len(part)] += leaves
        return raw

    def _raw_by_kernel(self, X: np.ndarray) -> np.ndarray:
        """`raw` by the compiled kernel."""
        assert self._kernel_args is not None
        return self._run_kernel(X, self._kernel_args, NO_LEAVES)

    def _run_kernel(self, X: np.ndarray, layout: tuple[Any, ...], leaves: np.ndarray) -> np.ndarray:
        """The kernel over X's rows with `layout`; a batch of at least THREAD_ROWS rows split into BATCH_THREADS
        row ranges, one per thread (each writes only its own rows; every row's sum is the same whatever the split)."""
        kernel = self._kernel
        assert kernel is not None
        out = np.empty(len(X), dtype="float64")
        workers = BATCH_THREADS if len(X) >= THREAD_ROWS else 1
        if workers == 1:
            kernel(X, 0, len(X), *layout, out, leaves)
            return out
        bounds = np.linspace(0, len(X), workers + 1).astype(int)
        ranges = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        list(_pool().map(lambda r: kernel(X, r[0], r[1], *layout, out, leaves), ranges))
        return out

    @property
    def classes(self) -> np.ndarray:
        """The classifier's two class labels (the second is the positive class)."""
        return np.asarray(self._estimator.classes_)

    @property
    def baseline(self) -> float:
        """The raw score every row starts from (the estimator's baseline prediction)."""
        return self._baseline

    def split_columns(self) -> np.ndarray:
        """(trees x columns) booleans: whether each tree, in the model's order, splits on each column of a `matrix`."""
        return columns_split_on([[tree] for tree in self._trees], len(self.categorical) + len(self.numeric))

    def leaves(self, X: np.ndarray, trees: np.ndarray) -> np.ndarray:
        """The leaf value of each of `trees` (positions in the model's order) for each row of a `matrix`, as
        (trees x rows): `raw` of a row is the baseline plus its column's values added in the model's order. Only
        those trees are walked by the kernel; without it, every tree's compiled predictor gives them."""
        X = np.ascontiguousarray(X, dtype="float64")
        trees = np.asarray(trees, dtype=np.intp)
        if not self.compiled:
            return self._leaves(X)[trees]
        assert self._kernel_args is not None
        out = np.empty((len(trees), len(X)), dtype="float64")
        if len(trees) and len(X):
            *head, roots, depth, lockstep, baseline = self._kernel_args
            self._run_kernel(X, (*head, roots[trees], depth[trees], lockstep[trees], baseline), out)
        return out

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """Each tree's leaf values (trees x rows) by its compiled predictor; the trees split between threads for a
        large batch (the compiled predictor releases the GIL; each thread fills its own rows of the result)."""
        out = np.empty((len(self._trees), len(X)), dtype="float64")
        workers = BATCH_THREADS if len(X) >= THREAD_ROWS else 1

        def fill(first: int) -> None:
            for t in range(first, len(self._trees), workers):
                out[t] = self._trees[t].predict(X, known_cat_bitsets=self._known, f_idx_map=self._index, n_threads=1)

        if workers > 1:
            list(_pool().map(fill, range(workers)))
        else:
            fill(0)
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of the positive class per row of `frame` (the model-input columns)."""
        return self.probability(self.matrix(frame))

    def probability(self, X: np.ndarray) -> np.ndarray:
        """The probability of the positive class per row of a `matrix`."""
        raw = self.raw(X)
        return np.asarray(self._estimator._loss.predict_proba(raw.reshape(-1, 1))[:, 1], dtype="float64")

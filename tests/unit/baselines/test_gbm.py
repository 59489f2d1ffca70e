"""The tree baseline: it learns a signal in one column, reads columns by name, and says
which settings are out of range."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitalgru.baselines.gbm import GBMParams, fit_gbm, predict_gbm
from vitalgru.metrics.ranking import auroc


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    x["never_seen"] = np.nan
    y = (x["f2"] + 0.3 * rng.normal(size=n) > 1.5).astype(np.int8).to_numpy()
    return x, y


def test_learns_the_signal_with_feature_subsampling() -> None:
    x, y = _data(6000, 0)
    params = GBMParams(max_iter=40, min_samples_leaf=20, max_features=0.5)
    clf = fit_gbm(x, y, params)
    assert clf.max_features == 0.5
    assert "never_seen" not in clf.feature_names_in_  # nothing to learn from
    xt, yt = _data(3000, 1)
    risk = predict_gbm(clf, xt[list(reversed(xt.columns))])  # columns are read by name
    assert auroc(yt, risk) > 0.95
    # deterministic for a seed, feature draws included
    np.testing.assert_array_equal(risk, predict_gbm(fit_gbm(x, y, params), xt))


@pytest.mark.parametrize(
    ("field", "value"), [("max_features", 0.0), ("max_features", 1.5), ("negative_subsample", 0.0)]
)
def test_out_of_range_settings(field: str, value: float) -> None:
    x, y = _data(500, 0)
    with pytest.raises(ValueError, match=field):
        fit_gbm(x, y, GBMParams(max_iter=2, **{field: value}))


def test_a_column_seen_only_in_rows_the_subsample_drops() -> None:
    # (a small cohort: a lactate drawn in a few negative hours, none kept) the binner got a
    # column without a value and failed with an unrelated-looking error
    x, y = _data(2000, 2)
    x["rare"] = np.nan
    x.loc[np.flatnonzero(y == 0)[:3], "rare"] = 1.0
    params = GBMParams(max_iter=5, negative_subsample=0.001, seed=0)
    keep = (y == 1) | (np.random.default_rng(0).random(y.size) < 0.001)
    assert x.loc[keep, "rare"].isna().all()  # the case: every value in a dropped row
    clf = fit_gbm(x, y, params)
    assert "rare" not in clf.feature_names_in_
    assert predict_gbm(clf, x).shape == (2000,)

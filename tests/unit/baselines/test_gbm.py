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

"""The normalisation statistics of the GRU-D inputs, fitted without touching the process's
warning filters."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitalgru.data.early_warning import build_cohort
from vitalgru.data.gru_d_inputs import fit_norm_stats
from vitalgru.io.psv import MEASUREMENT_COLUMNS


class TestFitNormStats:
    def test_an_all_nan_column_is_fitted_without_swapping_the_warning_filters(
        self, physionet_mirror: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # warnings.catch_warnings swaps the process's filter list (Python 3.11): a thread
        # beside the fit (a Prefect task runner's, MLflow's) could lose a filter it set,
        # or be left with "ignore RuntimeWarning"
        cohort = build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=60)
        vals = cohort.frame[list(MEASUREMENT_COLUMNS)].to_numpy(np.float64)
        empty = np.isnan(vals).all(axis=0)
        assert empty.any() and not empty.all()  # EtCO2 is never measured in set A
        real, callers = warnings.catch_warnings, []

        def watched(*args: Any, **kwargs: Any) -> Any:
            callers.append(sys._getframe(1).f_globals.get("__name__", ""))
            return real(*args, **kwargs)

        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            monkeypatch.setattr(warnings, "catch_warnings", watched)
            stats = fit_norm_stats(cohort, engineered=True)
            monkeypatch.setattr(warnings, "catch_warnings", real)
        assert [c for c in callers if c.startswith("vitalgru")] == []
        assert [str(w.message) for w in seen if w.category is RuntimeWarning] == []
        with warnings.catch_warnings():  # the numbers numpy gives, to the bit
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
        assert stats.mean == np.where(np.isfinite(mean), mean, 0.0).tolist()
        assert stats.std == np.where(np.isfinite(std) & (std > 1e-6), std, 1.0).tolist()
        assert stats.unseen == [c for c, e in zip(MEASUREMENT_COLUMNS, empty, strict=True) if e]
        assert len(stats.engineered) > 0 and np.isfinite(stats.engineered_mean).all()

"""Boosted trees as tensors: exact agreement with scikit-learn, storage contract, and the
GRU-D + trees blend (weighted mean of the two risks, streaming like the GRU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from vitalgru.models.base import build_model, check_model_contract, model_class_path
from vitalgru.models.early_warning import GRUDEarlyWarning, SepsisBlend
from vitalgru.models.trees import BoostedTrees

F, S, H, N_TREE = 4, 2, 8, 6


@pytest.fixture(scope="module")
def fitted() -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, N_TREE)).astype(np.float32)
    x[rng.random(x.shape) < 0.25] = np.nan  # missing values take their learned side
    signal = np.nan_to_num(x[:, 0]) + np.isnan(x[:, 1]) - 0.5 * np.nan_to_num(x[:, 2])
    y = (signal + rng.normal(scale=0.7, size=x.shape[0]) > 0.4).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=25, max_leaf_nodes=15, early_stopping=False)
    return clf.fit(x, y), x


class TestBoostedTrees:
    def test_matches_sklearn_with_missing_values(self, fitted):
        clf, x = fitted
        trees = BoostedTrees.from_sklearn(clf)
        raw = trees.raw_score(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(raw, clf.decision_function(x), rtol=0, atol=1e-9)
        logit, h = trees(torch.from_numpy(x).reshape(30, 100, N_TREE))
        assert logit.shape == (30, 100, 1) and h.numel() == 0
        np.testing.assert_allclose(
            torch.sigmoid(logit).reshape(-1).numpy(), clf.predict_proba(x)[:, 1], atol=1e-6
        )

    def test_stored_as_config_and_tensors(self, fitted):
        clf, x = fitted
        trees = BoostedTrees.from_sklearn(clf)
        cfg = json.loads(json.dumps(check_model_contract(trees)))
        again = build_model(model_class_path(trees), cfg)
        again.load_state_dict(trees.state_dict())
        xt = torch.from_numpy(x[:200])
        torch.testing.assert_close(again.raw_score(xt), trees.raw_score(xt))

    def test_rejects_wrong_width_and_unfitted(self, fitted):
        clf, _ = fitted
        trees = BoostedTrees.from_sklearn(clf)
        with pytest.raises(ValueError, match="features"):
            trees.raw_score(torch.zeros(3, N_TREE + 1))
        with pytest.raises(ValueError, match="not fitted"):
            BoostedTrees.from_sklearn(HistGradientBoostingClassifier())

    def test_corrupt_tables_fail_loudly(self, fitted):
        clf, x = fitted
        trees = BoostedTrees.from_sklearn(clf)
        with torch.no_grad():
            trees.is_leaf.zero_()  # no leaf anywhere: the walk cannot end
        with pytest.raises(ValueError, match="corrupt"):
            trees.raw_score(torch.from_numpy(x[:5]))


def _gru_x(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(b, t, F, generator=g) > 0.5).float()
    parts = [torch.randn(b, t, F, generator=g) * mask, mask, torch.rand(b, t, F, generator=g),
             torch.randn(b, t, F, generator=g), torch.randn(b, t, S, generator=g)]  # fmt: skip
    return torch.cat(parts, dim=-1)


class TestSepsisBlend:
    @pytest.fixture()
    def blend(self, fitted) -> SepsisBlend:
        torch.manual_seed(0)
        gru = GRUDEarlyWarning(F, S, hidden_size=H, dropout=0.0).eval()
        return SepsisBlend.of(gru, BoostedTrees.from_sklearn(fitted[0]), gru_weight=0.3).eval()

    def _x(self, fitted, b: int, t: int) -> torch.Tensor:
        tree_x = torch.from_numpy(fitted[1][: b * t].reshape(b, t, N_TREE))
        return torch.cat([_gru_x(b, t), tree_x], dim=-1)

    def test_risk_is_weighted_mean_of_the_two(self, blend, fitted):
        x = self._x(fitted, 3, 10)
        with torch.no_grad():
            logit, h = blend(x)
            g, _ = blend.gru(x[..., : blend.gru_inputs])
        p_trees = fitted[0].predict_proba(fitted[1][:30])[:, 1].reshape(3, 10)
        want = 0.3 * torch.sigmoid(g[..., 0]).numpy() + 0.7 * p_trees
        np.testing.assert_allclose(torch.sigmoid(logit[..., 0]).numpy(), want, atol=1e-5)
        assert h.shape == (1, 3, H)

    def test_the_last_hour_alone_is_the_last_hour_of_all(self, blend, fitted):
        x = self._x(fitted, 3, 10)
        with torch.no_grad():
            whole, h = blend(x)
            last, h_last = blend(x, last_only=True)
            g_last, _ = blend.gru(x[..., : blend.gru_inputs], None, True)
        assert last.shape == (3, 1, 1) and g_last.shape == (3, 1, 1)
        torch.testing.assert_close(last, whole[:, -1:])
        torch.testing.assert_close(h_last, h)

    def test_streams_like_one_pass_and_round_trips(self, blend, fitted):
        x = self._x(fitted, 2, 12)
        with torch.no_grad():
            whole, _ = blend(x)
            a, h = blend(x[:, :5])
            b, _ = blend(x[:, 5:], h)
        torch.testing.assert_close(torch.cat([a, b], dim=1), whole)
        cfg = json.loads(json.dumps(check_model_contract(blend)))
        again = build_model(model_class_path(blend), cfg)
        again.load_state_dict(blend.state_dict())
        again.eval()
        with torch.no_grad():
            torch.testing.assert_close(again(x)[0], whole)

    def test_bad_weight_and_width(self, blend, fitted):
        with pytest.raises(ValueError, match="gru_weight"):
            SepsisBlend(blend.gru.config_dict(), blend.trees.config_dict(), gru_weight=1.5)
        with pytest.raises(ValueError, match="x must be"):
            blend(torch.zeros(1, 2, blend.input_size - 1))

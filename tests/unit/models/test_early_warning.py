"""GRU-D early-warning network: contract, causality, streaming, decay behaviour."""

from __future__ import annotations

import json

import pytest
import torch

from vitalgru.models.base import check_model_contract
from vitalgru.models.early_warning import GRUDEarlyWarning

F, S, H = 5, 3, 16


def _x(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    val = torch.randn(b, t, F, generator=g)
    mask = (torch.rand(b, t, F, generator=g) > 0.5).float()
    delta = torch.rand(b, t, F, generator=g)
    last = torch.randn(b, t, F, generator=g)
    static = torch.randn(b, t, S, generator=g)
    return torch.cat([val * mask, mask, delta, last, static], dim=-1)


@pytest.fixture()
def model() -> GRUDEarlyWarning:
    torch.manual_seed(0)
    return GRUDEarlyWarning(F, S, hidden_size=H, dropout=0.0).eval()


class TestContract:
    def test_shapes(self, model):
        logits, h = model(_x(4, 9))
        assert logits.shape == (4, 9, 1) and h.shape == (1, 4, H)

    def test_round_trip_config_any_length(self, model):
        cfg = json.loads(json.dumps(model.config_dict()))
        check_model_contract(model)
        m2 = GRUDEarlyWarning.from_config(cfg)
        m2.load_state_dict(model.state_dict())
        m2.eval()
        for t in (1, 7, 50):
            x = _x(2, t)
            torch.testing.assert_close(m2(x)[0], model(x)[0])

    def test_bad_input(self, model):
        with pytest.raises(ValueError, match="x must be"):
            model(torch.zeros(2, 3, 4 * F + S + 1))
        with pytest.raises(ValueError, match="h0 must be"):
            model(_x(2, 3), torch.zeros(1, 3, H))
        with pytest.raises(ValueError):
            GRUDEarlyWarning(0, S)

    def test_unmeasured_value_not_read_nan_elsewhere_refused(self, model):
        x = _x(2, 6)
        want, h_want = model(x)
        y = x.clone()
        unmeasured = y[..., F : 2 * F] == 0
        y[..., :F][unmeasured] = float("nan")  # spoiled every later hour before
        got, h = model(y)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(h, h_want)
        for col in (0, 3 * F):  # a measured value, a last value
            z = x.clone()
            z[..., 1 * F : 2 * F] = 1.0
            z[0, 2, col] = float("nan")
            with pytest.raises(ValueError, match="NaN"):
                model(z)


class TestCausalAndStreaming:
    def test_future_does_not_change_past(self, model):
        x = _x(3, 20)
        y = x.clone()
        y[:, 12:] = torch.randn_like(y[:, 12:])
        torch.testing.assert_close(model(x)[0][:, :12], model(y)[0][:, :12])
        assert not torch.allclose(model(x)[0][:, 12:], model(y)[0][:, 12:])

    def test_chunked_equals_whole(self, model):
        x = _x(2, 31)
        whole, h_whole = model(x)
        parts, h = [], None
        for a, b in ((0, 1), (1, 10), (10, 11), (11, 31)):
            out, h = model(x[:, a:b], h)
            parts.append(out)
        torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(h, h_whole, atol=1e-6, rtol=1e-5)


class TestDecay:
    def test_missing_value_decays_toward_mean(self, model):
        # One feature missing now, last observed at +3 (z-score): with a long gap the
        # imputed input moves toward the training mean (0), so it must matter less.
        with torch.no_grad():
            model.decay_x_w.fill_(1.0)
        base = torch.zeros(1, 1, 4 * F + S)
        base[..., 3 * F] = 3.0  # last value of feature 0
        short, long_ = base.clone(), base.clone()
        short[..., 2 * F] = 0.01  # delta of feature 0
        long_[..., 2 * F] = 10.0
        ref = torch.zeros_like(base)
        ref[..., 2 * F] = 10.0
        d_short = (model(short)[0] - model(ref)[0]).abs().item()
        d_long = (model(long_)[0] - model(ref)[0]).abs().item()
        assert d_long < d_short

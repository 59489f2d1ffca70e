"""ArrhythmiaGRU: shapes, causality, chunked streaming equals whole, config round trip."""

from __future__ import annotations

import json

import pytest
import torch

from vitalgru.models.arrhythmia import (
    ArrhythmiaEnsemble,
    ArrhythmiaGRU,
    apply_quality_gate,
    check_quality_gate,
)
from vitalgru.models.base import check_model_contract


def _inputs(b: int = 2, t: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 2 * 252 + 10, generator=g)


@pytest.fixture()
def model() -> ArrhythmiaGRU:
    torch.manual_seed(0)
    return ArrhythmiaGRU(hidden=16, d_beat=16, conv_widths=(8, 8), num_layers=2).eval()


class TestArrhythmiaGRU:
    def test_shapes(self, model: ArrhythmiaGRU) -> None:
        x = _inputs()
        assert model.n_features == x.shape[-1]
        logits, h = model(x)
        assert logits.shape == (2, 12, 5)
        assert h.shape == (2, 2, 16)

    def test_causal_in_beats(self, model: ArrhythmiaGRU) -> None:
        x = _inputs()
        x2 = x.clone()
        x2[:, 7:] += 5.0
        a, _ = model(x)
        b, _ = model(x2)
        torch.testing.assert_close(a[:, :7], b[:, :7])
        assert not torch.allclose(a[:, 7:], b[:, 7:])

    def test_chunked_equals_whole(self, model: ArrhythmiaGRU) -> None:
        x = _inputs(t=13)
        whole, h_whole = model(x)
        parts, h = [], None
        for s in range(0, 13, 4):
            out, h = model(x[:, s : s + 4], h)
            parts.append(out)
        torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(h, h_whole, atol=1e-5, rtol=1e-5)

    def test_config_round_trip_any_length(self, model: ArrhythmiaGRU) -> None:
        cfg = json.loads(json.dumps(model.config_dict()))
        clone = ArrhythmiaGRU.from_config(cfg).eval()
        clone.load_state_dict(model.state_dict())
        for t in (1, 5, 40):
            x = _inputs(b=1, t=t, seed=t)
            torch.testing.assert_close(clone(x)[0], model(x)[0])

    def test_meets_storage_contract(self, model: ArrhythmiaGRU) -> None:
        assert check_model_contract(model) == json.loads(json.dumps(model.config_dict()))

    def test_input_validation(self, model: ArrhythmiaGRU) -> None:
        x = _inputs()
        with pytest.raises(ValueError, match="x must be"):
            model(x[..., :-1])
        with pytest.raises(ValueError, match="x must be"):
            model(x[0])
        with pytest.raises(TypeError, match="unexpected"):
            model(x, rr=x)
        with pytest.raises(ValueError, match="hidden"):
            ArrhythmiaGRU(hidden=0)
        with pytest.raises(ValueError, match="dropout"):
            ArrhythmiaGRU(dropout=1.0)

    def test_nan_refused_not_carried(self, model: ArrhythmiaGRU) -> None:
        # one NaN sample made every later logit and the carried state NaN (argmax: N)
        x = _inputs()
        x[0, 3, 10] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            model(x)
        x[0, 3, 10] = float("inf")
        with pytest.raises(ValueError, match="NaN or infinite"):
            ArrhythmiaEnsemble.of([model])(x)

    def test_no_beats_keeps_the_state(self, model: ArrhythmiaGRU) -> None:
        x = _inputs(t=0)
        logits, h = model(x)
        assert logits.shape == (2, 0, 5) and torch.equal(h, torch.zeros(2, 2, 16))
        _, h3 = model(_inputs(t=3))
        assert torch.equal(model(x, h3)[1], h3)
        ens = ArrhythmiaEnsemble.of([model, model])
        logits, h = ens(x)
        assert logits.shape == (2, 0, 5) and h.shape == (4, 2, 16)


class TestOutputDelay:
    """``output_delay`` 1: beat k is labelled from the GRU state after beat k + 1."""

    @pytest.fixture()
    def delayed(self) -> ArrhythmiaGRU:
        torch.manual_seed(0)
        return ArrhythmiaGRU(
            hidden=16, d_beat=16, conv_widths=(8, 8), num_layers=2, output_delay=1
        ).eval()

    def test_looks_ahead_exactly_one_beat(self, delayed: ArrhythmiaGRU) -> None:
        x = _inputs()
        x2 = x.clone()
        x2[:, 7:] += 5.0
        a, _ = delayed(x)
        b, _ = delayed(x2)
        torch.testing.assert_close(a[:, :6], b[:, :6])  # beats 0-5 never see beat 7
        assert not torch.allclose(a[:, 6], b[:, 6])  # beat 6 reads the state after beat 7

    def test_chunks_with_context_equal_whole(self, delayed: ArrhythmiaGRU) -> None:
        x = _inputs(t=13)
        whole, h_whole = delayed(x)
        parts, h = [], None
        for s in range(0, 13, 4):
            end = min(s + 5, 13)  # the chunk and the beat after it
            ctx = end - min(s + 4, 13)
            out, h = delayed(x[:, s:end], h, context_beats=ctx)
            parts.append(out[:, : end - s - ctx])
        torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(h, h_whole, atol=1e-5, rtol=1e-5)
        # without the look-ahead beat, a chunk's last beat is scored as a record end
        first, _ = delayed(x[:, :4])
        assert not torch.allclose(first[:, 3], whole[:, 3])

    def test_context_rows_leave_the_state_before_them(self, delayed: ArrhythmiaGRU) -> None:
        x = _inputs(t=6)
        _, h5 = delayed(x[:, :5])
        _, h = delayed(x, context_beats=1)
        torch.testing.assert_close(h, h5)

    def test_limits(self, delayed: ArrhythmiaGRU) -> None:
        with pytest.raises(ValueError, match="look-ahead"):
            ArrhythmiaGRU(output_delay=2)  # + rr_next: three beats
        with pytest.raises(ValueError, match="look-ahead"):
            ArrhythmiaGRU(output_delay=-1)
        with pytest.raises(ValueError, match="look-ahead"):  # three beats, the sum 2
            ArrhythmiaGRU(output_delay=3, lookahead_beats=-1)
        ArrhythmiaGRU(output_delay=2, lookahead_beats=0)
        with pytest.raises(ValueError, match="context_beats"):
            delayed(_inputs(t=3), context_beats=3)
        causal = ArrhythmiaGRU(hidden=16, d_beat=16, conv_widths=(8, 8), num_layers=2)
        with pytest.raises(ValueError, match="output delay"):
            ArrhythmiaEnsemble([causal.config_dict(), delayed.config_dict()])
        clone = ArrhythmiaGRU.from_config(json.loads(json.dumps(delayed.config_dict())))
        assert clone.output_delay == 1


class TestRhythmGate:
    GATE = {"entropy_feature": 8, "nrmssd_feature": 9, "entropy_min": 0.7, "nrmssd_min": 0.2}

    def test_gated_beats_lose_s_to_n_and_config_round_trips(self) -> None:
        torch.manual_seed(0)
        net = ArrhythmiaGRU(hidden=16, d_beat=16, conv_widths=(8, 8)).eval()
        ens = ArrhythmiaEnsemble.of([net], rhythm_gate=self.GATE).eval()
        x = _inputs(1, 10)
        x[0, :5, -2], x[0, :5, -1] = 0.9, 0.4  # beats 0-4 in AF-like rhythm
        x[0, 5:, -2], x[0, 5:, -1] = 0.3, 0.4
        with torch.no_grad():
            p = net(x)[0].softmax(-1)[0]
            q = ens(x)[0].softmax(-1)[0]
        assert torch.all(q[:5, 1] < 1e-6)
        torch.testing.assert_close(q[:5, 0], p[:5, 0] + p[:5, 1])
        torch.testing.assert_close(q[5:], p[5:])
        again = ArrhythmiaEnsemble.from_config(json.loads(json.dumps(ens.config_dict())))
        again.load_state_dict(ens.state_dict())
        again.eval()
        with torch.no_grad():
            torch.testing.assert_close(again(x)[0].softmax(-1)[0], q)

    def test_bad_gate_rejected(self) -> None:
        with pytest.raises(ValueError, match="outside"):
            ArrhythmiaGRU(rhythm_gate={**self.GATE, "entropy_feature": 99})
        with pytest.raises(ValueError, match="keys"):
            ArrhythmiaGRU(rhythm_gate={"entropy_min": 0.7})


class TestQualityGate:
    def test_bad_signal_beats_lose_v_to_n_and_config_round_trips(self) -> None:
        torch.manual_seed(0)
        net = ArrhythmiaGRU(hidden=16, d_beat=16, conv_widths=(8, 8)).eval()
        ens = ArrhythmiaEnsemble.of([net], quality_gate=1.0).eval()
        x = _inputs(1, 10)
        ok = torch.ones(1, 10, dtype=torch.bool)
        ok[0, 3:6] = False
        with torch.no_grad():
            p = net(x)[0].softmax(-1)[0]
            q = ens(x, None, ok)[0].softmax(-1)[0]
            torch.testing.assert_close(ens(x)[0].softmax(-1)[0], p)  # no verdicts: no gate
        bad = ~ok[0]
        assert torch.all(q[bad, 2] < 1e-6)
        torch.testing.assert_close(q[bad, 0], p[bad, 0] + p[bad, 2])
        torch.testing.assert_close(q[bad][:, [1, 3, 4]], p[bad][:, [1, 3, 4]])
        torch.testing.assert_close(q[~bad], p[~bad])
        again = ArrhythmiaEnsemble.from_config(json.loads(json.dumps(ens.config_dict())))
        again.load_state_dict(ens.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(again.eval()(x, None, ok)[0].softmax(-1)[0], q)
        single = ArrhythmiaGRU.from_config({**net.config_dict(), "quality_gate": 1.0})
        single.load_state_dict(net.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(single.eval()(x, None, ok)[0].softmax(-1)[0], q)

    def test_gate_off_or_wrong_shape(self) -> None:
        net = ArrhythmiaGRU(hidden=16, d_beat=16, conv_widths=(8, 8)).eval()
        x = _inputs(1, 6)
        ok = torch.zeros(1, 6, dtype=torch.bool)
        with torch.no_grad():
            torch.testing.assert_close(net(x, None, ok)[0], net(x)[0])  # gate off
            net.quality_gate = 1.0
            with pytest.raises(ValueError, match="signal_ok"):
                net(x, None, ok[:, :4])

    def test_confident_v_calls_survive(self) -> None:
        logits = torch.log(torch.tensor([[[0.3, 0.0, 0.7, 0.0, 0.0], [0.01, 0.0, 0.99, 0.0, 0.0]]]))
        bad = torch.zeros(1, 2, dtype=torch.bool)
        out = apply_quality_gate(logits, bad, 0.95).softmax(-1)[0]
        torch.testing.assert_close(out[0], torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))
        torch.testing.assert_close(out[1], logits.softmax(-1)[0, 1])  # 0.99 > 0.95: kept
        assert apply_quality_gate(logits, bad, None) is logits

    def test_settings(self) -> None:
        assert check_quality_gate(True) == 1.0 and check_quality_gate(False) is None
        assert ArrhythmiaGRU(quality_gate=0.97).config_dict()["quality_gate"] == 0.97
        with pytest.raises(ValueError, match="quality_gate"):
            ArrhythmiaGRU(quality_gate=1.5)

"""A long record (a 24-hour Holter recording: over 100,000 beats) is scored in chunks of
beats, so the beat encoder's activations do not grow with the record."""

from __future__ import annotations

import numpy as np
import torch

from vitalgru.data.arrhythmia_dataset import RecordBeats
from vitalgru.data.beat_features import RR_FEATURES
from vitalgru.models.arrhythmia import ArrhythmiaGRU
from vitalgru.training.arrhythmia_fit import PREDICT_CHUNK_BEATS, predict_records


def _record(n: int, model: ArrhythmiaGRU) -> RecordBeats:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, model.n_features)).astype(np.float32)
    return RecordBeats("long", x, np.zeros(n, np.int64), np.arange(n, dtype=np.int64) * 300)


class TestPredictLongRecords:
    def test_the_encoder_never_sees_more_than_a_chunk_of_beats_and_the_labels_stay(self) -> None:
        torch.manual_seed(0)
        model = ArrhythmiaGRU(n_samples=16, n_rr=len(RR_FEATURES), conv_widths=(4,), d_beat=8,
                              hidden=8, output_delay=1).eval()  # fmt: skip
        rec = _record(2 * PREDICT_CHUNK_BEATS + 5, model)
        seen: list[int] = []
        hook = model.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
        try:
            chunked = predict_records(model, [rec])[0]
        finally:
            hook.remove()
        # three chunks of at most PREDICT_CHUNK_BEATS beats (plus the output delay's
        # look-ahead beat), not one of the whole record
        assert len(seen) == 3
        assert max(seen) <= PREDICT_CHUNK_BEATS + model.output_delay
        whole = predict_records(model, [rec], chunk_beats=None)[0]
        assert chunked.shape == whole.shape == (len(rec), model.n_classes)
        np.testing.assert_allclose(chunked, whole, atol=1e-5)

    def test_a_record_of_a_chunk_or_fewer_beats_is_run_whole(self) -> None:
        torch.manual_seed(0)
        model = ArrhythmiaGRU(n_samples=16, n_rr=len(RR_FEATURES), conv_widths=(4,), d_beat=8,
                              hidden=8).eval()  # fmt: skip
        seen: list[int] = []
        model.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
        predict_records(model, [_record(3400, model)])  # an MIT-BIH record's beats
        assert seen == [3400]

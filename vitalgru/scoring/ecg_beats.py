"""From a live stream's R peaks to the network's inputs, steps 3 and 4 of
:mod:`vitalgru.scoring.arrhythmia`: each beat's stretch of signal, resampled to the model's
rate and filtered zero-phase with the dataset's filter as a training window is, its window,
and the causal beat features on the patient's history (running median template, RR
features with one beat of look-ahead). :class:`BeatInputs` holds the settings logged with
the model; the state is the patient's :class:`~vitalgru.scoring.ecg_stream.PatientStream`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vitalgru.config import BeatWindowConfig, FilterConfig
from vitalgru.data.beat_features import (
    FeatureSettings,
    latest_morphology,
    rr_features,
    select_rr_columns,
)
from vitalgru.data.ingest import dataset_filter
from vitalgru.dsp.beats import beat_windows
from vitalgru.dsp.polarity import qrs_polarity
from vitalgru.dsp.resample import map_indices, resample
from vitalgru.scoring.ecg_stream import POLARITY_EVERY

if TYPE_CHECKING:
    from vitalgru.scoring.ecg_stream import PatientStream

logger = logging.getLogger("vitalgru.scoring.arrhythmia")

__all__ = ["BeatInputs"]


@dataclass(frozen=True)
class BeatInputs:
    """How a model's preprocessing turns a live stream's beats into its inputs.

    Attributes
    ----------
    fs : float
        The model's rate (Hz).
    windows : BeatWindowConfig
        The beat window logged with the model.
    filters : FilterConfig
        The dataset's filter.
    settings : FeatureSettings
        The beat features' settings.
    rr_columns : sequence of str or None
        The RR features the model reads (None: all).
    """

    fs: float
    windows: BeatWindowConfig
    filters: FilterConfig
    settings: FeatureSettings
    rr_columns: Sequence[str] | None

    def stretch(self, st: PatientStream, peak: int) -> tuple[int, int]:
        """The samples ``[a, b)`` of the stream that a beat's window is filtered over: its
        window with the margin either side, ``a`` on the resampling grid."""
        a = max(0, peak - st.margin_src)
        a -= a % st.down  # on the resampling grid: output sample j is at a * up / down + j
        if a < st.buf0:  # a peak reported later than the detector ever should: what is left
            logger.debug("patient %s: R peak %d reported late; shorter stretch", st.pid, peak)
            a = st.buf0  # (buf0 is on the grid too)
        b = min(st.n, peak + st.after_src + st.margin_src + 1)
        return a, b

    def window(self, st: PatientStream, peaks: Iterable[int]) -> None:
        """Window the stream's beats at ``peaks`` (R peaks ready, in order) into its history;
        each beat's features are complete once the next one's time is known (rows)."""
        peaks = list(peaks)
        if not peaks:
            return
        spans = [self.stretch(st, p) for p in peaks]
        at = map_indices(np.asarray(peaks), st.fs, self.fs).tolist()  # R peaks at the model rate
        # Stretches of one length (every beat away from the stream's ends) are filtered
        # together, one column each.
        by_len: dict[int, list[int]] = {}
        for i, (a, b) in enumerate(spans):
            by_len.setdefault(b - a, []).append(i)
        wins: list[np.ndarray | None] = [None] * len(peaks)
        for idx in by_len.values():
            seg = np.stack([st.buf[spans[i][0] - st.buf0 : spans[i][1] - st.buf0] for i in idx], 1)
            if st.up != st.down:  # as ingest resamples a record
                seg = resample(seg, st.fs, self.fs)
            clean = dataset_filter(seg, self.fs, self.filters).astype(np.float32)
            for col, i in enumerate(idx):
                local = at[i] - spans[i][0] * st.up // st.down
                w, _ = beat_windows(
                    clean[:, col], np.array([local]), self.fs, self.windows.before_s,
                    self.windows.after_s,
                )  # fmt: skip
                wins[i] = w[0]
        for p, t, w in zip(peaks, at, wins, strict=True):
            ok = st._signal_ok(p)
            if st.waiting is not None:  # the previous beat's features need this beat's time
                prev_peak, prev_ok = st.waiting
                st.rows.append((self.features(st, t), prev_ok, prev_peak))
            if st.splice is not None:  # the first beat after a restart: the remembered ones
                self.splice(st, t)  # one median interval before it
            st.t_hist.append(t)
            st.w_hist.append(w)
            st.waiting = (p, ok)
            if ok:  # beats in signal the quality check rejected do not say which way it points
                st.polarity_run.append(w)
            if len(st.polarity_run) == POLARITY_EVERY:
                run, st.polarity_run = np.stack(st.polarity_run), []
                st.polarities.append(qrs_polarity(run, self.fs, self.windows.before_s))

    def splice(self, st: PatientStream, t: int) -> None:
        """Put the remembered RR intervals into the history before the beat at ``t`` (model
        rate), one median interval before it."""
        rr = st.splice
        assert rr is not None
        st.splice = None
        steps = np.round(np.concatenate([rr[::-1], [0.0]]) * self.fs).astype(np.int64)
        last = t - max(1, int(round(float(np.median(rr)) * self.fs)))
        before = last - np.cumsum(np.concatenate([[0], np.maximum(steps[:-1], 1)]))
        st.t_hist.extend(before[::-1].tolist())

    def features(self, st: PatientStream, t_next: int | None) -> np.ndarray:
        """Features of the newest beat in the history; ``t_next`` is the next beat's R peak
        at the model rate (None: the stream ended)."""
        morph = latest_morphology(np.stack(st.w_hist), self.settings).reshape(-1)
        t = np.asarray(st.t_hist, dtype=np.int64)
        if t_next is not None:
            t = np.append(t, t_next)
        rr = rr_features(t, self.fs, self.settings, last=2)  # the rows read below
        row = rr[-2] if t_next is not None else rr[-1]
        row = select_rr_columns(row[None], self.rr_columns)[0]
        return np.concatenate([morph, row]).astype(np.float32)

"""The post-hoc gates of the arrhythmia ensemble, chosen on held-out DS1 records.

Two gates follow the networks (:class:`vitalgru.models.arrhythmia.ArrhythmiaEnsemble`
applies them when it scores): the *rhythm gate* moves S calls to N where the causal RR
rhythm features say atrial fibrillation (premature atrial beats cannot be told apart in
an irregularly irregular rhythm), and the *quality gate* moves V calls to N where the live
signal-quality verdict rejected the signal, unless the network is all but sure. Both are
chosen on held-out records only (out-of-fold DS1 in the default cross-validation), by the
same criterion as model selection: (S F1 + V F1) / 2.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from vitalgru.config import ArrhythmiaTrainConfig
from vitalgru.data.arrhythmia_dataset import RecordBeats
from vitalgru.data.beat_features import N_RR_FEATURES, RR_FEATURES
from vitalgru.metrics.aami import aami_metrics

logger = logging.getLogger(__name__)


#: Thresholds tried by :func:`choose_rhythm_gate` (rhythm entropy, normalised RMSSD).
GATE_ENTROPY_GRID: tuple[float, ...] = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
GATE_NRMSSD_GRID: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3)


def sv_f1(y: np.ndarray, pred: np.ndarray) -> tuple[float, dict[str, float]]:
    """(S F1 + V F1) / 2 of predicted class indices against labels (a class with no beats
    or no calls counts as F1 0), and all of :func:`vitalgru.metrics.aami.aami_metrics`."""
    m = aami_metrics(y, pred)
    s_f1 = 0.0 if np.isnan(m["s_f1"]) else m["s_f1"]
    v_f1 = 0.0 if np.isnan(m["v_f1"]) else m["v_f1"]
    return 0.5 * (s_f1 + v_f1), m


def gate_probs(p: np.ndarray, rr: np.ndarray, gate: dict[str, Any] | None) -> np.ndarray:
    """:func:`vitalgru.models.beat_gates.apply_rhythm_gate` on class probabilities
    ``(n, K)`` given the beats' RR features ``(n, N_RR_FEATURES)`` (a gated copy; ``p`` itself
    when ``gate`` is None)."""
    if gate is None:
        return p
    af = (rr[:, gate["entropy_feature"]] > gate["entropy_min"]) & (
        rr[:, gate["nrmssd_feature"]] > gate["nrmssd_min"]
    )
    q = p.copy()
    q[af, 0] += q[af, 1]
    q[af, 1] = 0.0
    return q


def choose_rhythm_gate(
    probs: Sequence[np.ndarray], records: Sequence[RecordBeats]
) -> tuple[dict[str, Any] | None, dict[str, float]]:
    """Pick the AF rhythm gate (:func:`vitalgru.models.beat_gates.apply_rhythm_gate`)
    that maximises (S F1 + V F1) / 2 on held-out records.

    Parameters
    ----------
    probs : sequence of numpy.ndarray
        Ungated ``(n_beats, K)`` class probabilities of each held-out record.
    records : sequence of RecordBeats
        The same records (their RR features and labels).

    Returns
    -------
    gate : dict or None
        The best setting; None when no gate beats the ungated output.
    scores : dict
        ``"none"`` and ``"<entropy_min>/<nrmssd_min>"`` -> (S F1 + V F1) / 2.
    """
    y = np.concatenate([r.labels for r in records])
    p = np.concatenate(list(probs))
    rr = np.concatenate([r.x[:, -N_RR_FEATURES:] for r in records])
    best_score, _ = sv_f1(y, p.argmax(axis=1))
    scores = {"none": best_score}
    best: dict[str, Any] | None = None
    for e_min in GATE_ENTROPY_GRID:
        for n_min in GATE_NRMSSD_GRID:
            gate = {
                "entropy_feature": RR_FEATURES.index("rhythm_rr_entropy"),
                "nrmssd_feature": RR_FEATURES.index("rhythm_rr_nrmssd"),
                "entropy_min": e_min,
                "nrmssd_min": n_min,
            }
            score, _ = sv_f1(y, gate_probs(p, rr, gate).argmax(axis=1))
            scores[f"{e_min}/{n_min}"] = score
            if score > best_score + 1e-9:
                best_score, best = score, gate
    return best, scores


def quality_gate_probs(
    p: np.ndarray, signal_ok: np.ndarray, keep_v_above: float | None
) -> np.ndarray:
    """:func:`vitalgru.models.beat_gates.apply_quality_gate` on class probabilities
    ``(n, K)`` given the beats' ``(n,)`` live quality verdicts (a gated copy; ``p`` itself
    when ``keep_v_above`` is None)."""
    if keep_v_above is None:
        return p
    move = ~np.asarray(signal_ok, dtype=bool) & (p[:, 2] <= keep_v_above)
    q = p.copy()
    q[move, 0] += q[move, 2]
    q[move, 2] = 0.0
    return q


def _signal_ok(records: Sequence[RecordBeats]) -> np.ndarray:
    """The records' live quality verdicts, every beat trusted where none is known."""
    return np.concatenate(
        [np.ones(len(r), bool) if r.signal_ok is None else r.signal_ok for r in records]
    )


# V probabilities above which a V call survives rejected signal, tried by
# choose_quality_gate (1.0: every V call there is moved to N).
QUALITY_KEEP_V_GRID: tuple[float, ...] = (1.0, 0.99, 0.97, 0.95, 0.9)


def choose_quality_gate(
    p: np.ndarray, records: Sequence[RecordBeats]
) -> tuple[float | None, dict[str, float]]:
    """Pick the quality gate (:func:`vitalgru.models.beat_gates.apply_quality_gate`)
    that maximises (S F1 + V F1) / 2 on held-out records; none when no setting helps.

    Parameters
    ----------
    p : numpy.ndarray
        ``(n_beats, K)`` class probabilities of the records' beats, concatenated (after
        any rhythm gate).
    records : sequence of RecordBeats
        The same records (labels and ``signal_ok``).

    Returns
    -------
    keep_v_above : float or None
        The best setting of :data:`QUALITY_KEEP_V_GRID`; None for no gate.
    scores : dict
        ``"off"`` and each grid value -> (S F1 + V F1) / 2.
    """
    y = np.concatenate([r.labels for r in records])
    ok = _signal_ok(records)
    best_score, _ = sv_f1(y, p.argmax(axis=1))
    scores = {"off": best_score}
    best: float | None = None
    for keep in QUALITY_KEEP_V_GRID:
        score, _ = sv_f1(y, quality_gate_probs(p, ok, keep).argmax(axis=1))
        scores[str(keep)] = score
        if score > best_score + 1e-9:
            best_score, best = score, keep
    return best, scores


def choose_gates(
    cfg: ArrhythmiaTrainConfig, probs: Sequence[np.ndarray], records: Sequence[RecordBeats]
) -> tuple[dict[str, Any] | None, float | None, np.ndarray]:
    """The rhythm gate, then the quality gate, as ``cfg`` asks ("auto": chosen on these
    held-out records; "off": none), and the held-out probabilities with both applied."""
    p = np.concatenate(list(probs))
    gate = None
    if cfg.rhythm_gate == "auto":
        gate, _ = choose_rhythm_gate(probs, records)
    p = gate_probs(p, np.concatenate([r.x[:, -N_RR_FEATURES:] for r in records]), gate)
    quality = None
    if cfg.quality_gate == "auto":
        quality, scores = choose_quality_gate(p, records)
        logger.info("quality gate %s (held-out S+V F1 by setting %s)", quality, scores)
    return gate, quality, quality_gate_probs(p, _signal_ok(records), quality)

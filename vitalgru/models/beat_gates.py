"""Gates on a beat classifier's output (torch only): rules that move a class's probability
to N where the input shows the class cannot be, or cannot be trusted.

The rhythm gate takes S calls out of atrial fibrillation (no organised atrial activity, so
no atrial-premature beat); the quality gate takes uncertain V calls out of signal the live
quality check rejects (noise makes normal beats look ventricular). Both are applied by the
networks of :mod:`vitalgru.models.arrhythmia` to their logits, with settings chosen on
held-out training records (:mod:`vitalgru.training.arrhythmia_gates`).

Shapes: ``B`` batch, ``T`` beats, ``F`` RR features, ``K`` classes in AAMI order (N, S, V,
F, Q).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["apply_quality_gate", "apply_rhythm_gate", "check_quality_gate", "check_rhythm_gate"]

_GATE_KEYS = ("entropy_feature", "nrmssd_feature", "entropy_min", "nrmssd_min")


def check_rhythm_gate(gate: dict[str, Any] | None, n_rr: int) -> dict[str, Any] | None:
    """Validate a rhythm-gate setting (see :func:`apply_rhythm_gate`); returns a clean copy."""
    if gate is None:
        return None
    if not isinstance(gate, dict) or set(gate) != set(_GATE_KEYS):
        raise ValueError(
            f"rhythm_gate must be a dict with exactly the keys {_GATE_KEYS}, got {gate!r}"
        )
    out = {
        "entropy_feature": int(gate["entropy_feature"]),
        "nrmssd_feature": int(gate["nrmssd_feature"]),
        "entropy_min": float(gate["entropy_min"]),
        "nrmssd_min": float(gate["nrmssd_min"]),
    }
    for k in ("entropy_feature", "nrmssd_feature"):
        if not 0 <= out[k] < n_rr:
            raise ValueError(f"rhythm_gate {k}={out[k]} is outside the {n_rr} RR features")
    return out


def apply_rhythm_gate(
    logits: torch.Tensor, rr: torch.Tensor, gate: dict[str, Any] | None
) -> torch.Tensor:
    """Move class S's probability to N on beats whose RR rhythm looks like atrial
    fibrillation.

    A beat is in "AF-like rhythm" when its rhythm entropy and normalised RMSSD (RR
    features ``gate["entropy_feature"]`` and ``gate["nrmssd_feature"]``, see
    :func:`vitalgru.data.beat_features.rhythm_features`) both exceed their
    minimum. Without organised atrial activity a beat cannot be atrial-premature
    (MIT-BIH and AAMI EC57 label AF beats N), so S is not a valid answer there. Classes
    are in AAMI order (N, S, ...). S's probability is added to N, which can also turn a
    V (or F, Q) answer into N when the two together outweigh it. The thresholds are
    chosen on held-out training records
    (:func:`vitalgru.training.arrhythmia_gates.choose_rhythm_gate`), with this rule.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, T, K)`` class scores (log-probabilities up to a constant per beat).
    rr : torch.Tensor
        ``(B, T, F)`` RR features of the same beats.
    gate : dict or None
        None: ``logits`` unchanged.
    """
    if gate is None:
        return logits
    af = (rr[..., gate["entropy_feature"]] > gate["entropy_min"]) & (
        rr[..., gate["nrmssd_feature"]] > gate["nrmssd_min"]
    )
    return _move_to_n(logits, af, 1)


def _move_to_n(logits: torch.Tensor, where: torch.Tensor, k: int) -> torch.Tensor:
    """``logits`` with class ``k``'s probability added to class N (index 0) on the beats
    ``where`` is True (``(B, T)``), and class ``k`` ruled out there."""
    if not bool(where.any()):
        return logits
    merged = torch.logaddexp(logits[..., 0], logits[..., k])
    out = logits.clone()
    out[..., 0] = torch.where(where, merged, logits[..., 0])
    out[..., k] = torch.where(where, torch.full_like(merged, -1e4), logits[..., k])
    return out


def check_quality_gate(gate: float | bool | None) -> float | None:
    """Validate a quality-gate setting (see :func:`apply_quality_gate`); ``True`` means
    1.0 (every V call in rejected signal moved) and ``False`` None (no gate)."""
    if gate is None or gate is False:
        return None
    if gate is True:
        return 1.0
    g = float(gate)
    if not 0.0 < g <= 1.0:
        raise ValueError(f"quality_gate must be in (0, 1] or None, got {gate!r}")
    return g


def apply_quality_gate(
    logits: torch.Tensor, signal_ok: torch.Tensor | None, keep_v_above: float | None
) -> torch.Tensor:
    """Move class V's probability to N on beats recorded in signal the live quality check
    rejects (``signal_ok`` False, see :func:`vitalgru.dsp.quality_stream.ecg_quality_trailing`),
    unless the V call is all but certain.

    Noise and motion artefact make normal beats look wide and bizarre, which is the
    morphology that marks a ventricular beat, while an S call rests on the beat's timing,
    which a noisy stretch does not change. So in rejected signal a V call is made only when
    its probability exceeds ``keep_v_above``; otherwise V's probability is added to N and V
    is ruled out. That can also turn a beat's S, F or Q answer into N when V's share tips N
    above it (a beat called S at 0.35 with N 0.10 and V 0.30 becomes N at 0.40): the rule
    the settings were chosen with, kept so (:mod:`vitalgru.training.arrhythmia_gates`).
    The setting is chosen on held-out training records
    (:func:`vitalgru.training.arrhythmia_gates.choose_quality_gate`).

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, T, K)`` class scores, AAMI order (N, S, V, ...).
    signal_ok : torch.Tensor or None
        ``(B, T)`` bool; None: unknown, ``logits`` unchanged.
    keep_v_above : float or None
        V probability above which a V call survives rejected signal (1.0: none does);
        None: no gate, ``logits`` unchanged.
    """
    if keep_v_above is None or signal_ok is None:
        return logits
    if signal_ok.shape != logits.shape[:2]:
        raise ValueError(
            f"signal_ok must be (B, T) = {tuple(logits.shape[:2])}, got {tuple(signal_ok.shape)}"
        )
    p_v = torch.softmax(logits, dim=-1)[..., 2]
    return _move_to_n(logits, ~signal_ok.to(torch.bool) & (p_v <= keep_v_above), 2)

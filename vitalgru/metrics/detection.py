"""Beat detection scoring (ANSI/AAMI EC57:2012, section 4.3.3).

A detected beat matches a reference beat when they lie within the match window (150 ms
wide, i.e. +-75 ms); each beat matches at most once. Gross statistics add TP/FP/FN over
records before dividing, as EC57 prescribes for its "gross" figures.
"""

from __future__ import annotations

import numpy as np

#: EC57 section 4.3.3: 150 ms match window (+-75 ms around the reference beat).
MATCH_WINDOW_S = 0.150


def match_beats(
    ref_idx: np.ndarray, det_idx: np.ndarray, fs: float, window_s: float = MATCH_WINDOW_S
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of detections to reference beats.

    Greedy in time order, each reference taking the nearest unmatched detection within
    ``window_s / 2``; with detections at least a refractory period apart (>= 200 ms, longer
    than the window) this equals the optimal assignment.

    Parameters
    ----------
    ref_idx, det_idx : numpy.ndarray
        Sorted sample indices of reference and detected beats.
    fs : float
        Sampling frequency of the indices in Hz.
    window_s : float
        Full width of the match window in seconds.

    Returns
    -------
    ref_matched : numpy.ndarray
        ``(n_ref,)`` bool, True where the reference beat was detected.
    det_matched : numpy.ndarray
        ``(n_det,)`` bool, True where the detection matched a reference beat.
    """
    if not fs > 0:
        raise ValueError(f"fs must be > 0, got {fs}")
    ref = np.asarray(ref_idx, dtype=np.int64)
    det = np.asarray(det_idx, dtype=np.int64)
    tol = window_s / 2 * fs
    ref_m = np.zeros(ref.size, dtype=bool)
    det_m = np.zeros(det.size, dtype=bool)
    if ref.size == 0 or det.size == 0:
        return ref_m, det_m
    # candidate neighbours of each reference: the detections just before and after it
    j = np.searchsorted(det, ref)
    for i in range(ref.size):
        best, best_d = -1, tol + 1.0
        for k in (j[i] - 1, j[i], j[i] + 1):
            if 0 <= k < det.size and not det_m[k]:
                d = abs(float(det[k] - ref[i]))
                if d <= tol and d < best_d:
                    best, best_d = k, d
        if best >= 0:
            det_m[best] = True
            ref_m[i] = True
    return ref_m, det_m


def detection_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Sensitivity and positive predictivity (and their F1) from counts.

    Returns
    -------
    dict
        ``{"se", "ppv", "f1", "tp", "fp", "fn"}``; ratios are NaN when undefined.
    """
    se = tp / (tp + fn) if tp + fn else float("nan")
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"se": se, "ppv": ppv, "f1": f1, "tp": float(tp), "fp": float(fp), "fn": float(fn)}

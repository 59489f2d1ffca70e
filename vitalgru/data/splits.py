"""Patient-level splits. Nothing is ever split by beat or by window: a patient's data sits
in exactly one split, so no result is reported on a patient the model has seen.

The inter-patient MIT-BIH split is that of de Chazal, O'Dwyer & Reilly (2004), table II:
the 44 non-paced records split into DS1 (training) and DS2 (test) so that each holds a
similar mix of beat classes. The paced records 102, 104, 107 and 217 are excluded, as
AAMI EC57 recommends for classifiers not designed for paced rhythms.

Known caveat, kept for comparability with the literature: records 201 (DS1) and 202 (DS2)
come from the same patient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vitalgru.types import Split

DECHAZAL_DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DECHAZAL_DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
MITDB_PACED: tuple[str, ...] = ("102", "104", "107", "217")


def dechazal_split(
    records: Sequence[str], exclude: Sequence[str] = MITDB_PACED
) -> dict[str, Split]:
    """Assign MIT-BIH records to DS1 / DS2 (de Chazal et al. 2004).

    Parameters
    ----------
    records : sequence of str
        Record names present (e.g. those that were read successfully).
    exclude : sequence of str
        Records to leave out entirely (the paced ones by default).

    Returns
    -------
    dict
        Record -> ``Split.DS1`` / ``Split.DS2``; records in neither list (or excluded)
        are absent.
    """
    out: dict[str, Split] = {}
    for r in records:
        if r in exclude:
            continue
        if r in DECHAZAL_DS1:
            out[r] = Split.DS1
        elif r in DECHAZAL_DS2:
            out[r] = Split.DS2
    return out


def patient_split(
    patient_ids: Sequence[str],
    fractions: Mapping[Split, float],
    seed: int = 0,
) -> dict[str, Split]:
    """Random split of patients (not samples) into named parts.

    Parameters
    ----------
    patient_ids : sequence of str
        Patient identifiers; duplicates are collapsed.
    fractions : mapping
        Split -> fraction of patients; must sum to 1 (within 1e-6).
    seed : int
        Seed of the permutation; the same seed and ids give the same split.

    Returns
    -------
    dict
        Patient id -> split.
    """
    total = float(sum(fractions.values()))
    if abs(total - 1.0) > 1e-6 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {dict(fractions)}")
    ids = sorted(set(patient_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    bounds = np.round(np.cumsum([0.0, *fractions.values()]) * len(ids)).astype(int)
    out: dict[str, Split] = {}
    for split, lo, hi in zip(fractions, bounds[:-1], bounds[1:], strict=True):
        for k in order[lo:hi]:
            out[ids[k]] = split
    return out


def patient_folds(patient_ids: Sequence[str], n_folds: int, seed: int = 0) -> dict[str, int]:
    """Assign each patient to one of ``n_folds`` cross-validation folds (0-based).

    Fold sizes differ by at most one patient.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    ids = sorted(set(patient_ids))
    if len(ids) < n_folds:
        raise ValueError(f"{len(ids)} patients cannot fill {n_folds} folds")
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[k]: int(i % n_folds) for i, k in enumerate(order)}

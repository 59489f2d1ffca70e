"""What an AAMI EC57 report says of beats outside the beat model's training population:
reference beats of class Q, which on MIT-BIH are nearly all paced (``/``) or fusions of
paced and normal beats (``f``).

The beat model is trained on MIT-BIH DS1, from which (as from DS2) the four paced records
(102, 104, 107, 217) are left out: it has seen a handful of Q beats and no paced rhythm, and
a paced beat it calls N, S, V or F is not a finding. Scored on those four records, one model
(trained on DS1 in two folds) called 7,678 of their 8,028 Q beats N and 342 V: a paced
rhythm reads as a normal one, with some of its beats as ventricular ectopy. So a report whose reference holds Q beats says how
many, how the model called them, and in which records they are a large share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vitalgru.types import AAMI_CLASSES

__all__ = ["Q_RECORD_SHARE", "matrix_classes", "q_beat_lines"]

#: Share of a record's reference beats of class Q above which the record is named as one
#: the model does not cover (a paced record): in MIT-BIH's paced records 82-97 % of the
#: beats are Q, in the others at most 0.19 %.
Q_RECORD_SHARE = 0.05


def matrix_classes(report: Mapping[str, Any]) -> list[str]:
    """The classes of a report's ``confusion_matrix`` rows and columns, in order.

    The matrix is always in label order (N, S, V, F, Q), whatever order ``classes`` has: a
    report written with sorted keys (``evaluate --out``) and read back has them F, N, Q, S,
    V, and naming rows by that order would put the N row under F."""
    found = list(report["classes"])
    return [c for c in AAMI_CLASSES if c in found] + [c for c in found if c not in AAMI_CLASSES]


def _q_row(report: Mapping[str, Any]) -> tuple[int, list[int]]:
    names = matrix_classes(report)
    row = [int(v) for v in report["confusion_matrix"][names.index("Q")]]
    return sum(row), row


def q_beat_lines(report: Mapping[str, Any]) -> list[str]:
    """Markdown lines (a blank line first) on the reference Q beats of an
    :func:`~vitalgru.metrics.aami.aami_report`; none when it has no Q beat."""
    if "Q" not in report.get("classes", {}) or report.get("confusion_matrix") is None:
        return []
    n, row = _q_row(report)
    if n == 0:
        return []
    names = matrix_classes(report)
    called = ", ".join(f"{c} {k}" for c, k in zip(names, row, strict=True) if k)
    lines = [
        "",
        f"Reference beats of class Q (paced, fusion of paced and normal, unclassifiable): {n}, "
        f"called {called}. The model was trained without paced records: its calls on paced "
        "beats are not validated (a paced beat called N or V is not a finding).",
    ]
    paced = []
    for rid, r in (report.get("records") or {}).items():
        k, _ = _q_row(r)
        if r["n_beats"] and k / r["n_beats"] > Q_RECORD_SHARE:
            paced.append(f"{rid} ({100.0 * k / r['n_beats']:.0f} % of {r['n_beats']})")
    if paced:
        lines += [
            "",
            f"Records mostly outside the model's training population (over "
            f"{100 * Q_RECORD_SHARE:.0f} % Q beats: paced?): " + ", ".join(paced),
        ]
    return lines

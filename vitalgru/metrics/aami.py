"""AAMI EC57 heartbeat-classification metrics (numpy only).

Class order is N, S, V, F, Q (``vitalgru.types.AAMI_CLASSES``); integer labels index it.
Per class (one-versus-rest over the confusion matrix ``C``, rows true, columns predicted):

- sensitivity ``Se = TP / (TP + FN)``
- positive predictivity ``+P = TP / (TP + FP)``
- specificity ``Sp = TN / (TN + FP)``
- ``F1 = 2 TP / (2 TP + FP + FN)``

These one-versus-rest figures count every beat of another class called c as a false
positive of c. EC57's own gross statistics for ventricular (VEB) and supraventricular (SVEB)
ectopic beats differ in two places (:func:`ec57_gross`, ANSI/AAMI EC57:2012 section 4.3,
as the WFDB ``bxb`` comparator counts them): a fusion (F) or unclassifiable (Q) beat called
V is not a VEB false positive, and a Q beat called S is not an SVEB false positive. Both
views are reported (keys ``veb_*`` and ``sveb_*``); they share their sensitivities.

Overall: accuracy, Cohen's kappa, the j index of de Chazal et al. 2004
(``j = Se_V + Se_S + +P_V + +P_S``, IEEE TBME 51(7):1196-1206) and the jk index of Mar et
al. 2011 (``jk = kappa / 2 + j / 8``, IEEE TBME 58(8):2168-2177), which lies in [0, 1] for
kappa >= 0.

A ratio whose denominator is zero (no true beats of a class, or none predicted) is
``nan``: undefined, not zero. Keys are stable snake_case (``v_f1``, ``s_ppv``,
``accuracy``, ``jk_index``) and become MLflow metric names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vitalgru.metrics.aami_intervals import interval_cell as _ci
from vitalgru.metrics.aami_intervals import interval_lines
from vitalgru.metrics.aami_scope import matrix_classes, q_beat_lines
from vitalgru.types import AAMI_CLASS_STATS, AAMI_SUMMARY_STATS

#: Class names in label order (AAMI EC57; mirrors ``vitalgru.types.AAMI_CLASSES``).
CLASS_NAMES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
#: Per-class statistics reported by :func:`aami_report` (the names a config's gate keys
#: are checked against: ``vitalgru.types.aami_metric_names``).
CLASS_STATS: tuple[str, ...] = AAMI_CLASS_STATS


def _as_labels(y: Any, name: str, n_classes: int) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class indices, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= n_classes):
        raise ValueError(f"{name} has labels outside 0..{n_classes - 1}")
    return a.astype(np.int64)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array_like
        ``(n,)`` integer class indices in ``0..n_classes-1``.
    n_classes : int
        Number of classes (5 for AAMI).

    Returns
    -------
    numpy.ndarray
        ``(n_classes, n_classes)`` int64; ``C[i, j]`` counts beats of true class i
        predicted as j.
    """
    t = _as_labels(y_true, "y_true", n_classes)
    p = _as_labels(y_pred, "y_pred", n_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[0]} labels but y_pred {p.shape[0]}")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def cohen_kappa(cm: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix (``nan`` for an empty one)."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    if total == 0:
        return float("nan")
    po = np.trace(cm) / total
    pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum()) / total**2
    if pe == 1.0:
        return float("nan")
    return float((po - pe) / (1.0 - pe))


def metrics_from_confusion(
    cm: np.ndarray, class_names: Sequence[str] = CLASS_NAMES
) -> dict[str, float]:
    """All AAMI metrics of a confusion matrix (see module docstring for keys)."""
    cm = np.asarray(cm)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix must be ({k}, {k}), got {cm.shape}")
    total = int(cm.sum())
    out: dict[str, float] = {"n_beats": float(total)}
    out["accuracy"] = _ratio(np.trace(cm), total)
    for i, c in enumerate(class_names):
        tp = int(cm[i, i])
        fn = int(cm[i].sum()) - tp
        fp = int(cm[:, i].sum()) - tp
        tn = total - tp - fn - fp
        key = c.lower()
        out[f"{key}_n"] = float(tp + fn)
        out[f"{key}_se"] = _ratio(tp, tp + fn)
        out[f"{key}_ppv"] = _ratio(tp, tp + fp)
        out[f"{key}_spec"] = _ratio(tn, tn + fp)
        out[f"{key}_f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    out["kappa"] = cohen_kappa(cm)
    if {"S", "V"} <= set(class_names):
        j = out["v_se"] + out["s_se"] + out["v_ppv"] + out["s_ppv"]
        out["j_index"] = j
        out["jk_index"] = 0.5 * out["kappa"] + j / 8.0
    if tuple(class_names) == CLASS_NAMES:
        out.update(ec57_gross(cm))
    f1s = [out[f"{c.lower()}_f1"] for c in class_names]
    f1s = [f for f in f1s if not np.isnan(f)]
    out["macro_f1"] = float(np.mean(f1s)) if f1s else float("nan")
    return out


def ec57_gross(cm: np.ndarray) -> dict[str, float]:
    """EC57 VEB and SVEB gross statistics of a 5-class AAMI confusion matrix.

    VEB: ``TP = Vv``, ``FN`` = V beats called anything else, ``FP = Nv + Sv`` (F and Q
    beats called V are not counted), ``FPR = FP / (FP + TN)`` with ``TN`` every non-V beat
    not called V. SVEB: ``TP = Ss``, ``FN`` = S beats called anything else,
    ``FP = Ns + Vs + Fs`` (Q beats called S are not counted).

    Returns
    -------
    dict of str to float
        ``veb_se``, ``veb_ppv``, ``veb_f1``, ``veb_fpr``, ``sveb_se``, ``sveb_ppv``,
        ``sveb_f1`` (``nan`` where undefined).
    """
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (5, 5):
        raise ValueError(f"EC57 gross statistics need the 5x5 AAMI matrix, got {cm.shape}")
    n, s, v, f = 0, 1, 2, 3  # Q (4) is never a VEB or SVEB false positive
    fp_v = int(cm[n, v] + cm[s, v])
    fp_s = int(cm[n, s] + cm[v, s] + cm[f, s])
    out: dict[str, float] = {}
    for key, c, fp in (("veb", v, fp_v), ("sveb", s, fp_s)):
        tp = int(cm[c, c])
        fn = int(cm[c].sum()) - tp
        out[f"{key}_se"] = _ratio(tp, tp + fn)
        out[f"{key}_ppv"] = _ratio(tp, tp + fp)
        out[f"{key}_f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    not_v = np.ones(5, dtype=bool)
    not_v[v] = False
    tn = int(cm[np.ix_(not_v, not_v)].sum())
    out["veb_fpr"] = _ratio(fp_v, fp_v + tn)
    return out


def aami_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """AAMI EC57 metrics of integer labels (N, S, V, F, Q = 0..4).

    Returns
    -------
    dict of str to float
        ``accuracy``, ``kappa``, ``j_index``, ``jk_index``, ``macro_f1``, ``n_beats`` and
        per class ``{c}_n``, ``{c}_se``, ``{c}_ppv``, ``{c}_spec``, ``{c}_f1`` with ``c`` in
        ``n, s, v, f, q``, and EC57's VEB / SVEB gross statistics (:func:`ec57_gross`).
        Undefined ratios are ``nan``.
    """
    return metrics_from_confusion(confusion_matrix(y_true, y_pred))


def aami_metrics_by_record(
    y_true: Any, y_pred: Any, record_ids: Any
) -> dict[str, dict[str, float]]:
    """:func:`aami_metrics` of each record separately (``record_ids`` is ``(n,)``)."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    r = np.asarray(record_ids).astype(str)
    if not (t.shape == p.shape == r.shape):
        raise ValueError(
            f"y_true {t.shape}, y_pred {p.shape} and record_ids {r.shape} must have one shape"
        )
    return {rid: aami_metrics(t[r == rid], p[r == rid]) for rid in dict.fromkeys(r.tolist())}


def aami_report(y_true: Any, y_pred: Any, record_ids: Any | None = None) -> dict[str, Any]:
    """Nested summary for JSON reports.

    Returns
    -------
    dict
        ``{"accuracy", "kappa", "j_index", "jk_index", "confusion_matrix": [[...]],
        "classes": {"N": {"n", "se", "ppv", "f1", "spec"}, ...},
        "ec57": {"veb": {"se", "ppv", "f1", "fpr"}, "sveb": {"se", "ppv", "f1"}},
        "records": {rid: {...}}}``
        (``records`` only when ``record_ids`` is given). ``nan`` becomes ``None``.
    """

    def nested(cm: np.ndarray) -> dict[str, Any]:
        m = metrics_from_confusion(cm)
        return {
            "n_beats": int(m["n_beats"]),
            **{k: _clean(m[k]) for k in AAMI_SUMMARY_STATS},
            "confusion_matrix": cm.astype(int).tolist(),
            "classes": {
                c: {
                    s: int(m[f"{c.lower()}_n"]) if s == "n" else _clean(m[f"{c.lower()}_{s}"])
                    for s in CLASS_STATS
                }
                for c in CLASS_NAMES
            },
            "ec57": {
                "veb": {k: _clean(m[f"veb_{k}"]) for k in ("se", "ppv", "f1", "fpr")},
                "sveb": {k: _clean(m[f"sveb_{k}"]) for k in ("se", "ppv", "f1")},
            },
        }

    out = nested(confusion_matrix(y_true, y_pred))
    if record_ids is not None:
        t, p = np.asarray(y_true), np.asarray(y_pred)
        r = np.asarray(record_ids).astype(str)
        out["records"] = {
            rid: nested(confusion_matrix(t[r == rid], p[r == rid]))
            for rid in dict.fromkeys(r.tolist())
        }
    return out


def _clean(v: float) -> float | None:
    if isinstance(v, int):
        return v
    return None if np.isnan(v) else float(v)


def _fmt(v: Any, n: bool = False) -> str:
    if v is None:
        return "-"
    return f"{int(v)}" if n else f"{100 * v:.1f}"


def calls_report(
    y_pred: Any, record_ids: Any, all_records: Sequence[str] | None = None
) -> dict[str, Any]:
    """What a classifier called where there is no reference to score it against.

    ``all_records``: every record looked at, so that one without a beat called has its
    row (of zeros) and is not taken for one left out.

    Returns
    -------
    dict
        ``{"n_beats", "calls": {class: n}, "records": {rid: {"n_beats", "calls"}}}``,
        records in order of first appearance (then those of ``all_records`` without a
        beat).
    """
    p = _as_labels(y_pred, "y_pred", len(CLASS_NAMES))
    r = np.asarray(record_ids).astype(str)
    if r.shape != p.shape:
        raise ValueError("record_ids must have one entry per beat")

    def counts(q: np.ndarray) -> dict[str, int]:
        n = np.bincount(q, minlength=len(CLASS_NAMES))
        return {c: int(n[k]) for k, c in enumerate(CLASS_NAMES)}

    _, first = np.unique(r, return_index=True)
    records = {
        rid: {"n_beats": int((r == rid).sum()), "calls": counts(p[r == rid])}
        for rid in r[np.sort(first)]
    }
    for rid in all_records or ():
        records.setdefault(str(rid), {"n_beats": 0, "calls": counts(p[:0])})
    return {"n_beats": int(p.size), "calls": counts(p), "records": records}


def _plain(v: float | None) -> str:
    """A figure that is no percentage, to three places; ``-`` where undefined."""
    return "-" if v is None or not np.isfinite(v) else f"{round(float(v), 3):g}"


def report_markdown(report: Mapping[str, Any], title: str = "AAMI EC57 beat classification") -> str:
    """Markdown tables of an :func:`aami_report`, or of a :func:`calls_report` (percentages,
    ``-`` for undefined)."""
    if "classes" not in report:
        return _calls_markdown(report, title)
    iv = report.get("intervals") or {}  # record-bootstrap intervals, shown in brackets
    lines = [f"## {title}", ""]
    lines.append(
        f"Beats: {report['n_beats']}; accuracy {_ci(report['accuracy'], iv.get('accuracy'), ' %')}; "
        f"kappa {_plain(report['kappa'])}; jk index {_plain(report['jk_index'])}"
    )
    lines += ["", "| class | n | Se % | +P % | F1 % | Sp % |", "|---|---:|---:|---:|---:|---:|"]
    for c, s in report["classes"].items():
        ci = iv.get("classes", {}).get(c, {})
        cells = " | ".join(_ci(s[k], ci.get(k)) for k in ("se", "ppv", "f1", "spec"))
        lines.append(f"| {c} | {_fmt(s['n'], True)} | {cells} |")
    ec57 = report.get("ec57")
    if ec57 is not None:
        e = {f"{g}_{k}": _ci(v, iv.get("ec57", {}).get(g, {}).get(k), " %")
             for g in ("veb", "sveb") for k, v in ec57[g].items()}  # fmt: skip
        lines += ["", "EC57 gross statistics (F or Q beats called V, and Q beats called S, are not "
                  "false positives): VEB Se {veb_se}, +P {veb_ppv}, F1 {veb_f1}, FPR {veb_fpr}; "
                  "SVEB Se {sveb_se}, +P {sveb_ppv}, F1 {sveb_f1}".format(**e)]  # fmt: skip
    lines += interval_lines(report)
    cm = report.get("confusion_matrix")
    if cm is not None:
        names = matrix_classes(report)
        lines += ["", "Confusion matrix (rows true, columns predicted):", ""]
        lines.append("| true \\ pred | " + " | ".join(names) + " |")
        lines.append("|---|" + "---:|" * len(names))
        for c, row in zip(names, cm, strict=True):
            lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    lines += q_beat_lines(report)
    recs = report.get("records")
    if recs:
        lines += ["", "Per record:", ""]
        lines.append("| record | beats | acc % | S Se % | S +P % | V Se % | V +P % |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for rid, r in recs.items():
            cl = r["classes"]
            lines.append(
                f"| {rid} | {r['n_beats']} | {_fmt(r['accuracy'])} | {_fmt(cl['S']['se'])} | "
                f"{_fmt(cl['S']['ppv'])} | {_fmt(cl['V']['se'])} | {_fmt(cl['V']['ppv'])} |"
            )
    return "\n".join(lines + _signal_lines(report)) + "\n"


def _calls_markdown(report: Mapping[str, Any], title: str) -> str:
    names = list(report["calls"])
    lines = [
        f"## {title}",
        "",
        f"Beats: {report['n_beats']}, found by the R-peak detector; no reference annotations, "
        "so these are the model's calls, not scores.",
        "",
        "| record | beats | " + " | ".join(names) + " | V % | S % |",
        "|---|---:|" + "---:|" * (len(names) + 2),
    ]
    rows = [*report["records"].items(), ("all", report)]
    for rid, r in rows:
        n, calls = r["n_beats"], r["calls"]
        share = {c: _fmt(calls[c] / n if n else None) for c in ("V", "S")}
        lines.append(
            f"| {rid} | {n} | " + " | ".join(str(calls[c]) for c in names)
            + f" | {share['V']} | {share['S']} |"
        )  # fmt: skip
    return "\n".join(lines + _signal_lines(report)) + "\n"


def fallback_lead_lines(records: Mapping[str, Any], done: str = "Scored") -> list[str]:
    """The markdown line naming the ``records`` (``{record: {"signal": {"lead",
    "lead_wanted", "lead_fallback"}}}``) read on a fall-back lead (with a blank line before
    it; none without such a record); ``done``: what was done on it."""
    fell_back = {rid: r["signal"] for rid, r in records.items()
                 if r.get("signal") and r["signal"].get("lead_fallback")}  # fmt: skip
    if not fell_back:
        return []
    return ["", f"{done} on a fall-back lead ({len(fell_back)} records without the "
            "model's lead or its counterpart; a lead the model was not trained on): "
            + ", ".join(f"{rid} {q.get('lead')} for {q.get('lead_wanted')}"
                        for rid, q in fell_back.items())]  # fmt: skip


def _signal_lines(report: Mapping[str, Any]) -> list[str]:
    """The fall-back-lead, signal-quality, outside-signal, QRS-polarity and not-scored notes
    of a report's records."""
    recs = report.get("records")
    lines = fallback_lead_lines(recs or {})
    flagged = {
        rid: r["signal"]
        for rid, r in (recs or {}).items()
        if r.get("signal") and r["signal"].get("quality_rejected_windows")
    }
    if flagged:
        lines += [
            "",
            f"Signal quality ({len(flagged)} records with rejected windows; their beats are "
            "scored, and V calls in rejected signal pass through the quality gate):",
            "",
            "| record | lead | rejected windows | beats in rejected signal % | flags |",
            "|---|---|---:|---:|---|",
        ]
        for rid, q in flagged.items():
            flags = ", ".join(f"{k} {v}" for k, v in q.get("quality_flags", {}).items() if v)
            lines.append(
                f"| {rid} | {q.get('lead')} | {q['quality_rejected_windows']} of "
                f"{q.get('quality_windows')} | {_fmt(q.get('beats_in_rejected_signal_fraction'))} "
                f"| {flags} |"
            )
    outside = {
        rid: int(r["signal"]["beats_outside_signal"])
        for rid, r in (recs or {}).items()
        if r.get("signal") and r["signal"].get("beats_outside_signal")
    }
    if outside:
        lines += [
            "",
            "Beat annotations outside the signal, left out (an annotation file from a longer "
            "recording?): " + ", ".join(f"{rid} {n}" for rid, n in outside.items()),
        ]
    upside_down = {
        rid: r["signal"]["polarity_warning"]
        for rid, r in (recs or {}).items()
        if r.get("signal") and r["signal"].get("polarity_warning")
    }
    if upside_down:
        lines += [
            "",
            f"QRS pointing against the lead's usual way ({len(upside_down)} records):",
            "",
        ]
        lines += [f"- {rid}: {why}" for rid, why in upside_down.items()]
    excluded = report.get("excluded")
    if excluded:
        lines += [
            "",
            f"Not scored ({len(excluded)} records; the figures above leave them out):",
            "",
        ]
        lines += ["| record | stage | reason | detail |", "|---|---|---|---|"]
        for rid, e in excluded.items():
            detail = str(e.get("detail", "")).replace("|", "\\|")
            lines.append(f"| {rid} | {e.get('stage', '')} | {e.get('reason', '')} | {detail} |")
    return lines

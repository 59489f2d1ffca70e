"""Model cards: what a registered model is, how it was tested, and where it is weak.

The MLflow registry shows a description for each registered model and each version. Here
they are written as short markdown texts, in the spirit of Mitchell et al., "Model Cards
for Model Reporting", FAT* 2019 (intended use, data, results, limits). A data team deciding
whether to promote or use a model reads them there without opening a run.
Plain functions over the metric dicts the evaluations already produce; nothing is computed
here that the reports do not hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from vitalgru.metrics.aami_scope import matrix_classes
from vitalgru.metrics.intervals import wilson_interval

__all__ = [
    "ARRHYTHMIA_MODEL_DESCRIPTION",
    "EARLY_WARNING_MODEL_DESCRIPTION",
    "MAX_DESCRIPTION_CHARS",
    "arrhythmia_version_card",
    "challenge_cohort",
    "early_warning_version_card",
]

#: MLflow's SQL stores keep descriptions in a 5,000-character column.
MAX_DESCRIPTION_CHARS = 5000

ARRHYTHMIA_MODEL_DESCRIPTION = """\
Labels each heartbeat of a single-lead ECG with an AAMI EC57 class: N (normal and bundle \
branch block), S (supraventricular ectopic), V (ventricular ectopic), F (fusion), \
Q (unclassifiable).

- **Input**: one lead of a WFDB record (MLII, or its limb-lead counterpart II), filtered \
and resampled to the model's rate; beats from the record's annotations, or found by the \
live monitor's R-peak detector (`vitalgru.scoring.ArrhythmiaMonitor`).
- **Output**: class probabilities per beat. A beat is labelled once at most two more beats \
have arrived, so the same weights can score a live stream.
- **Data**: MIT-BIH Arrhythmia Database. Trained on DS1 and tested on DS2 (the de Chazal \
et al. 2004 inter-patient split). The patients of the test were never seen in training. \
Paced records are excluded from both.
- **Use**: `vitalgru evaluate arrhythmia --model models:/vitalgru-arrhythmia@champion \
--db NAME_OR_FOLDER --out FILE.json`; live: `vitalgru replay arrhythmia` (recordings replayed \
as a ward) or `ArrhythmiaMonitor` in Python.
- **Limits**: research software, not a medical device. DS1 holds two patients with atrial \
fibrillation and none with AV block. S calls at the onset of atrial fibrillation and in 2:1 \
block are therefore its weakest; most of DS2's false S are there. It was trained on \
upright beats: on a lead inverted by swapped electrodes it loses the fusion beats (one \
default model, DS2 F F1 0.08 against 0.23; S and V held), and such a lead is flagged, not \
turned over (`polarity_warning`). Its patients are adults, few of their beats came faster \
than 150 bpm (0.8 % of DS1's) and none was paced: a child's or a tachycardic ECG above \
150 bpm is flagged (`population_warning`), and paced beats are mostly called N (7678 of \
the 8028 Q beats of MIT-BIH's paced records, with one model) and are not recognised as \
paced. Validate on your own recordings before relying on it.
- **Monitoring**: `vitalgru monitor arrhythmia --db NAME_OR_FOLDER` (Prefect flow \
`monitor-arrhythmia`, weekly in `prefect.yaml`) compares the records' heart rate, beat \
amplitude, clean-signal share and the class mix of the calls with the reference stored \
with the version, and S/V F1 with the gated DS2 values; the verdict lands on the \
version's `vitalgru.monitor.*` tags.
- **Versions**: each version's description gives its DS2 results. The `champion` alias \
moves only when a new version beats the champion on DS2 S and V F1.
"""

EARLY_WARNING_MODEL_DESCRIPTION = """\
An hourly risk of sepsis for an ICU patient, from vital signs, laboratory values and \
demographics (the PhysioNet/CinC Challenge 2019 columns). Each hour's risk uses only the \
hours so far. An alarm is raised when the risk reaches a threshold chosen on training \
patients only.

- **Input**: one Challenge-2019 `.psv` table per patient, one row per ICU hour. Missing \
values are expected. Physiologically impossible values are treated as missing.
- **Output**: risk and alarm for every hour, and the risk recalibrated on the validation share to a probability that the hour is labelled septic (`preprocessing["recalibration"]`; the risk itself is a ranking score, not a probability).
- **Label**: the challenge's. It turns 1 six hours before the clinical onset of sepsis \
(Sepsis-3); the score is the challenge's normalized utility.
- **Data**: one hospital system of the 2019 challenge (set A by default; each version's \
description names its own), cross-validated by patient. The final model is trained on all \
of its patients.
- **Use**: `vitalgru evaluate early-warning --model models:/vitalgru-early-warning@champion \
--data FOLDER --out FILE.json` scores any Challenge-2019 folder; live: `vitalgru replay \
early-warning` (stays fed an hour at a time, with a clinician's page) or \
`EarlyWarningMonitor` in Python.
- **Limits**: research software, not a medical device. It was trained on one hospital \
system; in the challenge, every team scored far lower on hospitals it had not trained on. \
Its patients are adults (set A: none under 18): a younger patient's hours, and vital \
signs beyond the training patients' range, are scored but flagged (`HourRisk.outside`). \
Score your own hospital's data with the command above before any use.
- **Monitoring**: `vitalgru monitor early-warning --data FOLDER` (Prefect flow \
`monitor-early-warning`, scheduled daily in `prefect.yaml`) compares a folder's inputs and \
risks with the training reference stored with the version, and its utility with the gated \
one where labels exist; the verdict lands on the version's `vitalgru.monitor.*` tags.
- **Versions**: each version's description gives its cross-validated results beside the \
baselines. The `champion` alias moves only when a new version beats the champion on \
utility and AUROC.
"""


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def arrhythmia_version_card(
    report: Mapping[str, Any],
    *,
    train_records: Sequence[str],
    run_id: str,
    model_facts: Mapping[str, Any],
) -> str:
    """A version's description from its DS2 :func:`vitalgru.metrics.aami.aami_report`.

    Parameters
    ----------
    report : mapping
        The DS2 report (``n_beats``, ``accuracy``, ``classes``, ``records``, ``ec57``).
    train_records : sequence of str
        The records the version was trained on.
    run_id : str
        The MLflow run that trained it.
    model_facts : mapping
        Short ``name: value`` facts about the network (parameters, members, gates), shown
        as given.
    """
    classes = report["classes"]
    se_ci, ppv_ci = _class_intervals(report)
    f1_ci, boot = _record_intervals(report)
    n_records = len(report["records"])
    lines = [
        f"**DS2**, {n_records} records and {report['n_beats']:,} beats never "
        f"seen in training (trained on {len(train_records)} DS1 records):",
        "",
        "| class | beats | Se % [95 % CI] | +P % [95 % CI] | F1 %"
        + (" [95 % CI, records] |" if f1_ci else " |"),
        "|---|---:|---:|---:|---:|",
    ]
    for c, s in classes.items():
        se, ppv = _pct(s["se"]) + se_ci.get(c, ""), _pct(s["ppv"]) + ppv_ci.get(c, "")
        lines.append(f"| {c} | {s['n']:,} | {se} | {ppv} | {_pct(s['f1']) + f1_ci.get(c, '')} |")
    notes = [boot] if boot else []
    if se_ci or ppv_ci:
        notes.insert(0,
            "Se and +P intervals: Wilson 95 % over beats. The beats of one record (one patient) "
            f"are not independent, and these come from {n_records} record"
            f"{'' if n_records == 1 else 's'}: the figures vary more from one set of "
            "patients to another than these intervals say.",
        )  # fmt: skip
    lines += ["", " ".join(notes)] if notes else []
    lines += ["", f"Accuracy {_pct(report['accuracy'])} %."]
    ec57 = report.get("ec57")
    if ec57 is not None:
        lines[-1] += (
            f" EC57 gross statistics: VEB F1 {_pct(ec57['veb']['f1'])} %, SVEB F1 "
            f"{_pct(ec57['sveb']['f1'])} %."
        )
    facts = "; ".join(f"{k} {v}" for k, v in model_facts.items())
    lines += ["", f"Network: {facts}.", "", f"MLflow run `{run_id}`."]
    return "\n".join(lines) + "\n"


def _class_intervals(report: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """`` [low, high]`` (percent) of each class's Se and +P from the report's confusion
    matrix (rows true, columns called, in ``classes`` order); none where it has no matrix
    or a class no beat of (or no call of)."""
    cm = report.get("confusion_matrix")
    names = matrix_classes(report)
    if cm is None or len(cm) != len(names):
        return {}, {}

    def shown(k: int, n: int) -> str:
        ci = wilson_interval(k, n)
        return "" if ci is None else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"

    se = {c: shown(int(cm[i][i]), int(sum(cm[i]))) for i, c in enumerate(names)}
    ppv = {c: shown(int(cm[i][i]), int(sum(row[i] for row in cm))) for i, c in enumerate(names)}
    return se, ppv


def _record_intervals(report: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """`` [low, high]`` (percent) of each class's F1 from the report's record-bootstrap
    ``intervals`` (:mod:`vitalgru.metrics.aami_intervals`), and the sentence saying how
    they were made (or why there are none); nothing for a report without them."""
    iv = report.get("intervals")
    if not iv:
        return {}, ""
    if iv.get("note"):
        return {}, f"No record-bootstrap interval on F1 ({iv['note']})."
    f1 = {c: f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
          for c, stats in iv["classes"].items() if (ci := stats.get("f1")) is not None}  # fmt: skip
    return f1, (
        f"F1 intervals: {100 * iv['level']:g} % record bootstrap ({iv['n_records']} records "
        f"resampled with replacement, {iv['n_resamples']} resamples, percentile): the spread to "
        "expect on other patients."
    )


def challenge_cohort(source: str) -> str:
    """Where a Challenge-2019 cohort's patients come from, from the folder it was read from:
    ``training_setA`` is hospital system A, ``training_setB`` system B (Reyna et al., Crit
    Care Med 2020); any other folder is named as it is."""
    folder = str(source).rstrip("/").rsplit("/", 1)[-1]
    systems = {"training_setA": "hospital system A", "training_setB": "hospital system B"}
    return systems.get(folder, f"the folder `{folder}`")


#: Rows of the early-warning card: summary key -> label.
_EW_MODELS = {
    "gru_d_gbm_blend": "GRU-D + trees blend",
    "gru_d": "GRU-D",
    "gbm": "gradient-boosted trees",
    "news2": "NEWS2 (bedside score)",
    "qsofa": "qSOFA (bedside score)",
}


def early_warning_version_card(
    summary: Mapping[str, Mapping[str, float]],
    *,
    registered_kind: str,
    n_patients: int,
    n_folds: int,
    threshold: float,
    run_id: str,
    cohort: str = "hospital system A",
    pooled: Mapping[str, Any] | None = None,
) -> str:
    """A version's description from the cross-validation summary (one entry per model:
    ``utility_mean``/``_sd``, ``auroc_mean``, ``auprc_mean``, ``alarms_per_patient_day_mean``,
    ``septic_detected_fraction_mean``), the registered model's row first and marked;
    ``cohort`` names where the patients come from (:func:`challenge_cohort`); ``pooled``,
    where given, the registered model's held-out patients pooled with the patient-bootstrap
    interval of their utility (:func:`vitalgru.metrics.early_warning_intervals.
    bootstrap_early_warning`)."""
    order = [registered_kind] + [k for k in _EW_MODELS if k != registered_kind]
    lines = [
        f"**{n_folds}-fold cross-validation by patient** on {n_patients:,} patients of "
        f"{cohort}. All models are scored on the same folds, each with its alarm "
        "threshold chosen on training patients only (mean ± sd over folds):",
        "",
        "| model | utility | AUROC | AUPRC | alarms per patient-day | septic patients alarmed % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in order:
        s = summary.get(kind)
        if s is None:
            continue
        name = _EW_MODELS.get(kind, kind)
        if kind == registered_kind:
            name = f"**{name} (this model)**"
        lines.append(
            f"| {name} | {_num(s.get('utility_mean'))} ± {_num(s.get('utility_sd'))} | "
            f"{_num(s.get('auroc_mean'))} | {_num(s.get('auprc_mean'))} | "
            f"{_num(s.get('alarms_per_patient_day_mean'), 2)} | "
            f"{_pct(s.get('septic_detected_fraction_mean'))} |"
        )
    u = (pooled or {}).get("utility") or {}
    if u.get("estimate") is not None and u.get("low") is not None:
        lines += [
            "",
            f"The ± is the spread between folds. Pooled over the held-out patients (each "
            f"scored by its fold's model at its fold's threshold), this model's utility is "
            f"{u['estimate']:.3f}, 95 % interval {u['low']:.3f}-{u['high']:.3f} by resampling "
            f"whole patients ({(pooled or {}).get('n_resamples')} resamples; the fitted models and "
            "thresholds held fixed): how far it could move on other patients like these.",
        ]
    lines += [
        "",
        "NEWS2 and qSOFA are computed from the vitals the tables hold. Neither score has "
        "its consciousness item (the tables do not record it), and NEWS2's supplemental "
        "oxygen is inferred from FiO2 (`vitalgru.baselines.scores`).",
        "",
        f"This version was trained on all {n_patients:,} patients; its alarm threshold, "
        f"{threshold:.4f}, was chosen on a validation share of them."
        if math.isfinite(threshold)
        else f"This version was trained on all {n_patients:,} patients. **It raises no "
        "alarm**: on the validation share of them no alarm threshold scored better than "
        "raising none, so none was set (its risks are still given).",
        "",
        f"MLflow run `{run_id}`.",
    ]
    return "\n".join(lines) + "\n"

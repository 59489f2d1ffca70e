"""How many sepsis alarms a lockout after an acknowledged alarm would spare, and what it
would cost the septic patients, on an early-warning training run's out-of-fold risks.

A patient whose risk hovers at the alarm line alarms again and again. ``vitalgru serve
--sepsis-lockout-h H`` logs a new alarm episode that begins within H ICU hours of the
patient's latest alarm that paged someone, once that alarm was acknowledged, as
``sepsis_risk_repeated``: it pages no one. This script replays that rule
(:func:`vitalgru.scoring.ward_sepsis.within_lockout`, the ward's own) over the hourly risks
the cross-validation gave each patient when held out (``cv/oof_scores.parquet``), alarming
at each fold's own threshold (``cv/per_fold.csv``, ``dataset/folds.csv``), as if every
alarm that paged were acknowledged at once (the most a lockout can spare).

For each lockout it counts alarm episodes, the ones that page, and for the septic patients
(clinical onset: the first labelled hour + 6, as the Challenge's scorer places it) whether
they were paged by 3 h after onset, paged in the 12 h before onset to 3 h after (the
utility's window for a useful alarm), and how old their latest page was at onset.

    python benchmarks/sepsis_lockout.py [--run vitalgru-out/early_warning] [--lockouts 0,6,12,24]

Writes ``benchmarks/results/sepsis_lockout.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results

from vitalgru.scoring.ward_sepsis import within_lockout

#: The utility's window around clinical onset in which an alarm helps (dt_early, dt_late).
EARLY_H, LATE_H = 12, 3


def episodes(hours: np.ndarray, alarm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICU hours at which each alarm episode began, and the hour of the first hour below the
    line after each (the stay's last hour + 1 for one still going at the end)."""
    prev = np.concatenate([[False], alarm[:-1]])
    starts = np.flatnonzero(alarm & ~prev)
    ends = np.flatnonzero(~alarm & prev)
    end_hours = [hours[ends[ends > s][0]] if (ends > s).any() else hours[-1] + 1 for s in starts]
    return hours[starts], np.asarray(end_hours, dtype=hours.dtype)


def replay(stays: list[tuple[np.ndarray, np.ndarray, int | None]], lockout_h: float) -> dict:
    """Pages under a lockout of ``lockout_h`` hours (every page acknowledged at once)."""
    n_onsets = n_pages = 0
    paged_by_late = paged_in_window = 0
    staleness: list[float] = []
    for hours, alarm, onset in stays:
        starts, _ = episodes(hours, alarm)
        paged_at: int | None = None
        pages = []
        for h in starts:
            n_onsets += 1
            if within_lockout(paged_at, True, int(h), lockout_h):
                continue
            n_pages += 1
            paged_at = int(h)
            pages.append(int(h))
        if onset is None:
            continue
        before = [h for h in pages if h <= onset + LATE_H]
        paged_by_late += bool(before)
        paged_in_window += any(onset - EARLY_H <= h <= onset + LATE_H for h in pages)
        if before:
            staleness.append(float(onset - max(before)))
    return {
        "lockout_h": lockout_h,
        "onsets": n_onsets,
        "pages": n_pages,
        "spared": n_onsets - n_pages,
        "septic_paged_by_onset_plus_3h": paged_by_late,
        "septic_paged_in_utility_window": paged_in_window,
        "latest_page_before_onset_median_h": float(np.median(staleness)) if staleness else None,
        "latest_page_over_24h_before_onset": int(sum(s > 24 for s in staleness)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("vitalgru-out/early_warning"),
                    help="an early-warning training run's output folder")  # fmt: skip
    ap.add_argument("--model", default="gru_d_gbm_blend", help="whose risks (default the blend)")
    ap.add_argument("--lockouts", default="0,6,12,24", help="lockouts to replay, ICU hours")
    args = ap.parse_args()
    env = environment()  # the load and date at the start, not after the work
    lockouts = [float(x) for x in args.lockouts.split(",")]
    oof = pd.read_parquet(args.run / "cv" / "oof_scores.parquet")
    per_fold = pd.read_csv(args.run / "cv" / "per_fold.csv")
    folds = pd.read_csv(args.run / "dataset" / "folds.csv", dtype={"patient_id": str})
    thr = per_fold[per_fold["model"] == args.model].set_index("fold")["threshold"]
    line = folds.set_index("patient_id")["fold"].map(lambda f: float(thr[float(f)]))
    oof = oof.sort_values(["patient_id", "hour"], kind="stable")
    stays = []
    gaps: list[float] = []  # hours from an episode's end to the same patient's next onset
    for pid, g in oof.groupby("patient_id", sort=False):
        hours = g["hour"].to_numpy(np.int64)
        alarm = g[f"score_{args.model}"].to_numpy() >= line[str(pid)]
        labels = g["sepsis_label"].to_numpy()
        onset = int(hours[int(np.argmax(labels))]) + 6 if labels.any() else None
        stays.append((hours, alarm, onset))
        starts, ends = episodes(hours, alarm)
        gaps += [float(s - e) for s, e in zip(starts[1:], ends[:-1], strict=True)]
    patient_days = len(oof) / 24.0
    rows = [replay(stays, h) for h in lockouts]
    for r in rows:
        r["pages_per_patient_day"] = r["pages"] / patient_days
    n_onsets = rows[0]["onsets"]
    repeats = {h: int(sum(g < h for g in gaps)) for h in (6, 12, 24)}
    n_septic = sum(onset is not None for _, _, onset in stays)
    payload: dict[str, Any] = {
        "command": f"python benchmarks/sepsis_lockout.py --run {args.run} --model {args.model}"
        f" --lockouts {args.lockouts}",
        "environment": env,
        "run": str(args.run),
        "patients": len(stays),
        "septic_patients": n_septic,
        "patient_days": patient_days,
        "onsets": n_onsets,
        "repeat_onsets_within_h_of_previous_end": repeats,
        "lockouts": rows,
    }
    lines = [
        "# Sepsis alarms a lockout after an acknowledged alarm would spare",
        "",
        f"Command: `{payload['command']}`",
        "",
        f"{args.model} out-of-fold risks of {len(stays):,} set-A patients ({n_septic:,} septic, "
        f"{patient_days:,.0f} patient-days), each fold's own threshold, every page "
        f"acknowledged at once. Of {n_onsets:,} alarm episodes, "
        + ", ".join(
            f"{n:,} ({100 * n / n_onsets:.1f} %) began within {h} h" for h, n in repeats.items()
        )  # fmt: skip
        + " of the end of the same patient's previous episode.",
        "",
        "| lockout (ICU h) | episodes | pages | spared | pages / patient-day | septic paged by "
        "onset + 3 h | septic paged 12 h before to 3 h after onset | latest page before "
        "onset, median h | latest page > 24 h before onset |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        med = r["latest_page_before_onset_median_h"]
        lines.append(
            f"| {r['lockout_h']:g} | {r['onsets']:,} | {r['pages']:,} | {r['spared']:,} | "
            f"{r['pages_per_patient_day']:.3f} | {r['septic_paged_by_onset_plus_3h']:,} | "
            f"{r['septic_paged_in_utility_window']:,} | "
            f"{'–' if med is None else f'{med:g}'} | {r['latest_page_over_24h_before_onset']:,} |"
        )
    js, md = write_results("sepsis_lockout", payload, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()

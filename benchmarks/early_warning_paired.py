"""Where the models stand against each other on set A: paired patient-bootstrap intervals
of the difference in pooled cross-validated utility (the GRU-D + trees blend against the
trees alone and the GRU-D alone, the trees against the GRU-D, the GRU-D against NEWS2).

Reads the held-out scores that ``benchmarks/early_warning_intervals.py --oof FILE.npz``
saves (each patient held out by one fold and alarmed at that fold's threshold, chosen on
its training folds) and writes ``benchmarks/results/early_warning_paired.{json,md}``.
Patients are drawn once per resample for both models, so what both find hard cancels.

    python benchmarks/early_warning_intervals.py --max-minutes-per-fit none --oof FILE.npz
    python benchmarks/early_warning_paired.py --oof FILE.npz
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import strict_json
from early_warning_intervals import _Saved
from early_warning_pooled import pooled_alarms

from vitalgru.metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vitalgru.metrics.paired_utility import paired_utility_difference

ROOT = Path(__file__).resolve().parents[1]

#: (a, b): a's utility minus b's.
PAIRS = (
    ("gru_d_gbm_blend", "gbm"),
    ("gru_d_gbm_blend", "gru_d"),
    ("gbm", "gru_d"),
    ("gru_d", "news2"),
    ("news2", "qsofa"),
)


def paired_rows(saved: Any, n_resamples: int, seed: int) -> list[dict[str, Any]]:
    """One row per pair in :data:`PAIRS` whose models both have held-out scores."""
    res = saved.res
    alarms = {
        m: pooled_alarms(saved.offsets, res.folds, s, res.per_fold[m])[0]
        for m, s in res.oof_scores.items()
    }
    rows = []
    for a, b in PAIRS:
        if a in alarms and b in alarms:
            t0 = time.perf_counter()
            d = paired_utility_difference(
                saved.labels, alarms[a], alarms[b], saved.offsets,
                n_resamples=n_resamples, seed=seed,
            )  # fmt: skip
            rows.append({"a": a, "b": b, **asdict(d), "within_noise": d.within_noise,
                         "seconds": time.perf_counter() - t0})  # fmt: skip
    return rows


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Sepsis early warning: paired comparisons of the models, training set A",
        "",
        f"Command: `{out['command']}`",
        "",
        f"{out['n_patients']} patients, each held out by one fold of the 5-fold "
        "cross-validation of `benchmarks/early_warning.py` and alarmed at that fold's "
        "threshold. Utility of a minus utility of b on all of them, and its 95 % paired "
        f"patient-bootstrap interval ({out['n_resamples']} resamples of whole patients, seed "
        f"{out['seed']}, drawn once for both models; the fitted models and thresholds held "
        "fixed: other patients from the same hospital).",
        "",
        "| a | b | utility a - b | 95 % interval | a better in | within noise |",
        "|---|---|---:|---|---:|---|",
    ]
    for r in out["pairs"]:
        share = "n/a" if r["share_better"] is None else f"{100 * r['share_better']:.1f} %"
        lines.append(
            f"| {r['a']} | {r['b']} | {_signed(r['difference'])} | "
            f"[{_signed(r['low'])}, {_signed(r['high'])}] | {share} | "
            f"{'yes' if r['within_noise'] else 'no'} |"
        )
    lines += [
        "",
        f"Bootstrap: {sum(r['seconds'] for r in out['pairs']):.1f} s for all pairs; 1-minute "
        f"load average {out['load_average_1min']:.1f} (2-core machine).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--oof", required=True, help="held-out scores saved by early_warning_intervals.py --oof"
    )
    ap.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    ap.add_argument("--bootstrap-seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    saved = _Saved(Path(args.oof))
    out = {
        # the file's place on the machine that ran it is not part of the result
        "command": "python benchmarks/early_warning_paired.py --oof FILE.npz",
        "n_patients": int(saved.n_patients),
        "n_resamples": args.resamples,
        "seed": args.bootstrap_seed,
        "pairs": paired_rows(saved, args.resamples, args.bootstrap_seed),
        "load_average_1min": os.getloadavg()[0],
    }
    od = Path(args.out)
    od.mkdir(parents=True, exist_ok=True)
    (od / "early_warning_paired.json").write_text(strict_json(out, indent=2) + "\n")
    (od / "early_warning_paired.md").write_text(markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How far the saved DS2 figures could move on other patients: record-bootstrap intervals.

One command, no training and no data (it reads saved results)::

    python benchmarks/ds2_intervals.py [--resamples 5000] [--seed 20190101]

Reads every saved result under ``benchmarks/results/`` whose ``ds2.records`` holds
per-record confusion matrices (``benchmarks/arrhythmia.py`` writes them), and gives for each:

- S and V F1, Se, +P, accuracy and EC57's SVEB / VEB F1 with their 95 % record-bootstrap
  percentile intervals (the 22 DS2 records resampled with replacement;
  :func:`vitalgru.metrics.aami_intervals.record_intervals`), and whether the project's target
  and the best published inter-patient result lie inside the interval;
- how much of S and V each record carries: its beats of the class, those found, its own F1
  and DS2's F1 with that record left out (leave-one-record-out).

Writes ``benchmarks/results/ds2_intervals.json`` and ``benchmarks/results/ds2_intervals.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment, write_results

from vitalgru.metrics.aami_intervals import (
    interval_cell,
    leave_one_record_out,
    record_intervals,
)
from vitalgru.metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED

NAME = "ds2_intervals"
#: The README's targets, and the best fully inter-patient results it cites (benchmarks/
#: arrhythmia.py ``PUBLISHED``: Niu et al. 2020 for S F1, Mondejar-Guerra et al. 2019 for V F1).
TARGETS = {"S": 0.80, "V": 0.95}
PUBLISHED = {"S": (0.766, "Niu et al. 2020"), "V": (0.943, "Mondejar-Guerra et al. 2019")}


def saved_ds2(results: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """``{file name: saved result}`` of every results file whose ``ds2.records`` holds
    per-record confusion matrices (this script's own output left out)."""
    out = {}
    for path in sorted(results.glob("*.json")):
        if path.stem == NAME:
            continue
        data = json.loads(path.read_text())
        records = (data.get("ds2") or {}).get("records") if isinstance(data, dict) else None
        if records and all("confusion_matrix" in r for r in records.values()):
            out[path.name] = data
    return out


def _where(value: float, ci: list[float] | None) -> str:
    if ci is None:
        return "no interval"
    return "inside" if ci[0] <= value <= ci[1] else ("above" if value > ci[1] else "below")


def summarise(data: dict[str, Any], n_resamples: int, seed: int) -> dict[str, Any]:
    """The point figures, their intervals and each record's share of S and V."""
    ds2 = data["ds2"]
    iv = record_intervals(ds2["records"], n_resamples=n_resamples, seed=seed)
    figures: dict[str, dict[str, Any]] = {
        "accuracy": {"value": ds2["accuracy"], "interval": iv["accuracy"]}
    }
    for c in ("S", "V"):
        for s in ("se", "ppv", "f1"):
            figures[f"{c.lower()}_{s}"] = {
                "value": ds2["classes"][c][s], "interval": iv["classes"][c][s],
            }  # fmt: skip
        figures[f"{c.lower()}_f1"]["target"] = TARGETS[c]
        figures[f"{c.lower()}_f1"]["target_is"] = _where(TARGETS[c], iv["classes"][c]["f1"])
        figures[f"{c.lower()}_f1"]["published"] = PUBLISHED[c][0]
        figures[f"{c.lower()}_f1"]["published_work"] = PUBLISHED[c][1]
        figures[f"{c.lower()}_f1"]["published_is"] = _where(PUBLISHED[c][0], iv["classes"][c]["f1"])
    for g in ("sveb", "veb"):
        figures[f"{g}_f1"] = {"value": ds2["ec57"][g]["f1"], "interval": iv["ec57"][g]["f1"]}
    return {
        "command": data.get("command"),
        "date_utc": (data.get("environment") or {}).get("date_utc"),
        "intervals": iv,
        "figures": figures,
        "leave_one_record_out": leave_one_record_out(ds2["records"]),
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown(payload: dict[str, Any]) -> str:
    md = [
        "# DS2 figures with record-bootstrap intervals",
        "",
        f"Command: `{payload['command']}` (reads saved results; no training).",
        "",
        f"Each interval: {payload['n_resamples']} resamples of the DS2 records drawn with "
        f"replacement (seed {payload['seed']}), every figure recomputed from the drawn records' "
        "summed confusion matrices, 95 % percentile interval "
        "(`vitalgru.metrics.aami_intervals.record_intervals`). Beats of one record (one "
        "patient) are not independent trials, so this is the spread to expect on another set "
        "of patients, far wider than a per-beat interval.",
    ]
    for name, s in payload["results"].items():
        f, iv = s["figures"], s["intervals"]
        md += [
            "",
            f"## `{name}` ({iv['n_records']} records; made by `{s['command']}`, {s['date_utc']})",
            "",
            "| figure | value % | 95 % interval % | target % | published % |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, label in (("s_f1", "S F1"), ("s_se", "S Se"), ("s_ppv", "S +P"),
                           ("v_f1", "V F1"), ("v_se", "V Se"), ("v_ppv", "V +P"),
                           ("sveb_f1", "SVEB F1 (EC57)"), ("veb_f1", "VEB F1 (EC57)"),
                           ("accuracy", "accuracy")):  # fmt: skip
            x = f[key]
            ci = x["interval"]
            span = "-" if ci is None else f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}"
            target = f"{_pct(x['target'])} ({x['target_is']})" if "target" in x else ""
            pub = f"{_pct(x['published'])} ({x['published_is']})" if "published" in x else ""
            md.append(f"| {label} | {_pct(x['value'])} | {span} | {target} | {pub} |")
        loo = s["leave_one_record_out"]
        md += [
            "",
            "Each record's share (sorted by S beats): its beats of the class, those found, its "
            "own F1 %, and DS2's F1 % without it.",
            "",
            "| record | S beats | S found | S F1 | DS2 S F1 without it | V beats | V found | V F1 "
            "| DS2 V F1 without it |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for rid, r in sorted(loo.items(), key=lambda kv: (-kv[1]["S"]["n"], kv[0])):
            sr, vr = r["S"], r["V"]
            md.append(
                f"| {rid} | {sr['n']} | {sr['tp']} | {_pct(sr['f1'])} | {_pct(sr['f1_without'])} "
                f"| {vr['n']} | {vr['tp']} | {_pct(vr['f1'])} | {_pct(vr['f1_without'])} |"
            )
        md += ["", f"S F1 {interval_cell(f['s_f1']['value'], f['s_f1']['interval'], ' %')}; "
               f"V F1 {interval_cell(f['v_f1']['value'], f['v_f1']['interval'], ' %')}."]  # fmt: skip
    return "\n".join(md)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    saved = saved_ds2()
    if not saved:
        raise SystemExit(f"no saved result with DS2 per-record confusion matrices in {RESULTS}")
    payload = {
        "command": "python benchmarks/ds2_intervals.py " + " ".join(argv or sys.argv[1:]),
        "environment": environment(),
        "n_resamples": args.resamples,
        "seed": args.seed,
        "results": {n: summarise(d, args.resamples, args.seed) for n, d in saved.items()},
    }
    payload["command"] = payload["command"].rstrip()
    js, mdp = write_results(NAME, payload, markdown(payload))
    print(f"wrote {js} and {mdp}")


if __name__ == "__main__":
    main()

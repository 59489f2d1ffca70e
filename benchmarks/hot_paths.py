"""The hot paths of the commands run most, timed against a baseline checkout.

One command::

    python benchmarks/hot_paths.py [--baseline DIR] [--repeats 3]

Each case runs in a fresh process, with ``PYTHONPATH`` set to the checkout it times: this
one, and with ``--baseline`` another (``git worktree add ../base <commit>``, or
``git archive <commit> | tar -x -C DIR``). The two alternate (A B A B ...), so a machine
whose load changes meanwhile weighs on both alike; the medians are reported, with the load
average before and after, and a digest of each case's output: the two checkouts must give
the same bytes. The cases:

``evaluate_ds2``
    ``vitalgru evaluate arrhythmia``'s scoring (``pipelines.evaluate.score_records``) of
    MIT-BIH's 22 DS2 records with a seeded, untrained network: reading, quality checks,
    windows, beat features, the network, the report (its JSON and the per-beat arrays
    are digested).
``ingest_records``
    Ingest's per-record step (``vitalgru.data.ingest.process_record``) of four records.
``live_replay``
    Three records' first 10 minutes replayed as concurrent live patients, 1 s per tick
    (``vitalgru.scoring.replay``), every beat call digested. One torch thread: on a loaded
    two-core machine the default two made each small per-tick forward pass 30-170 times
    slower, which would swamp what this case measures.
``cli_help``
    ``python -m pipelines.cli --help``: the command line's start-up.

Writes ``benchmarks/results/hot_paths.json`` and ``hot_paths.md`` (another stem with
``--name``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, default_mirror, environment, write_results

CASES = ("evaluate_ds2", "ingest_records", "live_replay", "cli_help")
SEED = 0
PREPROCESSING = {"fs": 360.0, "lead": "MLII", "window": {"before_s": 0.25, "after_s": 0.45}}


def _model() -> Any:
    import torch

    from vitalgru.data.beat_features import N_RR_FEATURES
    from vitalgru.models.arrhythmia import ArrhythmiaGRU

    torch.manual_seed(SEED)
    return ArrhythmiaGRU(n_rr=N_RR_FEATURES).eval()


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.tobytes() if hasattr(p, "tobytes") else repr(p).encode())
    return h.hexdigest()


def case_evaluate_ds2(tmp: Path) -> tuple[float, str]:
    from pipelines.evaluate import score_records
    from vitalgru.tracking.models import LoadedModel

    loaded = LoadedModel(module=_model(), preprocessing=PREPROCESSING, config={},
                         uri="models:/bench/1", version="1")  # fmt: skip
    out = tmp / "evaluation.json"
    t0 = time.perf_counter()
    _, scores = score_records(loaded, "mitdb", "DS2", str(out))
    seconds = time.perf_counter() - t0
    report = json.loads(out.read_text())
    report.pop("paths")  # where this run's files went (a temporary folder of its own)
    inputs = [scores.inputs[k][0] for k in sorted(scores.inputs)]
    arrays = (scores.record_ids, scores.y_true, scores.y_pred, scores.probs, scores.samples)
    return seconds, _digest(json.dumps(report, sort_keys=True), *arrays, *inputs)


def case_ingest_records(tmp: Path) -> tuple[float, str]:
    from vitalgru.config import ArrhythmiaDataConfig, PhysioNetConfig
    from vitalgru.data.ingest import process_record
    from vitalgru.io import open_database

    db = open_database("mitdb", PhysioNetConfig())
    cfg = ArrhythmiaDataConfig()
    parts, seconds = [], 0.0
    for rid in ("100", "105", "203", "208"):
        rec, ann = db.read_record(rid), db.read_annotations(rid)
        t0 = time.perf_counter()
        item = process_record(rec, ann, cfg, "DS1")
        seconds += time.perf_counter() - t0
        beats = item.beats.to_json(orient="split", double_precision=15)
        parts += [item.windows, beats, json.dumps(item.facts, sort_keys=True, default=str)]
    return seconds, _digest(*parts)


def case_live_replay(tmp: Path) -> tuple[float, str]:
    import torch

    from vitalgru.config import PhysioNetConfig
    from vitalgru.io import open_database
    from vitalgru.scoring import ArrhythmiaMonitor, replay

    torch.set_num_threads(1)
    db = open_database("mitdb", PhysioNetConfig())
    n = int(600 * 360)
    feeds = {r: (db.read_record(r).signal[:n, 0], 360.0) for r in ("100", "105", "213")}
    mon = ArrhythmiaMonitor(_model(), PREPROCESSING)
    t0 = time.perf_counter()
    res = replay(mon, feeds, 1.0)
    seconds = time.perf_counter() - t0
    calls = [(c.beat_idx, c.sample_idx, c.label, c.probs, c.signal_ok)
             for r in feeds for c in res.calls[r]]  # fmt: skip
    return seconds, _digest(calls)


def _child(case: str) -> None:
    """Run one case in this process and print its result as one JSON line."""
    import tempfile

    import vitalgru

    with tempfile.TemporaryDirectory() as tmp:
        seconds, digest = globals()[f"case_{case}"](Path(tmp))
    print(json.dumps({"seconds": seconds, "digest": digest, "vitalgru": vitalgru.__file__}))


def _run(case: str, checkout: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(checkout), VITALGRU_PHYSIONET_MIRROR=str(MIRROR))
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    if case == "cli_help":
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], env=env,
                              capture_output=True, text=True, cwd=checkout)  # fmt: skip
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"--help failed in {checkout}:\n{proc.stderr[-2000:]}")
        return {"seconds": seconds, "digest": _digest(proc.stdout)}
    proc = subprocess.run([sys.executable, __file__, "--case", case], env=env,
                          capture_output=True, text=True, cwd=checkout)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{case} failed in {checkout}:\n{proc.stderr[-4000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    if not Path(row.pop("vitalgru")).resolve().is_relative_to(checkout):
        raise SystemExit(f"{case}: vitalgru was not imported from {checkout}")
    return row


MIRROR = default_mirror()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, help="another checkout to time alternately")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--name", default="hot_paths", help="results file stem")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # a child process's one case
    args = ap.parse_args()
    if args.case:
        _child(args.case)
        return 0
    sides = {"current": ROOT}
    if args.baseline is not None:
        sides = {"baseline": args.baseline.resolve(), "current": ROOT}
    facts = environment()
    cases = [c for c in args.cases.split(",") if c]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {c: {s: [] for s in sides} for c in cases}
    for case in cases:
        for _ in range(args.repeats):
            for side, checkout in sides.items():  # alternating: A B A B ...
                runs[case][side].append(_run(case, checkout))
                print(case, side, f"{runs[case][side][-1]['seconds']:.3f} s", flush=True)
    rows = {}
    for case, by_side in runs.items():
        row: dict[str, Any] = {}
        for side, rs in by_side.items():
            row[f"{side}_median_s"] = round(statistics.median(r["seconds"] for r in rs), 3)
            row[f"{side}_runs_s"] = [round(r["seconds"], 3) for r in rs]
        digests = {r["digest"] for rs in by_side.values() for r in rs}
        row["outputs_identical"] = len(digests) == 1
        if "baseline" in sides:
            row["speedup"] = round(row["baseline_median_s"] / row["current_median_s"], 2)
        rows[case] = row
    payload = {
        "benchmark": "hot_paths",
        "command": "python benchmarks/hot_paths.py"
        + (" --baseline <checkout>" if args.baseline else "")
        + f" --repeats {args.repeats}",
        "note": "measured on a shared, loaded machine: alternating runs, medians",
        "load_avg_1min_end": os.getloadavg()[0],
        "cases": rows,
        "environment": facts,
    }
    head = "| case | " + " | ".join(f"{s} median (s)" for s in sides)
    head += " | speedup | outputs identical |" if "baseline" in sides else " | identical |"
    lines = [
        "# Hot paths of the commands run most",
        "",
        f"`{payload['command']}`, {facts['date_utc']}; measured on a shared machine under "
        f"load (1-min load average {facts['load_avg_1min_at_start']:.2f} at the start, "
        f"{payload['load_avg_1min_end']:.2f} at the end; {facts['cpu_count']} CPUs): "
        "runs of the two checkouts alternate, medians shown.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for case, row in rows.items():
        cells = [f"{row[f'{s}_median_s']:.3f}" for s in sides]
        if "baseline" in sides:
            cells.append(f"{row['speedup']:.2f}x")
        cells.append("yes" if row["outputs_identical"] else "**no**")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    write_results(args.name, payload, "\n".join(lines))
    print(json.dumps(rows, indent=2))
    return 0 if all(r["outputs_identical"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

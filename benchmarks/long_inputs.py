"""Inputs longer than the tests' and the other benchmarks': a 24-hour Holter record, stays of
30 and 90 days, a ward of 60 beds. What grows faster than the input, and how much memory.

One command::

    python benchmarks/long_inputs.py [--arrhythmia-model models:/vitalgru-arrhythmia@champion]
                                     [--early-warning-model models:/vitalgru-early-warning@champion]
                                     [--hours 0.5,2,6,24] [--replay-hours 0.5,2,6]

Writes ``benchmarks/results/long_inputs.json`` and ``.md``; the records and stays it builds
go under ``benchmarks/_work/long_inputs/`` (deleted first).

1. **ECG.** Two-lead records of 30 min to 24 h made by concatenating MIT-BIH records
   (signals and reference beats, the MLII-first ones in turn), written as WFDB records at
   360 Hz, and the 24-hour one also resampled to 128 and 1000 Hz. Each is scored by
   ``vitalgru evaluate arrhythmia`` in its own process, the shorter ones also by
   ``vitalgru replay arrhythmia`` (10 s chunks: 1 s chunks cost about 60 ms a tick, 24 h of
   them over an hour). Measured: wall time and the process's peak resident memory
   (its ``VmHWM``), and that per hour of ECG.
2. **Sepsis stays.** A set-A stay's rows repeated to 2160 hourly rows (90 days, ICULOS
   counting on) and pushed hour by hour into :class:`vitalgru.scoring.EarlyWarningMonitor`
   and, with a state file, into a :class:`vitalgru.scoring.ward.Ward`: the time of the push
   (and of ``add_hour`` with its journal write) at hours 24, 336, 720 and 2160 (the
   median of the five hours up to each). Then
   ``vitalgru evaluate early-warning`` and ``vitalgru replay early-warning`` of a folder
   holding the 30-day and the 90-day stay, each in its own process.
3. **Ward.** 8 and 60 ECG beds (MIT-BIH records cycled, 1 s chunks, the ward ticked each
   second of ECG as fast as it goes, ``--ward-seconds`` of it) beside as many sepsis beds
   (48 hours each, then one more), a state file kept: the time per tick, the time of
   ``GET /ward``, ``/metrics`` and ``/health`` (in process, FastAPI's test client), and the
   state file's size.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import wfdb
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.models.tasks import ARRHYTHMIA_KINDS, EARLY_WARNING_KINDS
from vitalgru.scoring import ArrhythmiaMonitor, EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.tracking.stores import sqlite_file

WORK = Path(__file__).resolve().parent / "_work" / "long_inputs"
SEPSIS_MARKS = (24, 336, 720, 2160)


def _hwm_mb(pid: int) -> float | None:
    """Peak resident memory (MB) of a running process so far (Linux ``VmHWM``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _here(uri: str) -> str:
    """A local SQLite store's URI with its path made absolute: the commands run in
    :data:`WORK`, where a relative ``sqlite:///mlflow.db`` names another file."""
    db = sqlite_file(uri)
    return uri if db is None or db.is_absolute() else f"sqlite:///{db.resolve().as_posix()}"


def _run(args: list[str]) -> dict[str, Any]:
    """Run ``python -m pipelines.cli ARGS`` in its own process: wall s, peak RSS MB, rc.

    The peak is the child's own ``VmHWM``, read every 0.1 s while it runs: ``wait4``'s
    ``ru_maxrss`` of a child started by ``vfork`` + ``exec`` (as :mod:`subprocess` starts
    it) also counts this process's peak, so it read the same for every run.
    """
    t0 = time.perf_counter()
    # the code this script imports (PYTHONPATH, else this checkout), not the working folder's
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT),
           # the store the models were named in: this folder's, not the scratch folder's
           "MLFLOW_TRACKING_URI": _here(tracking.tracking_uri())}  # fmt: skip
    p = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=WORK, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    peak = 0.0
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read() if p.stderr else b""))
    reader.start()
    while p.poll() is None:
        peak = max(peak, _hwm_mb(p.pid) or 0.0)
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    reader.join()
    if p.returncode != 0:  # a failed run measures nothing: no table is written from it
        print(b"".join(err).decode(errors="replace")[-2000:], file=sys.stderr)
        raise SystemExit(f"long_inputs: `vitalgru {' '.join(args)}` failed ({p.returncode})")
    return {"wall_s": wall, "peak_rss_mb": peak, "rc": p.returncode}


def _mit_records(mitdb: Path) -> list[str]:
    names = sorted(p.stem for p in mitdb.glob("*.hea"))
    return [n for n in names if wfdb.rdheader(str(mitdb / n)).sig_name[0] == "MLII"]


def build_record(mitdb: Path, hours: float, fs: int, folder: Path) -> str:
    """A two-lead WFDB record of ``hours`` (MIT-BIH records end to end) at ``fs``."""
    want = int(round(hours * 3600 * 360))
    sigs, samples, symbols, off = [], [], [], 0
    names = _mit_records(mitdb)
    for i in range(10_000):
        if off >= want:
            break
        n = str(mitdb / names[i % len(names)])
        r, a = wfdb.rdrecord(n, physical=False), wfdb.rdann(n, "atr")
        take = min(r.d_signal.shape[0], want - off)
        sigs.append(r.d_signal[:take, :2].astype(np.int16))
        keep = a.sample < take
        samples.append(a.sample[keep] + off)
        symbols += list(np.asarray(a.symbol)[keep])
        off += take
    d, s = np.concatenate(sigs), np.concatenate(samples)
    if fs != 360:
        fr = Fraction(fs, 360)
        d = resample_poly(d.astype(np.float32), fr.numerator, fr.denominator, axis=0)
        d = np.round(d).astype(np.int16)
        s = np.clip(np.round(s * fs / 360).astype(np.int64), 0, d.shape[0] - 1)
    name = f"h{hours:g}".replace(".", "_")
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV", "mV"], sig_name=["MLII", "V1"], d_signal=d,
                fmt=["16", "16"], adc_gain=[200.0, 200.0], baseline=[1024, 1024],
                write_dir=str(folder))  # fmt: skip
    order = np.argsort(s, kind="stable")
    wfdb.wrann(name, "atr", sample=s[order], symbol=list(np.asarray(symbols)[order]),
               write_dir=str(folder), fs=fs)  # fmt: skip
    return name


def ecg_part(model: str, hours: list[float], replay_hours: list[float]) -> list[dict]:
    mitdb = default_mirror() / "mitdb"
    runs = [(h, 360) for h in hours] + [(max(hours), fs) for fs in (128, 1000)]
    rows = []
    for h, fs in runs:
        folder = WORK / f"ecg_{h:g}h_{fs}"
        name = build_record(mitdb, h, fs, folder)
        common = ["--model", model, "--db", str(folder), "--records", name]
        ev = _run(["evaluate", "arrhythmia", *common, "--out", str(folder / "evaluation")])
        row = {"hours": h, "fs": fs, "evaluate": ev}
        if fs == 360 and h in replay_hours:
            row["replay"] = _run(["replay", "arrhythmia", *common, "--chunk-s", "10",
                                  "--out", str(folder / "replay")])  # fmt: skip
        print(row, flush=True)
        rows.append(row)
        shutil.rmtree(folder)
    return rows


def _stay_rows(n: int) -> list[dict[str, Any]]:
    """A set-A stay's rows (Challenge names, no label) repeated to ``n`` hours."""
    seta = default_mirror() / "challenge-2019" / "training_setA"
    df = pd.read_csv(sorted(seta.glob("*.psv"))[0], sep="|").drop(columns="SepsisLabel")
    base = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]  # fmt: skip
    return [{**base[h % len(base)], "ICULOS": h + 1} for h in range(n)]


def sepsis_part(model: str) -> dict[str, Any]:
    loaded = tracking.load_model(model, kinds=EARLY_WARNING_KINDS)
    rows = _stay_rows(max(SEPSIS_MARKS))
    mon = EarlyWarningMonitor(loaded.module, loaded.preprocessing)
    mon.admit("p")
    journal_path = WORK / "sepsis-ward.sqlite"
    ward = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing),
                journal=WardJournal(journal_path))  # fmt: skip
    ward.admit_sepsis("p")
    push_s, ward_s, t0 = [], [], time.perf_counter()
    for r in rows:
        a = time.perf_counter()
        mon.push({"p": r})
        b = time.perf_counter()
        ward.add_hour("p", r)
        push_s.append(b - a)
        ward_s.append(time.perf_counter() - b)
    total = time.perf_counter() - t0
    pages = _stay_pages(ward)
    # the median of the five hours up to each mark (one hour's time is noisy here)
    push_ms = {h: float(np.median(push_s[h - 5 : h]) * 1e3) for h in SEPSIS_MARKS}
    ward_ms = {h: float(np.median(ward_s[h - 5 : h]) * 1e3) for h in SEPSIS_MARKS}
    ward.close()
    out: dict[str, Any] = {
        "stay_pages_2160h": pages,
        "push_ms_at_hour": push_ms,
        "ward_add_hour_ms_at_hour": ward_ms,
        "both_whole_stay_wall_s": total,
        "state_file_mb": sum(f.stat().st_size for f in WORK.glob("sepsis-ward.sqlite*")) / 2**20,
    }
    folder = WORK / "stays"
    folder.mkdir(parents=True, exist_ok=True)
    for days in (30, 90):
        stay = pd.DataFrame(_stay_rows(days * 24)).assign(SepsisLabel=0)
        stay.to_csv(folder / f"p{days}d.psv", sep="|", index=False, na_rep="NaN")
    out["evaluate"] = _run(["evaluate", "early-warning", "--model", model, "--data", str(folder),
                            "--out", str(WORK / "ew-evaluation")])  # fmt: skip
    out["replay"] = _run(["replay", "early-warning", "--model", model, "--data", str(folder),
                          "--out", str(WORK / "ew-replay")])  # fmt: skip
    print(out, flush=True)
    return out


def _stay_pages(ward: Ward) -> dict[str, Any]:
    """Time and size of the 90-day stay's page and JSON (``GET /vitals/p/page``, ``/vitals/p``)."""
    from fastapi.testclient import TestClient

    from pipelines.gateway import create_app

    out = {}
    with TestClient(create_app(ward, tick_s=0)) as client:
        for path in ("/vitals/p/page", "/vitals/p"):
            a = time.perf_counter()
            r = client.get(path)
            r.raise_for_status()
            out[path] = {"ms": (time.perf_counter() - a) * 1e3, "kb": len(r.content) / 1024}
    return out


def _latency(client: Any, path: str, n: int = 10) -> dict[str, float]:
    t = []
    for _ in range(n):
        a = time.perf_counter()
        client.get(path).raise_for_status()
        t.append((time.perf_counter() - a) * 1e3)
    return {"p50_ms": float(np.median(t)), "max_ms": float(max(t))}


def ward_part(ecg_model: str, ew_model: str, beds: int, seconds: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from pipelines.gateway import create_app

    ecg = tracking.load_model(ecg_model, kinds=ARRHYTHMIA_KINDS)
    ew = tracking.load_model(ew_model, kinds=EARLY_WARNING_KINDS)
    path = WORK / f"ward-{beds}.sqlite"
    ward = Ward(ArrhythmiaMonitor(ecg.module, ecg.preprocessing),
                sepsis=EarlyWarningMonitor(ew.module, ew.preprocessing),
                journal=WardJournal(path))  # fmt: skip
    mitdb = default_mirror() / "mitdb"
    names = _mit_records(mitdb)
    feeds = {}
    for k in range(beds):
        rec = wfdb.rdrecord(str(mitdb / names[k % len(names)]), sampto=seconds * 360,
                            channels=[0])  # fmt: skip
        feeds[f"ecg{k}"] = rec.p_signal[:, 0].astype(np.float64)
        ward.admit_ecg(f"ecg{k}", 360.0)
    rows = _stay_rows(49)
    t0 = time.perf_counter()
    for k in range(beds):
        ward.admit_sepsis(f"sep{k}")
        for r in rows[:48]:
            ward.add_hour(f"sep{k}", r)
    sepsis_load_s = time.perf_counter() - t0
    ticks = []
    for s in range(seconds):
        for pid, x in feeds.items():
            ward.add_ecg(pid, x[s * 360 : (s + 1) * 360])
        a = time.perf_counter()
        ward.tick()
        ticks.append(time.perf_counter() - a)
    hour = []
    for k in range(beds):
        a = time.perf_counter()
        ward.add_hour(f"sep{k}", rows[48])
        hour.append(time.perf_counter() - a)
    app = create_app(ward, tick_s=0)
    with TestClient(app) as client:
        lat = {p: _latency(client, p) for p in ("/ward", "/metrics", "/health")}
    ward.close()
    out = {
        "beds": beds,
        "ecg_seconds": seconds,
        "tick_ms": {"p50": float(np.median(ticks) * 1e3), "max": float(max(ticks) * 1e3)},
        "sepsis_48h_per_bed_s": sepsis_load_s / beds,
        "add_hour_ms_p50": float(np.median(hour) * 1e3),
        "requests": lat,
        "state_file_mb": sum(f.stat().st_size for f in WORK.glob(f"ward-{beds}.sqlite*")) / 2**20,
    }
    print(out, flush=True)
    return out


def _mb(v: float) -> str:
    return f"{v:.0f}"


def markdown(res: dict[str, Any], command: str) -> str:
    lines = [
        "# Long inputs: a 24-hour Holter record, 90-day stays, a 60-bed ward",
        "",
        f"Command: `{command}`  ",
        f"Date {res['environment']['date_utc']}; {res['environment']['cpu_count']} CPUs "
        f"(load {res['environment']['load_avg_1min_at_start']:.1f} at start); each CLI run in "
        "its own process (wall time includes about 15 s of start-up: imports, model load). "
        f"Models {res['models']['arrhythmia']} and {res['models']['early_warning']}: the "
        "costs here are the code's, not a model's accuracy.",
        "",
        "## ECG (`vitalgru evaluate arrhythmia`; `replay` in 10 s chunks)",
        "",
        "| hours | fs Hz | evaluate s | evaluate peak RSS MB | MB more per hour than the "
        "first | replay s | replay peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ecg = res.get("ecg", [])
    for r in ecg:
        ev, rp, first = r["evaluate"], r.get("replay"), ecg[0]
        extra_h = r["hours"] - first["hours"]
        grew = ev["peak_rss_mb"] - first["evaluate"]["peak_rss_mb"]
        more = format(grew / extra_h, ".0f") if extra_h > 0 else "-"
        lines.append(
            f"| {r['hours']:g} | {r['fs']} | {ev['wall_s']:.0f} | {_mb(ev['peak_rss_mb'])} "
            f"| {more} | "
            + (f"{rp['wall_s']:.0f} | {_mb(rp['peak_rss_mb'])} |" if rp else "- | - |")
        )
    if "sepsis" in res:
        lines += _sepsis_lines(res["sepsis"])
    if "ward" in res:
        lines += _ward_lines(res["ward"])
    return "\n".join(lines)


def _sepsis_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Sepsis: one stay pushed hour by hour (90 days)",
        "",
        "| ICU hour | monitor push ms | ward add_hour ms (with state file) |",
        "|---:|---:|---:|",
    ]
    for h in SEPSIS_MARKS:
        lines.append(f"| {h} | {s['push_ms_at_hour'][h]:.2f} | "
                     f"{s['ward_add_hour_ms_at_hour'][h]:.2f} |")  # fmt: skip
    lines += [
        "",
        f"Both, the whole 2160 hours: {s['both_whole_stay_wall_s']:.1f} s; the ward's state "
        f"file {s['state_file_mb']:.1f} MB. A folder of a 30-day and a 90-day stay: "
        f"`evaluate early-warning` {s['evaluate']['wall_s']:.0f} s "
        f"({_mb(s['evaluate']['peak_rss_mb'])} MB), `replay early-warning` "
        f"{s['replay']['wall_s']:.0f} s ({_mb(s['replay']['peak_rss_mb'])} MB). At hour 2160 "
        "the stay's page (`GET /vitals/p/page`) took "
        f"{s['stay_pages_2160h']['/vitals/p/page']['ms']:.0f} ms "
        f"({s['stay_pages_2160h']['/vitals/p/page']['kb']:.0f} kB), its JSON (`/vitals/p`) "
        f"{s['stay_pages_2160h']['/vitals/p']['ms']:.0f} ms "
        f"({s['stay_pages_2160h']['/vitals/p']['kb']:.0f} kB).",
    ]
    return lines


def _ward_lines(ward: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        f"## Ward ({ward[0]['ecg_seconds']} s of ECG per bed, 48 h + 1 per sepsis bed)",
        "",
        "| ECG + sepsis beds | tick p50 ms | tick max ms | add_hour p50 ms | /ward p50 ms "
        "| /metrics p50 ms | /health p50 ms | state file MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in ward:
        q = w["requests"]
        lines.append(
            f"| {w['beds']} + {w['beds']} | {w['tick_ms']['p50']:.0f} | {w['tick_ms']['max']:.0f} "
            f"| {w['add_hour_ms_p50']:.1f} | {q['/ward']['p50_ms']:.1f} "
            f"| {q['/metrics']['p50_ms']:.1f} | {q['/health']['p50_ms']:.1f} "
            f"| {w['state_file_mb']:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arrhythmia-model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--early-warning-model", default="models:/vitalgru-early-warning@champion")
    ap.add_argument("--hours", default="0.5,2,6,24", help="ECG record lengths (h) at 360 Hz")
    ap.add_argument("--replay-hours", default="0.5,2,6", help="of those, the ones replayed")
    ap.add_argument("--ward-seconds", type=int, default=120, help="ECG per ward bed (s)")
    ap.add_argument("--parts", default="ecg,sepsis,ward", help="which parts to run")
    ap.add_argument("--name", default="long_inputs", help="results file stem")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if (why := tracking.missing_store()) is not None:  # before minutes of building records
        raise SystemExit(f"long_inputs: {why}")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    hours = [float(h) for h in args.hours.split(",")]
    replay_hours = [float(h) for h in args.replay_hours.split(",") if h]
    res: dict[str, Any] = {
        "environment": environment(),
        "models": {"arrhythmia": args.arrhythmia_model, "early_warning": args.early_warning_model},
    }
    parts = args.parts.split(",")
    if "ecg" in parts:
        res["ecg"] = ecg_part(args.arrhythmia_model, hours, replay_hours)
    if "sepsis" in parts:
        res["sepsis"] = sepsis_part(args.early_warning_model)
    if "ward" in parts:
        res["ward"] = [
            ward_part(args.arrhythmia_model, args.early_warning_model, n, args.ward_seconds)
            for n in (8, 60)
        ]
    command = "python benchmarks/long_inputs.py " + " ".join(argv or sys.argv[1:])
    write_results(args.name, res, markdown(res, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Arrhythmia model on an inverted lead: MIT-BIH DS2 with every signal's sign turned.

One command::

    python benchmarks/lead_inverted.py [--model models:/vitalgru-arrhythmia@champion]
                                       [--no-model]

Writes ``benchmarks/results/lead_inverted.json`` and ``benchmarks/results/lead_inverted.md``.

A lead whose two electrodes are swapped (arm electrodes reversed, a Holter cable plugged
the wrong way round) records the same heart upside down: every QRS that points up points
down. Nothing in vitalgru turns a lead the right way up, and the network was trained on
MIT-BIH's upright modified lead II; this measures what an inverted lead costs. DS2's 22
records are written again twice into a scratch folder, as recorded and with their signals
negated (WFDB format 16, 200 units per mV, the same annotations), and each copy is scored
by the same code as ``vitalgru evaluate arrhythmia``
(``vitalgru.training.arrhythmia_eval.score_database``): the upright copy gives the
recording's own figures back, so the difference is the sign alone.

It also measures the flag an inverted lead gets (:mod:`vitalgru.dsp.polarity`): every one of
MIT-BIH's 48 records goes through the ingest (``vitalgru.data.ingest.process_record``) as
recorded and negated, and the table counts the records whose QRS polarity is flagged as
pointing against the lead's usual way (a false flag on an upright record; a missed one on a
negated record), and DS2's records, as recorded and negated, go through one ward as the
gateway runs it, to measure the live flag: when it is first raised, and for how much of an
upright record it is raised wrongly. ``--no-model`` measures the ingest's flag alone (no
registry needed).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.config import ArrhythmiaDataConfig
from vitalgru.data.ingest import process_record, select_lead
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.dsp.polarity import POLARITY_LIMIT
from vitalgru.io import open_database
from vitalgru.metrics.aami import aami_metrics
from vitalgru.scoring import ArrhythmiaMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.training.arrhythmia_eval import score_database

CLASSES = ("n", "s", "v", "f")


def write_copy(src: Path, out: Path, sign: float) -> None:
    """DS2's records from ``src`` into ``out``, their signals times ``sign``."""
    out.mkdir(parents=True)
    for r in DECHAZAL_DS2:
        rec = wfdb.rdrecord(str(src / r))
        n = rec.p_signal.shape[1]
        wfdb.wrsamp(r, fs=rec.fs, units=rec.units, sig_name=rec.sig_name,
                    p_signal=sign * rec.p_signal, fmt=["16"] * n, adc_gain=[200.0] * n,
                    baseline=[0] * n, write_dir=str(out))  # fmt: skip
        shutil.copyfile(src / f"{r}.atr", out / f"{r}.atr")
    (out / "RECORDS").write_text("\n".join(DECHAZAL_DS2) + "\n")


def polarities(src: Path) -> dict[str, dict[str, Any]]:
    """Every record's lead, QRS polarity and flag, as recorded and negated."""
    db = open_database(src)
    cfg = ArrhythmiaDataConfig()
    out: dict[str, dict[str, Any]] = {}
    for r in db.list_records():
        rec, ann = db.read_record(r), db.read_annotations(r)
        row: dict[str, Any] = {}
        for name, sign in (("upright", 1.0), ("inverted", -1.0)):
            facts = process_record(
                dataclasses.replace(rec, signal=sign * rec.signal), ann, cfg, "x"
            ).facts
            row["lead"] = facts["lead"]
            row[name] = {"qrs_polarity": facts["qrs_polarity"],
                         "flagged": facts["polarity_warning"] is not None}  # fmt: skip
        out[r] = row
        print(r, row, flush=True)
    return out


def polarity_lines(pol: dict[str, dict[str, Any]]) -> list[str]:
    """The flag's table: records flagged as recorded and negated, and which."""
    lines = [
        "",
        f"The flag (QRS polarity below -{POLARITY_LIMIT} on an upright lead), all "
        f"{len(pol)} MIT-BIH records through the ingest:",
        "",
        "| records | flagged | not flagged | polarity: min / median / max |",
        "|---|---:|---:|---|",
    ]
    for name in ("upright", "inverted"):
        flagged = [r for r, v in pol.items() if v[name]["flagged"]]
        missed = [r for r, v in pol.items() if not v[name]["flagged"]]
        p = np.array([v[name]["qrs_polarity"] for v in pol.values()], dtype=float)
        lines.append(
            f"| {name} | {len(flagged)} ({', '.join(flagged) if len(flagged) < 10 else '...'}) "
            f"| {len(missed)} ({', '.join(missed) if len(missed) < 10 else '...'}) "
            f"| {np.nanmin(p):+.2f} / {np.nanmedian(p):+.2f} / {np.nanmax(p):+.2f} |"
        )
    return lines


def live(loaded: tracking.LoadedModel, src: Path, chunk_s: float = 10.0) -> dict[str, Any]:
    """DS2's records, as recorded and negated, through one ward as the gateway runs it
    (``chunk_s`` chunks, a tick after each): when each record's QRS polarity is first
    flagged, for how much of the record it is, and whether it is at the end."""
    monitor = ArrhythmiaMonitor(loaded.module, loaded.preprocessing)
    db = open_database(src)
    feeds: dict[str, tuple[np.ndarray, float]] = {}
    for r in DECHAZAL_DS2:
        rec = db.read_record(r)
        col = select_lead(rec, monitor.windows.lead, monitor.windows.fallback_lead)
        x = rec.signal[:, col].astype(np.float64)
        feeds[r], feeds[f"{r}-"] = (x, float(rec.fs)), (-x, float(rec.fs))
    ward = Ward(monitor, escalate_after_s=None)
    for pid, (_, fs) in feeds.items():
        ward.admit_ecg(pid, fs)
    first: dict[str, float | None] = dict.fromkeys(feeds)
    flagged_s = dict.fromkeys(feeds, 0.0)
    at_end: dict[str, dict[str, Any]] = {}
    longest = max(x.size / fs for x, fs in feeds.values())
    for k in range(int(np.ceil(longest / chunk_s))):
        for pid, (x, fs) in feeds.items():
            a, b = int(k * chunk_s * fs), int((k + 1) * chunk_s * fs)
            if a < x.size:
                ward.add_ecg(pid, x[a : min(b, x.size)])
        ward.tick()
        for pid, (x, fs) in feeds.items():
            if k * chunk_s >= x.size / fs:
                continue
            s = ward.ecg_summary(pid)
            at_end[pid] = {"qrs_polarity": s["qrs_polarity"],
                           "flagged": s["polarity_warning"] is not None}  # fmt: skip
            if s["polarity_warning"] is not None:
                flagged_s[pid] += min(chunk_s, x.size / fs - k * chunk_s)
                if first[pid] is None:
                    first[pid] = min((k + 1) * chunk_s, x.size / fs)
    out: dict[str, Any] = {}
    for name, suffix in (("upright", ""), ("inverted", "-")):
        pids = [f"{r}{suffix}" for r in DECHAZAL_DS2]
        stream = sum(feeds[p][0].size / feeds[p][1] for p in pids)
        firsts = [first[p] for p in pids if first[p] is not None]
        out[name] = {
            "records": len(pids),
            "ever_flagged": [p.rstrip("-") for p in pids if first[p] is not None],
            "flagged_at_end": [p.rstrip("-") for p in pids if at_end[p]["flagged"]],
            "flagged_share_of_time": sum(flagged_s[p] for p in pids) / stream,
            "first_flag_s": {q: float(np.percentile(firsts, q)) for q in (0, 50, 100)}
            if firsts
            else {},
            "by_record": {
                p.rstrip("-"): {**at_end[p], "first_flag_s": first[p], "flagged_s": flagged_s[p]}
                for p in pids
            },  # fmt: skip
        }
        print(name, {k: v for k, v in out[name].items() if k != "by_record"}, flush=True)
    return out


def live_lines(lv: dict[str, Any]) -> list[str]:
    """The live flag's table."""
    lines = [
        "",
        "Live: DS2's records as recorded and negated through one ward (10 s chunks, a tick "
        "after each; the polarity is the median of the latest ten runs of 32 beats):",
        "",
        "| DS2 | records ever flagged | flagged at the end | share of the time flagged % "
        "| first flagged, s into the record: min / median / max |",
        "|---|---:|---:|---:|---|",
    ]
    for name, v in lv.items():
        f = v["first_flag_s"]
        first = f"{f[0]:.0f} / {f[50]:.0f} / {f[100]:.0f}" if f else "-"

        def names(rs: list[str]) -> str:
            return f"{len(rs)}" + (f" ({', '.join(rs)})" if 0 < len(rs) < 8 else "")

        lines.append(
            f"| {name} | {names(v['ever_flagged'])} | {names(v['flagged_at_end'])} "
            f"| {100 * v['flagged_share_of_time']:.1f} | {first} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--no-model", action="store_true", help="measure the polarity flag only")
    args = ap.parse_args(argv)
    env = environment()
    src = default_mirror() / "mitdb"
    t0 = time.perf_counter()
    pol = polarities(src)
    rows: dict[str, dict[str, Any]] = {}
    loaded = None if args.no_model else tracking.load_model(args.model)
    lv = {} if loaded is None else live(loaded, src)
    with tempfile.TemporaryDirectory() as tmp:
        for name, sign in (("upright", 1.0), ("inverted", -1.0)) if loaded else ():
            folder = Path(tmp) / name
            write_copy(src, folder, sign)
            scores = score_database(
                loaded.module, loaded.preprocessing, open_database(folder), list(DECHAZAL_DS2)
            )
            m = aami_metrics(scores.y_true, scores.y_pred)
            rows[name] = {"beats": int(scores.y_true.size), **m}
            print(name, {k: m[k] for k in ("accuracy", "s_f1", "v_f1", "f_f1")}, flush=True)
    payload = {
        "command": "python benchmarks/lead_inverted.py " + " ".join(argv or sys.argv[1:]),
        "environment": env,
        "model_uri": None if loaded is None else args.model,
        "model_version": None if loaded is None else loaded.version,
        "seconds": time.perf_counter() - t0,
        "rows": rows,
        "polarity": pol,
        "live": lv,
    }

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lines = [
        "# Arrhythmia model on an inverted lead (MIT-BIH DS2, every signal negated)",
        "",
        f"Command: `{payload['command'].strip()}`  ",
        f"Model: {payload['model_uri']} (version {payload['model_version']}); "
        f"date {env['date_utc']}.",
    ]
    if rows:
        lines += [
            "",
            "| DS2 | beats | accuracy % | "
            + " | ".join(f"{c.upper()} Se % | {c.upper()} +P % | {c.upper()} F1 %" for c in CLASSES)
            + " |",
            "|---|---:|---:|" + "---:|" * (3 * len(CLASSES)),
        ]
    for name, m in rows.items():
        cells = " | ".join(
            f"{pct(m[f'{c}_se'])} | {pct(m[f'{c}_ppv'])} | {pct(m[f'{c}_f1'])}" for c in CLASSES
        )
        lines.append(f"| {name} | {m['beats']} | {pct(m['accuracy'])} | {cells} |")
    lines += polarity_lines(pol)
    if lv:
        lines += live_lines(lv)
    write_results("lead_inverted", payload, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

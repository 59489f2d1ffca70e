"""A live ECG feed that loses whole chunks: the bedside gateway with and without their index.

One command::

    python benchmarks/lost_chunks.py [--model models:/vitalgru-arrhythmia@champion]
                                     [--minutes 0]

A feed that sends over a network loses a chunk now and then (its HTTP request never
arrives), and sometimes a stretch of them (the patient walked out of range, a switch
restarted). The 22 MIT-BIH DS2 records (whole, or their first ``--minutes``) are fed
together through a :class:`vitalgru.scoring.ward.Ward` in 1 s chunks, one tick a chunk,
with chunks left out at random (seeded; the same chunks for both feeds):

- ``chunks``: each chunk lost with probability 2 % (a lost chunk, or two in a row, is a gap
  the ward fills with NaN; three or more are a break);
- ``outages``: an outage begins at a chunk with probability 1/180 (one every 3 min on
  average) and lasts 5 to 30 s (a break, which the monitor skips).

Each is fed with the chunks' ``start`` index (the ward fills a gap of up to
:data:`~vitalgru.scoring.ward_ecg_bed.MAX_FILL_S`, 0.1 s, with NaN and skips a longer one
as a break), without it (every chunk taken as the next samples: the stream closes up), and,
for ``chunks``, with the index under the earlier rule that filled gaps of up to 2 s (a lost
chunk or two) with NaN. Scored against the reference beats that were sent (those within
0.2 s of a lost sample are left out):

- *as reported*: the beats at the times the ward reported (a beat matches a reference beat
  within 0.15 s): what an alarm, a strip or a heart-rate trend is built on;
- *labels*: the beats mapped back to the time they were sent at (the benchmark knows which
  chunks were lost): what the classifier made of them, apart from their time (an RR interval
  closed up across a lost chunk reads as a premature beat).

Also the alarms raised, by kind, and the pause alarms against the reference's pauses (its
beats 3 s or more apart): how many of those were alarmed, and how many alarms came elsewhere.
Writes ``benchmarks/results/lost_chunks.{json,md}``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results
from ds2 import ds2_monitor

from vitalgru.scoring import AlertRules, ArrhythmiaMonitor, ward_ecg
from vitalgru.scoring.alert_types import Alert
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.replay import live_report
from vitalgru.scoring.ward import Ward

#: Chance that a 1 s chunk is lost (``chunks``).
P_CHUNK = 0.02
#: Chance that an outage begins at a chunk, and its length in chunks (``outages``).
P_OUTAGE = 1 / 180
OUTAGE_S = (5, 30)
#: Reference beats this near a lost sample are left out (s): the feed never sent them whole.
EDGE_S = 0.2
#: Slack (s) before a reference pause within which a pause alarm's onset counts as on it.
PAUSE_SLACK_S = 0.5
#: The feeds: (name, sends the index, longest gap filled with NaN in s).
FEEDS = (("index", True, ward_ecg.MAX_FILL_S), ("index, fill 2 s", True, 2.0),
         ("no index", False, ward_ecg.MAX_FILL_S))  # fmt: skip


def _kept(n_chunks: int, scenario: str, rng: np.random.Generator) -> np.ndarray:
    """Which of ``n_chunks`` chunks arrive."""
    if scenario == "recorded":
        return np.ones(n_chunks, bool)
    if scenario == "chunks":
        return rng.random(n_chunks) >= P_CHUNK
    kept = np.ones(n_chunks, bool)
    k = 0
    while k < n_chunks:
        if rng.random() < P_OUTAGE:
            n = int(rng.integers(OUTAGE_S[0], OUTAGE_S[1] + 1))
            kept[k : k + n] = False
            k += n
        else:
            k += 1
    return kept


def _sent_reference(ref: tuple, lost: np.ndarray) -> tuple:
    """``ref`` without the beats within :data:`EDGE_S` of a lost sample."""
    idx, labels, vf, fs = ref
    near = np.convolve(lost.astype(np.int8), np.ones(2 * int(EDGE_S * fs) + 1, np.int8), "same")
    keep = near[np.minimum(idx, lost.size - 1)] == 0
    return idx[keep], labels[keep], vf, fs


def _run(
    monitor: ArrhythmiaMonitor,
    signals: dict[str, tuple[np.ndarray, float]],
    kept: dict[str, np.ndarray],
    with_index: bool,
    max_fill_s: float,
) -> tuple[dict[str, list[BeatCall]], list[Alert], float]:
    """Feed every record's kept chunks through a ward, one tick a chunk: the beats and the
    alarms it recorded, and the wall time."""
    shipped, ward_ecg.MAX_FILL_S = ward_ecg.MAX_FILL_S, max_fill_s  # the rule under test
    try:
        return _feed(Ward(monitor), signals, kept, with_index)
    finally:
        ward_ecg.MAX_FILL_S = shipped


def _feed(
    ward: Ward,
    signals: dict[str, tuple[np.ndarray, float]],
    kept: dict[str, np.ndarray],
    with_index: bool,
) -> tuple[dict[str, list[BeatCall]], list[Alert], float]:
    calls: dict[str, list[BeatCall]] = {pid: [] for pid in signals}
    raised: list[Alert] = []
    record = ward._record_ecg

    def capture(cs: list[BeatCall], alerts: list[Alert]) -> None:
        for c in cs:
            calls[c.patient_id].append(c)
        raised.extend(alerts)
        record(cs, alerts)

    ward._record_ecg = capture  # type: ignore[method-assign]
    for pid, (_, fs) in signals.items():
        ward.admit_ecg(pid, fs)
    t0 = time.perf_counter()
    n_max = max(mask.size for mask in kept.values())
    for k in range(n_max):
        for pid, (x, fs) in signals.items():
            step = int(fs)
            if k < kept[pid].size and kept[pid][k]:
                start = k * step if with_index else None
                ward.add_ecg(pid, x[k * step : (k + 1) * step].tolist(), start)
        ward.tick()
    for pid in signals:
        ward.discharge_ecg(pid)
    return calls, raised, time.perf_counter() - t0


def _pauses(alerts: list[Alert], reference: dict[str, Any]) -> dict[str, int]:
    """The pause alarms against the reference's pauses (intervals of ``pause_s`` or more
    between reference beats): how many of those an alarm's onset (the last beat before it,
    as reported) lies on, with :data:`PAUSE_SLACK_S` of slack, and how many alarms lie on
    none."""
    found = elsewhere = total = 0
    for pid, (idx, _, _, fs) in reference.items():
        t = idx / fs
        gaps = np.flatnonzero(np.diff(t) >= AlertRules().pause_s)
        spans = [(t[i] - PAUSE_SLACK_S, t[i + 1]) for i in gaps]
        onsets = [a.onset_s for a in alerts if a.kind == "pause" and a.patient_id == pid]
        total += len(spans)
        found += sum(any(a <= o <= b for o in onsets) for a, b in spans)
        elsewhere += sum(not any(a <= o <= b for a, b in spans) for o in onsets)
    return {"reference": total, "found": found, "elsewhere": elsewhere}


def _mapped_back(calls: list[BeatCall], kept: np.ndarray, fs: float, n: int) -> list[BeatCall]:
    """Beats of a stream that closed up over the lost chunks, at the samples they were sent
    as (the stream's sample i is the i-th sample of the chunks that arrived)."""
    step = int(fs)
    sent = np.concatenate([np.arange(k * step, min((k + 1) * step, n))
                           for k in np.flatnonzero(kept)])  # fmt: skip
    return [replace(c, sample_idx=int(sent[min(c.sample_idx, sent.size - 1)]),
                    time_s=float(sent[min(c.sample_idx, sent.size - 1)]) / fs)
            for c in calls]  # fmt: skip


def _scores(calls: dict[str, list[BeatCall]], reference: dict[str, Any]) -> dict[str, Any]:
    rep = live_report(calls, reference)
    det, classes = rep["detection"], rep["beats"]["classes"]
    return {"matched": det["matched"], "se": det["se"], "ppv": det["ppv"],
            "s_f1": classes["S"]["f1"], "v_f1": classes["V"]["f1"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--minutes", type=float, default=0.0, help="of each record (0: whole)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("vitalgru.scoring.ward").setLevel(logging.ERROR)  # a warning a break
    env = environment()
    loaded, monitor, signals, reference = ds2_monitor(args.model, args.minutes)
    rows = []
    for scenario in ("recorded", "chunks", "outages"):
        kept, ref, lost_s, gaps = {}, {}, 0.0, 0
        for i, (pid, (x, fs)) in enumerate(signals.items()):
            rng = np.random.default_rng(i)  # the same chunks for both feeds
            kept[pid] = _kept(int(np.ceil(x.size / int(fs))), scenario, rng)
            lost = np.repeat(~kept[pid], int(fs))[: x.size]
            ref[pid] = _sent_reference(reference[pid], lost)
            lost_s += float(lost.sum()) / fs
            runs = np.diff(np.concatenate([[0], (~kept[pid]).astype(np.int8), [0]]))
            lengths = np.flatnonzero(runs == -1) - np.flatnonzero(runs == 1)
            gaps += int(lengths.size)  # runs of lost chunks
        total_s = sum(x.size / fs for x, fs in signals.values())
        for feed, with_index, max_fill_s in FEEDS:
            if (scenario == "recorded" and feed != "index") or (
                scenario == "outages" and max_fill_s > ward_ecg.MAX_FILL_S
            ):
                continue  # nothing lost, or no gap as short as 2 s: the same run
            calls, alerts, wall = _run(monitor, signals, kept, with_index, max_fill_s)
            kinds = Counter(a.kind for a in alerts)
            back = calls if with_index else {
                pid: _mapped_back(cs, kept[pid], signals[pid][1], signals[pid][0].size)
                for pid, cs in calls.items()
            }  # fmt: skip
            rows.append({
                "scenario": scenario, "feed": feed, "index": with_index, "max_fill_s": max_fill_s,
                "lost_pct": round(100 * lost_s / total_s, 2), "gaps": gaps,
                "reported": _scores(calls, ref), "labels": _scores(back, ref),
                "alarms": dict(sorted(kinds.items())), "pauses": _pauses(alerts, reference),
                "wall_s": round(wall, 1),
            })  # fmt: skip
            print(rows[-1], flush=True)
    kinds = sorted({k for r in rows for k in r["alarms"]})
    md = [
        "# A live feed that loses chunks (DS2, "
        + (f"first {args.minutes:g} min of each record)" if args.minutes > 0 else "whole records)"),
        "",
        f"`python benchmarks/lost_chunks.py` (model `{args.model}`, version {loaded.version}).",
        "The 22 records fed together through a `Ward` in 1 s chunks, one tick a chunk;",
        f"`chunks`: each lost with probability {P_CHUNK:g}; `outages`: one begins at a chunk with",
        f"probability 1/{round(1 / P_OUTAGE)} and lasts {OUTAGE_S[0]}-{OUTAGE_S[1]} s "
        "(seeded, the same chunks for both feeds).",
        f"With the index the ward fills a gap of up to {ward_ecg.MAX_FILL_S:g} s with NaN and skips "
        "a longer one",
        "(`index, fill 2 s`: the earlier rule, which filled up to 2 s); without it the stream",
        "closes up. *Reported*: the beats at the times the ward",
        "reported them; *labels*: mapped back to when they were sent. Reference beats within",
        f"{EDGE_S:g} s of a lost sample are left out (PPV counts the beats detected there).",
        "",
        "| lost | feed | lost % | gaps | reported: Se | PPV | S F1 | V F1 "
        "| labels: S F1 | V F1 | " + " | ".join(kinds) + " | reference pauses alarmed "
        "| pause alarms elsewhere | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        + "---:|" * len(kinds)
        + "---:|---:|---:|",
    ]
    for r in rows:
        rep, lab = r["reported"], r["labels"]
        md.append(
            f"| {r['scenario']} | {r['feed']} | {r['lost_pct']:.1f} | "
            f"{r['gaps']} | {rep['se']:.3f} | {rep['ppv']:.3f} | {rep['s_f1']:.3f} | "
            f"{rep['v_f1']:.3f} | {lab['s_f1']:.3f} | {lab['v_f1']:.3f} | "
            + " | ".join(str(r["alarms"].get(k, 0)) for k in kinds)
            + f" | {r['pauses']['found']} of {r['pauses']['reference']} | "
            f"{r['pauses']['elsewhere']} | {r['wall_s']:.0f} |"
        )
    md += ["", f"{env['machine']}, {env['cpu_count']} cores, torch {torch.__version__}, 1 thread."]
    write_results("lost_chunks", {"model": args.model, "version": loaded.version,
                                  "minutes": args.minutes, "runs": rows, "env": env},
                  "\n".join(md) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

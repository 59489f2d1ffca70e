"""The bedside gateway (``vitalgru serve``) under load, over real HTTP on this machine.

One command::

    python benchmarks/gateway.py [--arrhythmia-model models:/vitalgru-arrhythmia@champion]
                                 [--early-warning-model models:/vitalgru-early-warning@champion]
                                 [--seconds 300] [--stays 200]

Writes ``benchmarks/results/gateway.json`` and ``.md``. The gateway runs in this process
(uvicorn on a local port, one torch thread); the feeds are client threads in the same
process, so the two cores are shared by server and clients.

1. **ECG**: the 22 DS2 records, the first ``--seconds`` of each, each sent by its own
   client thread in 1 s chunks as fast as the gateway takes them (a chunk refused because
   60 s are already queued is sent again 0.2 s later); the gateway ticks every 0.5 s. Then
   each feed is discharged. Measured: patient-seconds of ECG per second of wall time,
   end to end; the time each POST took; and whether the beats and alarms equal an
   in-process replay of the same signals in 1 s chunks (they must: a label does not
   depend on how the samples were chunked); then every ECG alarm's strip fetched as JSON,
   SVG and FHIR (time, size, and whether its samples are the feed's).
2. **Sepsis**: the first ``--stays`` stays of set A, split between four client threads,
   each posting its patients' hours in order, once with the state file ``vitalgru serve``
   writes by default and once in memory only. Measured: patient-hours per second, the time
   each POST took, and the largest difference from :func:`vitalgru.scoring.replay_stays`
   on the same rows.
3. **Watched**: part 2 again, with the state file, while an integration engine reads the
   event log as a stream (``GET /events/stream?since=0``, Server-Sent Events) and a
   Prometheus scraper reads ``GET /metrics`` every second. Measured: the throughput with
   them; for every sepsis alarm onset, the time from the POST of its hour to the event on
   the stream; whether the stream had every logged event once and in order; the time
   each scrape took.
4. **FHIR**: part 2 in memory once more, each stay admitted with its demographics and each
   hour sent as a FHIR Bundle of Observations (``POST /vitals/{p}/fhir``,
   :func:`vitalgru.io.fhir_observations.row_to_observations`). Measured as part 2: what
   reading FHIR costs against the JSON rows of the in-memory run.
5. **HL7 v2**: the same, each hour an ``ORU^R01`` message with one ``OBX`` per measurement
   (``POST /vitals/{p}/hl7``).
5. **Restart**: the same stays admitted to a ward with a state file and scored in process,
   not discharged; the ward is dropped and a new one takes the file up
   (:meth:`vitalgru.scoring.ward.Ward.restore`). Measured: the file's size, the time the
   restore took, and the largest difference between each patient's last risk before and
   after.

The parts with a state file write it under ``benchmarks/_work/`` (deleted first).
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import requests
import torch
import uvicorn
import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from pipelines.gateway import create_app
from vitalgru import tracking
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.io.fhir_observations import row_to_observations
from vitalgru.io.psv import PSV_COLUMNS
from vitalgru.io.psv_folder import read_psv_folder
from vitalgru.models.tasks import ARRHYTHMIA_KINDS, EARLY_WARNING_KINDS
from vitalgru.scoring import ArrhythmiaMonitor, EarlyWarningMonitor, replay, replay_stays
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_events import INFO_KINDS
from vitalgru.scoring.ward_journal import WardJournal

WORK = Path(__file__).resolve().parent / "_work"


def _fresh_journal(name: str) -> WardJournal:
    WORK.mkdir(exist_ok=True)
    for f in WORK.glob(f"{name}*"):
        f.unlink()
    return WardJournal(WORK / name)


CHALLENGE = {v: k for k, v in PSV_COLUMNS.items()}


class _Gateway:
    """A gateway served by uvicorn on a free local port, in a thread."""

    def __init__(self, ward: Ward, tick_s: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = create_app(ward, tick_s, stopping=lambda: self.server.should_exit)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        url = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                requests.get(f"{url}/health", timeout=1).raise_for_status()
                return url
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("the gateway did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _ms(t: list[float]) -> dict[str, float]:
    """p50, p99 and max in ms of ``t`` seconds; NaN (``null`` in the JSON) for none, as in a
    short run that ends before the first scrape or alarm."""
    a = np.asarray(t, dtype=float) * 1e3
    if not a.size:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "n": int(a.size)}  # fmt: skip


def _num(v: float, spec: str) -> str:
    """``v`` formatted, or "-" for none."""
    return "-" if math.isnan(v) else format(v, spec)


def ecg_part(model_uri: str, seconds: float) -> dict[str, Any]:
    loaded = tracking.load_model(model_uri, kinds=ARRHYTHMIA_KINDS)
    mirror = default_mirror() / "mitdb"
    feeds = {}
    for r in DECHAZAL_DS2:
        rec = wfdb.rdrecord(str(mirror / str(r)), sampto=int(seconds * 360))
        feeds[str(r)] = rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)
    t0 = time.perf_counter()
    alone = replay(
        ArrhythmiaMonitor(loaded.module, loaded.preprocessing),
        {p: (x, 360.0) for p, x in feeds.items()},
        chunk_s=1.0,
    )
    replay_s = time.perf_counter() - t0

    ward = Ward(
        ArrhythmiaMonitor(loaded.module, loaded.preprocessing),
        journal=_fresh_journal("gateway-ecg.sqlite"),
    )
    posts: list[float] = []
    retries = Counter()
    finals: dict[str, dict] = {}
    lock = threading.Lock()

    def feed(url: str, pid: str, x: np.ndarray) -> None:
        s = requests.Session()
        s.post(f"{url}/ecg/{pid}/admit", json={"fs": 360}).raise_for_status()
        mine = []
        for k in range(math.ceil(x.size / 360)):
            body = {"samples": x[k * 360 : (k + 1) * 360].tolist()}
            while True:
                a = time.perf_counter()
                r = s.post(f"{url}/ecg/{pid}", json=body)
                mine.append(time.perf_counter() - a)
                if r.status_code == 202:
                    break
                if r.status_code == 422 and "queued" in r.text:  # the ward is behind
                    with lock:
                        retries[pid] += 1
                    time.sleep(0.2)
                    continue
                r.raise_for_status()
        final = s.delete(f"{url}/ecg/{pid}").json()
        with lock:
            posts.extend(mine)
            finals[pid] = final

    with _Gateway(ward, tick_s=0.5) as url:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=feed, args=(url, p, x)) for p, x in feeds.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        events = requests.get(f"{url}/events", params={"limit": 10_000}).json()["events"]
        status = requests.get(f"{url}/health").json()
        events = [e for e in events if e["kind"] not in INFO_KINDS]  # the alarms (no ends)
        strips = _strips(url, [e for e in events if e.get("source") == "ecg"], feeds)
    same_beats = all(
        finals[p]["counts"] == {c: sum(b.label == c for b in alone.calls[p]) for c in "NSVFQ"}
        for p in feeds
    )
    want_alarms = Counter(a.kind for al in alone.alerts.values() for a in al)
    got_alarms = Counter(e["kind"] for e in events)
    signal_s = float(sum(x.size for x in feeds.values()) / 360)
    return {
        "patients": len(feeds),
        "seconds_each": seconds,
        "signal_s": signal_s,
        "wall_s": wall,
        "patient_s_per_s": signal_s / wall,
        "post_ms": _ms(posts),
        "retried_posts": int(sum(retries.values())),
        "ticks": status["ticks"],
        "tick_ms_mean": status["tick_ms_mean"],
        "beats": int(sum(f["beats"] for f in finals.values())),
        "beats_replay": int(sum(len(c) for c in alone.calls.values())),
        "same_beat_classes_as_replay": same_beats,
        "alarms": dict(sorted(got_alarms.items())),
        "alarms_replay": dict(sorted(want_alarms.items())),
        "in_process_replay_s": replay_s,
        "strips": strips,
    }


def _strips(url: str, alarms: list[dict], feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every ECG alarm's strip, fetched as JSON, SVG and FHIR: how long each took, how big,
    and whether the samples are the feed's."""
    s = requests.Session()
    took: dict[str, list[float]] = {"json": [], "svg": [], "fhir": []}
    sizes: dict[str, list[int]] = {"json": [], "svg": [], "fhir": []}
    same = True
    for e in alarms:
        for kind, path in (("json", "strip"), ("svg", "strip.svg"), ("fhir", None)):
            a = time.perf_counter()
            r = s.get(f"{url}/fhir/strips/{e['seq']}" if path is None
                      else f"{url}/events/{e['seq']}/{path}")  # fmt: skip
            took[kind].append(time.perf_counter() - a)
            r.raise_for_status()
            sizes[kind].append(len(r.content))
            if kind == "json":
                strip = r.json()
                lo = round(strip["start_s"] * 360)
                want = feeds[strip["patient_id"]][lo : lo + len(strip["samples"])]
                same &= bool(np.allclose(strip["samples"], want, atol=1e-4))
    return {
        "alarms": len(alarms),
        "with_strip": sum(bool(e.get("strip_s")) for e in alarms),
        "samples_are_the_feeds": same,
        **{f"{k}_ms": _ms(v) for k, v in took.items() if v},
        **{f"{k}_kib_mean": float(np.mean(v)) / 1024 for k, v in sizes.items() if v},
    }


def _strips_line(t: dict[str, Any]) -> str:
    if not t["alarms"]:
        return "Strips: no ECG alarm."
    return (
        f"Strips: {t['with_strip']} of the {t['alarms']} ECG alarms have one; the samples "
        f"{'are' if t['samples_are_the_feeds'] else 'are NOT'} the feed's. Fetched (p50 / "
        f"p99 ms, mean size): JSON {t['json_ms']['p50']:.1f} / {t['json_ms']['p99']:.1f} "
        f"({t['json_kib_mean']:.0f} KiB), SVG {t['svg_ms']['p50']:.1f} / "
        f"{t['svg_ms']['p99']:.1f} ({t['svg_kib_mean']:.0f} KiB), FHIR Observation "
        f"{t['fhir_ms']['p50']:.1f} / {t['fhir_ms']['p99']:.1f} ({t['fhir_kib_mean']:.0f} KiB)."
    )


def sepsis_stays(model_uri: str, n_stays: int) -> tuple[Any, dict[str, list[dict]], dict]:
    """The model, the first ``n_stays`` stays of set A as a feed sends them, and their risks
    replayed in process."""
    loaded = tracking.load_model(model_uri, kinds=EARLY_WARNING_KINDS)
    raw = read_psv_folder(default_mirror() / "challenge-2019" / "training_setA", limit=n_stays)
    frame = raw.frame
    want = replay_stays(EarlyWarningMonitor(loaded.module, loaded.preprocessing), frame).risks
    cols = [c for c in frame.columns if c in CHALLENGE and c != "sepsis_label"]
    stays: dict[str, list[dict]] = {}
    for pid, g in frame.groupby("patient_id", sort=False):
        vals = g[cols].to_numpy(np.float64)
        stays[str(pid)] = [
            {CHALLENGE[c]: (None if math.isnan(v) else float(v)) for c, v in zip(cols, row,
                                                                                 strict=True)}
            for row in vals
        ]  # fmt: skip
    return loaded, stays, want


class _Watchers:
    """An event-stream reader and a metrics scraper on a gateway, in threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[tuple[int, float, dict]] = []  # (seq, when, event)
        self.scrapes: list[float] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._read, self._scrape)]
        for t in self.threads:
            t.start()

    def _read(self) -> None:
        with requests.get(f"{self.url}/events/stream", params={"since": 0}, stream=True) as r:
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    e = json.loads(line[6:])
                    self.received.append((e["seq"], time.perf_counter(), e))
                if self.stop.is_set():
                    return

    def _scrape(self) -> None:
        s = requests.Session()
        while not self.stop.wait(1.0):
            a = time.perf_counter()
            s.get(f"{self.url}/metrics").raise_for_status()
            self.scrapes.append(time.perf_counter() - a)

    def close(self, last_seq: int) -> None:
        """Wait (10 s at most) until the stream has had event ``last_seq``, then stop."""
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end and not (self.received and self.received[-1][0] >= last_seq):
            time.sleep(0.05)
        self.stop.set()


STATIC = ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime")


def _fhir_hours(stays: dict[str, list[dict]]) -> dict[str, tuple[dict, list[dict]]]:
    """Each stay as a FHIR feed sends it: its demographics (for the admission) and one
    Bundle of Observations per hour."""
    return {
        pid: (
            {k: rows[0][k] for k in STATIC if rows[0].get(k) is not None},
            [{"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": o} for o in row_to_observations(r)]} for r in rows],
        )
        for pid, rows in stays.items()
    }  # fmt: skip


def _oru(pid: str, k: int, bundle: dict) -> str:
    """The hour's Observations as an HL7 v2 ORU^R01 message, as a monitor's interface sends."""
    obx = [
        f"OBX|{i}|NM|{e['resource']['code']['coding'][0]['code']}^^LN||"
        f"{e['resource']['valueQuantity']['value']!r}|{e['resource']['valueQuantity']['code']}"
        "^^UCUM|||||F"
        for i, e in enumerate(bundle["entry"], 1)
    ]
    head = [f"MSH|^~\\&|MON|ICU|VITALGRU|HOSP|20261205080000||ORU^R01|{pid}-{k}|P|2.5",
            f"PID|1||{pid}^^^HOSP^MR"]  # fmt: skip
    return "\r".join(head + obx) + "\r"


def sepsis_part(
    loaded: Any,
    stays: dict[str, list[dict]],
    want: dict,
    state: bool,
    watched: bool = False,
    fhir: bool = False,
    hl7: bool = False,
) -> dict[str, Any]:
    journal = _fresh_journal("gateway-sepsis.sqlite") if state else None
    ward = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing), journal=journal)
    posts: list[float] = []
    onsets: dict[tuple[str, int], float] = {}  # (patient, hour) -> when its POST was sent
    got: dict[str, list[float]] = {}
    lock = threading.Lock()

    bundles = _fhir_hours(stays) if fhir or hl7 else {}
    messages = {pid: [_oru(pid, k, b) for k, b in enumerate(bundles[pid][1])]
                for pid in bundles} if hl7 else {}  # fmt: skip

    def feed(url: str, pids: list[str]) -> None:
        s = requests.Session()
        mine, risks, began = [], {}, {}
        for pid in pids:
            static = bundles[pid][0] if fhir or hl7 else None
            s.post(f"{url}/vitals/{pid}/admit", json=static).raise_for_status()
            risks[pid] = []
            for k, row in enumerate(stays[pid]):
                a = time.perf_counter()
                if fhir:
                    r = s.post(f"{url}/vitals/{pid}/fhir", json=bundles[pid][1][k],
                               params={"iculos": int(row["ICULOS"])})  # fmt: skip
                elif hl7:
                    r = s.post(f"{url}/vitals/{pid}/hl7", data=messages[pid][k].encode(),
                               params={"iculos": int(row["ICULOS"])},
                               headers={"content-type": "x-application/hl7-v2+er7"})  # fmt: skip
                else:
                    r = s.post(f"{url}/vitals/{pid}", json=row)
                mine.append(time.perf_counter() - a)
                r.raise_for_status()
                risks[pid].append(r.json()["risk"])
                if r.json()["alarm_started"]:
                    began[(pid, r.json()["hour"])] = a
            s.delete(f"{url}/vitals/{pid}").raise_for_status()
        with lock:
            posts.extend(mine)
            got.update(risks)
            onsets.update(began)

    ids = list(stays)
    with _Gateway(ward, tick_s=0) as url:
        watchers = _Watchers(url) if watched else None
        t0 = time.perf_counter()
        threads = [threading.Thread(target=feed, args=(url, ids[k::4])) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if watchers is not None:
            watchers.close(ward.last_seq)
    hours = sum(len(v) for v in stays.values())
    diff = max(
        float(np.max(np.abs(np.asarray(got[p]) - np.asarray([h.risk for h in want[p]]))))
        for p in ids
    )
    out = {
        "state_file": state,
        "fhir": fhir,
        "hl7": hl7,
        "patients": len(ids),
        "hours": hours,
        "wall_s": wall,
        "patient_hours_per_s": hours / wall,
        "post_ms": _ms(posts),
        "max_abs_risk_diff_vs_replay": diff,
        "alarm_onsets": len(onsets),
    }
    if watchers is not None:
        seqs = [q for q, _, _ in watchers.received]
        lag = [
            when - onsets[(e["patient_id"], e["hour"])]
            for _, when, e in watchers.received
            if e["kind"] == "sepsis_risk"
        ]
        out.update(
            stream_events=len(seqs),
            stream_every_event_once_in_order=seqs == list(range(1, ward.last_seq + 1)),
            hour_posted_to_alarm_on_stream_ms=_ms(lag),
            metrics_scrape_ms=_ms(watchers.scrapes),
        )
    return out


def restart_part(loaded: Any, stays: dict[str, list[dict]]) -> dict[str, Any]:
    journal = _fresh_journal("gateway-restart.sqlite")
    ward = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing), journal=journal)
    for pid, rows in stays.items():
        ward.admit_sepsis(pid)
        for row in rows:
            ward.add_hour(pid, row)
    before = {p: ward.sepsis_summary(p) for p in stays}
    journal.close()
    size = journal.path.stat().st_size + sum(
        f.stat().st_size for f in WORK.glob(journal.path.name + "-*")
    )
    t0 = time.perf_counter()
    journal = WardJournal(journal.path)
    ward = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing), journal=journal)
    took = ward.restore(journal.load())
    restore_s = time.perf_counter() - t0
    after = {p: ward.sepsis_summary(p) for p in stays}
    journal.close()
    diff = max(abs(after[p]["last_hour"]["risk"] - before[p]["last_hour"]["risk"]) for p in stays)
    same = all(
        (after[p]["in_alarm"], after[p]["alarm_episodes"])
        == (before[p]["in_alarm"], before[p]["alarm_episodes"])
        for p in stays
    )
    return {
        "patients": took["sepsis"],
        "hours": took["hours"],
        "events": took["events"],
        "state_file_bytes": size,
        "restore_s": restore_s,
        "hours_per_s": took["hours"] / restore_s,
        "max_abs_last_risk_diff": diff,
        "same_alarm_state_and_episodes": same,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arrhythmia-model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--early-warning-model", default="models:/vitalgru-early-warning@champion")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--stays", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    ecg = ecg_part(args.arrhythmia_model, args.seconds)
    print(f"ecg: {ecg['patient_s_per_s']:.0f} patient-s/s, beats {ecg['beats']} "
          f"(replay {ecg['beats_replay']})", flush=True)  # fmt: skip
    loaded, stays, want = sepsis_stays(args.early_warning_model, args.stays)
    sepsis = sepsis_part(loaded, stays, want, state=True)
    memory = sepsis_part(loaded, stays, want, state=False)
    watched = sepsis_part(loaded, stays, want, state=True, watched=True)
    fhir = sepsis_part(loaded, stays, want, state=False, fhir=True)
    hl7 = sepsis_part(loaded, stays, want, state=False, hl7=True)
    print(f"sepsis: {sepsis['patient_hours_per_s']:.0f} hours/s with the state file, "
          f"{memory['patient_hours_per_s']:.0f} in memory only, "
          f"{watched['patient_hours_per_s']:.0f} watched, "
          f"{fhir['patient_hours_per_s']:.0f} as FHIR, "
          f"{hl7['patient_hours_per_s']:.0f} as HL7 v2", flush=True)  # fmt: skip
    restart = restart_part(loaded, stays)
    print(f"restart: {restart['hours']} hours scored again in {restart['restore_s']:.1f} s",
          flush=True)  # fmt: skip
    payload = {
        "command": "python benchmarks/gateway.py " + " ".join(argv or sys.argv[1:]),
        "environment": env,
        "ecg": ecg,
        "sepsis": sepsis,
        "sepsis_in_memory": memory,
        "sepsis_watched": watched,
        "sepsis_fhir": fhir,
        "sepsis_hl7": hl7,
        "restart": restart,
    }
    e, s, m, w, f, r = ecg, sepsis, memory, watched, fhir, restart
    md = [
        "# The bedside gateway (`vitalgru serve`) over HTTP",
        "",
        f"Command: `{payload['command'].strip()}`  ",
        f"Date {env['date_utc']}; server and client threads in one process on "
        f"{env['cpu_count']} CPUs, one torch thread; 1-min load average "
        f"{env['load_avg_1min_at_start']:.1f} at start.",
        "",
        "| feed | patients | data | wall s | throughput | POST p50 / p99 ms | "
        "same as in-process replay |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| ECG, 1 s chunks, tick 0.5 s, state file | {e['patients']} | {e['signal_s']:.0f} s of ECG | "
        f"{e['wall_s']:.1f} | {e['patient_s_per_s']:.0f} patient-s/s | "
        f"{e['post_ms']['p50']:.1f} / {e['post_ms']['p99']:.1f} | beats by class "
        f"{'identical' if e['same_beat_classes_as_replay'] else 'DIFFERENT'} "
        f"({e['beats']} beats); alarms {e['alarms']} vs {e['alarms_replay']} |",
        *(
            f"| sepsis, one hour per POST, {name} | {x['patients']} | {x['hours']} "
            f"patient-hours | {x['wall_s']:.1f} | {x['patient_hours_per_s']:.0f} "
            f"patient-hours/s | {x['post_ms']['p50']:.1f} / {x['post_ms']['p99']:.1f} | "
            f"largest risk difference {x['max_abs_risk_diff_vs_replay']:.1e} |"
            for name, x in (
                ("state file", s),
                ("in memory only", m),
                ("state file, event stream and metrics scraper reading", w),
                ("in memory only, each hour a FHIR Bundle of Observations", f),
                ("in memory only, each hour an HL7 v2 ORU^R01 message", hl7),
            )
        ),
        "",
        f"Watched: the event stream had {w['stream_events']} events, "
        f"{'every logged event once and in order' if w['stream_every_event_once_in_order'] else 'NOT every logged event once in order'}; "
        f"{w['alarm_onsets']} sepsis alarm onsets reached it "
        f"{_num(w['hour_posted_to_alarm_on_stream_ms']['p50'], '.0f')} ms (p50) / "
        f"{_num(w['hour_posted_to_alarm_on_stream_ms']['p99'], '.0f')} ms (p99) / "
        f"{_num(w['hour_posted_to_alarm_on_stream_ms']['max'], '.0f')} ms (max) after their hour "
        f"was POSTed (scoring and the explanation included; the stream looks every 0.2 s); "
        f"{w['metrics_scrape_ms']['n']} scrapes of `/metrics` took "
        f"{_num(w['metrics_scrape_ms']['p50'], '.1f')} / "
        f"{_num(w['metrics_scrape_ms']['p99'], '.1f')} ms "
        "(p50 / p99).",
        "",
        f"Restart: {r['patients']} sepsis patients with {r['hours']} hours in a state file of "
        f"{r['state_file_bytes'] / 2**20:.1f} MiB were taken up by a new ward in "
        f"{r['restore_s']:.1f} s ({r['hours_per_s']:.0f} patient-hours scored again per "
        f"second); largest difference in a patient's last risk {r['max_abs_last_risk_diff']:.1e}, "
        f"alarm state and episodes {'identical' if r['same_alarm_state_and_episodes'] else 'DIFFERENT'}.",
        "",
        f"ECG: {e['retried_posts']} chunks were refused while 60 s were queued and sent "
        f"again; {e['ticks']} ticks, {e['tick_ms_mean']:.0f} ms each on average. The same "
        f"signals replayed in process (no HTTP) took {e['in_process_replay_s']:.1f} s.",
        "",
        _strips_line(e["strips"]),
    ]
    js, mdp = write_results("gateway", payload, "\n".join(md))
    print(f"wrote {js} and {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The gateway's HL7 v2 interface under load: an interface engine forwarding admissions and
results over MLLP (and the same over ``POST /hl7``), each hour assembled from two messages.

One command::

    python benchmarks/hl7_interface.py [--early-warning-model models:/vitalgru-early-warning@champion]
                                       [--stays 200]

Writes ``benchmarks/results/hl7_interface.json`` and ``.md``. The gateway runs in this
process (uvicorn on a local port with the MLLP listener beside it, one torch thread, the
ward ticking every second); four engine connections are client threads in the same process,
so the two cores are shared by server and clients.

The first ``--stays`` stays of set A, split between four connections. Each stay is an
``ADT^A01`` (the admission ``(last hour + 1)`` hours ago, the age, sex and hospital hours
of the stay's demographics in ``PID-7``, ``PID-8``, ``PV1-44``), then, for each hour with a
measurement, the monitor's message (the first half of the hour's ``OBX`` segments, 20
minutes into the hour) and the laboratory's (the rest, 15 minutes later), each sent after
the previous one's acknowledgement, as an engine does. All hours are in the past, so each
closes when the next one's first message comes; the last hours are closed at the end
(:meth:`Ward.close_hours`). Measured: messages and patient-hours per second, the time from
sending a message to its acknowledgement, every acknowledgement ``AA``, and the largest
difference between each hour's risk and the same stay scored in process from its rows
(with the demographics the ``ADT`` gave, hours without a measurement as empty rows; the
hours after a stay's last measurement are not scored: no message tells of them).

Then the alarms the other way: the same stays scored in process as fast as the ward takes
them, with the alarm forwarder (:mod:`pipelines.hl7_forward`) sending every sepsis alarm
onset as ``ORU^R40`` to a local MLLP receiver. Measured: the time from the ward logging an
alarm to the receiver having it (bursts queue behind each other, as they would).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import requests
import torch
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results
from gateway import STATIC, _ms, sepsis_stays

from pipelines.gateway import create_app
from pipelines.hl7_forward import AlarmForwarder
from vitalgru.io.fhir_observations import row_to_observations
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward

START, END = b"\x0b", b"\x1c\x0d"


def _ts(t: datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S+0000")


def stay_messages(pid: str, rows: list[dict], now: datetime) -> tuple[datetime, list[str]]:
    """The admission and the results of one stay, as an interface engine forwards them."""
    last = int(rows[-1]["ICULOS"])
    start = (now - timedelta(hours=last + 1)).replace(microsecond=0)
    first = rows[0]
    pv1 = ["PV1", "1", "I", "ICU^1^1"] + [""] * 41
    if first.get("HospAdmTime") is not None:
        pv1[44] = _ts(start + timedelta(hours=first["HospAdmTime"]))
    born = f"{start.year - int(first['Age'])}0101" if first.get("Age") is not None else ""
    sex = {0.0: "F", 1.0: "M"}.get(first.get("Gender"), "U")
    out = ["\r".join([
        f"MSH|^~\\&|ADT|HOSP|VITALGRU|HOSP|{_ts(start)}||ADT^A01^ADT_A01|{pid}-adm|P|2.5",
        f"EVN|A01|{_ts(start)}||||{_ts(start)}",
        f"PID|1||{pid}^^^HOSP^MR||Doe^J||{born}|{sex}",
        "|".join(pv1),
    ]) + "\r"]  # fmt: skip
    for row in rows:
        obs = row_to_observations({k: v for k, v in row.items() if k not in STATIC})
        at = start + timedelta(hours=int(row["ICULOS"]) - 1, minutes=20)
        half = (len(obs) + 1) // 2
        for part, (o, t) in enumerate(((obs[:half], at), (obs[half:], at + timedelta(minutes=15)))):
            if not o:
                continue
            obx = [
                f"OBX|{i}|NM|{x['code']['coding'][0]['code']}^^LN||{x['valueQuantity']['value']!r}"
                f"|{x['valueQuantity']['code']}^^UCUM|||||F|||{_ts(t)}"
                for i, x in enumerate(o, 1)
            ]
            head = [f"MSH|^~\\&|MON|ICU|VITALGRU|HOSP|{_ts(t)}||ORU^R01|{pid}-{row['ICULOS']:.0f}"
                    f"-{part}|P|2.5", f"PID|1||{pid}^^^HOSP^MR"]  # fmt: skip
            out.append("\r".join(head + obx) + "\r")
    return start, out


class _Server:
    """The gateway with its MLLP listener, served by uvicorn on free local ports."""

    def __init__(self, ward: Ward) -> None:
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.http, self.mllp = ports
        app = create_app(ward, 1.0, stopping=lambda: self.server.should_exit,
                         mllp=("127.0.0.1", self.mllp))  # fmt: skip
        config = uvicorn.Config(app, host="127.0.0.1", port=self.http, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        for _ in range(200):
            try:
                requests.get(f"http://127.0.0.1:{self.http}/health", timeout=1).raise_for_status()
                socket.create_connection(("127.0.0.1", self.mllp), timeout=1).close()
                return self
            except (requests.RequestException, OSError):
                time.sleep(0.05)
        raise RuntimeError("the gateway did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _send_mllp(port: int, messages: list[str]) -> tuple[list[float], list[str]]:
    waits, codes = [], []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        for m in messages:
            a = time.perf_counter()
            s.sendall(START + m.encode() + END)
            buf = b""
            while not buf.endswith(END):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("the listener closed the connection")
                buf += chunk
            waits.append(time.perf_counter() - a)
            codes.append(buf.decode().split("\r")[1].split("|")[1])
    return waits, codes


def _send_http(port: int, messages: list[str]) -> tuple[list[float], list[str]]:
    waits, codes = [], []
    s = requests.Session()
    for m in messages:
        a = time.perf_counter()
        r = s.post(f"http://127.0.0.1:{port}/hl7", data=m.encode(),
                   headers={"content-type": "x-application/hl7-v2+er7"})  # fmt: skip
        waits.append(time.perf_counter() - a)
        codes.append(r.text.split("\r")[1].split("|")[1])
    return waits, codes


def run(loaded: Any, stays: dict[str, list[dict]], transport: str) -> dict[str, Any]:
    ward = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing))
    now = datetime.now(UTC)
    sent = {pid: stay_messages(pid, rows, now) for pid, rows in stays.items()}
    ids = list(stays)
    waits: list[float] = []
    codes: list[str] = []
    lock = threading.Lock()
    with _Server(ward) as server:

        def engine(pids: list[str]) -> None:
            msgs = [m for p in pids for m in sent[p][1]]
            if transport == "mllp":
                w, c = _send_mllp(server.mllp, msgs)
            else:
                w, c = _send_http(server.http, msgs)
            with lock:
                waits.extend(w)
                codes.extend(c)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=engine, args=(ids[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ward.close_hours()  # the last hour of each stay
        wall = time.perf_counter() - t0
        got = {p: ward.sepsis_stay(p) for p in ids}
        static = {p: ward.sepsis_summary(p)["static"] for p in ids}
    # the same stays in process, from their rows, with what the ADT gave of each patient
    direct = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing))
    diff, n_hours = 0.0, 0
    for p, rows in stays.items():
        direct.admit_sepsis(p, static[p], sent[p][0])
        by_hour = {int(r["ICULOS"]): r for r in rows}
        want = []
        scored = got[p]["hours"]  # to the stay's last hour with a measurement
        for h in range(1, scored[-1] + 1):
            r = {k: v for k, v in by_hour.get(h, {}).items() if k not in STATIC}
            want.append(direct.add_hour(p, {**r, "ICULOS": h})["risk"])
        assert scored == list(range(1, len(want) + 1)), p
        diff = max(diff, float(np.max(np.abs(np.asarray(got[p]["risks"]) - want))))
        n_hours += len(want)
    n_msgs = sum(len(m) for _, m in sent.values())
    return {
        "transport": transport,
        "patients": len(ids),
        "messages": n_msgs,
        "hours_scored": n_hours,
        "hours_with_a_measurement": sum(
            1
            for rows in stays.values()
            for r in rows
            if any(v is not None for k, v in r.items() if k not in (*STATIC, "ICULOS"))
        ),  # fmt: skip
        "wall_s": wall,
        "messages_per_s": n_msgs / wall,
        "patient_hours_per_s": n_hours / wall,
        "ack_ms": _ms(waits),
        "acks": {c: codes.count(c) for c in sorted(set(codes))},
        "max_abs_risk_diff_vs_rows_in_process": diff,
    }


class _Engine:
    """An interface engine's MLLP receiver: acknowledges every message ``AA`` and notes
    when each arrived (perf_counter) under its control id."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.got: dict[str, float] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        buf = b""
        with conn:
            while chunk := conn.recv(65536):
                buf += chunk
                while END in buf:
                    frame, buf = buf.split(END, 1)
                    cid = frame.decode().split("\r")[0].split("|")[9]
                    self.got[cid] = time.perf_counter()
                    ack = f"MSH|^~\\&|ENGINE||VITALGRU||x||ACK^R40|A{cid}|P|2.6\rMSA|AA|{cid}\r"
                    conn.sendall(START + ack.encode() + END)


def forward_part(loaded: Any, stays: dict[str, list[dict]]) -> dict[str, Any]:
    """The stays scored in process, hour by hour as fast as the ward takes them, with the
    alarm forwarder sending every onset to a local MLLP receiver: the time from the ward
    logging an alarm to the receiver having it."""
    ward = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing))
    engine = _Engine()
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port)
    fwd.start()
    logged: dict[str, float] = {}
    t0 = time.perf_counter()
    for pid, rows in stays.items():
        ward.admit_sepsis(pid)
        for row in rows:
            if ward.add_hour(pid, row)["alarm_started"]:
                logged[f"VG{ward.sepsis_summary(pid)['alarm_seq']}"] = time.perf_counter()
    fed = time.perf_counter() - t0
    end = time.monotonic() + 60
    while fwd.cursor < ward.last_seq and time.monotonic() < end:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    fwd.stop()
    lat = [engine.got[c] - t for c, t in logged.items() if c in engine.got]
    return {
        "alarms": len(logged),
        "delivered": len(lat),
        "sent_acknowledged": fwd.sent,
        "feed_wall_s": fed,
        "wall_s": wall,
        "logged_to_receiver_ms": _ms(lat) if lat else None,
        "poll_s": fwd.poll_s,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--early-warning-model", default="models:/vitalgru-early-warning@champion")
    ap.add_argument("--stays", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded, stays, _ = sepsis_stays(args.early_warning_model, args.stays)
    parts = []
    for transport in ("mllp", "http"):
        r = run(loaded, stays, transport)
        parts.append(r)
        print(f"{transport}: {r['messages_per_s']:.0f} messages/s, "
              f"{r['patient_hours_per_s']:.0f} patient-h/s, ack p50 {r['ack_ms']['p50']:.1f} ms, "
              f"acks {r['acks']}, max diff {r['max_abs_risk_diff_vs_rows_in_process']:.1e}",
              flush=True)  # fmt: skip
    fw = forward_part(loaded, stays)
    f = fw["logged_to_receiver_ms"] or {}  # None: no alarm reached the receiver
    said = " / ".join(f"{f[k]:.0f}" if k in f else "-" for k in ("p50", "p99", "max"))
    print(f"forward: {fw['delivered']}/{fw['alarms']} alarms, logged to receiver "
          f"p50 / p99 / max {said} ms", flush=True)  # fmt: skip
    result = {"environment": env, "model": args.early_warning_model, "stays": args.stays,
              "parts": parts, "forward": fw}  # fmt: skip
    lines = [
        "# HL7 v2 interface: ADT and ORU messages over MLLP and HTTP",
        "",
        f"`python benchmarks/hl7_interface.py --early-warning-model {args.early_warning_model} "
        f"--stays {args.stays}` on this {env['cpu_count']}-core {env['machine']} machine, one torch thread; four "
        "engine connections, each message sent after the previous one's acknowledgement; each "
        "hour two ORU messages (monitor, laboratory) assembled by the ward.",
        "",
        "| transport | messages | patient-hours | wall s | messages/s | patient-hours/s "
        "| ack p50 / p99 ms | acknowledgements | max risk diff vs rows in process |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in parts:
        lines.append(
            f"| {r['transport']} | {r['messages']:,} | {r['hours_scored']:,} | {r['wall_s']:.1f} "
            f"| {r['messages_per_s']:.0f} | {r['patient_hours_per_s']:.0f} "
            f"| {r['ack_ms']['p50']:.1f} / {r['ack_ms']['p99']:.1f} "
            f"| {', '.join(f'{k} {v:,}' for k, v in r['acks'].items())} "
            f"| {r['max_abs_risk_diff_vs_rows_in_process']:.1e} |"
        )
    lines += [
        "",
        "## Alarms forwarded as ORU^R40 over MLLP",
        "",
        f"The same stays scored in process as fast as the ward takes them ({fw['feed_wall_s']:.1f}"
        f" s), the forwarder (polling the event log every {fw['poll_s']} s) sending every sepsis "
        "alarm onset to a local MLLP receiver that acknowledges each.",
        "",
        "| alarms | delivered | logged to receiver p50 / p99 / max ms |",
        "|---:|---:|---|",
        f"| {fw['alarms']} | {fw['delivered']} | {said} |",
    ]
    write_results("hl7_interface", result, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The gateway's CDS Hooks service under an EHR's calls, over real HTTP on this machine.

One command::

    python benchmarks/cds_hooks.py [--early-warning-model models:/vitalgru-early-warning@champion]
                                   [--stays 200] [--calls 1000]

Writes ``benchmarks/results/cds_hooks.json`` and ``.md``. CDS Hooks asks services to answer
"on the order of 500 ms"; an EHR calls on every chart opened. The first ``--stays`` stays
of set A are scored in process by a sepsis ward (so some patients are in an alarm episode at
the end, as on a ward); the gateway then serves it (uvicorn on a local port, in this
process) to an EHR with an EC P-384 and an RSA key made for the run. ``--calls``
``patient-view`` calls, each for a stay drawn at random, each with a fresh signed token
(signed before the clock starts: signing is the EHR's cost), are sent one at a time and
then from four threads, once with ES384 tokens and once with RS384. Measured: the time
from sending a call to its cards, calls per second, the share of calls answered with a
card; and, in process, what verifying one token costs.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import torch
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results
from gateway import _ms, sepsis_stays

from pipelines.cds_tokens import CdsClients, jwk_of, sign_token
from pipelines.gateway import create_app
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward

ISS = "https://ehr.benchmark.invalid"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--early-warning-model", default="models:/vitalgru-early-warning@champion")
    ap.add_argument("--stays", type=int, default=200)
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded, stays, _ = sepsis_stays(args.early_warning_model, args.stays)
    ward = Ward(sepsis=EarlyWarningMonitor(loaded.module, loaded.preprocessing))
    for pid, rows in stays.items():
        ward.admit_sepsis(pid)
        for row in rows:
            ward.add_hour(pid, row)
    in_alarm = sum(ward.sepsis_summary(p)["in_alarm"] for p in stays)
    keys = {"ES384": ec.generate_private_key(ec.SECP384R1()),
            "RS384": rsa.generate_private_key(public_exponent=65537, key_size=2048)}  # fmt: skip
    kids = {"ES384": "ec-1", "RS384": "rsa-1"}
    jwks = [jwk_of(k.public_key(), kids[a]) for a, k in keys.items()]
    clients = CdsClients.from_spec(
        {"clients": [{"name": "ehr", "iss": ISS, "jwks": {"keys": jwks}}]}
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    app = create_app(ward, 0, cds_clients=clients, public_url=base)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        try:
            requests.get(f"{base}/health", timeout=1).raise_for_status()
            break
        except requests.RequestException:
            time.sleep(0.05)
    aud = f"{base}/cds-services/vitalgru-sepsis"
    rng = random.Random(0)
    pids = list(stays)

    def tokens(alg: str, n: int) -> list[str]:
        now = time.time()
        return [sign_token(keys[alg], kids[alg], {"iss": ISS, "aud": aud, "iat": now,
                                                  "exp": now + 600, "jti": str(uuid.uuid4())})
                for _ in range(n)]  # fmt: skip

    def one(token: str) -> tuple[float, int, int]:
        body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                "context": {"patientId": rng.choice(pids)}}  # fmt: skip
        t0 = time.perf_counter()
        r = requests.post(aud, json=body, headers={"Authorization": f"Bearer {token}"},
                          timeout=30)  # fmt: skip
        return time.perf_counter() - t0, r.status_code, len(r.json().get("cards", []))

    parts = []
    try:
        for alg in ("ES384", "RS384"):
            for threads in (1, 4):
                signed = tokens(alg, args.calls)
                t0 = time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    got = list(pool.map(one, signed))
                wall = time.perf_counter() - t0
                statuses = sorted({s for _, s, _ in got})
                parts.append({"alg": alg, "threads": threads, "calls": len(got),
                              "wall_s": wall, "calls_per_s": len(got) / wall,
                              "call_ms": _ms([t for t, _, _ in got]), "statuses": statuses,
                              "with_card": sum(n > 0 for _, _, n in got) / len(got)})  # fmt: skip
                p = parts[-1]
                print(f"{alg} x{threads}: {p['calls_per_s']:.0f} calls/s, p50 "
                      f"{p['call_ms']['p50']:.1f} ms, p99 {p['call_ms']['p99']:.1f} ms, "
                      f"statuses {statuses}", flush=True)  # fmt: skip
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    verify_us = {}
    for alg in ("ES384", "RS384"):
        signed = tokens(alg, 300)
        t0 = time.perf_counter()
        for tok in signed:
            clients.verify(tok, [aud])
        verify_us[alg] = 1e6 * (time.perf_counter() - t0) / len(signed)
    result = {"environment": env, "model": args.early_warning_model, "stays": args.stays,
              "in_alarm": in_alarm, "parts": parts, "verify_us": verify_us}  # fmt: skip
    lines = [
        "# CDS Hooks: an EHR's patient-view calls",
        "",
        f"`python benchmarks/cds_hooks.py --early-warning-model {args.early_warning_model} "
        f"--stays {args.stays} --calls {args.calls}` on this {env['cpu_count']}-core "
        f"{env['machine']} machine; the gateway (uvicorn) and the EHR's client threads share "
        f"it. {args.stays} set-A stays scored in process first; {in_alarm} of them end in an "
        "alarm episode. Each call a fresh signed token, for a stay drawn at random.",
        "",
        "| token | client threads | calls | calls/s | call p50 / p99 / max ms | answered | "
        "calls with a card |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for p in parts:
        m = p["call_ms"]
        lines.append(
            f"| {p['alg']} | {p['threads']} | {p['calls']:,} | {p['calls_per_s']:.0f} | "
            f"{m['p50']:.1f} / {m['p99']:.1f} / {m['max']:.1f} | "
            f"{', '.join(str(s) for s in p['statuses'])} | {100 * p['with_card']:.1f} % |"
        )
    lines += ["", "Verifying one token in process: " + ", ".join(
        f"{alg} {us:.0f} µs" for alg, us in verify_us.items()) + "."]  # fmt: skip
    js, md = write_results("cds_hooks", result, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

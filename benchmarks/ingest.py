"""Full MIT-BIH ingest from a PhysioNet-shaped HTTP server: wall time and peak memory.

One command::

    python benchmarks/ingest.py [--mirror ../shared/data/physionet]

A local HTTP server (``benchmarks/physionet_http.py``, its own process) serves the mirror
in PhysioNet's URL layout (``/mitdb/1.0.0/<file>``); ``vitalgru ingest`` then downloads
all 48 records into an empty cache, verifies them against ``SHA256SUMS.txt``, filters,
detects R peaks, checks quality and writes the dataset. A second, warm run shows what
the verified-file cache and the cached per-record steps save. Peak memory is the largest
resident set of any process of the run (the ingest process; Prefect's temporary server is
a separate process), from ``getrusage(RUSAGE_CHILDREN)``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, default_mirror, environment, write_results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_ingest(out: Path, cache: Path, base_url: str, env: dict[str, str]) -> dict:
    cmd = [
        sys.executable, "-m", "pipelines.cli", "ingest", "--out", str(out),
        "--set", "physionet.mirror=null",
        "--set", f"physionet.base_url={base_url}",
        "--set", f"physionet.cache_dir={cache}",
    ]  # fmt: skip
    t0 = time.perf_counter()
    # run under a wrapper process of its own: this process's RUSAGE_CHILDREN keeps the
    # largest child ever waited for, so a warm run after a cold one read the cold peak
    proc = subprocess.run([sys.executable, "-c", _PEAK_OF, *cmd], env=env,
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed:\n{proc.stderr[-4000:]}")
    peak_kib = int(proc.stderr.rsplit(_PEAK_TAG, 1)[1].split()[0])
    return {"wall_s": wall, "peak_rss_mib": peak_kib / 1024, "result": json.loads(
        proc.stdout[proc.stdout.index("{"):])}  # fmt: skip


_PEAK_TAG = "peak-rss-kib:"
#: Runs the command given and writes the largest resident set among it and its children.
_PEAK_OF = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    f"print('{_PEAK_TAG}', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
    "file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mirror", type=Path, default=default_mirror())
    ap.add_argument("--name", default="ingest",
                    help="results file name under benchmarks/results (another machine's run "
                         "beside the first)")  # fmt: skip
    args = ap.parse_args()
    mirror = args.mirror.resolve()
    env_facts = environment()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "physionet_http.py"), "--mirror",
         str(mirror), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ)
    env.pop("VITALGRU_PHYSIONET_MIRROR", None)
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true", TQDM_DISABLE="1")
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            out, cache = Path(tmp) / "ds", Path(tmp) / "cache"
            cold = _run_ingest(out, cache, base_url, env)
            n_files = sum(1 for p in (cache).rglob("*") if p.is_file())
            cache_mib = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 2**20
            warm = _run_ingest(out, cache, base_url, env)
            counts = json.loads((out / "manifest.json").read_text())["class_counts"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    payload = {
        "benchmark": "ingest",
        "command": "python benchmarks/ingest.py"
        + ("" if args.name == "ingest" else f" --name {args.name}"),
        "database": "mitdb (48 records served over HTTP from the local mirror)",
        "cold_wall_s": round(cold["wall_s"], 2),
        "warm_wall_s": round(warm["wall_s"], 2),
        "cold_peak_rss_mib": round(cold["peak_rss_mib"], 1),
        "warm_peak_rss_mib": round(warm["peak_rss_mib"], 1),
        "downloaded_files": n_files,
        "downloaded_mib": round(cache_mib, 1),
        "class_counts": counts,
        "environment": env_facts,
    }
    md = "\n".join([
        "# Full MIT-BIH ingest (download, verify, filter, detect, window)",
        "",
        f"Command: `{payload['command']}` on {payload['environment']['cpu_count']} CPUs, "
        f"{payload['environment']['date_utc']}; 1-minute load average at start "
        f"{payload['environment']['load_avg_1min_at_start']:.1f} (above 2 means other "
        "work shared the 2 cores).",
        "",
        "| run | wall time (s) | peak RSS (MiB) |",
        "|---|---:|---:|",
        f"| cold: empty cache, {n_files} files / {cache_mib:.1f} MiB downloaded over HTTP "
        f"| {payload['cold_wall_s']} | {payload['cold_peak_rss_mib']:.0f} |",
        f"| warm: verified cache, cached per-record steps | {payload['warm_wall_s']} "
        f"| {payload['warm_peak_rss_mib']:.0f} |",
        "",
        "Both runs include Prefect's temporary local server start-up. "
        "Peak RSS is the largest single process of each run (getrusage RUSAGE_CHILDREN of a "
        "wrapper process per run).",
    ])  # fmt: skip
    js, mdp = write_results(args.name, payload, md)
    print(md)
    print(f"\nwrote {js} and {mdp}")


if __name__ == "__main__":
    main()

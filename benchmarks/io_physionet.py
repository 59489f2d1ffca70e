"""PhysioNet io speed: reading a whole database, verification cost, and download via HTTP.

One command::

    python benchmarks/io_physionet.py [--mirror DIR] [--db mitdb] [--repeats 3]

Measures, on the local mirror:

* ``wfdb_baseline``: ``wfdb.rdrecord`` + ``wfdb.rdann`` for every record (no checks);
* ``vitalgru_cold``: :func:`vitalgru.io.iter_records` with an empty verification state,
  so every file is hashed against ``SHA256SUMS.txt`` and every header checked;
* ``vitalgru_warm``: the same with the state from the previous run (nothing re-hashed);
* ``download_w1`` / ``download_w4``: :meth:`Database.fetch` of every record from a local
  HTTP server in PhysioNet's URL layout into an empty cache, 1 and 4 worker threads;
* ``refetch``: the same fetch again (must make zero requests).

Writes ``benchmarks/results/io_physionet.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import wfdb

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.physionet_http import PhysioNetHTTPServer  # noqa: E402
from vitalgru.config import PhysioNetConfig  # noqa: E402
from vitalgru.io import iter_records, open_database  # noqa: E402


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _summary(xs: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs), "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default_mirror = os.environ.get("VITALGRU_PHYSIONET_MIRROR") or str(
        ROOT.parent / "shared" / "data" / "physionet"
    )
    ap.add_argument("--mirror", default=default_mirror)
    ap.add_argument("--db", default="mitdb")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    mirror = Path(args.mirror).resolve()
    db_dir = mirror / args.db
    records = [r for r in (db_dir / "RECORDS").read_text().split() if r]
    n_bytes = sum(
        f.stat().st_size for f in db_dir.iterdir() if f.suffix in (".hea", ".dat", ".atr")
    )
    results: dict[str, dict[str, float]] = {}

    def wfdb_all() -> None:
        for r in records:
            wfdb.rdrecord(str(db_dir / r))
            wfdb.rdann(str(db_dir / r), "atr")

    results["wfdb_baseline"] = _summary([_timed(wfdb_all) for _ in range(args.repeats)])

    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = PhysioNetConfig(mirror=mirror, cache_dir=Path(tmp))

            def ours(cfg: PhysioNetConfig = cfg) -> None:
                attr: list = []
                n = sum(1 for _ in iter_records(open_database(args.db, cfg), attrition=attr))
                if n != len(records) or attr:
                    raise RuntimeError(f"read {n} of {len(records)} records; attrition {attr}")

            cold.append(_timed(ours))
            warm.append(_timed(ours))
    results["vitalgru_cold"] = _summary(cold)
    results["vitalgru_warm"] = _summary(warm)

    requests_on_refetch = []
    for workers in (1, 4):
        times, re_times = [], []
        for _ in range(args.repeats):
            with (
                tempfile.TemporaryDirectory() as tmp,
                PhysioNetHTTPServer.for_mirror(mirror) as srv,
            ):
                cfg = PhysioNetConfig(base_url=srv.base_url, mirror=None, cache_dir=Path(tmp))
                os.environ.pop("VITALGRU_PHYSIONET_MIRROR", None)

                def fetch(cfg: PhysioNetConfig = cfg, workers: int = workers) -> None:
                    rep = open_database(f"{args.db}/1.0.0", cfg).fetch(workers=workers)
                    if not rep.complete:
                        raise RuntimeError(f"fetch failed: {rep.failures[:3]}")

                times.append(_timed(fetch))
                srv.clear_log()
                re_times.append(_timed(fetch))
                requests_on_refetch.append(len(srv.requests))
        results[f"download_w{workers}"] = _summary(times)
        results[f"refetch_w{workers}"] = _summary(re_times)

    load = os.getloadavg()[0]
    meta = {
        "command": "python benchmarks/io_physionet.py " + " ".join(sys.argv[1:]),
        "database": args.db,
        "records": len(records),
        "bytes_hea_dat_atr": n_bytes,
        "requests_on_refetch": requests_on_refetch,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_end": load,
        "python": platform.python_version(),
        "wfdb": wfdb.__version__,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "io_physionet.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    mb = n_bytes / 1e6
    lines = [
        f"# PhysioNet io: {args.db} ({len(records)} records, {mb:.1f} MB of .hea/.dat/.atr)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {os.cpu_count()} CPU cores, 1-min load average {load:.1f} at the end "
        "(shared machine: timings are under contention), "
        f"Python {meta['python']}, wfdb {meta['wfdb']}",
        "",
        "| step | median (s) | min (s) | max (s) | n |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in results.items():
        lines.append(
            f"| {k} | {v['median_s']:.3f} | {v['min_s']:.3f} | {v['max_s']:.3f} | {v['n']} |"
        )
    lines += [
        "",
        "- `wfdb_baseline`: `wfdb.rdrecord` + `wfdb.rdann` per record, no checks.",
        "- `vitalgru_cold`: read + annotations with header/size checks and SHA-256 "
        "verification of every file (empty verification state).",
        "- `vitalgru_warm`: the same, verification state reused (nothing re-hashed).",
        "- `download_wN`: fetch every record from a local HTTP server in PhysioNet's URL "
        "layout into an empty cache with N threads (verified, via `.part` files).",
        f"- `refetch_wN`: the same fetch again; requests made: {requests_on_refetch}.",
    ]
    (out / "io_physionet.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

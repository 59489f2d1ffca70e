"""How long the MLflow model path of vitalgru takes on an embedded SQLite store.

Times, for the arrhythmia network (``vitalgru.models.arrhythmia.ArrhythmiaGRU`` with its
default size): creating the store, ``log_model`` + registration, ``promote_if_better``,
``load_model("models:/<name>@champion")`` and ``mlflow.pyfunc.load_model`` + one predict.
Everything runs in a fresh temporary folder; nothing is left behind.

    python benchmarks/tracking_registry.py --repeats 10

Writes ``benchmarks/results/tracking_registry.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow.pyfunc
import numpy as np
import torch

from vitalgru import tracking
from vitalgru.models.arrhythmia import ArrhythmiaGRU

RESULTS = Path(__file__).resolve().parent / "results"


def _stats(xs: list[float]) -> dict[str, float]:
    return {
        "median_s": statistics.median(xs),
        "min_s": min(xs),
        "max_s": max(xs),
        "n": len(xs),
    }


def run(repeats: int) -> dict:
    torch.set_num_threads(1)
    model = ArrhythmiaGRU().eval()
    name = "vitalgru-benchmark"
    timings: dict[str, list[float]] = {
        k: []
        for k in (
            "log_model_and_register",
            "promote_if_better",
            "load_model",
            "pyfunc_load_predict",
        )
    }
    old_cwd = Path.cwd()
    env_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        with tempfile.TemporaryDirectory(prefix="vitalgru-bench-") as tmp:
            os.chdir(tmp)
            t0 = time.perf_counter()
            with tracking.start_run("benchmark") as run:
                first_run_s = time.perf_counter() - t0  # includes creating the SQLite schema
                for i in range(repeats):
                    t = time.perf_counter()
                    ref = tracking.log_model(
                        run,
                        model,
                        preprocessing={"fs": 360.0},
                        config={"i": i},
                        registered_name=name,
                    )
                    timings["log_model_and_register"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    tracking.promote_if_better(name, ref.version, {"f1": 0.5 + i / 100}, ["f1"])
                    timings["promote_if_better"].append(time.perf_counter() - t)
            x = (
                np.random.default_rng(0)
                .standard_normal((1, 50, model.n_features))
                .astype(np.float32)
            )
            for _ in range(repeats):
                t = time.perf_counter()
                tracking.load_model(f"models:/{name}@champion")
                timings["load_model"].append(time.perf_counter() - t)
                t = time.perf_counter()
                mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(x)
                timings["pyfunc_load_predict"].append(time.perf_counter() - t)
    finally:
        os.chdir(old_cwd)
        if env_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env_uri
    return {
        "benchmark": "tracking_registry",
        "command": f"python benchmarks/tracking_registry.py --repeats {repeats}",
        "model": "vitalgru.models.arrhythmia:ArrhythmiaGRU (defaults)",
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "store": "embedded sqlite + local artifacts (fresh temporary folder)",
        "create_store_and_start_run_s": first_run_s,
        "timings": {k: _stats(v) for k, v in timings.items()},
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "mlflow": mlflow.__version__,
            "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },
    }


def to_markdown(res: dict) -> str:
    lines = [
        "# MLflow model path (embedded SQLite store)",
        "",
        f"Command: `{res['command']}`  ",
        f"Model: {res['model']}, {res['n_parameters']:,} parameters  ",
        f"Machine: {res['machine']['cpu_count']} CPU cores, 1-min load average "
        f"{res['machine']['load_average_1min']:.1f} at the end (shared machine: timings are "
        "under contention), mlflow {mlflow}, torch {torch}".format(**res["machine"]),
        "",
        f"Creating the store + starting the first run: {res['create_store_and_start_run_s']:.2f} s",
        "",
        "| step | median (s) | min (s) | max (s) | n |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, s in res["timings"].items():
        lines.append(
            f"| {k} | {s['median_s']:.3f} | {s['min_s']:.3f} | {s['max_s']:.3f} | {s['n']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    res = run(args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracking_registry.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "tracking_registry.md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()

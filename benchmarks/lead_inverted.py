"""Arrhythmia model on an inverted lead: MIT-BIH DS2 with every signal's sign turned.

One command::

    python benchmarks/lead_inverted.py [--model models:/vitalgru-arrhythmia@champion]

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
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.io import open_database
from vitalgru.metrics.aami import aami_metrics
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    args = ap.parse_args(argv)
    env = environment()
    loaded = tracking.load_model(args.model)
    src = default_mirror() / "mitdb"
    rows: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, sign in (("upright", 1.0), ("inverted", -1.0)):
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
        "model_uri": args.model,
        "model_version": loaded.version,
        "seconds": time.perf_counter() - t0,
        "rows": rows,
    }

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lines = [
        "# Arrhythmia model on an inverted lead (MIT-BIH DS2, every signal negated)",
        "",
        f"Command: `{payload['command'].strip()}`  ",
        f"Model: {args.model} (version {loaded.version}); date {env['date_utc']}.",
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
    write_results("lead_inverted", payload, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

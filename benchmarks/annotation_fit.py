"""How well reference beat annotations fit their signal: the calibration of the
``annotations_mismatch`` check.

One command::

    python benchmarks/annotation_fit.py [--mirror DIR]

Writes ``benchmarks/results/annotation_fit.json`` and ``benchmarks/results/annotation_fit.md``.

``vitalgru.data.ingest.process_record`` refuses a record when under
``MIN_ANNOTATION_MATCH`` of its annotated beats in usable signal lie on a heartbeat the
detector finds (within the EC57 150 ms window). This script measures that share

* for every record's own annotations: all 48 MIT-BIH records and the nstdb records
  118e00/e12/e24 (record 118 with noise at 0, 12 and 24 dB SNR), default config;
* for annotation files laid on the wrong signal: the annotations of records 100, 208 and
  232 on records 101, 105, 118, 203, 207, 222 and 231 (what a mixed-up file looks like);
* for a record's own annotations shifted by 0.5 s (a time offset).

The threshold must sit well below the first group and well above the other two.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru.config import ArrhythmiaDataConfig, PhysioNetConfig
from vitalgru.data.ingest import MIN_ANNOTATION_MATCH, process_record
from vitalgru.errors import AnnotationMismatchError
from vitalgru.io import open_database
from vitalgru.types import Annotations, Record

DONORS = ("100", "208", "232")
TARGETS = ("101", "105", "118", "203", "207", "222", "231")
SHIFT_S = 0.5


def _share(record: Record, ann: Annotations, cfg: ArrhythmiaDataConfig) -> float | None:
    try:
        return process_record(record, ann, cfg, "x").facts["annotation_match"]
    except AnnotationMismatchError as e:
        return e.share


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, default=default_mirror())
    args = ap.parse_args()
    env = environment()  # the load and date at the start, not after the work
    cfg = ArrhythmiaDataConfig()
    src = PhysioNetConfig(verify_checksums=False)
    t0 = time.perf_counter()
    own: dict[str, float | None] = {}
    for name in ("mitdb", "nstdb"):
        db = open_database(args.mirror / name, src)
        for r in db.list_records():
            if r in ("bw", "ma"):  # noise-only records: no beats
                continue
            own[f"{name}/{r}"] = _share(db.read_record(r), db.read_annotations(r), cfg)
    mitdb = open_database(args.mirror / "mitdb", src)
    swapped: dict[str, float | None] = {}
    for donor in DONORS:
        ann = mitdb.read_annotations(donor)
        for r in TARGETS:
            swapped[f"{donor} on {r}"] = _share(mitdb.read_record(r), ann, cfg)
    shifted: dict[str, float | None] = {}
    for r in TARGETS:
        rec, ann = mitdb.read_record(r), mitdb.read_annotations(r)
        moved = dataclasses.replace(ann, sample_idx=ann.sample_idx + int(SHIFT_S * rec.fs))
        shifted[r] = _share(rec, moved, cfg)

    def span(d: dict[str, float | None]) -> dict[str, Any]:
        v = np.array([x for x in d.values() if x is not None])
        return {"min": float(v.min()), "max": float(v.max()), "n": int(v.size)}

    lowest = sorted((v, k) for k, v in own.items() if v is not None)[:5]
    payload = {
        "environment": env,
        "threshold": MIN_ANNOTATION_MATCH,
        "own": own,
        "swapped": swapped,
        "shifted_0_5_s": shifted,
        "summary": {"own": span(own), "swapped": span(swapped), "shifted": span(shifted)},
        "seconds": time.perf_counter() - t0,
    }
    s = payload["summary"]
    md = [
        "# Do the annotations fit the signal? (calibration of `annotations_mismatch`)",
        "",
        "Command: `python benchmarks/annotation_fit.py`  ",
        f"Date {payload['environment']['date_utc']}. Share of annotated beats in usable "
        "signal that lie on a detected heartbeat (150 ms window), default ingest config. "
        f"A record is refused below {MIN_ANNOTATION_MATCH:.2f}.",
        "",
        "| annotations | records | lowest | highest |",
        "|---|---:|---:|---:|",
        f"| the record's own (MIT-BIH 48, nstdb 118e00/e12/e24) | {s['own']['n']} | "
        f"{s['own']['min']:.3f} | {s['own']['max']:.3f} |",
        f"| another record's ({', '.join(DONORS)} on {', '.join(TARGETS)}) | "
        f"{s['swapped']['n']} | {s['swapped']['min']:.3f} | {s['swapped']['max']:.3f} |",
        f"| the record's own, shifted by {SHIFT_S} s | {s['shifted']['n']} | "
        f"{s['shifted']['min']:.3f} | {s['shifted']['max']:.3f} |",
        "",
        "Lowest own: " + ", ".join(f"{k} {v:.3f}" for v, k in lowest) + ".",
    ]
    js, mdp = write_results("annotation_fit", payload, "\n".join(md))
    print(f"wrote {js} and {mdp}")


if __name__ == "__main__":
    main()

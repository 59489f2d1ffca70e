"""R-peak detector after a long silence: relearning against staying blind, and asystole.

One command::

    python benchmarks/rpeak_relearn.py [--mirror DIR] [--baseline REV]

Writes ``benchmarks/results/rpeak_relearn.json`` and ``benchmarks/results/rpeak_relearn.md``.

The detector (:mod:`vitalgru.dsp.rpeaks`) learns its signal and noise levels again when no QRS
has been accepted for ``RELEARN_S`` seconds, from the candidates of those seconds, unless
the largest of them deflects less than ``RELEARN_MIN_MV`` from its baseline. This script
measures what that does where the levels go wrong and where there is no beat to find, for
the detector in the working tree and, with ``--baseline REV``, for the detector's modules
(``vitalgru/dsp/rpeak*.py``) as committed at ``REV`` (read with ``git show``; the rest of the
package is the working tree's). Lead 0, 360 Hz, mV; beats matched within 75 ms as in
``benchmarks/rpeaks.py``.

* ``mitdb``: all 48 records whole, gross Se and +P (detections inside record 207's
  ventricular flutter not counted as false, as EC57 does).
* ``artefact``: an 8 mV, 40 ms pulse added at 1 s (inside the 2 s learning phase) to the
  first 10 minutes of each of six records; beats found from 12 s on, of those annotated.
* ``fifth``: from minute 1 of the same 10 minutes the signal divided by 5 (a lead moved);
  beats found from 10 s after the drop, and the longest stretch without a detection after it.
* ``asystole``: a minute with no QRS, nstdb's muscle (``ma``) or baseline-wander (``bw``)
  noise (channel 0 from sample 100,000, mean removed, scaled to the rms given) added to the
  last sample before it, inserted after minute 1 of record 100; detections inside that
  minute (from 0.3 s on) are all false, and a pause alarm ends at the first.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, default_mirror, environment, write_results
from rpeaks import read_record as read

from vitalgru.dsp.rpeak_decision import RELEARN_MIN_MV, RELEARN_S
from vitalgru.metrics.detection import detection_counts

RECORDS = ("100", "101", "103", "117", "119", "208")
NOISE_RMS = (0.02, 0.05, 0.1, 0.2)


class _Files(importlib.abc.MetaPathFinder):
    """Imports the modules named in ``paths`` from the files given there."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        p = self.paths.get(name)
        return None if p is None else importlib.util.spec_from_file_location(name, p)


def load_detector(rev: str | None) -> ModuleType:
    """``vitalgru.dsp.rpeaks`` of the working tree, or with the detector's modules
    (``vitalgru/dsp/rpeak*.py``) as committed at git revision ``rev``."""
    if rev is None:
        import vitalgru.dsp.rpeaks as mod

        return mod

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    import vitalgru.dsp as dsp

    tmp = Path(tempfile.mkdtemp())
    paths: dict[str, Path] = {}
    for f in git("ls-tree", "--name-only", rev, "vitalgru/dsp/").split():
        stem = Path(f).stem
        if stem.startswith("rpeak") and f.endswith(".py"):
            paths[f"vitalgru.dsp.{stem}"] = tmp / f"{stem}.py"
            paths[f"vitalgru.dsp.{stem}"].write_text(git("show", f"{rev}:{f}"))
    # Imported under their own names, so that they import each other as at ``rev``; the
    # names are given back to the working tree's modules afterwards.
    stems = {n: n.rsplit(".", 1)[1] for n in paths}
    saved = {n: sys.modules.pop(n) for n in paths if n in sys.modules}
    attrs = {n: getattr(dsp, stem) for n, stem in stems.items() if hasattr(dsp, stem)}
    finder = _Files(paths)
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("vitalgru.dsp.rpeaks")
    finally:
        sys.meta_path.remove(finder)
        for n, stem in stems.items():
            sys.modules.pop(n, None)
            if n in attrs:
                setattr(dsp, stem, attrs[n])
            elif hasattr(dsp, stem):
                delattr(dsp, stem)
        sys.modules.update(saved)


def found(beats: np.ndarray, peaks: np.ndarray, fs: float, lo: int, hi: int) -> tuple[int, int]:
    """(beats matched, beats annotated) in [lo, hi)."""
    ref = beats[(beats >= lo) & (beats < hi)]
    c = detection_counts(ref, peaks, fs)
    return c["tp"], int(ref.size)


def run(det: ModuleType, mirror: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tp = fn = fp = 0
    for rec in (mirror / "mitdb" / "RECORDS").read_text().split():
        x, fs, beats, vf = read(mirror / "mitdb" / rec)
        c = detection_counts(beats, det.ecg_rpeaks(x, fs), fs, exclude=vf)
        tp, fn, fp = tp + c["tp"], fn + c["fn"], fp + c["fp"]
    out["mitdb"] = {"tp": tp, "fn": fn, "fp": fp, "se": tp / (tp + fn), "ppv": tp / (tp + fp)}
    art, fifth = {}, {}
    for rec in RECORDS:
        x, fs, beats, _ = read(mirror / "mitdb" / rec)
        x = x[: int(600 * fs)]
        y = x.copy()
        y[int(1.0 * fs) : int(1.04 * fs)] += 8.0
        p = det.ecg_rpeaks(y, fs)
        art[rec] = found(beats, p, fs, int(12 * fs), y.size)
        j = int(60 * fs)
        y = x.copy()
        y[j:] /= 5.0
        p = det.ecg_rpeaks(y, fs)
        after = p[p >= j]
        gaps = np.diff(np.concatenate([[j], after, [y.size]])) / fs
        fifth[rec] = [*found(beats, p, fs, j + int(10 * fs), y.size), float(gaps.max())]
    out["artefact"], out["fifth"] = art, fifth
    import wfdb

    x, fs, _, _ = read(mirror / "mitdb" / "100")
    k0 = int(60 * fs)
    asys: dict[str, list[Any]] = {}
    for src in ("ma", "bw"):
        nz = wfdb.rdrecord(str(mirror / "nstdb" / src), channels=[0]).p_signal[:, 0]
        for rms in NOISE_RMS:
            seg = np.asarray(nz[100_000 : 100_000 + int(60 * fs)], dtype=np.float64)
            seg = (seg - seg.mean()) * (rms / seg.std())
            y = np.concatenate([x[:k0], x[k0 - 1] + seg, x[k0 : int(180 * fs)]])
            p = det.ecg_rpeaks(y, fs)
            inside = p[(p > k0 + 0.3 * fs) & (p < k0 + seg.size)]
            first = float((inside[0] - k0) / fs) if inside.size else None
            asys[f"{src} {rms}"] = [int(inside.size), first]
    out["asystole"] = asys
    return out


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    names = list(results)
    lines = ["| case | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    m = {n: results[n]["mitdb"] for n in names}
    lines.append(
        "| 48 records: Se % / +P % (FN, FP) | "
        + " | ".join(
            f"{100 * m[n]['se']:.2f} / {100 * m[n]['ppv']:.2f} ({m[n]['fn']}, {m[n]['fp']})"
            for n in names
        )
        + " |"
    )
    for rec in RECORDS:
        cells = [
            "{} of {}".format(*results[n]["artefact"][rec]) for n in names
        ]  # beats found of annotated
        lines.append(f"| artefact, {rec}: beats found from 12 s | " + " | ".join(cells) + " |")
    for rec in RECORDS:
        cells = ["{} of {}, longest gap {:.1f} s".format(*results[n]["fifth"][rec]) for n in names]
        lines.append(f"| a fifth, {rec}: beats found from 70 s | " + " | ".join(cells) + " |")
    for key in results[names[0]]["asystole"]:
        cells = []
        for n in names:
            k, first = results[n]["asystole"][key]
            cells.append(f"{k}" + (f" (first at {first:.1f} s)" if first is not None else ""))
        lines.append(f"| asystole 60 s, {key} mV rms: false beats | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mirror", type=Path, default=default_mirror())
    ap.add_argument("--baseline", default=None, help="git revision to compare with")
    args = ap.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    if args.baseline:
        results[f"at {args.baseline}"] = run(load_detector(args.baseline), args.mirror)
    current = load_detector(None)
    results["this tree"] = run(current, args.mirror)
    payload = {
        "environment": environment(),
        "relearn_s": RELEARN_S,
        "relearn_min_mv": RELEARN_MIN_MV,
        "results": results,
    }
    cmd = "python benchmarks/rpeak_relearn.py" + (
        f" --baseline {args.baseline}" if args.baseline else ""
    )
    lines = [
        "# R-peak detector after a long silence: relearning, and asystole with noise",
        "",
        f"Command: `{cmd}` ({payload['environment']['date_utc']}). "
        f"Relearning after {RELEARN_S:g} s without a QRS, from a wave of at least "
        f"{RELEARN_MIN_MV:g} mV. Cases as in the script's docstring.",
        "",
        *table(results),
    ]
    js, md = write_results("rpeak_relearn", payload, "\n".join(lines))
    print(md.read_text())
    return payload


if __name__ == "__main__":
    main()

"""The clinician's ECG page as a browser prints it: is a strip still 25 mm/s on paper?

One command (needs Chromium and poppler's ``pdftoppm``; on Debian ``apt-get install
chromium poppler-utils``)::

    python benchmarks/print_pages.py [--model models:/vitalgru-arrhythmia@champion]
                                     [--record 100] [--seconds 90]

Writes ``benchmarks/results/print_pages.json`` and ``.md``. Record 100's MLII lead, with
the lead off for 6 s at 30 s (so that there are alarms and strips), is fed through the
gateway's ward one second at a time; the page ``GET /ecg/{patient}/page`` serves is printed
by headless Chromium on US Letter and on A4, landscape as the page asks, and the printed
page with the first strip is rasterised at 254 dpi (10 pixels to the mm). The paper speed is
measured from the strip's R peaks: the slope of their position on paper against the times
the database's annotations give them, in mm/s. A browser shrinks a page whose content is
wider than the paper; a strip printed at other than 25 mm/s would mislead a clinician who
measures intervals on it with calipers, which is what this checks.

The beats are labelled by ``--model`` (the registered champion by default: run
``make run`` first); the page's geometry does not depend on the labels.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from pipelines.gateway import create_app
from vitalgru import tracking
from vitalgru.scoring import ArrhythmiaMonitor
from vitalgru.scoring.ward import Ward

DPI = 254  # 10 pixels to the mm
PAPERS = {"Letter": None, "A4": "@page{size:A4 landscape}"}  # None: the page's own CSS


def ecg_page(monitor: ArrhythmiaMonitor, mirror: Path, record: str, seconds: int) -> str:
    """The page the gateway serves for the record fed as a bedside feed."""
    from fastapi.testclient import TestClient

    rec = wfdb.rdrecord(str(mirror / "mitdb" / record), sampto=seconds * 360)
    x = rec.p_signal[:, rec.sig_name.index("MLII")].copy()
    x[30 * 360 : 36 * 360] = 0.0  # the lead off: a pause and a poor-signal alarm
    ward = Ward(monitor)
    with TestClient(create_app(ward, tick_s=0)) as c:
        c.post("/ecg/bed-1/admit", json={"fs": 360})
        for k in range(seconds):
            c.post("/ecg/bed-1", json={"samples": x[k * 360 : (k + 1) * 360].tolist()})
            ward.tick()
        return c.get("/ecg/bed-1/page").text


def peaks_on_paper(png: Path) -> list[float]:
    """x (pixels) of the R peaks in the page's first strip row (the first band of rows on
    the pink ECG grid): the columns where the black trace rises 6 mm above its median."""
    import matplotlib.image as mpimg

    im = mpimg.imread(png)[..., :3]
    r, g = im[..., 0], im[..., 1]
    grid_rows = np.flatnonzero(((r > 0.85) & (r - g > 0.05)).mean(axis=1) > 0.05)
    if not grid_rows.size:
        return []
    first = np.split(grid_rows, np.flatnonzero(np.diff(grid_rows) > 20) + 1)[0]
    dark = im[first[0] : first[-1] + 1].sum(axis=2) < 0.6
    top = np.full(dark.shape[1], np.inf)
    for x in np.flatnonzero(dark.any(axis=0)):
        top[x] = np.flatnonzero(dark[:, x]).min()
    finite = top[np.isfinite(top)]
    if not finite.size:
        return []
    cand = np.flatnonzero(top < np.median(finite) - 6 * DPI / 25.4)
    groups = np.split(cand, np.flatnonzero(np.diff(cand) > 5) + 1) if cand.size else []
    return [float(g[np.argmin(top[g])]) for g in groups if g.size]


def measure(html: str, paper: str, extra_css: str | None, beat_times: np.ndarray) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html.replace("</style>", f"{extra_css}</style>", 1) if extra_css else html)
        pdf = Path(tmp) / "page.pdf"
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True,
                              text=True).stdout  # fmt: skip
        pages = int(
            next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages"))
        )
        size = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                    if line.startswith("Page size"))  # fmt: skip
        subprocess.run(["pdftoppm", "-r", str(DPI), "-png", str(pdf), str(Path(tmp) / "p")],
                       check=True, capture_output=True)  # fmt: skip
        for png in sorted(Path(tmp).glob("p-*.png")):
            xs = peaks_on_paper(png)
            if len(xs) >= 5:
                break
        else:
            raise RuntimeError(f"{paper}: no printed page with a strip of 5 or more beats")
    # before them the lead was off (a flat line): the peaks on paper are, in order, the
    # first beats the database annotates after it came back
    slope = float(np.polyfit(beat_times[: len(xs)], xs, 1)[0])
    return {"paper": paper, "page_size": size, "pages": pages, "peaks": len(xs),
            "mm_per_s": slope / (DPI / 25.4)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", default="100")
    ap.add_argument("--seconds", type=int, default=90)
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    args = ap.parse_args()
    env = environment()  # the load and date at the start, not after the work
    missing = [t for t in ("chromium", "pdftoppm", "pdfinfo") if shutil.which(t) is None]
    if missing:
        sys.exit(f"needs {', '.join(missing)} (Debian: apt-get install chromium poppler-utils)")
    mirror = default_mirror()
    loaded = tracking.load_model(args.model)
    html = ecg_page(ArrhythmiaMonitor(loaded.module, loaded.preprocessing), mirror, args.record,
                    args.seconds)  # fmt: skip
    ann = wfdb.rdann(str(mirror / "mitdb" / args.record), "atr")
    beats = ann.sample[np.isin(ann.symbol, list("NLRAaJSVFejE/fQ"))] / 360.0
    back = beats[beats > 36.0]  # the beats after the lead came back
    rows = [measure(html, paper, css, back) for paper, css in PAPERS.items()]
    payload = {"environment": env, "model": args.model, "record": args.record,
               "dpi": DPI, "rows": rows}  # fmt: skip
    table = ["| paper | page size (pt) | pages | R peaks measured | paper speed (mm/s) |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    table += [f"| {r['paper']} | {r['page_size']} | {r['pages']} | {r['peaks']} | "
              f"{r['mm_per_s']:.3f} |" for r in rows]  # fmt: skip
    md = "# The ECG page printed (`python benchmarks/print_pages.py`)\n\n" + "\n".join(table)
    js, mdp = write_results("print_pages", payload, md)
    print(md)
    print(f"wrote {js} and {mdp}")


if __name__ == "__main__":
    main()

"""Shared bits of the benchmark scripts: mirror location, environment facts, output."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def default_mirror() -> Path:
    env = os.environ.get("VITALGRU_PHYSIONET_MIRROR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "physionet"


def environment() -> dict[str, Any]:
    import numpy
    import scipy

    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "load_avg_1min_at_start": os.getloadavg()[0],
    }


def write_results(name: str, payload: dict[str, Any], table_md: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    js = RESULTS / f"{name}.json"
    md = RESULTS / f"{name}.md"
    js.write_text(json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n")
    md.write_text(table_md.rstrip() + "\n")
    return js, md

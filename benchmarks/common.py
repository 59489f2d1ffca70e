"""Shared bits of the benchmark scripts: mirror location, environment facts, output."""

from __future__ import annotations

import json
import math
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


def strict_json(value: Any, **kw: Any) -> str:
    """JSON any reader takes: NaN and infinities (a class without a beat, an undefined
    calibration bin) written as ``null``, numpy numbers as numbers."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if hasattr(v, "tolist") and not isinstance(v, str | bytes):  # numpy scalars, arrays
            return clean(v.tolist())
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(value), allow_nan=False, **kw)


def write_results(name: str, payload: dict[str, Any], table_md: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    js = RESULTS / f"{name}.json"
    md = RESULTS / f"{name}.md"
    js.write_text(strict_json(payload, indent=2, sort_keys=True) + "\n")
    md.write_text(table_md.rstrip() + "\n")
    return js, md

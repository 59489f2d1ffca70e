"""The committed benchmark results are files any JSON reader takes, and the helper that
writes them keeps them so."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
sys.path.insert(0, str(RESULTS.parent))
from common import strict_json  # noqa: E402


def _refuse(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_each_results_file_is_strict_json(path: Path) -> None:
    # NaN (a class without a beat, an empty calibration bin) was written bare: JavaScript's
    # JSON.parse and other strict readers refused six of these files
    json.loads(path.read_text(), parse_constant=_refuse)


def test_strict_json_writes_null_for_what_is_not_a_number() -> None:
    got = json.loads(strict_json({"a": float("nan"), "b": [np.float32(1.5), -math.inf],
                                  "c": np.array([1, 2]), "d": np.int64(3)}))  # fmt: skip
    assert got == {"a": None, "b": [1.5, None], "c": [1, 2], "d": 3}

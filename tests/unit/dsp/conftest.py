"""Fixtures of the DSP tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def nstdb_dir(physionet_mirror: Path) -> Path:
    d = physionet_mirror / "nstdb"
    if not (d / "118e00.hea").exists():
        pytest.fail(f"MIT-BIH Noise Stress Test Database not found under {d}")
    return d

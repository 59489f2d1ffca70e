"""Shared fixtures. Tests use the local PhysioNet mirror beside the repository
(``../shared/data/physionet``) or the one named by ``VITALGRU_PHYSIONET_MIRROR``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The repository root is on the path: fit workers (spawned processes) import the test
# module whose function they run (``tests.unit...``), and some tests import ``benchmarks``.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tests are imported in importlib mode (test files in different folders share names), so
# support modules beside them (e.g. tests/unit/dsp/ecg_testkit.py) are put on the path.
for _helper in sorted(Path(__file__).parent.rglob("*.py")):
    if not _helper.name.startswith(("test_", "conftest", "__init__")):
        if str(_helper.parent) not in sys.path:
            sys.path.insert(0, str(_helper.parent))

# Telemetry off and generous start-up for Prefect's temporary server (slow CI machines).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("TQDM_DISABLE", "1")


def mirror_path() -> Path:
    env = os.environ.get("VITALGRU_PHYSIONET_MIRROR")
    p = Path(env) if env else ROOT.parent / "shared" / "data" / "physionet"
    return p.resolve()


@pytest.fixture(scope="session")
def physionet_mirror() -> Path:
    """Root of the local PhysioNet mirror (``<mirror>/<db>/<files>``)."""
    p = mirror_path()
    if not (p / "mitdb" / "RECORDS").exists():
        pytest.fail(
            f"PhysioNet mirror not found at {p}: set VITALGRU_PHYSIONET_MIRROR to a folder "
            "laid out like PhysioNet's (<mirror>/mitdb/RECORDS ...)"
        )
    return p


@pytest.fixture(scope="session")
def mitdb_dir(physionet_mirror: Path) -> Path:
    return physionet_mirror / "mitdb"


@pytest.fixture(autouse=True)
def _no_flush_denormal_leak():
    """CPU training turns on flush-to-zero for speed; a test that leaves it on changes
    float semantics for every later test (hypothesis refuses to run under it)."""
    yield
    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)


def pytest_unconfigure(config: pytest.Config) -> None:
    # Prefect's temporary server stops at interpreter exit and logs that at INFO to a
    # stream pytest has already closed, printing a traceback after the test summary.
    logging.getLogger("prefect").setLevel(logging.WARNING)

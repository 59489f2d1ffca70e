"""Fixtures for the io tests: a local HTTP server in PhysioNet's URL layout serving a few
MIT-BIH records copied from the mirror, and configs pointing at it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# the server lives in benchmarks/, shared with the benchmarks (the root is on the path:
# tests/conftest.py)
from benchmarks.physionet_http import PhysioNetHTTPServer, build_physionet_tree
from vitalgru.config import PhysioNetConfig
from vitalgru.io.sources import ENV_MIRROR

#: Records served by the local server (two, to see one fail while the other succeeds).
SERVED = ("100", "101")
VERSION = "1.0.0"


@pytest.fixture
def served_root(tmp_path: Path, mitdb_dir: Path) -> Path:
    """``<root>/mitdb/1.0.0/`` holding copies of records 100 and 101, RECORDS and the
    mirror's SHA256SUMS lines for them. Returns ``<root>``."""
    root = tmp_path / "served"
    build_physionet_tree(mitdb_dir, root, "mitdb", VERSION, SERVED, copy=True)
    return root


@pytest.fixture
def server(served_root: Path) -> Iterator[PhysioNetHTTPServer]:
    with PhysioNetHTTPServer(served_root) as srv:
        yield srv


@pytest.fixture
def remote_cfg(
    tmp_path: Path, server: PhysioNetHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> PhysioNetConfig:
    """Download from the local server into a fresh cache; no mirror."""
    monkeypatch.delenv(ENV_MIRROR, raising=False)
    return PhysioNetConfig(
        base_url=server.base_url, cache_dir=tmp_path / "cache", retries=2, timeout_s=5.0
    )


@pytest.fixture
def small_mirror(tmp_path: Path, mitdb_dir: Path) -> Path:
    """A writable mirror ``<mirror>/mitdb/`` with copies of records 100 and 101."""
    mirror = tmp_path / "mirror"
    db = mirror / "mitdb"
    db.mkdir(parents=True)
    for rec in SERVED:
        for ext in ("hea", "dat", "atr"):
            shutil.copyfile(mitdb_dir / f"{rec}.{ext}", db / f"{rec}.{ext}")
    (db / "RECORDS").write_text("".join(f"{r}\n" for r in SERVED))
    lines = [
        ln
        for ln in (mitdb_dir / "SHA256SUMS.txt").read_text().splitlines()
        if ln.split()[-1].split(".")[0] in SERVED
    ]  # includes 100.xws / 101.xws, which the mirror lacks, as the real one does
    (db / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    return mirror

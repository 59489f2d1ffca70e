"""Fixtures of the flow integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite MLflow store and working directory of the test's own."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # artifacts (./mlartifacts) stay in the test folder
    return tmp_path

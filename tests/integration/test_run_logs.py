"""The library's own log lines reach the flow run's logs that Prefect stores (what its UI
shows), once (:mod:`pipelines.run_logs`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from pipelines.ingest import ingest_flow


@pytest.fixture()
def own_loggers_restored() -> Iterator[None]:
    """The project's loggers as they were before the test (levels and handlers)."""
    loggers = [logging.getLogger(n) for n in ("vitalgru", "pipelines")]
    before = [(lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, (level, handlers) in zip(loggers, before, strict=True):
        lg.setLevel(level)
        lg.handlers[:] = handlers


def _stored_logs(flow_run_id: object) -> list[tuple[str, int, str, object, object]]:
    APILogHandler().flush()  # lines still queued for the API are sent first
    flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        found = client.read_logs(log_filter=flt)
    return [(lg.name, lg.level, lg.message, lg.task_run_id, lg.timestamp) for lg in found]


@pytest.mark.usefixtures("own_loggers_restored")
def test_the_librarys_lines_are_in_the_flow_runs_logs(
    physionet_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALGRU_PHYSIONET_MIRROR", str(physionet_mirror))
    state = ingest_flow(
        overrides={"arrhythmia.records": ["100", "101"]}, out_dir=str(tmp_path / "ds"),
        return_state=True,
    )  # fmt: skip
    assert state.is_completed(), state
    logs = _stored_logs(state.state_details.flow_run_id)
    # the fetch's summary, logged by vitalgru.io.physionet at INFO inside the fetch task
    fetched = [m for name, level, m, *_ in logs
               if name == "vitalgru.io.physionet" and level == logging.INFO]  # fmt: skip
    assert fetched == ["mitdb: 6 files ok (0 downloaded), 0 skipped, 0 failed"], logs
    # the flow's own lines are there as before, and no line is stored twice
    assert any(m.startswith("dataset written to") for _, _, m, *_ in logs), logs
    assert len(set(logs)) == len(logs), logs

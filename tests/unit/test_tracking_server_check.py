"""The check a command makes of an MLflow tracking server before it starts
(:func:`vitalgru.tracking.check_stores`), against stand-ins for what a real deployment
answers: a proxy whose server is down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from http_testkit import serving, status_server

from vitalgru.errors import ServerUnavailableError
from vitalgru.tracking import check_stores


class TestServerErrors:
    """A proxy in front of a server that is down answers 502/503 on every path, /health
    too: taken for an answer, the command went on and MLflow's client retried each call
    for four minutes (measured: `vitalgru models list` 252 s, then an 88-line traceback)."""

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_a_server_error_on_health_is_no_server(
        self, store: Path, monkeypatch: pytest.MonkeyPatch, status: int
    ) -> None:
        with serving(status_server(status)) as server:
            uri = f"http://127.0.0.1:{server.server_port}"
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            with pytest.raises(ServerUnavailableError) as ei:
                check_stores(attempts=2, wait_s=0.1)
        msg = str(ei.value)
        assert uri in msg and f"HTTP {status}" in msg and "$MLFLOW_TRACKING_URI" in msg

    def test_a_command_stops_in_seconds_with_one_line(
        self, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from pipelines.cli import main

        # MLflow's own retries of a 503 would take minutes: none, so that the code before
        # the check failed here at once (with MLflow's traceback) instead of hanging
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        with serving(status_server(503)) as server:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}")
            t0 = time.perf_counter()
            assert main(["models", "list"]) == 2
        assert time.perf_counter() - t0 < 30
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "does not answer (HTTP 503" in err[0]

    def test_a_client_error_is_still_an_answer(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # a server whose /health is elsewhere (404), or that wants credentials (401), is up
        for status in (401, 404):
            with serving(status_server(status)) as server:
                monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}")
                check_stores(attempts=1)

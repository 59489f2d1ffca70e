"""The check a command makes of an MLflow tracking server before it starts
(:func:`vitalgru.tracking.check_stores`), against stand-ins for what a real deployment
answers: a proxy whose server is down, a server reached by a name its ``--allowed-hosts``
does not name."""

from __future__ import annotations

import http.server
import re
import time
from pathlib import Path

import pytest
from http_testkit import closed_port, serving, silent_server, status_server

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


def host_checking_server(allowed: str | None) -> http.server.HTTPServer:
    """A stand-in for ``mlflow server --allowed-hosts ALLOWED``: ``/health`` answers 200
    whatever the Host header; any other path answers 403 with MLflow's words unless the
    Host header is ``allowed`` (None: ``127.0.0.1:<its port>``), else 200 with an empty
    JSON object."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = allowed or f"127.0.0.1:{self.server.server_address[1]}"
            refused = self.path != "/health" and self.headers.get("Host") != ok
            body = (b"Invalid Host header - possible DNS rebinding attack detected"
                    if refused else b"{}")  # fmt: skip
            self.send_response(403 if refused else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return http.server.HTTPServer(("127.0.0.1", 0), Handler)


class TestRefusedHostName:
    """A trainer on another machine reaches the server by a name its ``--allowed-hosts``
    lacks (the compose stack allows ``mlflow``, ``localhost`` and ``127.0.0.1``): /health
    answered 200 and the check passed, and each MLflow call was refused with a 403 that
    MLflow's client does not retry. Measured against a real server: `vitalgru train
    early-warning` cross-validated for 278 s before its first MLflow call failed, in a
    306-line traceback; `vitalgru models list`: a 41-line traceback, exit status 1."""

    def test_a_refused_name_fails_the_check_naming_it(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with serving(host_checking_server(allowed="mlflow:5000")) as server:
            port = server.server_port
            uri = f"http://localhost:{port}"
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            with pytest.raises(ServerUnavailableError) as ei:
                check_stores(attempts=1)
        msg = str(ei.value)
        assert uri in msg and f"'localhost:{port}'" in msg and "--allowed-hosts" in msg
        assert "MLFLOW_ALLOWED_HOSTS" in msg and "HTTP 403" in msg

    def test_an_allowed_name_passes(self, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        with serving(host_checking_server(allowed=None)) as server:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}")
            check_stores(attempts=1)

    def test_the_command_stops_before_its_flow(
        self, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from pipelines.cli import main

        with serving(host_checking_server(allowed="mlflow:5000")) as server:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://localhost:{server.server_port}")
            assert main(["models", "list"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "refuses the name it is reached by" in err[0]


class TestHungServer:
    """A server that takes the connection and never answers (stopped with SIGSTOP, a
    process stuck on a lock): each try waits out its timeout. The error said "3 tries over
    4 s", the waits between tries alone, after 19 s of them (32 s from the command's start,
    measured against a stopped `mlflow server`)."""

    def test_the_error_says_how_long_the_tries_took(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with silent_server() as uri:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            t0 = time.perf_counter()
            with pytest.raises(ServerUnavailableError) as ei:
                check_stores(attempts=2, wait_s=0.1, timeout_s=1.5)
            spent = time.perf_counter() - t0
        said = re.search(r"2 tries over (\d+) s", str(ei.value))
        assert said is not None and spent >= 3.0
        assert abs(int(said.group(1)) - spent) <= 1.0, (said.group(0), spent)


class TestServerLostDuringACommand:
    """A server that passed the start check and is lost after it (stopped, its proxy's
    upstream gone): MLflow retried each call for about four minutes, then the command ended
    in its traceback, exit status 1 (measured: `vitalgru models list`, 262 s and 130 lines
    with five tracebacks). The check is passed over here, as a server gone just after it."""

    @pytest.fixture(autouse=True)
    def _checked(self, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import pipelines.cli_models

        monkeypatch.setattr(pipelines.cli_models, "check_mlflow", lambda *a, **k: None)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # not four minutes here

    def _one_line(self, capsys: pytest.CaptureFixture[str]) -> str:
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]

    def test_a_refused_connection_is_one_line_naming_the_server_and_what_is_left(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from pipelines.cli import main

        uri = f"http://127.0.0.1:{closed_port()}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert main(["models", "list"]) == 2
        line = self._one_line(capsys)
        assert line.startswith(f"vitalgru: error: the MLflow server {uri} ($MLFLOW_TRACKING_URI)")
        assert "(connection refused)" in line and "ended FAILED" in line
        assert "RUNNING until the next run" in line

    @pytest.mark.parametrize(("status", "said"), [(503, "HTTP 503 on every try"),
                                                  (501, "HTTP 501")])  # fmt: skip
    def test_a_server_error_is_one_line(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        status: int,
        said: str,
    ) -> None:
        from pipelines.cli import main

        with serving(status_server(status)) as server:
            uri = f"http://127.0.0.1:{server.server_port}"
            monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
            monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
            assert main(["models", "list"]) == 2
        line = self._one_line(capsys)
        assert f"the MLflow server {uri} ($MLFLOW_REGISTRY_URI)" in line and f"({said})" in line

    def test_another_mlflow_error_keeps_its_traceback(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        import pipelines.cli_models
        from pipelines.cli import main

        def refused(args: object) -> int:
            raise MlflowException("Invalid value for name", INVALID_PARAMETER_VALUE)

        monkeypatch.setattr(pipelines.cli_models, "cmd_models", refused)
        with pytest.raises(MlflowException, match="Invalid value for name"):
            main(["models", "list"])

    def test_a_server_that_never_answers_is_given_up_on_after_the_timeout(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from pipelines.cli import main

        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")  # a user's own setting stays
        with silent_server() as uri:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            t0 = time.perf_counter()
            assert main(["models", "list"]) == 2
            assert time.perf_counter() - t0 < 15
        line = self._one_line(capsys)
        assert f"the MLflow server {uri} ($MLFLOW_TRACKING_URI)" in line
        assert "(no answer within 1 s, MLFLOW_HTTP_REQUEST_TIMEOUT, on every try)" in line


class TestLibraryLoad:
    """:func:`vitalgru.tracking.load_model` called from Python (a flow a deployment runs, a
    notebook) had neither the CLI's start check nor its 30 s request timeout: against a
    server that does not answer it waited on MLflow's retries for over ten minutes. MLflow's
    retries are cut here so that the code before the check fails at once with another error
    (MLflow's own, as a ModelLoadError) instead of hanging."""

    @pytest.fixture(autouse=True)
    def _no_retries(self, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

    @pytest.mark.parametrize("call", ["load_model", "resolve_model_uri"])
    def test_a_closed_port_is_said_in_seconds(
        self, monkeypatch: pytest.MonkeyPatch, call: str
    ) -> None:
        from vitalgru import tracking

        uri = f"http://127.0.0.1:{closed_port()}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        t0 = time.perf_counter()
        with pytest.raises(ServerUnavailableError) as ei:
            getattr(tracking, call)("models:/vitalgru-arrhythmia@champion")
        assert time.perf_counter() - t0 < 10
        msg = str(ei.value)
        assert f"the MLflow server {uri} ($MLFLOW_TRACKING_URI) does not answer" in msg
        assert "2 tries" in msg

    def test_a_server_that_never_answers_is_said_in_seconds(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from vitalgru import tracking

        with silent_server() as uri:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            t0 = time.perf_counter()
            with pytest.raises(ServerUnavailableError) as ei:
                tracking.load_model("models:/vitalgru-early-warning/1")
            spent = time.perf_counter() - t0
        assert spent < 20, spent  # two tries of 5 s, a second apart; MLflow's: 30 s
        assert f"the MLflow server {uri} ($MLFLOW_TRACKING_URI) does not answer" in str(ei.value)

    def test_a_model_folder_asks_no_server(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from vitalgru import tracking
        from vitalgru.errors import ModelLoadError

        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
        with pytest.raises(ModelLoadError):  # not a model: read as it is, no server asked
            tracking.load_model(str(tmp_path))

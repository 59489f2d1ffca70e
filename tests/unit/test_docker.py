"""docker/: the image and the compose stack, checked statically (no Docker engine runs on
these machines): hadolint on the Dockerfile, compose's own parser on the compose file, and
the wiring between the services that a typo would break only at deployment time."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} not installed beside {sys.executable}: pip install -e '.[dev]'")
    return str(path)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The compose file as compose itself resolves it (all profiles, defaults filled)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PHYSIONET_MIRROR", "MLFLOW_ALLOWED_HOSTS", "MLFLOW_PORT",
                        "GATEWAY_PORT", "VITALGRU_GATEWAY_TOKEN",
                        "VITALGRU_PUBLIC_URL")}  # fmt: skip
    out = subprocess.run(
        [_tool("docker-compose"), "-f", str(DOCKER / "compose.yaml"), "--profile", "cli",
         "--profile", "gateway", "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _flag(command: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in a command list."""
    for i, arg in enumerate(command):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}":
            return command[i + 1]
    raise AssertionError(f"--{name} not in {command}")


class TestDockerfile:
    def test_hadolint_passes(self) -> None:
        out = subprocess.run(
            [_tool("hadolint"), str(DOCKER / "Dockerfile")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr

    def test_torch_is_the_version_the_package_pins(self) -> None:
        deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        pinned = next(d for d in deps if d.startswith("torch=="))
        installs = re.findall(r"torch==\S+", (DOCKER / "Dockerfile").read_text())
        assert installs == [pinned]

    def test_the_package_says_the_version_the_project_declares(self) -> None:
        # two places: a bump of one alone mis-pins every logged model's requirements
        # (vitalgru==<__version__>) and what --version says
        import vitalgru

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert vitalgru.__version__ == project["version"]
        assert project["license"] == "Apache-2.0"  # an SPDX string: the table form is deprecated

    def test_everything_copied_is_in_the_build_context(self) -> None:
        text = (DOCKER / "Dockerfile").read_text()
        # Dockerfile instructions are case-blind: a ``copy`` line was not read, and with
        # no line read the loop below checked nothing
        lines = re.findall(r"^COPY\s+(.+)$", text, re.M | re.I)
        copied = [p for line in lines for p in line.split()[:-1] if not p.startswith("--")]
        assert "vitalgru" in copied and "pipelines" in copied, copied
        ignored = [
            line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]  # fmt: skip
        for path in copied:
            assert (ROOT / path).exists(), path
            assert path.split("/")[0] not in ignored, f"{path} is left out by .dockerignore"


class TestComposeStack:
    def test_services(self, stack: dict[str, Any]) -> None:
        assert set(stack["services"]) == {
            "mlflow", "prefect-server", "worker", "vitalgru", "gateway"}  # fmt: skip
        assert stack["services"]["vitalgru"]["profiles"] == ["cli"]  # on demand only
        # started once champions are registered (it loads them on start)
        assert stack["services"]["gateway"]["profiles"] == ["gateway"]

    def test_the_gateway_listens_where_it_is_published_and_probed(
        self, stack: dict[str, Any]
    ) -> None:
        gw = stack["services"]["gateway"]
        port = _flag(gw["command"], "port")
        assert (
            gw["command"][:2] == ["vitalgru", "serve"] and _flag(gw["command"], "host") == "0.0.0.0"
        )
        assert [str(p["target"]) for p in gw["ports"]] == [port]
        assert f"127.0.0.1:{port}/health" in " ".join(gw["healthcheck"]["test"])
        assert "VITALGRU_GATEWAY_TOKEN" in gw["environment"]  # the token reaches it
        # the ward's state outlives the container, in a folder the image's user owns
        folder = str(Path(_flag(gw["command"], "state")).parent)
        mounts = {v["target"]: v for v in gw["volumes"]}
        assert mounts[folder]["type"] == "volume"
        dockerfile = (DOCKER / "Dockerfile").read_text()
        assert (
            folder in dockerfile
            and "chown -R vitalgru:vitalgru /app /var/lib/vitalgru" in dockerfile
        )

    def test_an_open_gateway_answers_the_names_it_is_reached_by(
        self, stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Without a token the gateway refuses a Host it does not know (DNS rebinding): the
        # other containers' "gateway:8000" and the server's DNS name were refused (403),
        # so the stack could not be used as its comment said.
        import socket

        from starlette.testclient import TestClient

        from pipelines.cli import build_parser
        from pipelines.gateway_origin import RequestOrigin

        gw = stack["services"]["gateway"]
        assert gw["hostname"] == "gateway"  # the service's name, as the others reach it
        assert "VITALGRU_PUBLIC_URL" in gw["environment"]  # the name people reach it by
        monkeypatch.setattr(socket, "gethostname", lambda: gw["hostname"])
        monkeypatch.setattr(socket, "getfqdn", lambda *a: gw["hostname"])
        monkeypatch.setenv("VITALGRU_PUBLIC_URL", "https://vitalgru.hospital.example:8000")
        args = build_parser().parse_args(gw["command"][1:])  # as the container runs it
        assert args.public_url == "https://vitalgru.hospital.example:8000"

        async def answer(scope: dict, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        app = RequestOrigin(answer, open_=True, public_url=args.public_url, hosts=[args.host])
        c = TestClient(app)  # (no lifespan: the middleware alone, before an answer)
        for host in ("gateway:8000", "vitalgru.hospital.example:8000", "localhost:8000",
                     "10.0.0.7:8000"):  # fmt: skip
            assert c.get("/patients", headers={"Host": host}).status_code == 200, host
        r = c.get("/patients", headers={"Host": "evil.example:8000"})
        assert r.status_code == 403 and "not a name of this gateway" in r.text

    @pytest.mark.parametrize("client", ["worker", "vitalgru", "gateway"])
    def test_clients_reach_the_servers_they_wait_for(
        self, stack: dict[str, Any], client: str
    ) -> None:
        svc = stack["services"]
        env = svc[client]["environment"]
        for var, server in (("MLFLOW_TRACKING_URI", "mlflow"),
                            ("PREFECT_API_URL", "prefect-server")):  # fmt: skip
            url = urlsplit(env[var])
            command = svc[server]["command"]
            assert url.hostname == server, (var, env[var])
            assert str(url.port) == _flag(command, "port"), (var, command)
            # the server must be up and answering before the client starts
            assert svc[client]["depends_on"][server]["condition"] == "service_healthy"
            probe = " ".join(svc[server]["healthcheck"]["test"])
            assert f"127.0.0.1:{url.port}/" in probe, probe
        # MLflow refuses Host headers it does not know (its default allows localhost and
        # private IPs only), so the name the clients use must be on its list.
        allowed = _flag(svc["mlflow"]["command"], "allowed-hosts").split(",")
        host = urlsplit(env["MLFLOW_TRACKING_URI"]).netloc
        assert any(re.fullmatch(re.escape(a).replace(r"\*", ".*"), host) for a in allowed)

    def test_the_mirror_defaults_to_the_one_beside_the_checkout(
        self, stack: dict[str, Any]
    ) -> None:
        # the same default as the Makefile's (../shared/data/physionet)
        worker = stack["services"]["worker"]
        mounts = {v["target"]: v for v in worker["volumes"]}
        mirror = mounts[worker["environment"]["VITALGRU_PHYSIONET_MIRROR"]]
        assert Path(mirror["source"]) == ROOT.parent / "shared" / "data" / "physionet"
        assert mirror["read_only"] is True
        # flow outputs and downloads outlive the container
        assert mounts["/app/vitalgru-out"]["type"] == "volume"

    def test_the_worker_runs_the_script_the_image_holds(self, stack: dict[str, Any]) -> None:
        command = stack["services"]["worker"]["command"]
        assert command == ["sh", "docker/worker.sh"]
        assert "COPY docker/worker.sh ./docker/worker.sh" in (DOCKER / "Dockerfile").read_text()
        assert "WORKDIR /app" in (DOCKER / "Dockerfile").read_text()

"""vitalgru.tracking against a real embedded MLflow store (SQLite + local artifacts),
one fresh store per test in its own working directory."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pytest
import requests
import torch
import yaml
from http_testkit import closed_port, serving, status_server
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST
from pydantic import BaseModel
from torch import nn

import vitalgru
from vitalgru import tracking
from vitalgru.claims import ClaimBusy
from vitalgru.config import IngestConfig
from vitalgru.errors import ModelLoadError, RegistryError, ServerUnavailableError
from vitalgru.tracking import (
    alias_history,
    check_stores,
    flatten_params,
    gate,
    get_alias_version,
    load_model,
    log_config,
    log_confusion_matrix,
    log_model,
    promote,
    promote_if_better,
    registry_versions,
    rollback,
    set_alias,
    set_version_tags,
    start_run,
    stores,
    tracking_uri,
    version_gate_values,
)
from vitalgru.tracking.environment import environment_tags
from vitalgru.tracking.runs import shown_uri
from vitalgru.tracking.source import (
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    SOURCE_DIGEST_TAG,
    source_tags,
)
from vitalgru.types import AAMI_CLASSES


class TinyGRU(nn.Module):
    """A minimal network following the vitalgru model contract (test-only)."""

    def __init__(self, n_features: int = 3, hidden_size: int = 8, n_classes: int = 5) -> None:
        super().__init__()
        self.n_features, self.hidden_size, self.n_classes = n_features, hidden_size, n_classes
        self.gru = nn.GRU(n_features, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, n_classes)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, **extra: Any):
        out, h_n = self.gru(x, h0)
        return self.head(out[:, -1]), h_n

    def config_dict(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "hidden_size": self.hidden_size,
            "n_classes": self.n_classes,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TinyGRU:
        return cls(**cfg)


class NoConfigGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(2, 4, batch_first=True)


TEST_PREFIXES = (TinyGRU.__module__,)
NAME = "vitalgru-test"


def _client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


def _log(run: tracking.TrackedRun, model: nn.Module, **kw: Any) -> tracking.ModelRef:
    return log_model(
        run,
        model,
        preprocessing=kw.pop("preprocessing", {"mean": [0.1, 0.2, 0.3], "fs": 360.0}),
        config=kw.pop("config", {"seed": 0}),
        registered_name=kw.pop("registered_name", NAME),
        allowed_prefixes=TEST_PREFIXES,
        **kw,
    )


def _registered(n: int) -> list[str]:
    """Register ``n`` versions of a TinyGRU in one run; returns their versions."""
    with start_run("exp") as run:
        return [str(_log(run, TinyGRU()).version) for _ in range(n)]


class TestStores:
    def test_default_is_sqlite_in_cwd(self, store: Path) -> None:
        assert tracking_uri() == f"sqlite:///{(store / 'mlflow.db').as_posix()}"

    def test_env_overrides(self, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
        assert tracking_uri() == "http://tracking.example:5000"
        assert tracking.registry_uri() == "http://tracking.example:5000"

    def test_a_client_leaves_the_environment_as_it_was(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # MLflow's set_tracking_uri / set_registry_uri write both variables: after the first
        # client, a process that changed MLFLOW_TRACKING_URI registered into the first
        # store, and one that changed folders kept the first folder's mlflow.db
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.setenv(var, "-")  # put back as it was (unset) after the test
            monkeypatch.delenv(var)
        stores.mlflow_client().create_registered_model("in-a")
        assert "MLFLOW_TRACKING_URI" not in os.environ
        assert "MLFLOW_REGISTRY_URI" not in os.environ
        other = store / "b"
        other.mkdir()
        monkeypatch.chdir(other)
        assert tracking.registry_uri() == f"sqlite:///{(other / 'mlflow.db').as_posix()}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{(store / 'c.db').as_posix()}")
        stores.mlflow_client().create_registered_model("in-c")
        assert "MLFLOW_REGISTRY_URI" not in os.environ
        assert [m.name for m in stores.mlflow_client().search_registered_models()] == ["in-c"]
        assert mlflow.get_registry_uri() == tracking_uri()  # the fluent API follows
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        monkeypatch.chdir(store)
        assert [m.name for m in _client().search_registered_models()] == ["in-a"]

    def test_artifacts_stay_beside_the_store_when_cwd_changes(
        self, store: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with start_run("exp") as run:
            run.log_text("one", "a.txt")
        exp = _client().get_experiment_by_name("exp")
        assert exp.artifact_location == (store / "mlartifacts" / "exp").as_uri()
        # Same store, other working directory: artifacts still land under the store's folder.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri())
        monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
        with start_run("exp") as run2:
            run2.log_text("two", "b.txt")
        assert (store / "mlartifacts" / "exp" / run.run_id / "artifacts" / "a.txt").exists()
        assert (
            store / "mlartifacts" / "exp" / run2.run_id / "artifacts" / "b.txt"
        ).read_text() == "two"

    def test_two_processes_create_a_new_store_together(self, tmp_path: Path) -> None:
        """Two trainings starting in a fresh folder: MLflow migrates a new SQLite file when a
        client is made, and the second process's migration failed (3 of 3 tries before)."""
        script = (
            "import pathlib, sys, time\n"
            "from vitalgru.tracking import start_run\n"
            "me, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
            "me.touch()\n"
            "while not other.exists():\n"
            "    time.sleep(0.005)\n"
            "with start_run(sys.argv[3]) as run:\n"
            "    run.log_metrics({'x': 1.0})\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, f"ready{i}", f"ready{1 - i}", f"exp{i}"],
                cwd=tmp_path,
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in (0, 1)
        ]
        errors = [p.communicate(timeout=300)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errors
        client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
        for name in ("exp0", "exp1"):
            exp = client.get_experiment_by_name(name)
            assert len(client.search_runs([exp.experiment_id])) == 1

    def test_one_store_spelt_two_ways_is_claimed_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A relative tracking URI and an absolute registry URI of one file: the second
        claim of the same lock waited on this process's own for 120 s."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{tmp_path.as_posix()}/mlflow.db")
        claimed: list[Path] = []
        real_hold = stores.hold

        def hold(lock: Path, *a: Any, **kw: Any) -> Any:
            claimed.append(Path(lock))
            return real_hold(lock, *a, **kw)

        monkeypatch.setattr(stores, "hold", hold)
        monkeypatch.setattr(stores, "CREATE_WAIT_S", 0.0)
        stores.mlflow_client().search_experiments()
        assert claimed == [tmp_path / "mlflow.db.create.lock"]

    def test_a_store_another_process_is_still_creating_is_refused_by_name(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A claim still held after the wait went on unclaimed before, into the migration
        the claim is there to keep apart."""
        monkeypatch.chdir(tmp_path)
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setattr(stores, "CREATE_WAIT_S", 0.0)
        other = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, sys, time\n"
             "f = open('mlflow.db.create.lock', 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
             "print('held', flush=True); time.sleep(60)"],
            cwd=tmp_path, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "held"
            with pytest.raises(ClaimBusy, match="another process creating it"):
                stores.mlflow_client()
        finally:
            other.kill()
            other.wait()


class TestCheckStores:
    def test_a_server_that_does_not_answer_fails_in_seconds(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        uri = f"http://127.0.0.1:{closed_port()}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        t0 = time.perf_counter()
        with pytest.raises(ServerUnavailableError) as ei:
            check_stores(attempts=2, wait_s=0.1, timeout_s=2.0)
        assert time.perf_counter() - t0 < 10  # MLflow's own retries take about 4 minutes
        msg = str(ei.value)
        assert uri in msg and "$MLFLOW_TRACKING_URI" in msg and "mlflow.db" in msg

    def test_the_registry_server_is_checked_too(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        uri = f"http://127.0.0.1:{closed_port()}"
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
        with pytest.raises(ServerUnavailableError, match=r"\$MLFLOW_REGISTRY_URI"):
            check_stores(attempts=1)

    def test_any_http_answer_is_reachable_and_local_stores_are_not_probed(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        check_stores(attempts=1)  # the SQLite default: nothing to ask
        with serving(status_server(404)) as server:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}/")
            check_stores(attempts=1)


class TestMissingStore:
    """A command that reads models from a folder with no store says so, and leaves no
    empty ``mlflow.db`` behind a "model not found"."""

    def test_reading_from_a_folder_without_a_store(
        self, store: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        from pipelines.cli import main

        assert tracking.missing_store() is None  # the store fixture's folder has one
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        monkeypatch.chdir(elsewhere)
        why = tracking.missing_store()
        assert why is not None and "no MLflow store in this folder" in why
        assert str(elsewhere / "mlflow.db") in why and "MLFLOW_TRACKING_URI" in why
        with pytest.raises(ModelLoadError, match="cannot load models:/m@champion: there is no"):
            load_model("models:/m@champion")
        with pytest.raises(ModelLoadError, match="no MLflow store"):
            load_model("runs:/0123/model")
        with pytest.raises(SystemExit, match="no MLflow store in this folder"):
            main(["models", "list"])
        assert not (elsewhere / "mlflow.db").exists()
        # a local model folder needs no store
        with pytest.raises(ModelLoadError) as e:
            load_model(str(elsewhere / "no-such-model"))
        assert "no MLflow store" not in str(e.value)

    def test_a_model_folder_is_read_without_opening_a_store(
        self, store: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # loading a folder made the default store in the working folder: an empty
        # mlflow.db was left there, and a read-only folder failed the load after MLflow's
        # retries ("unable to open database file")
        with start_run("exp") as run:
            ref = _log(run, TinyGRU())
        folder = mlflow.artifacts.download_artifacts(ref.uri, dst_path=str(store / "dl"))
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        monkeypatch.chdir(elsewhere)
        loaded = load_model(folder, allowed_prefixes=TEST_PREFIXES)
        assert isinstance(loaded.module, TinyGRU) and loaded.version is None
        assert tracking.resolve_model_uri(folder) == folder
        assert list(elsewhere.iterdir()) == []

    def test_a_store_named_in_the_environment_that_is_not_there(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{(store / 'gone.db').as_posix()}")
        why = tracking.missing_store()
        assert why is not None and why.startswith("MLFLOW_REGISTRY_URI=sqlite:///")
        assert "gone.db" in why
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://registry.example:5000")
        assert tracking.missing_store() is None  # a server is asked by check_stores instead
        # a "~" is read as MLflow reads it (a folder of that name here), not as the home
        # folder: a store there was taken for this one before
        monkeypatch.delenv("MLFLOW_REGISTRY_URI")
        monkeypatch.setenv("HOME", str(store))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///~/mlflow.db")
        why = tracking.missing_store()
        assert why is not None and "~/mlflow.db" in why


class TestTrackedRun:
    def test_params_metrics_artifacts(self, store: Path) -> None:
        src = store / "note.txt"
        src.write_text("hello")
        with start_run("exp", run_name="r1", tags={"task": "arrhythmia"}) as run:
            run.log_params({"model": {"hidden": 32, "layers": [1, 2]}, "lr": 1e-3})
            run.log_metrics({"loss": 0.5}, step=1)
            run.log_metrics({"loss": 0.25}, step=2)
            run.log_dict({"a": 1}, "d/info.json")
            run.log_text("t", "d/t.txt")
            run.log_artifact(src, "files")
        r = _client().get_run(run.run_id)
        assert r.info.status == "FINISHED"
        assert r.info.run_name == "r1"
        assert r.data.tags["task"] == "arrhythmia"
        assert r.data.params == {"model.hidden": "32", "model.layers": "[1, 2]", "lr": "0.001"}
        hist = _client().get_metric_history(run.run_id, "loss")
        assert [(m.step, m.value) for m in hist] == [(1, 0.5), (2, 0.25)]
        root = store / "mlartifacts" / "exp" / run.run_id / "artifacts"
        assert json.loads((root / "d" / "info.json").read_text()) == {"a": 1}
        assert (root / "files" / "note.txt").read_text() == "hello"

    def test_a_run_names_the_code_that_made_it(self, store: Path) -> None:
        # only vitalgru.version was tagged, the same for every commit; MLflow's own commit
        # tag comes from the entry script's repository, and the console script lives in a
        # virtual environment git ignores
        with start_run("exp") as run:
            pass
        tags = _client().get_run(run.run_id).data.tags
        want = source_tags()
        assert len(want[SOURCE_DIGEST_TAG]) == 16
        assert {k: tags.get(k) for k in want} == want
        head = subprocess.run(["git", "-C", str(Path(vitalgru.__file__).parent), "rev-parse",
                               "HEAD"], capture_output=True, text=True)  # fmt: skip
        if head.returncode == 0:  # a checkout (not an installed wheel)
            assert tags[GIT_COMMIT_TAG] == head.stdout.strip()
            assert tags[GIT_DIRTY_TAG] in ("true", "false")

    def test_a_run_names_the_float_environment_that_ran_it(self, store: Path) -> None:
        # the tags named the code only: a run on an AVX2 machine (or with other library
        # versions) trained other weights under the same params and tags
        with start_run("exp") as parent:
            with start_run("exp", nested=True) as child:
                pass
        cpuinfo = Path("/proc/cpuinfo")
        names = [line.split(":", 1)[1].strip() for line in
                 (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
                 if line.split(":", 1)[0].strip() == "model name"]  # fmt: skip
        want = {
            "vitalgru.env.python": platform.python_version(),
            "vitalgru.env.platform": platform.platform(),
            "vitalgru.env.cpu": names[0] if names else platform.processor() or platform.machine(),
            "vitalgru.env.torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "vitalgru.env.torch_threads": str(torch.get_num_threads()),
            "vitalgru.env.torch_interop_threads": str(torch.get_num_interop_threads()),
            "vitalgru.env.aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", "unset"),
            "vitalgru.env.omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            **{f"vitalgru.env.version.{d}": importlib.metadata.version(d)
               for d in ("torch", "numpy", "scipy", "scikit-learn", "pandas", "mlflow")},
        }  # fmt: skip
        for run in (parent, child):
            tags = _client().get_run(run.run_id).data.tags
            assert {k: tags.get(k) for k in want} == want

    def test_the_cpu_kernels_torch_was_held_to_are_named(self) -> None:
        code = (
            "import json; from vitalgru.tracking.environment import environment_tags; "
            "print(json.dumps(environment_tags()))"
        )
        env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(Path(vitalgru.__file__).parents[1])}  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)  # fmt: skip
        tags = json.loads(out.stdout.strip().splitlines()[-1])
        assert tags["vitalgru.env.torch_cpu_capability"] == "DEFAULT"
        assert tags["vitalgru.env.aten_cpu_capability"] == "default"
        assert tags["vitalgru.env.omp_num_threads"] == "1"
        assert environment_tags()["vitalgru.env.torch_cpu_capability"] == (
            torch.backends.cpu.get_cpu_capability()
        )

    @pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
    def test_source_tags_follow_the_checkout_and_need_no_git(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        repo = tmp_path / "repo"
        pkg = repo / "vitalgru"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("x = 1\n")
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
        for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "c"]):
            subprocess.run([*git, *args], check=True, capture_output=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        clean = source_tags(pkg)
        assert clean[GIT_COMMIT_TAG] == head.stdout.strip()
        assert clean[GIT_DIRTY_TAG] == "false"
        (pkg / "__init__.py").write_text("x = 2\n")
        dirty = source_tags(pkg)
        assert dirty[GIT_DIRTY_TAG] == "true"
        assert dirty[SOURCE_DIGEST_TAG] != clean[SOURCE_DIGEST_TAG]
        (pkg / "new.py").write_text("")  # an untracked file does not make it dirty...
        (repo / ".gitignore").write_text("site/\n")
        ignored = repo / "site" / "vitalgru"  # ...and an ignored copy is no checkout
        shutil.copytree(pkg, ignored)
        assert set(source_tags(ignored)) == {SOURCE_DIGEST_TAG}
        shutil.copytree(pkg, tmp_path / "wheel" / "vitalgru")  # no repository: no error
        assert set(source_tags(tmp_path / "wheel" / "vitalgru")) == {SOURCE_DIGEST_TAG}
        monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git at all
        assert set(source_tags(pkg)) == {SOURCE_DIGEST_TAG}

    def test_nested_runs(self, store: Path) -> None:
        with start_run("exp") as parent:
            with start_run("exp", run_name="fold0", nested=True) as child:
                child.log_metrics({"auroc": 0.8})
            parent.log_metrics({"mean_auroc": 0.8})
        got = _client().get_run(child.run_id)
        assert got.data.tags["mlflow.parentRunId"] == parent.run_id
        assert _client().get_run(parent.run_id).data.metrics == {"mean_auroc": 0.8}

    def test_many_params_are_batched(self, store: Path) -> None:
        params = {f"p{i:03d}": i for i in range(250)}  # MLflow takes 100 params per batch
        with start_run("exp") as run:
            run.log_params(params)
        assert len(_client().get_run(run.run_id).data.params) == 250

    def test_failed_block_marks_run_failed(self, store: Path) -> None:
        with pytest.raises(RuntimeError, match="boom"), start_run("exp") as run:
            raise RuntimeError("boom")
        assert _client().get_run(run.run_id).info.status == "FAILED"
        assert mlflow.active_run() is None

    def test_non_numeric_metric_rejected(self, store: Path) -> None:
        with start_run("exp") as run, pytest.raises(TypeError, match="'acc'"):
            run.log_metrics({"acc": "high"})  # type: ignore[dict-item]

    def test_missing_artifact_file(self, store: Path) -> None:
        with start_run("exp") as run, pytest.raises(FileNotFoundError):
            run.log_artifact(store / "nope.txt")

    def test_log_config(self, store: Path) -> None:
        cfg = IngestConfig()
        with start_run("exp") as run:
            log_config(run, cfg)
        r = _client().get_run(run.run_id)
        assert r.data.params["arrhythmia.windows.fs"] == "360.0"
        assert r.data.params["arrhythmia.exclude_records"] == '["102", "104", "107", "217"]'
        path = store / "mlartifacts" / "exp" / run.run_id / "artifacts" / "config.yaml"
        assert IngestConfig.model_validate(yaml.safe_load(path.read_text())) == cfg

    def test_log_confusion_matrix(self, store: Path) -> None:
        cm = np.array([[50, 2, 1, 0, 0], [3, 9, 0, 0, 0], [1, 0, 20, 1, 0], [0] * 5, [0] * 5])
        labels = [c.value for c in AAMI_CLASSES]
        with start_run("exp") as run:
            log_confusion_matrix(run, cm, labels, "eval/cm.png")
        root = store / "mlartifacts" / "exp" / run.run_id / "artifacts" / "eval"
        assert (root / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert json.loads((root / "cm.json").read_text()) == {
            "labels": labels,
            "counts": cm.tolist(),
        }

    @pytest.mark.parametrize(
        ("cm", "labels", "match"),
        [
            (np.zeros((2, 3)), ["a", "b"], "square"),
            (np.zeros((2, 2)), ["a", "b", "c"], "labels"),
            (-np.ones((2, 2)), ["a", "b"], "non-negative"),
        ],
    )
    def test_confusion_matrix_validation(
        self, store: Path, cm: np.ndarray, labels: list[str], match: str
    ) -> None:
        with start_run("exp") as run, pytest.raises(ValueError, match=match):
            log_confusion_matrix(run, cm, labels)


class _Sub(BaseModel):
    k: int = 1


class TestShownUri:
    """The tracking URI in the run's log line (kept in Prefect's database and a worker's
    output) without the password a database or server URI may carry."""

    def test_a_password_is_hidden_and_the_rest_kept(self) -> None:
        assert shown_uri("postgresql://vitalgru:s3cret@db.example:5432/mlflow?ssl=1") == (
            "postgresql://vitalgru:***@db.example:5432/mlflow?ssl=1"
        )
        assert shown_uri("https://me:p%40ss@mlflow.example/") == "https://me:***@mlflow.example/"

    def test_a_uri_without_one_is_unchanged(self) -> None:
        for uri in ("sqlite:////srv/mlflow.db", "http://tracking:5000", "https://u@h/", "mlruns"):
            assert shown_uri(uri) == uri


class TestFlattenParams:
    def test_nested_and_value_encoding(self) -> None:
        from enum import Enum

        class Color(Enum):
            RED = "red"

        got = flatten_params(
            {
                "a": {"b": {"c": 1}, "d": 0.5},
                "flag": True,
                "none": None,
                "path": Path("x") / "y.yaml",
                "seq": (1, "two"),
                "color": Color.RED,
                "np": np.float32(0.25),
                "sub": _Sub(),
                "empty": {},
                "s": "text",
            }
        )
        assert got == {
            "a.b.c": "1",
            "a.d": "0.5",
            "flag": "true",
            "none": "null",
            "path": "x/y.yaml",
            "seq": '[1, "two"]',
            "color": "red",
            "np": "0.25",
            "sub.k": "1",
            "s": "text",
        }

    def test_prefix_and_separator(self) -> None:
        assert flatten_params({"a": {"b": 1}}, prefix="cfg", sep="/") == {"cfg/a/b": "1"}

    def test_long_values_cut_to_mlflow_limit(self) -> None:
        v = flatten_params({"long": "x" * 7000})["long"]
        assert len(v) == 6000 and v.endswith("...")

    def test_rejects_non_mapping_and_non_str_keys(self) -> None:
        with pytest.raises(TypeError, match="mapping"):
            flatten_params([1, 2])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="keys must be strings"):
            flatten_params({1: "a"})  # type: ignore[dict-item]


class TestModelRoundTrip:
    def test_log_register_load_predict_any_length(self, store: Path) -> None:
        torch.manual_seed(0)
        model = TinyGRU()
        with start_run("exp") as run:
            ref = _log(run, model, config={"seed": 3, "data": {"fs": 360.0}})
        # (its time is measured by benchmarks/tracking_registry.py, log_model_and_register)
        assert ref.uri == f"models:/{NAME}/1" and ref.version == "1" and ref.run_id == run.run_id
        assert promote_if_better(NAME, ref.version, {"f1": 0.5}, ["f1"]).promoted

        loaded = load_model(f"models:/{NAME}@champion", allowed_prefixes=TEST_PREFIXES)
        assert loaded.version == "1" and loaded.name == NAME
        assert not loaded.module.training
        assert loaded.preprocessing == {"mean": [0.1, 0.2, 0.3], "fs": 360.0}
        assert loaded.config == {"seed": 3, "data": {"fs": 360.0}}
        assert loaded.class_path == f"{TinyGRU.__module__}:TinyGRU"
        model.eval()
        with torch.no_grad():
            for length in (7, 131):
                x = torch.randn(2, length, 3)
                want, want_h = model(x)
                got, got_h = loaded.module(x)
                torch.testing.assert_close(got, want, rtol=0, atol=0)
                torch.testing.assert_close(got_h, want_h, rtol=0, atol=0)

        version_tags = _client().get_model_version(NAME, "1").tags
        assert version_tags["vitalgru.run_id"] == run.run_id
        assert _client().get_model_version(NAME, "1").description in ("", None)

    def test_loading_leaves_the_callers_random_draws_as_they_were(self, store: Path) -> None:
        # the rebuilt network drew its (discarded) initial weights from torch's global
        # generator: a seeded notebook drew other numbers after loading a model
        with start_run("exp") as run:
            ref = _log(run, TinyGRU())
        torch.manual_seed(11)
        expected = torch.rand(4)
        torch.manual_seed(11)
        load_model(ref.uri, allowed_prefixes=TEST_PREFIXES)
        torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)

    def test_descriptions_reach_the_registry(self, store: Path) -> None:
        with start_run("exp") as run:
            _log(run, TinyGRU(), description="version one", model_description="what it is")
        with start_run("exp") as run:
            _log(run, TinyGRU(), description="version two")  # the model's text stays
        client = _client()
        assert client.get_model_version(NAME, "1").description == "version one"
        assert client.get_model_version(NAME, "2").description == "version two"
        assert client.get_registered_model(NAME).description == "what it is"

    def test_mlflow_pyfunc_predicts_any_length(self, store: Path) -> None:
        torch.manual_seed(1)
        model = TinyGRU().eval()
        with start_run("exp") as run:
            ref = _log(run, model)
        pf = mlflow.pyfunc.load_model(ref.uri)
        for length in (5, 64):
            x = np.random.default_rng(length).standard_normal((3, length, 3)).astype(np.float32)
            with torch.no_grad():
                want = model(torch.from_numpy(x))[0].numpy()
            np.testing.assert_allclose(pf.predict(x), want, rtol=0, atol=1e-6)
            np.testing.assert_allclose(pf.predict(x[1]), want[1], rtol=0, atol=1e-6)
            np.testing.assert_allclose(pf.predict({"x": x}), want, rtol=0, atol=1e-6)
        # a hidden state as JSON gives it (float64, or a list): the same logits as float32
        # (a dtype error before)
        h0 = np.random.default_rng(0).standard_normal((1, 3, 8))
        with torch.no_grad():
            want = model(torch.from_numpy(x), torch.from_numpy(h0.astype(np.float32)))[0].numpy()
        for given in (h0, h0.tolist(), h0.astype(np.float32)):
            got = pf.predict({"x": x, "h0": given})
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        # a state of zeros written by a JSON encoder that drops ".0" arrives as integers
        with torch.no_grad():
            want = model(torch.from_numpy(x), torch.zeros(1, 3, 8))[0].numpy()
        got = pf.predict({"x": x, "h0": np.zeros((1, 3, 8), dtype=int).tolist()})
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        # Nothing is pickled: the pyfunc is defined by a code file stored with the model.
        local = Path(mlflow.artifacts.download_artifacts(ref.uri, dst_path=str(store / "dl")))
        assert not list(local.rglob("*.pkl"))

    def test_the_model_pins_the_numerical_packages_loading_it_imports(self, store: Path) -> None:
        # only vitalgru, torch, mlflow and numpy were pinned; loading and scoring the
        # pyfunc imports scipy and pandas (through mlflow.pyfunc) and wfdb (vitalgru.io)
        from vitalgru.models.early_warning import GRUDEarlyWarning

        with start_run("exp") as run:
            ref = log_model(run, GRUDEarlyWarning(3, 0, 4), preprocessing={}, config={})
        code = (
            "import sys, json, importlib.metadata as md, numpy as np, mlflow.pyfunc\n"
            f"pf = mlflow.pyfunc.load_model({ref.uri!r})\n"
            "pf.predict(np.zeros((1, 5, 12), np.float32))\n"
            "dist = md.packages_distributions()\n"
            "print(json.dumps(sorted({d for m in list(sys.modules) "
            "for d in dist.get(m.split('.')[0], [])})))\n"
        )
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(Path(vitalgru.__file__).parents[1])}  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=store,
                             capture_output=True, text=True, check=True)  # fmt: skip
        imported = {d.lower() for d in json.loads(out.stdout.strip().splitlines()[-1])}
        local = Path(mlflow.artifacts.download_artifacts(ref.uri, dst_path=str(store / "dl")))
        pins = dict(line.split("==") for line in
                    (local / "requirements.txt").read_text().split() if "==" in line)  # fmt: skip
        numerical = {"torch", "numpy", "scipy", "pandas", "scikit-learn", "wfdb", "mlflow"}
        assert {"scipy", "pandas", "wfdb"} <= imported
        for name in numerical & imported:
            assert pins.get(name) == importlib.metadata.version(name).split("+")[0], name
        assert pins["vitalgru"] == vitalgru.__version__

    def test_load_by_version_latest_and_unregistered(self, store: Path) -> None:
        torch.manual_seed(2)
        a, b = TinyGRU(), TinyGRU()
        with start_run("exp") as run:
            _log(run, a)
            _log(run, b)
            free = _log(run, a, registered_name=None, artifact_path="free")
        assert free.version is None and free.name is None
        x = torch.randn(1, 9, 3)
        with torch.no_grad():
            assert torch.equal(
                load_model(f"models:/{NAME}/1", allowed_prefixes=TEST_PREFIXES).module(x)[0],
                a(x)[0],
            )
            latest = load_model(f"models:/{NAME}/latest", allowed_prefixes=TEST_PREFIXES)
            assert latest.version == "2" and torch.equal(latest.module(x)[0], b(x)[0])
            for uri in (free.uri, f"runs:/{run.run_id}/free"):
                assert torch.equal(
                    load_model(uri, allowed_prefixes=TEST_PREFIXES).module(x)[0], a(x)[0]
                )

    def test_vitalgru_model_round_trip_with_default_trust(self, store: Path) -> None:
        from vitalgru.models.arrhythmia import ArrhythmiaGRU

        torch.manual_seed(4)
        model = ArrhythmiaGRU().eval()
        name = tracking.ARRHYTHMIA_MODEL_NAME
        with start_run("exp") as run:
            ref = log_model(run, model, preprocessing={}, config={}, registered_name=name)
        promote_if_better(name, ref.version, {"f1": 0.5}, ["f1"])
        loaded = load_model(f"models:/{name}@champion")
        with torch.no_grad():
            for n_beats in (3, 40):
                x = torch.randn(2, n_beats, model.n_features)
                torch.testing.assert_close(loaded.module(x)[0], model(x)[0], rtol=0, atol=0)

    def test_ensemble_round_trip_and_streaming_state(self, store: Path) -> None:
        from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU

        torch.manual_seed(5)
        members = [ArrhythmiaGRU(hidden=16, num_layers=n).eval() for n in (1, 2)]
        model = ArrhythmiaEnsemble.of(members).eval()
        with start_run("exp") as run:
            ref = log_model(run, model, preprocessing={}, config={}, registered_name="ens")
        loaded = load_model(f"models:/ens/{ref.version}").module
        # a caller that scores another task's models refuses it by its class, clearly
        from vitalgru.models.early_warning import GRUDEarlyWarning, SepsisBlend

        with pytest.raises(ModelLoadError, match="class ArrhythmiaEnsemble .* another task"):
            load_model(f"models:/ens/{ref.version}", kinds=(SepsisBlend, GRUDEarlyWarning))
        kinds = (ArrhythmiaGRU, ArrhythmiaEnsemble)
        assert isinstance(load_model(f"models:/ens/{ref.version}", kinds=kinds).module, kinds)
        x = torch.randn(2, 30, model.n_features)
        with torch.no_grad():
            whole, h = loaded(x)
            torch.testing.assert_close(whole, model(x)[0], rtol=0, atol=0)
            assert h.shape == (3, 2, 16)  # the members' states stacked
            first, h1 = loaded(x[:, :11])
            rest, _ = loaded(x[:, 11:], h1)
            torch.testing.assert_close(torch.cat([first, rest], 1), whole, rtol=1e-5, atol=1e-5)
            mean = torch.stack([torch.softmax(m(x)[0], -1) for m in members]).mean(0)
            torch.testing.assert_close(torch.softmax(whole, -1), mean, rtol=1e-5, atol=1e-6)

    def test_load_refuses_classes_outside_allowed_packages(self, store: Path) -> None:
        with start_run("exp") as run:
            ref = _log(run, TinyGRU())
        # Default trust is vitalgru.models only; the test module is not in it.
        with pytest.raises(ValueError, match="refusing to import"):
            load_model(ref.uri)

    def test_unknown_alias_or_version(self, store: Path) -> None:
        _registered(1)
        with pytest.raises(ValueError, match="cannot resolve"):
            load_model(f"models:/{NAME}@champion", allowed_prefixes=TEST_PREFIXES)
        with pytest.raises(ValueError, match="cannot resolve"):
            load_model(f"models:/{NAME}/9", allowed_prefixes=TEST_PREFIXES)

    def test_contract_checked_at_log_time(self, store: Path) -> None:
        with start_run("exp") as run:
            with pytest.raises(TypeError, match="config_dict"):
                log_model(
                    run, NoConfigGRU(), preprocessing={}, config={}, allowed_prefixes=TEST_PREFIXES
                )
            with pytest.raises(TypeError, match="preprocessing is not JSON"):
                _log(run, TinyGRU(), preprocessing={"scaler": object()})
        assert not _client().search_registered_models()

    def test_numpy_statistics_are_stored_as_json(self, store: Path) -> None:
        with start_run("exp") as run:
            ref = _log(run, TinyGRU(), preprocessing={"mean": np.arange(3.0), "names": ("a", "b")})
        got = load_model(ref.uri, allowed_prefixes=TEST_PREFIXES).preprocessing
        assert got == {"mean": [0.0, 1.0, 2.0], "names": ["a", "b"]}


class TestPromotion:
    def test_gate_sequence(self, store: Path) -> None:
        v1, v2, v3 = _registered(3)
        first = promote_if_better(NAME, v1, {"f1": 0.80, "auprc": 0.50}, ["f1", "auprc"])
        assert first.promoted and first.previous_version is None
        assert get_alias_version(NAME, "champion") == v1

        worse = promote_if_better(NAME, v2, {"f1": 0.85, "auprc": 0.40}, ["f1", "auprc"])
        assert not worse.promoted and worse.previous_version == v1
        assert "auprc" in worse.reason and worse.comparison["auprc"] == (0.40, 0.50)
        assert get_alias_version(NAME, "champion") == v1
        assert get_alias_version(NAME, "challenger") == v2

        better = promote_if_better(NAME, v3, {"f1": 0.81, "auprc": 0.50}, ["f1", "auprc"])
        assert better.promoted and better.previous_version == v1
        assert get_alias_version(NAME, "champion") == v3
        tags = _client().get_model_version(NAME, v3).tags
        assert float(tags["gate.f1"]) == 0.81 and "beats" in tags["vitalgru.gate_decision"]

    def test_a_registry_that_fails_to_answer_is_not_taken_for_no_champion(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from mlflow.exceptions import MlflowException

        v1, v2 = _registered(2)
        promote_if_better(NAME, v1, {"f1": 0.8}, ["f1"])
        locked = MlflowException("(sqlite3.OperationalError) database is locked",
                                 error_code="TEMPORARILY_UNAVAILABLE")  # fmt: skip

        def fails(*a: Any, **k: Any) -> Any:
            raise locked

        with monkeypatch.context() as m:
            m.setattr(MlflowClient, "get_model_version_by_alias", fails)
            with pytest.raises(MlflowException, match="locked"):  # promoted as "first" before
                promote_if_better(NAME, v2, {"f1": 0.1}, ["f1"])
            with pytest.raises(MlflowException, match="locked"):
                get_alias_version(NAME, "champion")
        assert get_alias_version(NAME, "champion") == v1
        assert get_alias_version(NAME, "no-such-alias") is None  # not there: None
        assert get_alias_version("vitalgru-none", "champion") is None
        for alias in ("champion ", "a/b", "vä!"):  # MLflow's refusal, as a message
            with pytest.raises(ValueError, match="cannot be an alias"):
                tracking.promote(NAME, v2, "by hand", alias=alias)

    def test_figures_measured_on_another_cohort_are_not_compared(self, store: Path) -> None:
        # a 40-patient cross-validation displaced a 250-patient champion on its noisier,
        # higher utility
        v1, v2, v3, v4 = _registered(4)
        big = "challenge-2019: 250 patients (18 septic), 9000 hours, 5-fold CV (seed 0)"
        assert promote_if_better(NAME, v1, {"u": 0.08}, ["u"], evaluated_on=big).promoted
        small = "challenge-2019: 40 patients (7 septic), 1400 hours, 2-fold CV (seed 0)"
        d = promote_if_better(NAME, v2, {"u": 0.39}, ["u"], evaluated_on=small)
        assert not d.promoted and "not comparable" in d.reason and "40 patients" in d.reason
        assert get_alias_version(NAME, "challenger") == v2
        assert promote_if_better(NAME, v3, {"u": 0.09}, ["u"], evaluated_on=big).promoted
        tags = _client().get_model_version(NAME, v3).tags
        assert tags["vitalgru.gate_evaluated_on"] == big
        assert promote_if_better(NAME, v4, {"u": 0.1}, ["u"]).promoted  # nothing said: compared

    def test_a_champion_that_did_not_record_its_evaluation_is_not_compared(
        self, store: Path
    ) -> None:
        # a champion gated before its flow said what it was measured on (the arrhythmia
        # flow said nothing: DS2 figures on fewer records displaced it) may have been
        # measured on anything
        v1, v2, v3 = _registered(3)
        assert promote_if_better(NAME, v1, {"f1": 0.5}, ["f1"]).promoted
        ds2 = "mitdb DS2: 1 records, 3079 beats (record:beats 233:3079), labels sha256 0"
        d = promote_if_better(NAME, v2, {"f1": 0.9}, ["f1"], evaluated_on=ds2)
        assert not d.promoted and "an evaluation it did not record" in d.reason
        assert "not comparable" in d.reason and get_alias_version(NAME) == v1
        promote(NAME, v2, "judged on all of DS2 by hand")  # once; then the gate compares
        d = promote_if_better(NAME, v3, {"f1": 0.95}, ["f1"], evaluated_on=ds2)
        assert d.promoted and get_alias_version(NAME) == v3

    def test_tie_is_not_promoted(self, store: Path) -> None:
        v1, v2 = _registered(2)
        promote_if_better(NAME, v1, {"f1": 0.8}, ["f1"])
        d = promote_if_better(NAME, v2, {"f1": 0.8}, ["f1"])
        assert not d.promoted and "no better" in d.reason
        assert get_alias_version(NAME) == v1

    def test_lower_is_better(self, store: Path) -> None:
        v1, v2, v3 = _registered(3)
        promote_if_better(NAME, v1, {"brier": 0.20}, ["brier"], lower_is_better=["brier"])
        assert not promote_if_better(
            NAME, v2, {"brier": 0.25}, ["brier"], lower_is_better=["brier"]
        ).promoted
        assert promote_if_better(
            NAME, v3, {"brier": 0.15}, ["brier"], lower_is_better=["brier"]
        ).promoted

    def test_promoted_challenger_loses_challenger_alias(self, store: Path) -> None:
        v1, v2 = _registered(2)
        promote_if_better(NAME, v1, {"f1": 0.8}, ["f1"])
        promote_if_better(NAME, v2, {"f1": 0.7}, ["f1"])
        assert get_alias_version(NAME, "challenger") == v2
        promote_if_better(NAME, v2, {"f1": 0.9}, ["f1"])  # re-evaluated on a fixed pipeline
        assert get_alias_version(NAME, "champion") == v2
        assert get_alias_version(NAME, "challenger") is None

    def test_promotion_by_hand_and_rollback_are_recorded(self, store: Path) -> None:
        v1, v2, v3 = _registered(3)
        promote_if_better(NAME, v1, {"f1": 0.8}, ["f1"])
        promote_if_better(NAME, v2, {"f1": 0.9}, ["f1"])  # the gate makes v2 champion
        promote_if_better(NAME, v3, {"f1": 0.7}, ["f1"])  # v3 stays challenger
        with pytest.raises(ValueError, match="needs a reason"):
            promote(NAME, v3, "  ")
        with pytest.raises(ValueError, match="has no version 9"):
            promote(NAME, "9", "why")
        d = promote(NAME, v3, "reviewed:  better on the ward's own data")
        assert d.promoted and d.previous_version == v2
        assert get_alias_version(NAME) == v3 and get_alias_version(NAME, "challenger") is None
        assert not promote(NAME, v3, "again").promoted  # already champion: nothing recorded
        back = rollback(NAME, "monitor: degraded on the January export")
        assert back.promoted and back.previous_version == v3 and get_alias_version(NAME) == v2
        hist = alias_history(NAME)
        assert [(h["version"], h["how"]) for h in hist] == [
            (v1, "gate"), (v2, "gate"), (v3, "manual"), (v2, "rollback")]  # fmt: skip
        assert hist[2]["reason"] == "reviewed: better on the ward's own data"
        assert hist[-1]["at"].endswith("Z") and "beats" in hist[1]["reason"]
        # a second rollback undoes the first
        assert rollback(NAME, "undo").previous_version == v2 and get_alias_version(NAME) == v3

        set_version_tags(NAME, v3, {"vitalgru.monitor.status": "drift"})
        rows = registry_versions(NAME)
        assert [r["version"] for r in rows] == [v3, v2, v1]
        assert rows[0]["aliases"] == ["champion"] and rows[0]["gate"] == {"f1": 0.7}
        assert rows[0]["promotion"].startswith("rollback: champion of") and "undo" in rows[0][
            "promotion"]  # fmt: skip
        assert rows[0]["monitor"]["status"] == "drift" and rows[1]["monitor"]["status"] is None
        assert rows[1]["gate_decision"].startswith("beats champion v1")
        assert rows[2]["aliases"] == [] and registry_versions("nobody") == []

    def test_a_network_of_the_other_task_is_given_no_alias(
        self, store: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # an early-warning network registered under vitalgru-arrhythmia was made champion
        # by hand (exit 0), or as a model's first version by the gate; the gateway, which
        # loads an arrhythmia champion only as ArrhythmiaGRU/Ensemble, then could not
        from pipelines.cli import run as vitalgru
        from vitalgru.models.arrhythmia import ArrhythmiaGRU
        from vitalgru.models.early_warning import GRUDEarlyWarning

        arr, ward = "vitalgru-arrhythmia", "vitalgru-arrhythmia-ward4"
        with start_run("exp") as run:
            beats, sepsis, sepsis4 = (
                log_model(run, net, preprocessing={}, config={}, registered_name=name).version
                for net, name in (
                    (ArrhythmiaGRU(hidden=8), arr),
                    (GRUDEarlyWarning(n_features=3, n_static=2, hidden_size=4), arr),
                    (GRUDEarlyWarning(n_features=3, n_static=2, hidden_size=4), ward),
                )
            )
        assert promote_if_better(arr, beats, {"f1": 0.8}, ["f1"]).promoted
        capsys.readouterr()
        assert vitalgru(["models", "promote", "arrhythmia", sepsis, "--reason", "ok"]) == 2
        err = capsys.readouterr().err
        assert f"version {sepsis} of {arr} is a GRUDEarlyWarning" in err
        assert "not ArrhythmiaGRU or ArrhythmiaEnsemble: a model for another task" in err
        with pytest.raises(ValueError, match="another task"):  # nor as the shadow's
            promote(arr, sepsis, "ok", alias="challenger")
        with pytest.raises(ValueError, match="another task"):
            promote_if_better(ward, sepsis4, {"f1": 0.5}, ["f1"])
        assert get_alias_version(arr) == beats and get_alias_version(ward) is None
        assert get_alias_version(arr, "challenger") is None
        assert get_alias_version(ward, "challenger") is None
        assert [h["version"] for h in alias_history(arr)] == [beats]
        assert "gate.f1" not in _client().get_model_version(ward, sepsis4).tags

    def test_a_change_cut_short_is_finished_and_recorded_when_run_again(
        self, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # the alias moved, then the history's write failed (a locked store): the command
        # line showed MLflow's traceback, and run again it said "already holds" and
        # recorded nothing: a change of champion that no history shows
        from mlflow.exceptions import MlflowException

        from pipelines.cli import run as vitalgru

        v1, v2, v3 = _registered(3)
        promote_if_better(NAME, v1, {"f1": 0.8}, ["f1"])
        promote_if_better(NAME, v2, {"f1": 0.7}, ["f1"])  # challenger
        write_tag = MlflowClient.set_registered_model_tag

        def locked_once(*a: Any, **k: Any) -> None:
            monkeypatch.setattr(MlflowClient, "set_registered_model_tag", write_tag)
            raise MlflowException("(sqlite3.OperationalError) database is locked")

        def cut_short() -> None:
            monkeypatch.setattr(MlflowClient, "set_registered_model_tag", locked_once)

        def held() -> list[tuple[str, str]]:
            return [(h["version"], h["how"]) for h in alias_history(NAME)]

        cut_short()
        capsys.readouterr()
        assert vitalgru(["models", "promote", NAME, v2, "--reason", "reviewed"]) == 2
        err = capsys.readouterr().err
        assert "database is locked" in err and "run the command again" in err
        assert "Traceback" not in err and len(err.splitlines()) == 1
        assert get_alias_version(NAME) == v2 and held() == [(v1, "gate")]
        assert vitalgru(["models", "promote", NAME, v2, "--reason", "reviewed"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["promoted"] and out["previous_version"] == v1 and out["now"] == v2
        assert held() == [(v1, "gate"), (v2, "manual")]
        assert get_alias_version(NAME, "challenger") is None
        # a rollback cut short: finished when run again, not taken one more step back
        cut_short()
        with pytest.raises(RegistryError, match="locked.* run the command again"):
            rollback(NAME, "alarms too often")
        back = rollback(NAME, "alarms too often")
        assert back.promoted and back.previous_version == v2 and get_alias_version(NAME) == v1
        # the gate: its decision kept, and the promotion recorded when it is run again
        cut_short()
        with pytest.raises(MlflowException, match="locked"):
            promote_if_better(NAME, v3, {"f1": 0.9}, ["f1"])
        tags = _client().get_model_version(NAME, v3).tags
        assert tags["vitalgru.gate_decision"].startswith("beats champion v1")
        d = promote_if_better(NAME, v3, {"f1": 0.9}, ["f1"])
        assert d.promoted and d.previous_version == v1 and d.reason.startswith("beats champion")
        assert held() == [(v1, "gate"), (v2, "manual"), (v1, "rollback"), (v3, "gate")]
        assert not promote(NAME, v3, "again").promoted  # recorded: nothing more to do
        assert not promote_if_better(NAME, v3, {"f1": 0.9}, ["f1"]).promoted
        assert len(alias_history(NAME)) == 4

    def test_a_rerun_records_the_champion_a_killed_gate_left_unrecorded(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # killed (SIGKILL) after the alias moved, before the history was written; the
        # training run again gates a new version, not this one, so the change was never
        # recorded, and a rollback after a later promotion skipped the real holder
        class Killed(BaseException):  # nothing after the point it is raised at runs
            pass

        v1, v2, v3, v4 = _registered(4)
        promote_if_better(NAME, v1, {"f1": 0.8}, ["f1"])
        write_tag = MlflowClient.set_registered_model_tag

        def killed(*a: Any, **k: Any) -> None:
            raise Killed

        monkeypatch.setattr(MlflowClient, "set_registered_model_tag", killed)
        with pytest.raises(Killed):
            promote_if_better(NAME, v2, {"f1": 0.9}, ["f1"])
        monkeypatch.setattr(MlflowClient, "set_registered_model_tag", write_tag)
        assert get_alias_version(NAME) == v2
        assert [h["version"] for h in alias_history(NAME)] == [v1]  # what the kill left
        again = promote_if_better(NAME, v3, {"f1": 0.9}, ["f1"])  # the rerun: no better
        assert not again.promoted and again.previous_version == v2
        held = [(h["version"], h["how"]) for h in alias_history(NAME)]
        assert held == [(v1, "gate"), (v2, "gate")]
        assert alias_history(NAME)[-1]["reason"].startswith("beats champion v1")
        assert promote_if_better(NAME, v4, {"f1": 0.95}, ["f1"]).promoted
        assert rollback(NAME, "alarms too often").promoted
        assert get_alias_version(NAME) == v2  # the champion before v4, not v1

    def test_two_promotions_at_once_are_judged_one_after_the_other(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        v1, v2, v3 = _registered(3)
        promote_if_better(NAME, v1, {"f1": 0.80}, ["f1"])
        read_champion = gate._champion_values

        def slow(*a: Any) -> Any:  # both trainings read the champion before either moves it
            time.sleep(0.5)
            return read_champion(*a)

        monkeypatch.setattr(gate, "_champion_values", slow)
        runs = [threading.Thread(target=promote_if_better, args=(NAME, v, {"f1": f1}, ["f1"]))
                for v, f1 in ((v2, 0.90), (v3, 0.85))]  # fmt: skip
        for t in runs:
            t.start()
        for t in runs:
            t.join(60)
        # Unclaimed, both passed against v1 and the later write won: v3 (0.85) could end
        # champion over v2 (0.90), and the history lost an entry.
        assert get_alias_version(NAME) == v2
        hist = [h["version"] for h in alias_history(NAME)]
        assert hist in ([v1, v2], [v1, v3, v2])
        assert (tmp := store / "mlflow.db.aliases.lock").exists() and tmp.read_text() == ""

    def test_rollback_needs_an_earlier_holder_and_history_stays_under_the_tag_limit(
        self, store: Path
    ) -> None:
        v1, v2 = _registered(2)
        set_alias(NAME, v1, "champion")  # promoted before the history existed
        with pytest.raises(ValueError, match="no earlier champion of .* is recorded"):
            rollback(NAME, "why")
        for k in range(30):  # many promotions with long reasons: the oldest are dropped
            promote(NAME, (v1, v2)[k % 2], f"round {k} " + "x" * 400)
        hist = alias_history(NAME)
        tag = _client().get_registered_model(NAME).tags["vitalgru.champion.history"]
        assert len(tag) <= 5000 and 5 < len(hist) < 30
        assert hist[-1]["reason"].startswith("round 29") and len(hist[-1]["reason"]) == 300

    def test_champion_values_fall_back_to_its_run_metrics(self, store: Path) -> None:
        with start_run("exp") as run:
            run.log_metrics({"f1": 0.9})
            v1 = _log(run, TinyGRU()).version
        with start_run("exp") as run:
            v2 = _log(run, TinyGRU()).version
        set_alias(NAME, v1, "champion")  # promoted by hand: no gate tags on v1
        d = promote_if_better(NAME, v2, {"f1": 0.85}, ["f1"])
        assert not d.promoted and d.comparison == {"f1": (0.85, 0.9)}

    @pytest.mark.parametrize(
        "failure",
        [
            MlflowException("database is locked", error_code=INTERNAL_ERROR),
            requests.ConnectionError("Connection refused"),
        ],
        ids=["server-error", "connection-lost"],
    )
    def test_a_champion_whose_run_cannot_be_read_is_never_passed_over(
        self, store: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
    ) -> None:
        with start_run("exp") as run:
            run.log_metrics({"f1": 0.95})
            v1 = _log(run, TinyGRU()).version
        with start_run("exp") as run:
            v2 = _log(run, TinyGRU()).version
        set_alias(NAME, v1, "champion")  # promoted by hand: no gate tags, its run holds f1

        def get_run(self: MlflowClient, run_id: str) -> Any:
            raise failure

        monkeypatch.setattr(MlflowClient, "get_run", get_run)
        # Read as "no value", the gate said the champion had none recorded and to promote
        # v2 (0.80) by hand over it (0.95); the monitor judged v1 against nothing: "ok".
        d = promote_if_better(NAME, v2, {"f1": 0.80}, ["f1"])
        assert not d.promoted and d.comparison == {"f1": (0.80, None)}
        assert "gate values are unknown: could not read the metrics" in d.reason
        assert "no recorded value" not in d.reason and str(failure)[:20] in d.reason
        assert get_alias_version(NAME) == v1 and get_alias_version(NAME, "challenger") == v2
        with pytest.raises(RegistryError, match=f"could not read the metrics of {NAME} "):
            version_gate_values(NAME, v1, ["f1"])

    def test_a_champion_whose_run_is_gone_has_no_values(
        self, store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        v1, v2 = _registered(2)
        set_alias(NAME, v1, "champion")

        def get_run(self: MlflowClient, run_id: str) -> Any:
            raise MlflowException(f"Run '{run_id}' not found", RESOURCE_DOES_NOT_EXIST)

        monkeypatch.setattr(MlflowClient, "get_run", get_run)
        assert version_gate_values(NAME, v1, ["f1"]) == {"f1": None}
        d = promote_if_better(NAME, v2, {"f1": 0.80}, ["f1"])
        assert not d.promoted and "has no recorded value for ['f1']" in d.reason

    def test_gated_values_and_version_tags_for_a_monitor(self, store: Path) -> None:
        v1, v2 = _registered(2)
        promote_if_better(NAME, v1, {"f1": 0.8, "auprc": 0.4}, ["f1", "auprc"])
        assert version_gate_values(NAME, v1, ["f1", "auprc"]) == {"f1": 0.8, "auprc": 0.4}
        assert version_gate_values(NAME, v2, ["f1"]) == {"f1": None}  # never gated
        set_version_tags(NAME, v1, {"vitalgru.monitor.status": "ok", "long": "x" * 6000})
        tags = _client().get_model_version(NAME, v1).tags
        assert tags["vitalgru.monitor.status"] == "ok" and len(tags["long"]) == 5000
        with pytest.raises(ValueError, match="has no version 9"):
            version_gate_values(NAME, "9", ["f1"])

    def test_incomparable_champion_is_kept(self, store: Path) -> None:
        v1, v2 = _registered(2)
        set_alias(NAME, v1, "champion")
        d = promote_if_better(NAME, v2, {"f1": 0.99}, ["f1"])
        assert not d.promoted and "not comparable" in d.reason
        assert get_alias_version(NAME) == v1

    def test_a_champion_value_that_is_nan_is_not_comparable(self, store: Path) -> None:
        # a metric undefined on the champion's evaluation (NaN) was passed over: the
        # newcomer won on the other keys alone
        with start_run("exp") as run:
            v1 = _log(run, TinyGRU()).version
            _client().log_metric(run.run_id, "auroc", float("nan"))
            _client().log_metric(run.run_id, "f1", 0.1)
        (v2,) = _registered(1)
        set_alias(NAME, v1, "champion")  # by hand: its values come from its run
        d = promote_if_better(NAME, v2, {"f1": 0.9, "auroc": 0.99}, ["f1", "auroc"])
        assert not d.promoted and "no recorded value for ['auroc']; not comparable" in d.reason
        assert get_alias_version(NAME) == v1

    def test_versions_and_aliases_as_the_registry_has_them(self, store: Path) -> None:
        v1, v2 = _registered(2)
        promote(NAME, v1, "first")
        # "01" is version 1: already champion, nothing recorded (it was taken as another
        # version: a change reported, and a rollback to "1" from "01")
        d = promote(NAME, f"0{v1}", "zero-padded")
        assert not d.promoted and "already holds" in d.reason
        promote(NAME, v2, "second")
        assert rollback(NAME, "back").previous_version == v2 and get_alias_version(NAME) == v1
        assert [h["version"] for h in alias_history(NAME)] == [v1, v2, v1]
        # MLflow's own refusal was a traceback; an alias of 234-255 characters it took,
        # and the history's tag (250 characters at most) then failed, the alias moved
        for alias in ("", "latest", "v2", "V10", "a" * 234, "a" * 300):
            with pytest.raises(ValueError, match="cannot be an alias"):
                promote(NAME, v2, "why", alias=alias)
            with pytest.raises(ValueError, match="cannot be an alias"):
                rollback(NAME, "why", alias=alias)
        assert get_alias_version(NAME, "a" * 234) is None
        assert promote(NAME, v2, "longest", alias="a" * 233).promoted
        assert [h["version"] for h in alias_history(NAME, "a" * 233)] == [v2]

    def test_missing_gate_key_is_a_clear_error(self, store: Path) -> None:
        (v1,) = _registered(1)
        with pytest.raises(ValueError, match=r"\['auprc'\] missing .* available: \['f1'\]"):
            promote_if_better(NAME, v1, {"f1": 0.8}, ["f1", "auprc"])
        assert get_alias_version(NAME) is None

    @pytest.mark.parametrize(
        ("metrics", "keys", "kw", "match"),
        [
            ({"f1": float("nan")}, ["f1"], {}, "nan"),
            ({"f1": 0.5}, [], {}, "non-empty"),
            ({"f1": 0.5}, "f1", {}, "non-empty"),
            ({"f1": 0.5}, ["f1"], {"lower_is_better": ["brier"]}, "not gate keys"),
        ],
    )
    def test_invalid_gate_inputs(
        self, store: Path, metrics: dict, keys: Any, kw: dict, match: str
    ) -> None:
        (v1,) = _registered(1)
        with pytest.raises(ValueError, match=match):
            promote_if_better(NAME, v1, metrics, keys, **kw)

    def test_unknown_version(self, store: Path) -> None:
        _registered(1)
        with pytest.raises(ValueError, match="no version 7"):
            promote_if_better(NAME, "7", {"f1": 0.5}, ["f1"])


class TestModelsCommand:
    def test_list_promote_and_rollback_from_the_command_line(
        self, store: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from pipelines.cli import main

        v1, v2 = _registered(2)
        promote_if_better(NAME, v1, {"f1": 0.8}, ["f1"])
        promote_if_better(NAME, v2, {"f1": 0.75}, ["f1"])
        set_version_tags(NAME, v1, {"vitalgru.monitor.status": "degraded",
                                    "vitalgru.monitor.checked_at": "2027-01-02"})  # fmt: skip
        capsys.readouterr()
        assert main(["models", "list", NAME]) == 0
        text = capsys.readouterr().out.splitlines()
        assert text[0] == NAME and text[1].split() == [
            "version", "created", "aliases", "gate", "values", "last", "check"]  # fmt: skip
        assert text[2].split()[0] == v2 and "challenger" in text[2] and "f1 0.750" in text[2]
        assert "champion" in text[3] and "degraded (2027-01-02)" in text[3]
        assert f"version {v1}" in text[5] and "gate: first champion" in text[5]

        assert main(["models", "promote", NAME, v2, "--reason", "reviewed by the team"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["promoted"] and out["now"] == v2 and out["previous_version"] == v1
        assert main(["models", "rollback", NAME, "--reason", "v2 alarms too often"]) == 0
        assert json.loads(capsys.readouterr().out)["now"] == v1
        assert main(["models", "list", NAME, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)[NAME]
        assert [h["how"] for h in listed["champion_history"]] == ["gate", "manual", "rollback"]
        assert main(["models", "list", "early-warning"]) == 0
        assert capsys.readouterr().out == "vitalgru-early-warning: not registered\n"
        # no early-warning champion, a config file mistyped: one line before any Prefect
        # server starts (the flow failed in 115 lines of its log)
        assert main(["monitor", "early-warning"]) == 2
        assert "cannot resolve models:/vitalgru-early-warning@champion" in capsys.readouterr().err
        assert main(["monitor", "arrhythmia", "--config", "nowhere.yaml"]) == 2
        assert "nowhere.yaml" in capsys.readouterr().err
        with pytest.raises(SystemExit, match="has no version 7"):
            main(["models", "promote", NAME, "7", "--reason", "x"])
        # the champion was given the challenger alias too: one version both, which the gate
        # and a promotion to champion never leave
        with pytest.raises(SystemExit, match=f"version {v1} is the champion of {NAME}; the "):
            main(["models", "promote", NAME, v1, "--reason", "x", "--alias", "challenger"])
        assert get_alias_version(NAME, "challenger") is None and get_alias_version(NAME) == v1
        with pytest.raises(SystemExit) as e:  # a reason is required
            main(["models", "rollback", NAME])
        assert e.value.code == 2

"""A working folder (``mlflow.db`` with ``mlartifacts/`` beside it) moved, copied or
restored under another path: its models load, its runs' artifacts read, and new runs write
in the folder it is in now, not in the one MLflow recorded."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from vitalgru.errors import ModelLoadError, StoreMovedError
from vitalgru.tracking import (
    load_model,
    log_model,
    promote_if_better,
    relocation,
    start_run,
    tracking_uri,
    unwritable_store,
)

NAME = "vitalgru-test"


class TinyNet(nn.Module):
    """A minimal network following the vitalgru model contract (test-only)."""

    def __init__(self, n_features: int = 3, hidden_size: int = 4) -> None:
        super().__init__()
        self.n_features, self.hidden_size = n_features, hidden_size
        self.gru = nn.GRU(n_features, hidden_size, batch_first=True)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, **extra: Any):
        out, h_n = self.gru(x, h0)
        return out[:, -1], h_n

    def config_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "hidden_size": self.hidden_size}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TinyNet:
        return cls(**cfg)


PREFIXES = (TinyNet.__module__,)


def _client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


def _build(folder: Path) -> tuple[str, TinyNet]:
    """A champion and a run with a text artifact in the store of ``folder`` (the working
    directory); the run's id and the network."""
    torch.manual_seed(0)
    net = TinyNet()
    with start_run("exp") as run:
        run.log_text("one", "a.txt")
        ref = log_model(run, net, preprocessing={"fs": 360.0}, config={"seed": 0},
                        registered_name=NAME, allowed_prefixes=PREFIXES)  # fmt: skip
    assert promote_if_better(NAME, ref.version, {"f1": 0.5}, ["f1"]).promoted
    assert (folder / "mlartifacts" / "exp" / run.run_id / "artifacts" / "a.txt").is_file()
    return run.run_id, net


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def _locations(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        # (not MLflow's Default experiment, which the test store's template made elsewhere)
        sql = "SELECT artifact_location FROM experiments WHERE name != 'Default'"
        rows = [r[0] for r in con.execute(sql)]
        rows += [r[0] for r in con.execute("SELECT artifact_uri FROM runs")]
        rows += [r[0] for r in con.execute("SELECT storage_location FROM model_versions")]
        rows += [r[0] for r in con.execute("SELECT artifact_location FROM logged_models")]
    finally:
        con.close()
    return rows


@pytest.fixture
def folder(store: Path) -> Path:
    """The store fixture's working folder, which the tests move or copy as a whole."""
    return store


class TestMovedFolder:
    def test_a_moved_folder_loads_reads_and_writes_where_it_is(
        self, folder: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        run_id, net = _build(folder)
        new = tmp_path_factory.mktemp("moved") / "wf"
        monkeypatch.chdir(tmp_path_factory.getbasetemp())
        shutil.move(folder, new)
        monkeypatch.chdir(new)

        loaded = load_model(f"models:/{NAME}@champion", allowed_prefixes=PREFIXES)
        assert loaded.version == "1" and _same_weights(loaded.module, net)
        assert mlflow.artifacts.load_text(f"runs:/{run_id}/a.txt") == "one"
        # every location names the folder the store is in now
        assert all(str(new) in loc for loc in _locations(new / "mlflow.db")), _locations(
            new / "mlflow.db"
        )
        # a new run writes here, and does not make the old folder again
        with start_run("exp") as run:
            run.log_text("two", "b.txt")
        assert (new / "mlartifacts" / "exp" / run.run_id / "artifacts" / "b.txt").is_file()
        assert not folder.exists()

    def test_a_copy_reads_its_own_files_while_the_original_is_still_there(
        self, folder: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        run_id, _ = _build(folder)
        copy = tmp_path_factory.mktemp("copy") / "wf"
        shutil.copytree(folder, copy, symlinks=True)
        # the original goes on, and its files change: the copy must not read them
        (folder / "mlartifacts" / "exp" / run_id / "artifacts" / "a.txt").write_text("original")
        before = sorted(p.relative_to(folder) for p in (folder / "mlartifacts").rglob("*"))
        monkeypatch.chdir(copy)

        assert load_model(f"models:/{NAME}@champion", allowed_prefixes=PREFIXES).version == "1"
        assert mlflow.artifacts.load_text(f"runs:/{run_id}/a.txt") == "one"
        with start_run("exp") as run:
            run.log_text("two", "b.txt")
        assert (copy / "mlartifacts" / "exp" / run.run_id / "artifacts" / "b.txt").is_file()
        after = sorted(p.relative_to(folder) for p in (folder / "mlartifacts").rglob("*"))
        assert after == before  # nothing written into the original
        # the original's store still names its own folder
        assert all(str(copy) not in loc for loc in _locations(folder / "mlflow.db"))

    def test_a_store_that_was_not_moved_is_left_as_it_is(self, folder: Path) -> None:
        _build(folder)
        before = _locations(folder / "mlflow.db")
        assert relocation.relocate_store(folder / "mlflow.db") == 0
        assert _locations(folder / "mlflow.db") == before

    def test_a_store_moved_without_its_artifacts_keeps_naming_them(
        self, folder: Path, tmp_path_factory: pytest.TempPathFactory,
    ) -> None:  # fmt: skip
        # MLFLOW_TRACKING_URI at a copy of the database alone: the artifacts it names are
        # where they were, and are read there
        _build(folder)
        alone = tmp_path_factory.mktemp("alone") / "mlflow.db"
        shutil.copyfile(folder / "mlflow.db", alone)
        assert relocation.relocate_store(alone) == 0
        assert _locations(alone) == _locations(folder / "mlflow.db")

    def test_a_moved_store_that_cannot_be_written_is_said_in_one_line(
        self, folder: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        _build(folder)
        new = tmp_path_factory.mktemp("ro") / "wf"
        monkeypatch.chdir(tmp_path_factory.getbasetemp())
        shutil.move(folder, new)
        real = sqlite3.connect

        def read_only(target: Any, *a: Any, **kw: Any) -> sqlite3.Connection:
            if "mode=ro" not in str(target):  # as a read-only file or folder answers
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return real(target, *a, **kw)

        monkeypatch.setattr(relocation.sqlite3, "connect", read_only)
        with pytest.raises(StoreMovedError) as e:
            relocation.relocate_store(new / "mlflow.db")
        said = str(e.value)
        assert "\n" not in said and str(folder) in said and "writable" in said


class TestMissingArtifacts:
    def test_a_model_whose_files_are_gone_is_named_with_the_folder(self, folder: Path) -> None:
        _build(folder)
        shutil.rmtree(folder / "mlartifacts")
        with pytest.raises(ModelLoadError) as e:
            load_model(f"models:/{NAME}@champion", allowed_prefixes=PREFIXES)
        said = str(e.value)
        assert "vitalgru-load-" not in said  # not the temporary folder it was copied into
        assert str(folder / "mlartifacts") in said and "version 1" in said

    def test_a_monitor_of_a_model_whose_files_are_gone_stops_before_its_flow(
        self, folder: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # it failed inside the flow, after Prefect's traceback of the load error
        from pipelines.cli import build_parser
        from pipelines.cli_models import cmd_monitor

        _build(folder)
        shutil.rmtree(folder / "mlartifacts")

        def no_flow() -> None:
            raise AssertionError("a Prefect server was asked for")

        monkeypatch.setattr("pipelines.cli_models.check_prefect", no_flow)
        args = build_parser().parse_args(
            ["monitor", "early-warning", "--model", f"models:/{NAME}@champion", "--data", "x"]
        )
        with pytest.raises(SystemExit) as e:
            cmd_monitor(args)
        said = str(e.value.code)
        assert said.startswith(f"vitalgru: error: cannot load models:/{NAME}@champion: ")
        assert "\n" not in said and str(folder / "mlartifacts") in said


class TestEnvironmentKeptFromTheOldPlace:
    def test_a_store_named_in_a_folder_that_is_gone_is_refused_for_writing(
        self, folder: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # MLFLOW_TRACKING_URI kept from before a move names the folder that is gone: a
        # training made it again with an empty registry and registered its model there
        gone = tmp_path_factory.mktemp("old") / "wf"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{gone / 'mlflow.db'}")
        said = unwritable_store()
        assert said is not None and "\n" not in said
        assert str(gone) in said and "unset MLFLOW_TRACKING_URI" in said
        assert not gone.exists()  # not made again by the check

    def test_a_new_store_the_environment_names_is_still_made(
        self, folder: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # a folder that is there (an empty volume), or no store in the working folder
        there = tmp_path_factory.mktemp("volume")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{there / 'mlflow.db'}")
        assert unwritable_store() is None
        elsewhere = tmp_path_factory.mktemp("bare")
        monkeypatch.chdir(elsewhere)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere / 'new' / 'mlflow.db'}")
        assert unwritable_store() is None

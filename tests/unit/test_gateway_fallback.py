"""A champion whose artifact cannot be loaded: the gateway says which version and why,
serves the newest earlier champion that loads (and says so in ``/health`` and
``/metrics``), or, with none, stops with one line and its own exit status; before, a
torch traceback ended every start, and Compose restarted it in a loop."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from monitor_kit import PREPROCESSING, untrained_monitor
from prometheus_client.parser import text_string_to_metric_families

from pipelines.cli import run
from pipelines.gateway import create_app
from pipelines.gateway_models import fallback_name, restart_notes, shadows_going_on
from pipelines.gateway_serve import EXIT_NO_MODEL, ModelUnavailable, build_ward
from vitalgru import tracking
from vitalgru.data.beat_features import RR_FEATURES
from vitalgru.errors import ModelNotRegistered
from vitalgru.models.arrhythmia import ArrhythmiaGRU
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.tracking.stores import mlflow_client

NAME = tracking.ARRHYTHMIA_MODEL_NAME
CHAMPION = f"models:/{NAME}@champion"


def _register(f1: float) -> str:
    """A small arrhythmia network registered and put through the gate on ``f1``."""
    with tracking.start_run("exp") as run_:
        ref = tracking.log_model(run_, ArrhythmiaGRU(n_rr=len(RR_FEATURES), hidden=8).eval(),
                                 preprocessing=PREPROCESSING, config={}, registered_name=NAME)  # fmt: skip
    tracking.promote_if_better(NAME, str(ref.version), {"f1": f1}, ["f1"])
    return str(ref.version)


def _damage(version: str, root: Path) -> None:
    """Overwrite the weights of ``version`` with bytes torch cannot read."""
    model_id = mlflow_client().get_model_version(NAME, version).source.rsplit("/", 1)[-1]
    (weights,) = [p for p in root.rglob("weights.pt") if model_id in p.parts]
    weights.write_bytes(b"not a tensor file " * 8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_champion_that_cannot_be_loaded_falls_back_to_an_earlier_one_or_stops(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    # 1 champion, 2 kept from it by the gate (worse), 3 champion with damaged weights
    assert [_register(f1) for f1 in (0.5, 0.4, 0.6)] == ["1", "2", "3"]
    assert tracking.get_alias_version(NAME) == "3"
    _damage("3", tmp_path)

    fallbacks: dict[str, dict] = {}
    with caplog.at_level(logging.WARNING, logger="pipelines.gateway"):
        ward, names = build_ward(CHAMPION, None, fallbacks=fallbacks)
    said = [r.getMessage() for r in caplog.records]
    assert any(f"{CHAMPION} (version 3) cannot be loaded" in s and "UnpicklingError" in s
               for s in said), said  # fmt: skip
    assert any("FALL-BACK" in s and "serves version 1" in s for s in said), said
    # version 2 never passed the gate: not served however new
    assert fallbacks["arrhythmia"]["wanted"] == "3" and fallbacks["arrhythmia"]["serving"] == "1"
    assert names["arrhythmia"].startswith(f"{CHAMPION} (version 1, a fall-back")
    with TestClient(create_app(ward, tick_s=0, models=names, model_fallbacks=fallbacks)) as c:
        answer = c.get("/health")
        health = answer.json()
        metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(c.get("/metrics").text)
                   for s in f.samples}  # fmt: skip
    # degraded, not ok (before: "ok" with the fall-back beside it); still 200, so Compose's
    # healthcheck (urlopen: an error status fails it) keeps the gateway that monitors
    assert answer.status_code == 200 and health["status"] == "degraded"
    assert health["model_fallbacks"]["arrhythmia"]["serving"] == "1"
    assert "version 3" in health["model_fallbacks"]["arrhythmia"]["error"]
    key = ("vitalgru_model_fallback",
           (("model", "arrhythmia"), ("serving_version", "1"), ("wanted_version", "3")))  # fmt: skip
    assert metrics[key] == 1
    ward.close()

    # no earlier champion loads either: one line, its own exit status, before any port
    _damage("1", tmp_path)
    with pytest.raises(ModelUnavailable, match="nor any earlier champion"):
        build_ward(CHAMPION, None)
    capsys.readouterr()
    argv = ["serve", "--early-warning-model", "none", "--state", "none", "--audit", "none",
            "--port", str(_free_port())]  # fmt: skip
    assert run(argv) == EXIT_NO_MODEL
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"vitalgru: error: the arrhythmia model {CHAMPION} cannot be")
    assert "version 3: " in err[-1] and "version 1: " in err[-1]
    # a logging handler another test left on a closed stream (Prefect's console) prints its
    # own "--- Logging error ---" report: not the command's output
    said = re.sub(r"--- Logging error ---.*?\nArguments: [^\n]*", "", "\n".join(err), flags=re.S)
    assert "Traceback" not in said, said


def test_a_version_the_champion_was_rolled_back_from_is_never_a_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # v2 was withdrawn (rolled back to v1), then v3 became champion and broke: v2 was the
    # first fall-back tried, and served, though the docs said it never would be
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    assert [_register(f1) for f1 in (0.5, 0.6)] == ["1", "2"]
    tracking.rollback(NAME, "v2 over-alarms")
    assert tracking.get_alias_version(NAME) == "1"
    assert _register(0.7) == "3" and tracking.get_alias_version(NAME) == "3"
    assert tracking.earlier_holders(NAME, "3") == ["1"]
    _damage("3", tmp_path)
    fallbacks: dict[str, dict] = {}
    ward, _ = build_ward(CHAMPION, None, fallbacks=fallbacks)
    assert fallbacks["arrhythmia"]["serving"] == "1"
    ward.close()
    # put back by hand the same way: v4 withdrawn for v1, v5 broken
    assert _register(0.8) == "4"
    tracking.promote(NAME, "1", "v4 misses runs on the night shift")
    assert _register(0.9) == "5"
    assert tracking.earlier_holders(NAME, "5") == ["3", "1"]


def test_nothing_registered_under_the_uri_is_the_exit_status_of_nothing_to_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: MLflow's "Registered model alias champion not found." and exit 2, the status
    # of a bad flag, though no flag was wrong: the registry held no champion yet (a fresh
    # Compose stack before its first training), which a promotion puts right, as 4 says
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    with tracking.start_run("exp") as run_:  # registered, never promoted
        tracking.log_model(run_, ArrhythmiaGRU(n_rr=len(RR_FEATURES), hidden=8).eval(),
                           preprocessing=PREPROCESSING, config={}, registered_name=NAME)  # fmt: skip
    port = str(_free_port())
    said = {
        CHAMPION: f"no version of {NAME} is its champion yet (versions: 1)",
        "models:/vitalgru-arrhythmya@champion":
            f"no model is registered as 'vitalgru-arrhythmya' (registered: {NAME})",
        f"models:/{NAME}/7": f"{NAME} has no version 7 (versions: 1)",
        # /latest: exit 2 and "registered model ... has no versions" for a misspelt name
        "models:/vitalgru-arrhythmya/latest":
            f"no model is registered as 'vitalgru-arrhythmya' (registered: {NAME})",
    }  # fmt: skip
    for uri, why in said.items():
        capsys.readouterr()
        argv = ["serve", "--arrhythmia-model", uri, "--early-warning-model", "none",
                "--state", "none", "--audit", "none", "--port", port]  # fmt: skip
        assert run(argv) == EXIT_NO_MODEL, uri
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"vitalgru: error: no arrhythmia model to serve: cannot "
                                  f"resolve {uri}: {why}"), err  # fmt: skip


def test_a_restart_on_a_fall_back_says_what_changed_for_the_patients_it_takes_up(
    sepsis_fit: tuple[Any, dict, list[dict]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # before: any champion name unlike the state file's (a fall-back's says so in its
    # name) gave "the models changed ...: the sepsis patients' stored hours are scored
    # again by the new model": said of the same version served as a fall-back, of an
    # arrhythmia fall-back with the sepsis model as it was, and of an earlier version
    model, preprocessing, rows = sepsis_fit
    serving = {"arrhythmia": "models:/ecg@champion (version 3)",
               "early-warning": "models:/ew@champion (version 3)"}  # fmt: skip

    def monitor(task: str, uri: str | None, names: dict[str, str], fallbacks: Any = None) -> Any:
        if not uri:
            return None
        names[task] = serving[task]
        if task == "arrhythmia":
            return untrained_monitor()
        return EarlyWarningMonitor(model, preprocessing)

    monkeypatch.setattr("pipelines.gateway_serve._monitor", monitor)
    state = tmp_path / "ward-state.sqlite"

    def restart() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pipelines.gateway"):
            ward, _ = build_ward("models:/ecg@champion", "models:/ew@champion", state)
        ward.close()
        ward.journal.close()
        return [r.getMessage() for r in caplog.records]

    ward, _ = build_ward("models:/ecg@champion", "models:/ew@champion", state)
    ward.admit_sepsis("icu-1")
    for row in rows[:4]:
        ward.add_hour("icu-1", row)
    ward.admit_ecg("bed-1", 360.0)
    ward.close()
    ward.journal.close()
    # version 3 of both served as a fall-back (a newer champion broke): the same networks
    serving = {"arrhythmia": fallback_name("models:/ecg@champion", "3", "4"),
               "early-warning": fallback_name("models:/ew@champion", "3", "4")}  # fmt: skip
    assert restart() == []
    # the arrhythmia champion falls back further; the sepsis model is the one it was
    serving["arrhythmia"] = fallback_name("models:/ecg@champion", "2", "4")
    (said,) = restart()
    assert said.startswith("gateway: the arrhythmia model is not the one the state was "
                           "written with (models:/ecg@champion (version 3, a fall-back")  # fmt: skip
    assert "now models:/ecg@champion (version 2, a fall-back" in said and "sepsis" not in said
    # the sepsis model falls back to version 2: its hours are scored by that one, not a "new"
    serving["early-warning"] = fallback_name("models:/ew@champion", "2", "4")
    (said,) = restart()
    assert "the 1 sepsis patient(s)' stored hours are scored again by the one serving now" in said
    assert "now models:/ew@champion (version 2, a fall-back: version 4 cannot" in said
    assert "new model" not in said


def test_a_fall_back_to_the_same_version_is_the_same_champion_for_a_shadow() -> None:
    ran = {"arrhythmia": "models:/a@champion (version 2)",
           "shadow arrhythmia": "models:/a@challenger (version 4)"}  # fmt: skip
    same = {**ran, "arrhythmia": fallback_name("models:/a@champion", "2", "3")}
    assert shadows_going_on(ran, same) == {"arrhythmia"}
    assert restart_notes(ran, same, sepsis=0, ecg=5) == []
    older = {**ran, "arrhythmia": fallback_name("models:/a@champion", "1", "3")}
    assert shadows_going_on(ran, older) == set()
    assert restart_notes(ran, older, sepsis=3, ecg=0) == []  # no ECG patient to tell of


def test_latest_of_a_model_without_versions_is_not_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every command resolves /latest as the others: ModelNotRegistered saying what the
    # registry holds (before: a plain ModelLoadError, "has no versions", even for a name
    # never registered)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow_client().create_registered_model("empty")
    with pytest.raises(ModelNotRegistered, match=r"empty has no version yet \(versions: none\)"):
        tracking.resolve_model_uri("models:/empty/latest")
    with pytest.raises(ModelNotRegistered,
                       match=r"no model is registered as 'no-such' \(registered: empty\)"):  # fmt: skip
        tracking.resolve_model_uri("models:/no-such/latest")

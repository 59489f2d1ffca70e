"""The ``train-early-warning`` flow end to end on 160 real Challenge-2019 patients (tiny
GRU-D): dataset -> CV (GRU-D, trees, bedside scores, blend) -> final model -> MLflow registry ->
champion gate; then ``evaluate_early_warning`` with the champion on a folder holding a
malformed file, the live replay, and the ``monitor-early-warning`` check."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from fhir.resources.R4B.bundle import Bundle

from pipelines.audit import read_rows
from pipelines.cli import main as cli
from pipelines.early_warning import build_dataset, train_early_warning_flow
from pipelines.evaluate import evaluate_early_warning
from pipelines.monitor import monitor_early_warning_flow
from pipelines.monitor_verdict import STATUSES
from pipelines.replay import replay_early_warning
from vitalgru import tracking
from vitalgru.config import EarlyWarningConfig
from vitalgru.data.early_warning_files import load_dataset
from vitalgru.data.heldout_scores import read_heldout_alarms
from vitalgru.errors import RecordError
from vitalgru.io.psv import MEASUREMENT_COLUMNS, read_psv
from vitalgru.io.psv_folder import list_psv
from vitalgru.metrics.utility import normalized_utility
from vitalgru.models.early_warning import SepsisBlend
from vitalgru.training.early_warning import BLEND


class TestTrainEarlyWarningFlow:
    def test_flow_registers_promotes_and_evaluates(
        self, isolated_mlflow: Path, physionet_mirror: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        setA = physionet_mirror / "challenge-2019" / "training_setA"
        overrides = {
            "physionet.mirror": str(physionet_mirror),
            "limit_patients": 160,
            "n_folds": 2,
            "models": ["gru_d", "gbm", "news2", "qsofa"],
            "gbm_max_iter": 10,
            "val_fraction": 0.3,
            "hidden_size": 8,
            "max_epochs": 1,
            "batch_size": 32,
            "torch_threads": 1,
            "cache_dir": str(isolated_mlflow / "cache"),
            "out_dir": str(isolated_mlflow / "out"),
        }
        res = train_early_warning_flow(overrides=overrides)
        assert res["version"] == "1" and res["promoted"] is True
        assert res["model_uri"] == "models:/vitalgru-early-warning/1"
        assert set(res["metrics"]) >= {"utility", "auroc", "auprc"}
        # The registered model is the blend, gated on the blend's cross-validated means.
        assert res["metrics"]["utility"] == res["cv_summary"][BLEND]["utility_mean"]
        loaded = tracking.load_model(res["model_uri"])
        assert isinstance(loaded.module, SepsisBlend)
        assert len(loaded.preprocessing["tree_features"]) == loaded.module.trees.n_inputs
        # The GRU+trees blend is reported (and logged to MLflow) beside the four models.
        assert set(res["cv_summary"]) == {"gru_d", "gbm", "news2", "qsofa", BLEND}
        manifest = json.loads((Path(res["dataset_dir"]) / "manifest.json").read_text())
        assert manifest["n_patients"] == 160 and manifest["n_folds"] == 2
        client = mlflow.MlflowClient()
        # The run keeps what reproduces and audits it: the final fit's record, the patients
        # and their folds, the source files' checksums (out_dir/final/fit.json alone before,
        # overwritten by the next training)
        fit = json.loads((Path(res["final_dir"]) / "fit.json").read_text())
        params = client.get_run(res["run_id"]).data.params
        assert params["resolved.final.best_epoch"] == str(fit["best_epoch"] + 1)
        assert params["resolved.final.stop_reason"] == fit["stop_reason"] == "max_epochs"
        logged = {a.path for d in ("dataset", "final")
                  for a in client.list_artifacts(res["run_id"], d)}  # fmt: skip
        assert {"dataset/folds.csv", "dataset/source_sha256.csv", "final/fit.json"} <= logged
        assert manifest["source_files"] == 160 and len(manifest["source_digest"]) == 64
        # The registry shows what the model is and this version's CV table, its row first.
        card = client.get_model_version("vitalgru-early-warning", "1").description
        rows = [line for line in card.splitlines() if line.startswith("| ")][1:]
        utility = f"{res['cv_summary'][BLEND]['utility_mean']:.3f}"
        assert rows[0].startswith(f"| **GRU-D + trees blend (this model)** | {utility} ± ")
        assert len(rows) == 5 and "on 160 patients" in card
        about = client.get_registered_model("vitalgru-early-warning").description
        assert "not a medical device" in about
        # the cohort and its cross-validation as the run's datasets; the gate's figures are
        # the logged model's, naming the cross-validation they were measured on
        inputs = {
            {t.key: t.value for t in d.tags}["mlflow.data.context"]: d.dataset
            for d in client.get_run(res["run_id"]).inputs.dataset_inputs
        }
        assert inputs["training"].digest == manifest["source_digest"][:32]
        assert inputs["evaluation"].digest == manifest["cohort_digest"]
        assert inputs["evaluation"].name == "challenge-2019 training_setA 2-fold CV"
        # tagged with its task as the arrhythmia training's run is (it had no task tag)
        assert client.get_run(res["run_id"]).data.tags["task"] == "early-warning"
        assert "160 patients of hospital system A." in card
        model_id = client.get_model_version("vitalgru-early-warning", "1").source.split("/")[-1]
        figures = {m.key: m for m in client.get_logged_model(model_id).metrics}
        assert figures["utility"].value == res["metrics"]["utility"]
        assert figures["utility"].dataset_digest == manifest["cohort_digest"]
        per_fold = pd.read_csv(Path(res["cv_dir"]) / "per_fold.csv")
        assert len(per_fold) == 10
        # how each fold's GRU-D fit ended, beside its figures and as params (only the final
        # fit's was kept, though the gate compares the folds')
        gru_rows = per_fold[per_fold["model"].isin(["gru_d", BLEND])]
        assert set(gru_rows["gru_stop_reason"]) == {"max_epochs"}
        assert (gru_rows["gru_epochs"] == 1).all() and (gru_rows["gru_best_epoch"] == 1).all()
        for k in (0, 1):
            assert params[f"resolved.cv.fold{k}.gru_stop_reason"] == "max_epochs"
            assert params[f"resolved.cv.fold{k}.gru_epochs"] == "1"
        oof = pd.read_parquet(Path(res["cv_dir"]) / "oof_scores.parquet")
        assert oof["score_gru_d"].notna().all() and oof[f"score_{BLEND}"].notna().all()
        # the registered kind's held-out scores are logged for the gate's paired interval
        # (a first champion has none to face); each fold's utility from the alarms read
        # back is that fold's figure
        got = client.download_artifacts(res["run_id"], "cv/heldout_scores.parquet",
                                        str(isolated_mlflow / "held"))  # fmt: skip
        held = read_heldout_alarms(got)
        frame = pd.read_parquet(got)
        assert np.array_equal(frame["score"], oof[f"score_{BLEND}"])
        assert held.patient_ids.size == 160 and held.labels.size == len(oof)
        assert res["promotion_paired"] is None
        frame = frame.sort_values(["patient_id", "hour"], kind="stable")
        blend = per_fold[per_fold["model"] == BLEND].set_index("fold")
        for k in (0, 1):
            m = frame["fold"].to_numpy() == k
            ids = frame["patient_id"].to_numpy()[m]
            off = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1, ids.size]
            # (read_csv's float parser may drop the last digit of per_fold.csv's threshold)
            assert frame["threshold"][m].to_numpy() == pytest.approx(blend.loc[k, "threshold"],
                                                                     rel=1e-15)  # fmt: skip
            u = normalized_utility(held.labels[m], held.alarms[m], off)
            assert u == pytest.approx(blend.loc[k, "utility"], abs=1e-12)
        # the held-out patients pooled, with the interval of their utility, on the run and
        # the card
        logged_m = client.get_run(res["run_id"]).data.metrics
        pooled_all = normalized_utility(held.labels, held.alarms, held.offsets)
        assert logged_m["cv.pooled.utility_estimate"] == pytest.approx(pooled_all, abs=1e-12)
        assert logged_m["cv.pooled.utility_low"] <= logged_m["cv.pooled.utility_high"]
        assert f"this model's utility is {pooled_all:.3f}, 95 % interval " in " ".join(card.split())

        data = isolated_mlflow / "eval_data"
        data.mkdir()
        for f in list_psv(setA)[200:230]:
            shutil.copy(f, data / f.name)
        (data / "p999999.psv").write_text("HR|O2Sat\n1|2\n")
        # one patient's heart rate at one hour is text: read as missing, counted, kept
        first = sorted(data.glob("p0*.psv"))[0]
        rows = first.read_text().splitlines()
        rows[1] = "|".join(["n/a", *rows[1].split("|")[1:]])
        first.write_text("\n".join(rows) + "\n")
        # another's rows skip two ICU hours: scored, and the skip is counted
        second = sorted(data.glob("p0*.psv"))[1]
        rows = second.read_text().splitlines()
        second.write_text("\n".join([*rows[:3], *rows[5:]]) + "\n")
        ev = evaluate_early_warning(
            "models:/vitalgru-early-warning@champion", str(data), str(isolated_mlflow / "eval"),
            write_predictions=True,
        )  # fmt: skip
        # the risks as the Challenge wanted predictions, beside the labels of the files scored
        # (not the unreadable one): a row for each of a file's rows, skipped hours too, and
        # the utility computed from the files alone is the report's
        ch = Path(ev["paths"]["challenge"])
        preds = sorted((ch / "predictions").glob("*.psv"))
        links = sorted((ch / "labels").glob("*.psv"))
        assert [p.name for p in preds] == [p.name for p in links] == sorted(
            p.name for p in data.glob("p0*.psv"))  # fmt: skip
        labels, alarms, offsets = [], [], [0]
        for p, lab in zip(preds, links, strict=True):
            got = pd.read_csv(p, sep="|")
            assert list(got.columns) == ["PredictedProbability", "PredictedLabel"]
            y = pd.read_csv(lab, sep="|")["SepsisLabel"].to_numpy()
            assert len(got) == len(y)
            labels.append(y)
            alarms.append(got["PredictedLabel"].to_numpy())
            offsets.append(offsets[-1] + len(y))
        from_files = normalized_utility(np.concatenate(labels), np.concatenate(alarms),
                                        np.asarray(offsets))  # fmt: skip
        assert from_files == pytest.approx(ev["utility"], abs=1e-12)
        assert ev["model_version"] == "1"
        assert ev["n_patients"] == 30 and ev["n_excluded_files"] == 1
        assert ev["n_non_numeric_values"] == 1 and ev["n_implausible_values"] == 0
        assert ev["n_patients_with_skipped_hours"] == 1 and ev["n_skipped_hours"] == 2
        assert ev["n_patients_with_label_reversals"] == 0
        for key in ("utility", "auroc", "auprc"):
            assert key in ev
        written = json.loads((isolated_mlflow / "eval" / "metrics.json").read_text())
        assert written["n_patients"] == 30
        md = (isolated_mlflow / "eval" / "metrics.md").read_text()
        assert written["paths"]["markdown"] == str(isolated_mlflow / "eval" / "metrics.md")
        assert "Patients: 30 (" in md and "1 patient(s) whose rows skip ICU hours" in md
        # broken down by ICU type, sex and age band: the sexes add up to the folder
        groups = written["subgroups"]
        assert groups["female"]["n_patients"] + groups["male"]["n_patients"] == 30
        assert "| group | patients | septic | utility | AUROC |" in md
        scores = pd.read_parquet(isolated_mlflow / "eval" / "scores.parquet")
        assert scores["risk"].between(0, 1).all()
        # the registered model carries its recalibration: each hour's probability, the
        # calibration of risk and probability, and the reliability tables
        assert scores["probability"].between(0, 1).all()
        order = np.argsort(scores["risk"].to_numpy(), kind="stable")
        assert (np.diff(scores["probability"].to_numpy()[order]) >= -1e-6).all()
        assert sum(b["n"] for b in written["calibration"]) == len(scores)
        assert 0 <= written["probability_calibration"]["brier"] < 1
        assert "Calibration of the hourly risk" in md and "recalibrated probability" in md
        # counts are whole numbers in the JSON, and the hours are the scored rows
        assert written["n_patient_hours"] == len(scores) and type(written["n_patient_hours"]) is int
        assert type(written["n_septic_patients"]) is int
        att = pd.read_csv(isolated_mlflow / "eval" / "attrition.csv")
        assert att["reason"].tolist() == ["missing_columns"]

        # The champion as a live monitor over the same folder: every stay fed an hour per
        # tick gives the risks (and so the utility) of scoring whole stays.
        rep_path = isolated_mlflow / "ward" / "sepsis.json"
        assert cli(["replay", "early-warning", "--model", "models:/vitalgru-early-warning@champion",
                    "--data", str(data), "--out", str(rep_path)]) == 0  # fmt: skip
        rep = json.loads(rep_path.read_text())
        assert rep["metrics"]["n_patients"] == 30 and rep["data"]["n_excluded_files"] == 1
        assert rep["data"]["n_non_numeric_values"] == 1
        assert rep["metrics"]["utility"] == pytest.approx(ev["utility"], abs=1e-9)
        assert rep["metrics"]["auroc"] == pytest.approx(ev["auroc"], abs=1e-6)
        hours = pd.read_parquet(rep_path.with_name("sepsis.hours.parquet"))
        np.testing.assert_allclose(hours["risk"], scores["risk"], rtol=0, atol=1e-5)
        assert rep["compute"]["patient_hours"] == len(scores) == len(hours)
        assert (
            sum(len(p["episodes"]) for p in rep["patients"].values()) == rep["alarms"]["episodes"]
        )
        # each alarm onset says what raised the model's risk, as the live ward's event does
        assert rep["compute"]["alarm_onsets_explained"] == rep["alarms"]["episodes"]
        eps = [ep for p in rep["patients"].values() for ep in p["episodes"]]
        assert all(len(ep["drivers"]) <= 3 for ep in eps)
        assert all(d["risk_drop"] > 0 and d["text"] for ep in eps for d in ep["drivers"])
        page = rep_path.with_suffix(".html").read_text()
        assert "30 patient(s):" in page and "not a medical device" in page
        assert "## Alarms at the bedside" in rep_path.with_suffix(".md").read_text()
        bundle = json.loads(rep_path.with_name("sepsis.fhir.json").read_text())
        Bundle.model_validate(bundle)
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        assert kinds.count("RiskAssessment") == 30
        assert kinds.count("Flag") == rep["alarms"]["episodes"]
        assert pd.read_csv(rep_path.with_name("sepsis.attrition.csv"))["reason"].tolist() == [
            "missing_columns"
        ]
        # The champion checked on the folder: its reference came with it, the check is an
        # MLflow run and lands on the version's tags; 30 patients are too few to judge.
        assert loaded.preprocessing["reference"]["n_patients"] == 160
        mon = monitor_early_warning_flow(data=str(data), out=str(isolated_mlflow / "mon"))
        report = json.loads((isolated_mlflow / "mon" / "monitoring.json").read_text())
        assert mon["status"] == report["status"] in STATUSES and mon["model_version"] == "1"
        assert report["drift"]["too_few_patients"] and report["n_patients"] == 30
        assert any("drift not judged: only 30 patients" in r for r in report["reasons"])
        assert report["drift"]["major"] == report["drift"]["moderate"] == []
        assert {r["level"] for r in report["drift"]["inputs"]} == {"unknown"}
        assert report["evaluation"]["utility"] == pytest.approx(ev["utility"])
        perf = report["performance"]
        assert perf["checked"] is (ev["n_septic_patients"] > 0)
        if perf["checked"]:
            gated = perf["measures"]["utility"]
            assert gated["reference"] == pytest.approx(res["metrics"]["utility"])
            degraded = any(m["degraded"] for m in perf["measures"].values())
            assert (report["status"] == "degraded") is degraded
        version = client.get_model_version("vitalgru-early-warning", "1")
        assert version.tags["vitalgru.monitor.status"] == mon["status"]
        assert version.tags["vitalgru.monitor.run_id"] == mon["mlflow_run_id"]
        run = client.get_run(mon["mlflow_run_id"])
        assert run.data.metrics["n_patients"] == 30
        assert client.get_experiment(run.info.experiment_id).name == "vitalgru-monitoring"
        assert (
            "# Monitoring: models:/vitalgru-early-warning@champion (version 1)"
            in (isolated_mlflow / "mon" / "monitoring.md").read_text()
        )
        # 100 stays (enough to judge) with temperatures in Fahrenheit: the limits refuse
        # them, the check names the column, and --fail-on drift makes the command fail.
        hot = isolated_mlflow / "fahrenheit"
        hot.mkdir()
        for f in list_psv(setA)[200:300]:
            lines = f.read_text().splitlines()
            col = lines[0].split("|").index("Temp")
            out_lines = [lines[0]]
            for line in lines[1:]:
                cells = line.split("|")
                if cells[col] not in ("NaN", ""):
                    cells[col] = f"{float(cells[col]) * 9 / 5 + 32:.1f}"
                out_lines.append("|".join(cells))
            (hot / f.name).write_text("\n".join(out_lines) + "\n")
        code = cli(["monitor", "early-warning", "--data", str(hot), "--out",
                    str(isolated_mlflow / "mon_hot"), "--fail-on", "drift"])  # fmt: skip
        hot_report = json.loads((isolated_mlflow / "mon_hot" / "monitoring.json").read_text())
        assert "temp_c" in hot_report["drift"]["major"]
        assert hot_report["status"] in ("drift", "degraded") and code == 3
        temp = next(r for r in hot_report["drift"]["inputs"] if r["column"] == "temp_c")
        assert temp["measured_now"] == 0 and temp["refused_now"] > 0

        # nothing readable: one clear error naming the file, before any monitor runs
        unreadable = isolated_mlflow / "unreadable"
        unreadable.mkdir()
        (unreadable / "p1.psv").write_text("HR|O2Sat\n1|2\n")
        with pytest.raises(RecordError, match="no patient could be read: all 1 .psv files.*lacks"):
            replay_early_warning(
                "models:/vitalgru-early-warning@champion", str(unreadable), str(unreadable / "o")
            )

        # The CLI's form: --out FILE.json gets the metrics, the rest lands beside it.
        as_file = isolated_mlflow / "ew.json"
        ev2 = evaluate_early_warning(
            "models:/vitalgru-early-warning@champion", str(data), str(as_file)
        )
        assert json.loads(as_file.read_text())["utility"] == ev2["utility"] == ev["utility"]
        assert (isolated_mlflow / "ew.scores.parquet").exists()
        assert (isolated_mlflow / "ew.attrition.csv").exists()

        # No septic patient in the folder: what needs one is null, and a warning says why.
        calm = isolated_mlflow / "calm"
        calm.mkdir()
        for name in ("p000001.psv", "p000002.psv"):  # neither turns septic
            shutil.copy(setA / name, calm / name)
        with caplog.at_level(logging.WARNING, logger="pipelines.early_warning"):
            ev3 = evaluate_early_warning(
                "models:/vitalgru-early-warning@champion", str(calm), str(calm / "out")
            )
        assert ev3["n_patients"] == 2 and ev3["n_septic_patients"] == 0
        assert ev3["utility"] is None and ev3["auroc"] is None
        assert ev3["alarms_per_patient_day"] is not None
        assert "no septic patient among the 2 scored" in caplog.text

        # The champion served by the real command, fed by an interface engine over MLLP:
        # an admission in local time, results of two hours; the hours assembled and scored;
        # a clean stop; the same command again takes the patient up and does not take a
        # resent message twice.
        _served_over_mllp(isolated_mlflow, setA)


def test_training_data_with_skipped_hours_is_built_on_the_hourly_grid(
    physionet_mirror: Path, tmp_path: Path
) -> None:
    # 30 set A patients, one of whose files skips ICU hours 4-6: the training dataset has a
    # row for each of those hours (nothing measured, the label of the hour before), as the
    # scorer sees such a stay, and the manifest says which hours were filled.
    set_a = physionet_mirror / "challenge-2019" / "training_setA"
    data = tmp_path / "data"
    data.mkdir()
    files = list_psv(set_a)[:30]
    for f in files:
        shutil.copy(f, data / f.name)
    gapped = data / files[3].name
    rows = gapped.read_text().splitlines()
    gapped.write_text("\n".join([*rows[:4], *rows[7:]]) + "\n")  # hours 4, 5, 6 gone
    cfg = EarlyWarningConfig.model_validate(
        {"data_dir": str(data), "n_folds": 2, "out_dir": str(tmp_path / "out"),
         "cache_dir": str(tmp_path / "cache")}
    )  # fmt: skip
    cohort, _, manifest = load_dataset(build_dataset.fn(cfg.model_dump(mode="json")))
    pid = files[3].stem
    assert manifest["hours_filled_on_grid"] == {pid: 3} and manifest["skipped_hours"] == {}
    stay = cohort.frame[cohort.frame["patient_id"] == pid].reset_index(drop=True)
    assert len(stay) == len(rows) - 1  # every hour, as in the original file
    assert stay["hour"].tolist() == list(range(1, len(stay) + 1))
    assert stay.loc[3:5, list(MEASUREMENT_COLUMNS)].isna().all().all()
    assert stay.loc[3:5, "sepsis_label"].tolist() == [stay.loc[2, "sepsis_label"]] * 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mllp(port: int, message: str) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"\x0b" + message.encode() + b"\x1c\x0d")
        buf = b""
        while not buf.endswith(b"\x1c\x0d"):
            chunk = s.recv(65536)
            assert chunk, "the gateway closed the connection"
            buf += chunk
    return buf[1:-2].decode().split("\r")[1].split("|")


def _served_over_mllp(folder: Path, setA: Path) -> None:
    http, mllp = _free_port(), _free_port()
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--arrhythmia-model", "none",
           "--early-warning-model", "models:/vitalgru-early-warning@champion",
           "--port", str(http), "--mllp-port", str(mllp), "--state", "ward.sqlite",
           "--audit", "audit.sqlite", "--hl7-timezone", "Europe/Berlin", "--tick-s", "0.2"]  # fmt: skip
    url = f"http://127.0.0.1:{http}"
    berlin = ZoneInfo("Europe/Berlin")
    start = (datetime.now(UTC) - timedelta(hours=2, minutes=30)).astimezone(berlin)

    def local(t: datetime) -> str:  # as many feeds send it: local time, no offset
        return t.astimezone(berlin).strftime("%Y%m%d%H%M%S")

    hr = read_psv(setA / "p000001.psv")["hr_bpm"].dropna().to_numpy()[:2]
    adt = (f"MSH|^~\\&|ADT|H|VG|H|{local(start)}||ADT^A01|ADM1|P|2.5\r"
           f"EVN|A01|{local(start)}\rPID|1||mrn-1^^^H^MR||Doe^J||19500101|F\r")  # fmt: skip
    oru = [
        f"MSH|^~\\&|MON|ICU|VG|H|{local(start)}||ORU^R01|R{h}|P|2.5\rPID|1||mrn-1\r"
        f"OBX|1|NM|8867-4^HR^LN||{hr[h - 1]}|/min|||||F|||"
        f"{local(start + timedelta(hours=h - 1, minutes=20))}\r"
        for h in (1, 2)
    ]  # fmt: skip

    def up() -> subprocess.Popen:
        log = (folder / "serve.log").open("a")
        proc = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (folder / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    return proc
            except requests.RequestException:
                time.sleep(0.5)
        proc.kill()
        pytest.fail("the gateway did not come up in 180 s")

    def down(proc: subprocess.Popen, how: signal.Signals) -> None:
        proc.send_signal(how)  # Ctrl-C, or a service manager's stop
        code = proc.wait(timeout=60)  # after SIGTERM uvicorn ends by the signal itself
        assert code in (0, -how), (folder / "serve.log").read_text()[-3000:]
        assert "Traceback" not in (folder / "serve.log").read_text()

    proc = up()
    try:
        assert _mllp(mllp, adt)[:3] == ["MSA", "AA", "ADM1"]
        summary = requests.get(f"{url}/vitals/mrn-1", timeout=10).json()
        assert summary["admitted_at"] == start.astimezone(UTC).isoformat(timespec="seconds")
        assert summary["static"]["gender_male"] == 0.0
        assert [_mllp(mllp, m)[1] for m in oru] == ["AA", "AA"]
        assert list(requests.get(f"{url}/vitals/mrn-1", timeout=10).json()["assembling"]) == ["2"]
        scored = requests.post(f"{url}/vitals/mrn-1/close", timeout=10).json()["scored"]
        assert [h["hour"] for h in scored] == [2]
    finally:
        down(proc, signal.SIGINT)
    proc = up()
    try:
        summary = requests.get(f"{url}/vitals/mrn-1", timeout=10).json()
        assert summary["last_hour"]["hour"] == 2 and summary["assembling"] == {}
        resent = _mllp(mllp, oru[1])  # its acknowledgement lost with the first gateway
        assert resent[1] == "AA" and "ICU hour 2" in resent[3]
        assert requests.get(f"{url}/vitals/mrn-1", timeout=10).json()["assembling"] == {}
    finally:
        down(proc, signal.SIGTERM)
    assert cli(["serve-audit", str(folder / "audit.sqlite"), "--verify"]) == 0
    rows_ = [r for r in read_rows(folder / "audit.sqlite") if r["action"].startswith("HL7")]
    assert [(r["action"], r["patient_id"]) for r in rows_] == [("HL7 ADT^A01 admit", "mrn-1")]

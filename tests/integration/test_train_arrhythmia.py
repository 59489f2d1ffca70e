"""The ``train-arrhythmia`` flow end to end on four real MIT-BIH records (tiny model):
ingest -> train -> evaluate -> register -> promote, then ``evaluate_arrhythmia`` with
the registered champion on a record of the database, the live replay, and the
``monitor-arrhythmia`` check (with a copy of the record recorded at the wrong gain)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import wfdb
from fhir.resources.R4B.bundle import Bundle

from pipelines.arrhythmia import train_arrhythmia_flow
from pipelines.cli import main as cli
from pipelines.evaluate import evaluate_arrhythmia
from pipelines.monitor import monitor_arrhythmia_flow
from pipelines.run_datasets import records_digest
from vitalgru import tracking
from vitalgru.config import PhysioNetConfig
from vitalgru.data.labels import AAMI_MAP
from vitalgru.data.noise import noise_source
from vitalgru.dsp import map_indices, resample
from vitalgru.io import open_database
from vitalgru.metrics.detection import MATCH_WINDOW_S, match_pairs
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble


class TestTrainArrhythmiaFlow:
    def test_flow_registers_promotes_and_evaluates(
        self, isolated_mlflow: Path, physionet_mirror: Path
    ) -> None:
        out_dir = isolated_mlflow / "datasets" / "mitdb"
        overrides = {
            "ingest.physionet.mirror": str(physionet_mirror),
            "ingest.arrhythmia.records": ["106", "119", "223", "233"],
            "ingest.out_dir": str(out_dir),
            "report_dir": str(isolated_mlflow / "ds2-reports"),
            # the three DS1 records, one per fold, and the default 3 networks per fold
            # trained by 2 worker processes: a 9-member ensemble
            "cv_folds": 3,
            "conv_widths": [8, 16],
            "d_beat": 16,
            "hidden": 16,
            "seq_len": 128,
            "batch_size": 8,
            "sequences_per_epoch": 16,
            "max_epochs": 2,
            "min_epochs": 1,
            "num_threads": 1,
        }
        res = train_arrhythmia_flow(overrides=overrides)
        assert res["version"] == "1" and res["promoted"] is True
        assert res["model_uri"] == "models:/vitalgru-arrhythmia/1"
        m = res["metrics"]
        for key in ("test_v_f1", "test_s_f1", "test_accuracy", "val_v_f1"):
            assert key in m
        champion = tracking.load_model("models:/vitalgru-arrhythmia@champion").module
        assert isinstance(champion, ArrhythmiaEnsemble) and len(champion.members) == 9
        # The gates chosen after training are run parameters, equal to the stored model's.
        client = mlflow.MlflowClient()
        params = client.get_run(res["run_id"]).data.params
        assert len(params["resolved.cv_fold_best_epochs"].split(",")) == 9
        reasons = params["resolved.cv_fold_stop_reasons"].split(",")  # only the first's before
        assert len(reasons) == 9 and "resolved.stop_reason" not in params
        # per-epoch curves: every network's epochs, labelled with its fold and member
        member = {p.step: p.value for p in client.get_metric_history(res["run_id"], "epoch.member")}
        fold = {p.step: p.value for p in client.get_metric_history(res["run_id"], "epoch.fold")}
        assert sorted({(fold[s], member[s]) for s in fold}) == [
            (float(f), float(j)) for f in range(3) for j in range(3)
        ]
        # the run shows its final figures, not the last epoch's of the same name
        shown = client.get_run(res["run_id"]).data.metrics
        assert shown["val_sv_f1"] == pytest.approx(m["val_sv_f1"])
        assert "epoch.val_sv_f1" in shown
        assert json.loads(params["resolved.rhythm_gate"]) == champion.rhythm_gate
        # the recorded noise mixed into training (nstdb, in no dataset) is named by the run
        # and the model: its files, their digest, and that nothing verified them
        nstdb = open_database("nstdb", PhysioNetConfig(mirror=physionet_mirror))
        want = noise_source(nstdb, ["bw", "ma"])
        assert params["resolved.noise_digest"] == want["digest"]
        assert params["resolved.noise_verified"] == str(want["verified"]).lower()
        noise_json = mlflow.artifacts.load_dict(f"runs:/{res['run_id']}/dataset/noise.json")
        assert noise_json == want
        assert tracking.load_model(res["model_uri"]).config["noise_source"] == want
        # The registry shows what the model is and this version's DS2 results.
        card = client.get_model_version("vitalgru-arrhythmia", "1").description
        s_f1 = f"{100 * res['metrics']['test_s_f1']:.1f}"
        assert "**DS2**" in card and "| S | " in card and f" {s_f1} |" in card
        assert "networks averaged 9" in card and res["run_id"] in card
        about = client.get_registered_model("vitalgru-arrhythmia").description
        assert "not a medical device" in about
        # the run's datasets (MLflow's "Datasets used"), each digest recomputable from the
        # run's manifest, and the model's DS2 figures naming the DS2 dataset
        run_manifest = mlflow.artifacts.load_dict(f"runs:/{res['run_id']}/dataset/manifest.json")
        inputs = {
            {t.key: t.value for t in d.tags}["mlflow.data.context"]: d.dataset
            for d in client.get_run(res["run_id"]).inputs.dataset_inputs
        }
        assert (inputs["training"].name, inputs["evaluation"].name) == ("mitdb DS1", "mitdb DS2")
        # named and tagged as the early-warning training's run is (a random name before)
        run_info = client.get_run(res["run_id"])
        assert run_info.info.run_name == "train-arrhythmia"
        assert run_info.data.tags["task"] == "arrhythmia"
        assert inputs["training"].digest == records_digest(run_manifest, ["106", "119", "223"])
        assert inputs["evaluation"].digest == records_digest(run_manifest, ["233"])
        model_id = client.get_model_version("vitalgru-arrhythmia", "1").source.split("/")[-1]
        figures = {m.key: m for m in client.get_logged_model(model_id).metrics}
        assert figures["test_v_f1"].value == pytest.approx(m["test_v_f1"])
        assert (figures["test_v_f1"].dataset_name, figures["test_v_f1"].dataset_digest) == (
            "mitdb DS2", inputs["evaluation"].digest)  # fmt: skip
        assert json.loads(params["resolved.quality_gate"]) == champion.quality_gate
        assert 0.0 <= m["test_accuracy"] <= 1.0
        assert res["report_paths"]["json"] == str(isolated_mlflow / "ds2-reports" / "ds2_v1.json")
        report = json.loads(Path(res["report_paths"]["json"]).read_text())
        # DS2 here is record 233 alone: 2230 N, 7 S, 831 V, 11 F (MIT-BIH reference labels)
        assert [report["classes"][c]["n"] for c in "NSVFQ"] == [2230, 7, 831, 11, 0]
        assert Path(res["report_paths"]["markdown"]).read_text().startswith("## ")
        # one DS2 record: no record-bootstrap interval, and the report says why
        assert report["intervals"]["n_records"] == 1 and report["intervals"]["accuracy"] is None
        assert "No record-bootstrap interval" in Path(res["report_paths"]["markdown"]).read_text()

        ev = evaluate_arrhythmia(
            "models:/vitalgru-arrhythmia@champion",
            str(physionet_mirror / "mitdb"),
            "233",
            str(isolated_mlflow / "eval"),
        )
        assert ev["model_version"] == "1"
        assert set(ev["classes"]) == {"N", "S", "V", "F", "Q"}
        assert set(ev["classes"]["V"]) == {"n", "se", "ppv", "f1", "spec"}
        assert list(ev["records"]) == ["233"]
        assert ev["intervals"] == report["intervals"]
        # the same model on the same record through the database path gives the same
        # beats and the same predictions as the flow's DS2 evaluation
        assert ev["confusion_matrix"] == report["confusion_matrix"]
        # and the same account of the signal behind the scores (233 has noisy stretches)
        sig = ev["records"]["233"]["signal"]
        assert report["records"]["233"]["signal"] == sig
        assert (sig["lead"], sig["fs_source"]) == ("MLII", 360.0)
        assert 0 < sig["quality_rejected_windows"] < sig["quality_windows"]
        assert (isolated_mlflow / "eval" / "evaluation.md").exists()

        # Another rate and lead layout: record 233 at 250 Hz with three leads, MLII last.
        # The model finds its lead by name and resamples back to its 360 Hz.
        folder = _other_layout(physionet_mirror / "mitdb", "233", isolated_mlflow / "db250")
        stale = isolated_mlflow / "annotations" / "100.vgru"  # an earlier evaluation's labels
        stale.parent.mkdir()
        stale.write_bytes(b"")
        ev250 = evaluate_arrhythmia(
            "models:/vitalgru-arrhythmia@champion", str(folder), None,
            str(isolated_mlflow / "eval250.json"), write_annotations="vgru",
        )  # fmt: skip
        # the labels as a WFDB annotation file: one per annotated beat, at its own 250 Hz
        # sample, the classes counted as the report's predicted columns
        ref = wfdb.rdann(str(folder / "233"), "atr")
        got = wfdb.rdann(str(Path(ev250["paths"]["annotations"]) / "233"), "vgru")
        assert not stale.exists()  # left beside a report that did not score 100
        assert got.fs == 250 and set(got.sample) <= set(ref.sample.tolist())
        cm = np.asarray(ev250["confusion_matrix"])
        codes = np.asarray(got.symbol)
        assert [int((codes == s).sum()) for s in "NAVFQ"] == cm.sum(axis=0).tolist()
        n360 = [ev["classes"][c]["n"] for c in "NSVFQ"]
        assert [ev250["classes"][c]["n"] for c in "NSVFQ"] == n360
        assert abs(ev250["accuracy"] - ev["accuracy"]) < 0.03
        assert (
            ev250["records"]["233"]["signal"]["lead"],
            ev250["records"]["233"]["signal"]["fs_source"],
        ) == ("MLII", 250.0)

        # The champion as a live monitor: the 250 Hz record streamed in 0.5 s chunks, its
        # beats found by the detector and scored against the reference.
        out = isolated_mlflow / "replay" / "r.json"
        assert cli(["replay", "arrhythmia", "--model", "models:/vitalgru-arrhythmia@champion",
                    "--db", str(folder), "--chunk-s", "0.5", "--out", str(out),
                    "--write-annotations", "vgru"]) == 0  # fmt: skip
        rep = json.loads(out.read_text())
        d = rep["detection"]
        # the monitor's beats written for bxb: scored from the file alone (matched to the
        # reference within 150 ms, as the replay matches them), the same beat accuracy
        live = wfdb.rdann(str(out.parent / "annotations" / "233"), "vgru")
        assert len(live.sample) == rep["calls"]["n_beats"] and live.fs == 250
        beats = np.isin(ref.symbol, list(AAMI_MAP))
        ri, di = match_pairs(ref.sample[beats], live.sample, 250.0, MATCH_WINDOW_S)
        truth = [str(AAMI_MAP[s]) for s in np.asarray(ref.symbol)[beats][ri]]
        called = [{"A": "S"}.get(s, s) for s in np.asarray(live.symbol)[di]]
        accuracy = np.mean(np.asarray(truth) == np.asarray(called))
        assert accuracy == pytest.approx(rep["beats"]["accuracy"], abs=1e-12)
        assert d["reference"] == sum(n360) and d["se"] > 0.99 and d["ppv"] > 0.99
        assert rep["model_version"] == "1" and rep["compute"]["patients"] == 1
        assert rep["beats"]["n_beats"] == d["matched"]
        assert abs(rep["beats"]["accuracy"] - ev250["accuracy"]) < 0.1
        assert 2.0 < rep["latency_s"]["p50"] < 6.0
        assert "## Beat detection" in out.with_suffix(".md").read_text()
        bundle = json.loads(out.with_name("r.fhir.json").read_text())
        Bundle.model_validate(bundle)
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        assert kinds.count("Observation") == 1
        assert kinds.count("Flag") == sum(rep["alerts"]["counts"].values())
        # the clinician's page draws the first alarm of each kind on ECG paper
        page = out.with_suffix(".html").read_text()
        assert page.count("25 mm/s, 10 mm/mV</text>") == len(rep["alerts"]["counts"])

        # Monitoring: the reference came with the model (the three DS1 records' beats,
        # the calls on DS2); record 233 checked against it, then a copy of it whose header
        # gain is 2.5 times too small, so that every sample reads 2.5 times too large.
        stored = tracking.load_model("models:/vitalgru-arrhythmia@champion").preprocessing
        assert stored["reference"]["n_records"] == 3
        assert set(stored["reference"]["columns"]) == {
            "heart_rate_bpm", "amplitude_mv", "beat_in_clean_signal"}  # fmt: skip
        mon = monitor_arrhythmia_flow(
            db=str(physionet_mirror / "mitdb"), records="233", out=str(isolated_mlflow / "mon")
        )
        first = json.loads((isolated_mlflow / "mon" / "monitoring.json").read_text())
        assert mon["status"] == first["status"] and first["evaluation"]["n_beats"] == 3079
        assert first["drift"]["too_few_records"]
        assert any("only 1 records" in n for n in first["notes"])
        assert not any("QRS pointing" in n for n in first["notes"])  # 233 is upright
        gated = first["performance"]["measures"]["test_v_f1"]
        assert gated["reference"] == m["test_v_f1"] and gated["now"] == ev["classes"]["V"]["f1"]
        classes = first["drift"]["predicted"]["classes"]
        assert sum(c["now"] for c in classes.values()) == pytest.approx(1.0)
        version = client.get_model_version("vitalgru-arrhythmia", "1")
        assert version.tags["vitalgru.monitor.run_id"] == mon["mlflow_run_id"]
        loud = _scaled(physionet_mirror / "mitdb", "233", isolated_mlflow / "loud", 2.5)
        mon2 = monitor_arrhythmia_flow(db=str(loud), records=None,
                                       out=str(isolated_mlflow / "mon_loud"))  # fmt: skip
        second = json.loads((isolated_mlflow / "mon_loud" / "monitoring.json").read_text())
        amp = {r["column"]: r for r in second["drift"]["inputs"]}["amplitude_mv"]
        amp1 = {r["column"]: r for r in first["drift"]["inputs"]}["amplitude_mv"]
        assert amp["level"] == "major" and "amplitude_mv" in second["drift"]["major"]
        assert amp["median_now"] == pytest.approx(2.5 * amp1["median_now"], rel=0.02)
        assert mon2["status"] in ("drift", "degraded")
        # Record 233 as a hospital's own recording, with no annotation file: the detector's
        # beats are classified, drift is checked as before, performance cannot be.
        bare = isolated_mlflow / "bare"
        bare.mkdir()
        for suffix in ("hea", "dat"):
            (bare / f"233.{suffix}").symlink_to(physionet_mirror / "mitdb" / f"233.{suffix}")
        monitor_arrhythmia_flow(db=str(bare), records=None, annotations=None,
                                out=str(isolated_mlflow / "mon_bare"))  # fmt: skip
        third = json.loads((isolated_mlflow / "mon_bare" / "monitoring.json").read_text())
        assert not third["evaluation"]["annotated"] and not third["performance"]["checked"]
        assert "not annotated" in third["performance"]["why"]
        assert abs(third["evaluation"]["n_beats"] - 3079) < 30
        shares = {c: v["now"] for c, v in third["drift"]["predicted"]["classes"].items()}
        assert shares == pytest.approx({c: v["now"] for c, v in classes.items()}, abs=0.02)
        amp3 = {r["column"]: r for r in third["drift"]["inputs"]}["amplitude_mv"]
        assert amp3["median_now"] == pytest.approx(amp1["median_now"], rel=0.05)


def _other_layout(src: Path, record: str, out: Path) -> Path:
    """Write ``record`` resampled to 250 Hz as leads (V1, a flat lead, MLII)."""
    out.mkdir(parents=True)
    rec = wfdb.rdrecord(str(src / record))
    ann = wfdb.rdann(str(src / record), "atr")
    names = list(rec.sig_name)
    mlii = resample(rec.p_signal[:, names.index("MLII")], rec.fs, 250.0)
    other = resample(rec.p_signal[:, 1 - names.index("MLII")], rec.fs, 250.0)
    sig = np.stack([other, np.zeros_like(mlii), mlii], axis=1)
    wfdb.wrsamp(
        record, fs=250, units=["mV"] * 3, sig_name=["V1", "X", "MLII"], p_signal=sig,
        fmt=["16"] * 3, adc_gain=[200.0] * 3, baseline=[0] * 3, write_dir=str(out),
    )  # fmt: skip
    idx = map_indices(np.asarray(ann.sample), rec.fs, 250.0, n_out=sig.shape[0])
    wfdb.wrann(record, "atr", idx, symbol=ann.symbol, write_dir=str(out))
    return out


def _scaled(src: Path, record: str, out: Path, factor: float) -> Path:
    """``record`` with every sample ``factor`` times its value (a wrong header gain)."""
    out.mkdir(parents=True)
    rec = wfdb.rdrecord(str(src / record))
    ann = wfdb.rdann(str(src / record), "atr")
    wfdb.wrsamp(
        record, fs=rec.fs, units=list(rec.units), sig_name=list(rec.sig_name),
        p_signal=rec.p_signal * factor, fmt=["16"] * rec.n_sig,
        adc_gain=[200.0] * rec.n_sig, baseline=[0] * rec.n_sig, write_dir=str(out),
    )  # fmt: skip
    wfdb.wrann(record, "atr", np.asarray(ann.sample), symbol=ann.symbol, write_dir=str(out))
    return out

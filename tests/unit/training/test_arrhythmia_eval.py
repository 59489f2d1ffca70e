"""Scoring a WFDB folder: a record that cannot be read or used is reported and left out,
and the records that can are scored exactly as they would be alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from scipy.signal import resample_poly

from vitalgru.config import PhysioNetConfig
from vitalgru.data.beat_features import N_RR_FEATURES
from vitalgru.data.ingest import UNLABELLED
from vitalgru.errors import RecordError
from vitalgru.io import open_database
from vitalgru.metrics.aami import report_markdown
from vitalgru.models.arrhythmia import ArrhythmiaGRU
from vitalgru.training.arrhythmia_eval import score_database

SECONDS = 40
PREPROCESSING = {"fs": 360.0, "lead": "MLII", "window": {"before_s": 0.25, "after_s": 0.45}}


def _write(
    src: Path,
    name: str,
    out: Path,
    beats: int | None = None,
    flat_mlii_s: float = 0.0,
    adc_gain: float = 200.0,
) -> None:
    """The first SECONDS of MIT-BIH record 100 as record ``name`` in ``out`` (its first
    ``beats`` annotations only, when given; MLII held at 0 mV for its first
    ``flat_mlii_s`` seconds, as a lead that came off). With ``adc_gain`` other than 200
    the header's gain is wrong: the same ADC counts read as ``200 / adc_gain`` times
    the true mV."""
    n = int(SECONDS * 360)
    rec = wfdb.rdrecord(str(src / "100"), sampto=n)
    ann = wfdb.rdann(str(src / "100"), "atr", sampto=n)
    sig = rec.p_signal.copy()
    sig[: int(flat_mlii_s * 360), rec.sig_name.index("MLII")] = 0.0
    wfdb.wrsamp(
        name, fs=360, units=rec.units, sig_name=rec.sig_name, p_signal=sig * 200 / adc_gain,
        fmt=["16"] * 2, adc_gain=[adc_gain] * 2, baseline=[0] * 2, write_dir=str(out),
    )  # fmt: skip
    keep = slice(None) if beats is None else slice(0, beats)
    wfdb.wrann(
        name, "atr", np.asarray(ann.sample[keep]), symbol=list(np.asarray(ann.symbol)[keep]),
        write_dir=str(out),
    )  # fmt: skip


@pytest.fixture(scope="module")
def folder(mitdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wfdb-mixed")
    for name in ("good", "cut", "nofs"):
        _write(mitdb_dir, name, out)
    _write(mitdb_dir, "onebeat", out, beats=1)
    _write(mitdb_dir, "flat", out, flat_mlii_s=SECONDS)  # MLII off throughout
    _write(mitdb_dir, "halfflat", out, flat_mlii_s=SECONDS / 2)  # off for the first half
    _write(mitdb_dir, "gain1", out, adc_gain=1.0)  # header gain 1: ADC counts read as mV
    dat = out / "cut.dat"
    dat.write_bytes(dat.read_bytes()[:5000])  # an interrupted download
    hea = out / "nofs.hea"
    first, rest = hea.read_text().split("\n", 1)
    hea.write_text(first.replace(" 360 ", " 0 ") + "\n" + rest)  # no sampling rate
    return out


@pytest.fixture(scope="module")
def model() -> ArrhythmiaGRU:
    torch.manual_seed(0)
    return ArrhythmiaGRU(n_rr=N_RR_FEATURES).eval()  # every RR feature, as none is named


def test_bad_records_are_reported_and_the_good_one_still_scored(
    folder: Path, model: ArrhythmiaGRU
) -> None:
    db = open_database(str(folder), PhysioNetConfig())
    names = ["cut", "good", "nofs", "onebeat"]
    scores = score_database(model, PREPROCESSING, db, names)
    report = scores.report()
    assert list(report["records"]) == ["good"]
    why = {rid: (e["stage"], e["reason"]) for rid, e in report["excluded"].items()}
    assert why == {
        "cut": ("read", "truncated_dat"),
        "nofs": ("read", "bad_header"),
        "onebeat": ("process", "unusable_record"),
    }
    assert "fewer than two annotated beats" in report["excluded"]["onebeat"]["detail"]
    # nothing that was good is lost: the good record's beats and predictions are those of
    # scoring it alone
    alone = score_database(model, PREPROCESSING, db, ["good"])
    assert report["n_beats"] == alone.report()["n_beats"] > 40
    np.testing.assert_array_equal(scores.probs, alone.probs)
    assert alone.report()["excluded"] == {}
    md = report_markdown(report)
    assert "Not scored (3 records" in md and "| cut | read | truncated_dat |" in md


def test_nothing_scorable_is_one_clear_error(folder: Path, model: ArrhythmiaGRU) -> None:
    db = open_database(str(folder), PhysioNetConfig())
    with pytest.raises(RecordError, match="no record could be scored: cut: .*; nofs: "):
        score_database(model, PREPROCESSING, db, ["cut", "nofs"])


def test_a_lead_without_ecg_is_left_out_and_a_partly_bad_one_is_flagged(
    folder: Path, model: ArrhythmiaGRU
) -> None:
    db = open_database(str(folder), PhysioNetConfig())
    report = score_database(model, PREPROCESSING, db, ["flat", "good", "halfflat"]).report()
    # MLII flat for the whole record: no ECG to score, and the message names the way out
    assert list(report["excluded"]) == ["flat"]
    e = report["excluded"]["flat"]
    assert (e["stage"], e["reason"]) == ("process", "unusable_lead")
    assert "lead MLII holds no ECG" in e["detail"] and "other leads are V5" in e["detail"]
    # flat for half of it: scored, and the report says how much of it rests on bad signal
    assert list(report["records"]) == ["good", "halfflat"]
    good, half = report["records"]["good"]["signal"], report["records"]["halfflat"]["signal"]
    assert good["lead"] == half["lead"] == "MLII" and good["fs_source"] == 360.0
    assert good["quality_rejected_windows"] == 0 and good["beats_in_rejected_signal"] == 0
    assert half["quality_flags"]["flat"] >= 1
    assert 0 < half["quality_rejected_windows"] < half["quality_windows"]
    assert 0.2 < half["beats_in_rejected_signal_fraction"] < 0.8
    md = report_markdown(report)
    assert "Signal quality (1 records with rejected windows" in md
    # ADC counts read as mV (a header's gain of 1): refused, and the message says why
    bad = score_database(model, PREPROCESSING, db, ["gain1", "good"]).report()["excluded"]
    assert bad["gain1"]["reason"] == "unusable_lead"
    assert "lead_off" in bad["gain1"]["detail"] and "µV or ADC counts" in bad["gain1"]["detail"]
    assert "| halfflat | MLII |" in md and "| good | MLII |" not in md


def test_beats_annotated_beyond_the_signal_are_left_out_and_counted(
    mitdb_dir: Path, tmp_path: Path, model: ArrhythmiaGRU
) -> None:
    # The signal is 40 s of record 100, its annotation file the first 60 s: the beats of
    # the last 20 s have no ECG. Before, they were clipped onto the last sample (one bogus
    # beat); now they are left out, and the report says how many.
    _write(mitdb_dir, "good", tmp_path)
    _write(mitdb_dir, "longann", tmp_path)
    ann = wfdb.rdann(str(mitdb_dir / "100"), "atr", sampto=60 * 360)
    wfdb.wrann("longann", "atr", ann.sample, symbol=list(ann.symbol), write_dir=str(tmp_path))
    db = open_database(str(tmp_path), PhysioNetConfig())
    report = score_database(model, PREPROCESSING, db, ["good", "longann"]).report()
    good, long = report["records"]["good"], report["records"]["longann"]
    beyond = int(((ann.sample >= SECONDS * 360) & np.isin(ann.symbol, ["N", "A", "V"])).sum())
    assert beyond > 20
    assert long["signal"]["beats_outside_signal"] == beyond
    assert good["signal"]["beats_outside_signal"] == 0
    assert long["n_beats"] == good["n_beats"]  # the same beats as the matching annotations
    md = report_markdown(report)
    assert (
        f"Beat annotations outside the signal, left out (an annotation file from a longer recording?): longann {beyond}"
        in md
    )


def test_another_recordings_annotations_are_refused(
    mitdb_dir: Path, tmp_path: Path, model: ArrhythmiaGRU
) -> None:
    # Record 100's signal with record 232's annotation file: the labels would belong to
    # windows without those beats. Left out with a reason; the good record is scored.
    _write(mitdb_dir, "good", tmp_path)
    _write(mitdb_dir, "swapped", tmp_path)
    other = wfdb.rdann(str(mitdb_dir / "232"), "atr", sampto=SECONDS * 360)
    wfdb.wrann("swapped", "atr", other.sample, symbol=list(other.symbol), write_dir=str(tmp_path))
    # shifted by half a second: the same
    _write(mitdb_dir, "shifted", tmp_path)
    own = wfdb.rdann(str(mitdb_dir / "100"), "atr", sampto=SECONDS * 360)
    wfdb.wrann("shifted", "atr", own.sample + 180, symbol=list(own.symbol), write_dir=str(tmp_path))
    db = open_database(str(tmp_path), PhysioNetConfig())
    report = score_database(model, PREPROCESSING, db, ["good", "shifted", "swapped"]).report()
    assert list(report["records"]) == ["good"]
    assert report["records"]["good"]["signal"]["annotation_match"] == 1.0
    for rid in ("shifted", "swapped"):
        e = report["excluded"][rid]
        assert (e["stage"], e["reason"]) == ("process", "annotations_mismatch")
        assert "annotated beats in usable signal lie on a heartbeat" in e["detail"]


def test_a_header_rate_that_makes_the_heart_rate_implausible_is_warned_about(
    mitdb_dir: Path, tmp_path: Path, model: ArrhythmiaGRU, caplog: pytest.LogCaptureFixture
) -> None:
    # Record 100 (about 75 bpm) with a header claiming 1000 Hz: its beats would be 208 bpm.
    _write(mitdb_dir, "good", tmp_path)
    _write(mitdb_dir, "fast", tmp_path)
    hea = tmp_path / "fast.hea"
    first, rest = hea.read_text().split("\n", 1)
    hea.write_text(first.replace(" 360 ", " 1000 ") + "\n" + rest)
    db = open_database(str(tmp_path), PhysioNetConfig())
    with caplog.at_level("WARNING"):
        report = score_database(model, PREPROCESSING, db, ["good", "fast"]).report()
    good, fast = (report["records"][r]["signal"] for r in ("good", "fast"))
    assert 60 < good["median_hr_bpm"] < 90 and fast["fs_source"] == 1000.0
    assert fast["median_hr_bpm"] == pytest.approx(good["median_hr_bpm"] * 1000 / 360)
    assert "record fast: the annotated beats give a median heart rate of 2" in caplog.text
    assert "header's sampling rate is wrong" in caplog.text
    assert "record good: the annotated" not in caplog.text


def test_unannotated_records_are_classified_on_the_detected_beats(
    folder: Path, model: ArrhythmiaGRU, tmp_path: Path
) -> None:
    db = open_database(str(folder), PhysioNetConfig())
    annotated = score_database(model, PREPROCESSING, db, ["good"])
    scores = score_database(model, PREPROCESSING, db, ["good"], annotations=None)
    assert annotated.labelled and not scores.labelled
    assert (scores.y_true == UNLABELLED).all()
    # record 100's first 40 s: the detector finds the annotated beats, give or take one at
    # either end of the excerpt
    assert abs(scores.y_true.size - annotated.y_true.size) <= 2
    report = scores.report()
    assert "classes" not in report and "accuracy" not in report
    assert report["n_beats"] == scores.y_pred.size
    assert sum(report["calls"].values()) == scores.y_pred.size
    assert report["records"]["good"]["calls"] == report["calls"]
    signal = report["records"]["good"]["signal"]
    assert signal["annotation_match"] is None and signal["lead"] == "MLII"
    assert 60 < signal["median_hr_bpm"] < 90
    assert set(scores.inputs) == set(annotated.inputs)
    assert "found by the R-peak detector" in report_markdown(report)

    # A folder of recordings without annotation files: read as annotated, nothing can be
    # scored, and the error says how to read them; read as unannotated, they are scored.
    for suffix in ("hea", "dat"):
        (tmp_path / f"good.{suffix}").write_bytes((folder / f"good.{suffix}").read_bytes())
    bare = open_database(str(tmp_path), PhysioNetConfig())
    with pytest.raises(RecordError, match="annotation file does not exist.*--annotations none"):
        score_database(model, PREPROCESSING, bare, ["good"])
    again = score_database(model, PREPROCESSING, bare, ["good"], annotations=None)
    np.testing.assert_array_equal(again.probs, scores.probs)


def test_the_labels_written_as_wfdb_annotations_read_back_at_the_reference_beats(
    folder: Path, model: ArrhythmiaGRU, tmp_path: Path
) -> None:
    db = open_database(str(folder), PhysioNetConfig())
    scores = score_database(model, PREPROCESSING, db, ["good", "halfflat"])
    paths = scores.write_annotations(tmp_path / "ann", "vgru")
    assert [p.name for p in paths] == ["good.vgru", "halfflat.vgru"]
    ref = wfdb.rdann(str(folder / "good"), "atr")
    got = wfdb.rdann(str(tmp_path / "ann" / "good"), "vgru")
    mine = scores.record_ids == "good"
    assert got.fs == 360
    # one annotation per beat scored, at the annotators' own sample
    np.testing.assert_array_equal(got.sample, scores.samples[mine])
    assert set(got.sample) <= set(ref.sample)
    back = {"N": 0, "A": 1, "V": 2, "F": 3, "Q": 4}  # EC57's reading of the codes written
    np.testing.assert_array_equal([back[s] for s in got.symbol], scores.y_pred[mine])
    with pytest.raises(ValueError, match="not an annotation file extension"):
        scores.write_annotations(tmp_path / "ann", "v.1")


def test_labels_of_a_500_hz_record_are_written_at_the_annotated_samples(
    mitdb_dir: Path, model: ArrhythmiaGRU, tmp_path: Path
) -> None:
    # a record at a rate above the model's: each label goes to the beat's own sample (a
    # round trip through the model's 360 Hz put 152 of 371 one sample off before)
    n = SECONDS * 360
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=n)
    ann = wfdb.rdann(str(mitdb_dir / "100"), "atr", sampto=n - 1)
    sig = resample_poly(rec.p_signal, 25, 18, axis=0)  # 500 Hz
    folder = tmp_path / "db500"
    folder.mkdir()
    wfdb.wrsamp("r500", fs=500, units=rec.units, sig_name=rec.sig_name, p_signal=sig,
                fmt=["16"] * 2, adc_gain=[200.0] * 2, baseline=[0] * 2, write_dir=str(folder))  # fmt: skip
    at = np.round(ann.sample * 500 / 360).astype(np.int64) + 1  # not images of 360 Hz samples
    wfdb.wrann("r500", "atr", at, symbol=list(ann.symbol), write_dir=str(folder))
    scores = score_database(model, PREPROCESSING, open_database(str(folder), PhysioNetConfig()),
                            ["r500"])  # fmt: skip
    (path,) = scores.write_annotations(tmp_path / "ann", "vgru")
    got = wfdb.rdann(str(path.with_suffix("")), "vgru")
    assert got.fs == 500 and got.sample.size > 40
    assert set(got.sample) <= set(at.tolist())


def test_a_config_scores_the_models_lead_unless_it_names_one(folder: Path, tmp_path: Path) -> None:
    # `vitalgru evaluate --config FILE` takes the mirror and cache from a config; one that
    # names no lead leaves the model's (here V5; the field's default is MLII)
    from pipelines.evaluate import score_records
    from vitalgru.tracking.models import LoadedModel

    torch.manual_seed(0)
    model = ArrhythmiaGRU(n_rr=N_RR_FEATURES).eval()
    loaded = LoadedModel(module=model, preprocessing={**PREPROCESSING, "lead": "V5"},
                         config={}, uri="models:/test/1", version="1")  # fmt: skip
    cache = tmp_path / "cache_only.yaml"
    cache.write_text(f"ingest:\n  physionet:\n    cache_dir: {tmp_path / 'cache'}\n")
    named = tmp_path / "names_mlii.yaml"
    named.write_text("ingest:\n  arrhythmia:\n    windows:\n      lead: MLII\n")
    index = tmp_path / "names_index_1.yaml"
    index.write_text("ingest:\n  arrhythmia:\n    windows:\n      lead: 1\n")
    leads = {}
    for name, cfg in (("none", None), ("cache", cache), ("named", named), ("index", index)):
        report, _ = score_records(loaded, str(folder), "good", str(tmp_path / f"{name}.json"),
                                  None if cfg is None else str(cfg))  # fmt: skip
        leads[name] = report["records"]["good"]["signal"]["lead"]
    assert leads == {"none": "V5", "cache": "V5", "named": "MLII", "index": "V5"}


def test_a_record_scored_on_the_fall_back_lead_is_marked_in_the_report(
    folder: Path, tmp_path: Path
) -> None:
    # a model of lead V1 on a record with MLII and V5 reads column 0 (MLII), its
    # fall-back: before, only the log said so, and the report's lead read as any other
    from pipelines.evaluate import score_records
    from vitalgru.tracking.models import LoadedModel

    torch.manual_seed(0)
    model = ArrhythmiaGRU(n_rr=N_RR_FEATURES).eval()
    signal = {}
    for lead in ("V1", "V5"):
        loaded = LoadedModel(module=model, preprocessing={**PREPROCESSING, "lead": lead},
                             config={}, uri="models:/test/1", version="1")  # fmt: skip
        report, _ = score_records(loaded, str(folder), "good", str(tmp_path / f"{lead}.json"))
        signal[lead] = report["records"]["good"]["signal"]
        written = json.loads((tmp_path / f"{lead}.json").read_text())
        assert written["records"]["good"]["signal"] == signal[lead]
    assert signal["V1"]["lead"] == "MLII" and signal["V1"]["lead_wanted"] == "V1"
    assert signal["V1"]["lead_fallback"] is True
    assert signal["V5"]["lead"] == "V5" and signal["V5"]["lead_fallback"] is False
    assert {k for k in signal["V5"] if not k.startswith("lead_")} <= set(signal["V1"])
    md = (tmp_path / "V1.md").read_text()
    assert "Scored on a fall-back lead (1 records" in md and "good MLII for V1" in md
    assert "fall-back lead" not in (tmp_path / "V5.md").read_text()


def test_records_whose_names_differ_only_in_case_get_no_annotation_files(
    mitdb_dir: Path, model: ArrhythmiaGRU, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # good.vgru and GOOD.vgru are one file on macOS or Windows: the second record's labels
    # replaced the first's, read by bxb against the first record's reference
    from pipelines import evaluate, replay
    from vitalgru.errors import FileNameClashError
    from vitalgru.tracking.models import LoadedModel

    db = tmp_path / "db"
    db.mkdir()
    for name in ("good", "GOOD"):
        _write(mitdb_dir, name, db)
    loaded = LoadedModel(module=model, preprocessing=PREPROCESSING, config={},
                         uri="models:/test/1", version="1")  # fmt: skip
    monkeypatch.setattr(evaluate.tracking, "load_model", lambda uri, kinds=(): loaded)
    for run in (evaluate.evaluate_arrhythmia, replay.replay_arrhythmia):
        out = tmp_path / run.__name__
        with pytest.raises(FileNameClashError, match="'good' and 'GOOD' differ only in letter"):
            run("models:/test/1", str(db), "good,GOOD", str(out), write_annotations="vgru")
        assert not out.exists()  # refused before the scoring, nothing written
    # without annotation files the two are scored as the two records they are on Linux
    scores = score_database(model, PREPROCESSING, open_database(str(db), PhysioNetConfig()),
                            ["good", "GOOD"])  # fmt: skip
    assert sorted(set(scores.record_ids.tolist())) == ["GOOD", "good"]
    with pytest.raises(FileNameClashError):
        scores.write_annotations(tmp_path / "ann", "vgru")
    assert not (tmp_path / "ann").exists()


def test_evaluate_writes_record_intervals_and_says_when_one_record_cannot_give_one(
    folder: Path, model: ArrhythmiaGRU, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the beats of one record are not independent: `vitalgru evaluate arrhythmia` gives
    # intervals from resampling whole records, and none from one record
    from pipelines import evaluate
    from vitalgru.tracking.models import LoadedModel

    loaded = LoadedModel(module=model, preprocessing=PREPROCESSING, config={},
                         uri="models:/test/1", version="1")  # fmt: skip
    monkeypatch.setattr(evaluate.tracking, "load_model", lambda uri, kinds=(): loaded)
    two = evaluate.evaluate_arrhythmia("models:/test/1", str(folder), "good,halfflat",
                                       str(tmp_path / "two.json"))  # fmt: skip
    written = json.loads((tmp_path / "two.json").read_text())
    assert written["intervals"] == two["intervals"]
    iv = two["intervals"]
    assert (iv["n_records"], iv["level"], iv["seed"]) == (2, 0.95, 20190101)
    assert set(iv["classes"]) == {"N", "S", "V", "F", "Q"} and "note" not in iv
    lo, hi = iv["accuracy"]
    assert lo <= two["accuracy"] <= hi
    assert set(two["records"]) == {"good", "halfflat"}  # the other keys are as before
    assert "record bootstrap (2 records resampled" in (tmp_path / "two.md").read_text()
    one = evaluate.evaluate_arrhythmia("models:/test/1", str(folder), "good",
                                       str(tmp_path / "one.json"))  # fmt: skip
    assert one["intervals"]["n_records"] == 1 and one["intervals"]["accuracy"] is None
    assert "No record-bootstrap interval (1 record" in (tmp_path / "one.md").read_text()

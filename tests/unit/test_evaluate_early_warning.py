"""``vitalgru evaluate early-warning`` on foreign Challenge-2019 folders, with a small fitted
model (the registry stood in for): what is refused is said per column, and the files
written for the Challenge's scorer are ones it reads."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pipelines.evaluate as evaluate_mod
from vitalgru.data.early_warning import EarlyWarningCohort
from vitalgru.errors import FileNameClashError, RecordError
from vitalgru.io.psv_folder import list_psv
from vitalgru.metrics.early_warning_unlabelled import LABELLED_ONLY, UNLABELLED_NOTE
from vitalgru.metrics.utility import normalized_utility
from vitalgru.tracking import LoadedModel


@pytest.fixture
def evaluate(sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch) -> Any:
    model, preprocessing, _ = sepsis_fit

    def load_model(uri: str, kinds: Any = ()) -> LoadedModel:
        return LoadedModel(model, preprocessing, {}, uri, "3")

    monkeypatch.setattr(evaluate_mod.tracking, "load_model", load_model)

    def run(data: Path, out: Path, write_predictions: bool = False) -> dict[str, Any]:
        return evaluate_mod.evaluate_early_warning(
            "models:/m@champion", str(data), str(out), write_predictions
        )

    return run


@pytest.fixture
def set_a(physionet_mirror: Path) -> list[Path]:
    """Twelve set-A stays past the model's training ones, four of them septic."""
    files = list_psv(physionet_mirror / "challenge-2019" / "training_setA")[100:400]
    septic = [f for f in files if "|1\n" in f.read_text()]
    return sorted(septic[:4] + [f for f in files if f not in septic][:8])


def _load_column(filename: Path, header: str) -> np.ndarray:
    """``load_column`` of the Challenge's ``evaluate_sepsis_score.py`` (its logic verbatim):
    the header found by exact name, every later line split."""
    column = []
    with open(filename) as f:
        for i, line in enumerate(f):
            arrs = line.strip().split("|")
            if i == 0:
                j = arrs.index(header)  # ValueError: the scorer's "must contain column"
            elif len(arrs[j]):
                column.append(float(arrs[j]))
    return np.array(column)


def test_temperatures_in_fahrenheit_are_counted_by_column_and_warned_about(
    evaluate: Any,
    set_a: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    in_fahrenheit: Any,
) -> None:
    # every temperature refused as implausible, the report said only "N implausible values"
    data = tmp_path / "data"
    measured = in_fahrenheit(set_a, data)
    assert measured > 50
    with caplog.at_level(logging.WARNING):
        ev = evaluate(data, tmp_path / "out")
    assert ev["n_implausible_values"] == measured  # the total is kept
    assert ev["implausible_values_by_column"] == {"temp_c": measured}
    (said,) = ev["implausible_value_warnings"]
    assert said.startswith(f"temp_c: {measured} of {measured} measured values (100 %)")
    assert "they look like °F" in said
    assert "they look like °F" in caplog.text and "temp_c" in caplog.text
    md = (tmp_path / "out" / "metrics.md").read_text()
    assert f"{measured} implausible value(s) read as missing (temp_c {measured})" in md
    assert "**Warning:** temp_c:" in md


def test_lab_columns_in_si_units_that_pass_the_limits_are_warned_about(
    evaluate_fixed: Any,
    si_units_folder: Path,
    physionet_mirror: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 30 stays with glucose in mmol/L, PaCO2 in kPa, haemoglobin in mmol/L: the glucoses of
    # 10 mmol/L and more were taken as glucoses of 10-30 mg/dL, the PaCO2s of 5 kPa and more
    # as 5-10 mmHg, every haemoglobin as a plausible g/dL, and the report said nothing
    with caplog.at_level(logging.WARNING):
        ev = evaluate_fixed(si_units_folder, tmp_path / "out")
    said = ev["unit_warnings"]
    assert [s.split(":")[0] for s in said] == ["paco2_mmhg", "glucose_mg_dl", "hgb_g_dl"]
    for text, unit in zip(said, ["kPa", "mmol/L", "mmol/L"], strict=True):
        assert f"they look like {unit}:" in text and "taken as they are" in text, text
    assert said[1].startswith("glucose_mg_dl: the median of its 154 measured values, 6.")
    assert "multiply by 18.016" in said[1] and "glucose_mg_dl: the median" in caplog.text
    md = (tmp_path / "out" / "metrics.md").read_text()
    assert "**Warning:** hgb_g_dl: the median of its 119 measured values" in md
    assert "the model was scored on them as they are" in md
    # the same stays in the Challenge's units: nothing said
    data = tmp_path / "as_is"
    data.mkdir()
    for src in list_psv(physionet_mirror / "challenge-2019" / "training_setA")[:30]:
        (data / src.name).write_bytes(src.read_bytes())
    assert evaluate_fixed(data, tmp_path / "out2")["unit_warnings"] == []


def test_the_challenge_scorer_reads_the_labels_of_any_folder_scored(
    evaluate: Any, set_a: list[Path], tmp_path: Path
) -> None:
    # the input files were linked as the labels: a lower-case header or a blank line, which
    # vitalgru reads, made the official scorer fail, and a .psv.gz was a dangling link
    data = tmp_path / "data"
    data.mkdir()
    for k, src in enumerate(set_a):
        text = src.read_text()
        if k == 0:
            head, _, body = text.partition("\n")
            text = head.lower() + "\n" + body
        elif k == 1:
            lines = text.splitlines()
            text = "\n".join([*lines[:5], "", *lines[5:]]) + "\n"
        if k == 2:
            (data / f"{src.name}.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (data / src.name).write_text(text)
    ev = evaluate(data, tmp_path / "out", write_predictions=True)
    assert ev["n_patients"] == len(set_a) and ev["n_excluded_files"] == 0
    ch = Path(ev["paths"]["challenge"])
    labels = sorted((ch / "labels").glob("*.psv"))
    preds = sorted((ch / "predictions").glob("*.psv"))
    assert [p.name for p in labels] == [p.name for p in preds] == [f"{s.stem}.psv" for s in set_a]
    ys, alarms, offsets = [], [], [0]
    for lab, pred, src in zip(labels, preds, set_a, strict=True):
        y = _load_column(lab, "SepsisLabel")
        p = _load_column(pred, "PredictedLabel")
        assert len(y) == len(p) and not lab.is_symlink()
        assert y.tolist() == _load_column(src, "SepsisLabel").tolist()  # the input's labels
        ys.append(y)
        alarms.append(p)
        offsets.append(offsets[-1] + len(y))
    from_files = normalized_utility(np.concatenate(ys).astype(int),
                                    np.concatenate(alarms).astype(int), np.asarray(offsets))  # fmt: skip
    assert from_files == pytest.approx(ev["utility"], abs=1e-12)


#: The labelled report of :func:`test_a_labelled_report_is_pinned`, as it was written before
#: unlabelled folders could be scored: JSON and markdown (the folder's path as ``<tmp>``).
GOLDEN = Path(__file__).parent / "golden" / "evaluate_early_warning"


def _fixed_risks(
    model: Any, preprocessing: dict, cohort: EarlyWarningCohort, *_: Any
) -> np.ndarray:
    """Risks that depend on each row alone, computed in numpy: the same on any machine,
    as a fitted network's last digits need not be."""
    f = cohort.frame
    z = (np.nan_to_num(f["hr_bpm"].to_numpy(np.float64), nan=85.0) - 95.0) / 12.0
    z += (np.nan_to_num(f["resp_per_min"].to_numpy(np.float64), nan=18.0) - 20.0) / 6.0
    return 1.0 / (1.0 + np.exp(-(z + 0.01 * f["hour"].to_numpy(np.float64) - 1.0)))


@pytest.fixture
def evaluate_fixed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``evaluate early-warning`` with :func:`_fixed_risks` for the model and a stored
    threshold and recalibration."""
    pre = {"threshold": 0.4, "recalibration": {"intercept": -1.5, "slope": 0.9, "n": 1000}}
    monkeypatch.setattr(evaluate_mod.tracking, "load_model",
                        lambda uri, kinds=(): LoadedModel(None, pre, {}, uri, "3"))  # fmt: skip
    monkeypatch.setattr(evaluate_mod, "score_cohort", _fixed_risks)

    def run(data: Path, out: Path, write_predictions: bool = False) -> dict[str, Any]:
        return evaluate_mod.evaluate_early_warning(
            "models:/m@champion", str(data), str(out), write_predictions
        )

    return run


def _pinned_texts(out: Path, tmp: Path) -> dict[str, str]:
    """The report's files as text, the temporary folder's path as ``<tmp>``; the scores and
    the Challenge files by digest (parquet bytes carry the writer's version)."""
    tables = _frame_digest(out / "scores.parquet")
    files = sorted((out / "challenge").rglob("*.psv"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(out).as_posix().encode() + b"\0" + f.read_bytes())
    texts = {
        name: (out / name).read_text().replace(str(tmp), "<tmp>")
        for name in ("metrics.json", "metrics.md", "attrition.csv")
    }
    texts["digests.txt"] = f"scores {tables}\nchallenge {len(files)} {h.hexdigest()}\n"
    return texts


def _frame_digest(path: Path) -> str:
    """A digest of a parquet table's columns and values (not of its bytes)."""
    frame = pd.read_parquet(path)
    return hashlib.sha256(frame.to_csv(index=False, float_format="%.9g").encode()).hexdigest()


def test_a_labelled_report_is_pinned(
    evaluate_fixed: Any, set_a: list[Path], tmp_path: Path
) -> None:
    # reading folders without SepsisLabel as unlabelled must leave the labelled report as
    # it was: the JSON, the markdown, the attrition, the scores and the Challenge's files
    data = tmp_path / "data"
    data.mkdir()
    for src in set_a:
        (data / src.name).write_bytes(src.read_bytes())
    (data / "p999999.psv").write_text("HR|O2Sat\n1|2\n")  # one file in attrition
    ev = evaluate_fixed(data, tmp_path / "out", write_predictions=True)
    # each group's utility comes with the interval of its own patients resampled
    with_septic = [g for g in ev["subgroups"].values() if g["n_septic_patients"]]
    assert with_septic
    for g in ev["subgroups"].values():
        iv = g["intervals"]
        assert iv["n_patients"] == g["n_patients"] and set(iv) >= {"utility", "threshold"}
        assert "auroc" not in iv  # the utility alone: one matrix product per resample
        assert iv["utility"]["estimate"] == pytest.approx(g["utility"], abs=1e-12) or (
            g["utility"] is None and iv["utility"]["estimate"] is None
        )
    texts = _pinned_texts(tmp_path / "out", tmp_path)
    if os.environ.get("VITALGRU_WRITE_GOLDEN"):  # to write the files anew, on purpose
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (GOLDEN / name).write_text(text)
    for name, text in texts.items():
        want = (GOLDEN / name).read_text()
        if name == "metrics.json":  # numbers to 12 digits: a platform's last bits aside
            assert _rounded(json.loads(text)) == _rounded(json.loads(want))
        else:
            assert text == want, name


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.12g}")
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def _drop_label(src: Path, dst: Path) -> None:
    """``src`` without its SepsisLabel column, as a hospital's own export comes."""
    lines = [line.rsplit("|", 1)[0] for line in src.read_text().splitlines()]
    assert lines[0].endswith("|ICULOS")
    dst.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("runner", ["evaluate", "evaluate_fixed"])
def test_an_unlabelled_folder_is_scored_and_says_no_accuracy_figure_can_be_given(
    runner: str,
    set_a: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    # every file went to attrition (header lacks SepsisLabel) and the folder was refused
    # as "no patient could be read". The small fitted model, and the numpy risks, which
    # alarm on some hours and not others.
    evaluate = request.getfixturevalue(runner)
    labelled, unlabelled = tmp_path / "labelled", tmp_path / "unlabelled"
    labelled.mkdir()
    unlabelled.mkdir()
    for src in set_a:
        (labelled / src.name).write_bytes(src.read_bytes())
        _drop_label(src, unlabelled / src.name)
    out = tmp_path / "out"
    ref = evaluate(labelled, out, write_predictions=True)
    ch = out / "challenge"
    ref_predictions = {p.name: p.read_bytes() for p in (ch / "predictions").glob("*.psv")}
    ref_scores = pd.read_parquet(out / "scores.parquet")
    assert len(list((ch / "labels").glob("*.psv"))) == len(set_a)
    with caplog.at_level(logging.WARNING):
        ev = evaluate(unlabelled, out, write_predictions=True)  # over the labelled run
    assert ev["labelled"] is False and ev["unlabelled_note"] == UNLABELLED_NOTE
    assert "no accuracy figure can be given" in caplog.text
    assert ev["n_patients"] == len(set_a) and ev["n_excluded_files"] == 0
    assert ev["n_patient_hours"] == ref["n_patient_hours"]
    for key in LABELLED_ONLY:  # null, never computed as if every stay were negative
        assert ev[key] is None, key
    assert "calibration" not in ev and "probability_calibration" not in ev
    assert "n_patients_with_label_reversals" not in ev
    # no interval without labels; the labelled folder's resampled its patients
    assert "intervals" not in ev and ref["intervals"]["n_patients"] == len(set_a)
    # the same risks, probabilities and alarms as the labelled folder's, and so the same
    # burden; the share of patients ever alarmed is of all patients
    scores = pd.read_parquet(out / "scores.parquet")
    assert "sepsis_label" not in scores.columns
    pd.testing.assert_frame_equal(scores, ref_scores.drop(columns="sepsis_label"))
    for key in ("alarms_per_patient_day", "alarm_hour_fraction", "threshold", "mean_risk"):
        assert ev[key] == pytest.approx(ref[key], rel=1e-12), key
    alarmed = scores.groupby("patient_id")["alarm"].max()
    assert ev["alarmed_patient_fraction"] == pytest.approx(alarmed.mean())
    assert ev["mean_probability"] == pytest.approx(scores["probability"].mean(), rel=1e-6)
    assert list(ev["subgroups"]) == list(ref["subgroups"])
    for name, g in ev["subgroups"].items():
        assert g["n_patients"] == ref["subgroups"][name]["n_patients"]
        assert g["utility"] is None and g["n_septic_patients"] is None
        assert g["alarms_per_patient_day"] == pytest.approx(
            ref["subgroups"][name]["alarms_per_patient_day"], rel=1e-12
        )
    # the predictions are written, and no label file: the labelled run's are removed
    assert {p.name: p.read_bytes() for p in (ch / "predictions").glob("*.psv")} == ref_predictions
    assert list((ch / "labels").glob("*.psv")) == []
    md = (out / "metrics.md").read_text()
    assert "**unlabelled** (no SepsisLabel column)" in md
    assert f"**No accuracy figures:** {UNLABELLED_NOTE}." in md
    assert "hourly AUROC" not in md and "normalized utility" not in md
    assert f"| alarm onsets per patient-day | {ev['alarms_per_patient_day']:.2f} |" in md
    assert "| group | patients | alarm onsets per patient-day |" in md
    assert "Data: 0 file(s) excluded" in md and "SepsisLabel falls back" not in md


def test_a_folder_with_some_files_unlabelled_is_refused_before_anything_is_written(
    evaluate: Any, set_a: list[Path], tmp_path: Path
) -> None:
    # the unlabelled files went to attrition as "missing columns" and the rest was scored
    data = tmp_path / "data"
    data.mkdir()
    for k, src in enumerate(set_a):
        if k % 3 == 0:
            _drop_label(src, data / src.name)
        else:
            (data / src.name).write_bytes(src.read_bytes())
    with pytest.raises(RecordError) as ei:
        evaluate(data, tmp_path / "out")
    assert ei.value.reason == "mixed_labels"
    assert "8 of the 12 files read have a SepsisLabel column" in str(ei.value)
    assert "4 do not" in str(ei.value)
    assert not (tmp_path / "out").exists()


def test_patients_whose_names_differ_only_in_case_get_no_challenge_files(
    evaluate: Any, set_a: list[Path], tmp_path: Path
) -> None:
    # P001.psv and p001.psv were written for the scorer: one file on macOS or Windows,
    # holding the second patient's rows, so the scorer read one patient where two were scored
    data = tmp_path / "data"
    data.mkdir()
    for name, src in zip(("P001", "p001", "p002"), set_a, strict=False):
        (data / f"{name}.psv").write_bytes(src.read_bytes())
    with pytest.raises(FileNameClashError, match="'P001' and 'p001' differ only in letter case"):
        evaluate(data, tmp_path / "out", write_predictions=True)
    assert not (tmp_path / "out").exists()  # refused before the scoring, nothing written
    ev = evaluate(data, tmp_path / "out")  # no file per patient: three patients, as on Linux
    assert ev["n_patients"] == 3

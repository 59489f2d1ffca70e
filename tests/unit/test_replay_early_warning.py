"""``vitalgru replay early-warning`` on a small fitted model (the registry stood in for)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pipelines.replay as replay_mod
from vitalgru.tracking import LoadedModel


@pytest.fixture
def replayed(sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch) -> Any:
    model, preprocessing, _ = sepsis_fit

    def load_model(uri: str, kinds: Any = ()) -> LoadedModel:
        return LoadedModel(model, preprocessing, {}, uri, "3")

    monkeypatch.setattr(replay_mod.tracking, "load_model", load_model)

    def run(data: Path, out: Path) -> dict[str, Any]:
        return replay_mod.replay_early_warning("models:/m@champion", str(data), str(out))

    return run


def _psv(src: Path, dst: Path, edit: dict[int, dict[str, str]]) -> None:
    """Copy a challenge file, changing cells of some rows (row index -> column -> text)."""
    lines = src.read_text().splitlines()
    head = lines[0].split("|")
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        cells = line.split("|")
        for col, text in edit.get(i, {}).items():
            cells[head.index(col)] = text
        out.append("|".join(cells))
    dst.write_text("\n".join(out) + "\n")


def test_a_refused_value_outside_the_findings_is_listed_with_its_value(
    replayed: Any, physionet_mirror: Path, tmp_path: Path
) -> None:
    # only the findings' columns were passed on: a FiO2 given as a percentage and an
    # impossible pH were listed as "FiO2 = ?" and "pH = ?", the value the feed's team needs
    data = tmp_path / "data"
    data.mkdir()
    setA = physionet_mirror / "challenge-2019" / "training_setA"
    _psv(setA / "p000001.psv", data / "p000001.psv", {3: {"FiO2": "50", "pH": "74", "HR": "400"}})
    report = replayed(data, tmp_path / "out")
    refused = {r["column"]: r["value"] for r in report["patients"]["p000001"]["rejected"]}
    assert refused == {"fio2_frac": 50.0, "ph": 74.0, "hr_bpm": 400.0}
    page = (tmp_path / "out" / "replay.html").read_text()
    listed = re.findall(r"<li>ICU hour 4: ([^<]*)</li>", page)
    assert "?" not in " ".join(listed) and any(t.startswith("FiO2 = 50") for t in listed)
    assert json.loads((tmp_path / "out" / "replay.json").read_text())["patients"]


def test_an_unlabelled_folder_is_replayed_with_what_raised_each_alarm(
    replayed: Any, physionet_mirror: Path, tmp_path: Path
) -> None:
    # a folder without SepsisLabel is read unlabelled: the replay failed on the missing
    # label column (KeyError) instead of replaying the stays without accuracy figures
    setA = physionet_mirror / "challenge-2019" / "training_setA"
    labelled, unlabelled = tmp_path / "labelled", tmp_path / "unlabelled"
    labelled.mkdir()
    unlabelled.mkdir()
    for name in ("p000009.psv", "p000010.psv", "p000011.psv"):
        text = (setA / name).read_text()
        (labelled / name).write_text(text)
        rows = [line.rsplit("|", 1)[0] for line in text.splitlines()]
        (unlabelled / name).write_text("\n".join(rows) + "\n")
    ref = replayed(labelled, tmp_path / "ref")
    report = replayed(unlabelled, tmp_path / "out")
    m = report["metrics"]
    assert m["labelled"] is False and m["utility"] is None and m["auroc"] is None
    assert m["alarms_per_patient_day"] == pytest.approx(ref["metrics"]["alarms_per_patient_day"])
    assert report["alarms"] == ref["alarms"] and report["alarms"]["episodes"] > 0
    for pid, p in report["patients"].items():  # the same episodes and what raised them
        assert p["episodes"] == ref["patients"][pid]["episodes"]
        assert p["reference_onset_hour"] is None and p["first_alarm_lead_h"] is None
    assert any(ep["drivers"] for p in report["patients"].values() for ep in p["episodes"])
    hours = pd.read_parquet(tmp_path / "out" / "replay.hours.parquet")
    assert "sepsis_label" not in hours.columns
    md = (tmp_path / "out" / "replay.md").read_text()
    assert "**No accuracy figures:**" in md and "## Alarms at the bedside" in md


def test_a_folder_with_lab_columns_in_si_units_is_replayed_with_a_warning(
    replayed: Any, si_units_folder: Path, tmp_path: Path
) -> None:
    # glucose in mmol/L, PaCO2 in kPa, haemoglobin in mmol/L pass the limits in part or
    # whole: the replay took them as they were and said nothing
    report = replayed(si_units_folder, tmp_path / "out")
    said = report["data"]["unit_warnings"]
    assert [s.split(":")[0] for s in said] == ["paco2_mmhg", "glucose_mg_dl", "hgb_g_dl"]
    md = (tmp_path / "out" / "replay.md").read_text()
    assert "**Warning:** glucose_mg_dl: the median of its 154 measured values" in md


def test_a_folder_with_temperatures_in_fahrenheit_is_replayed_with_a_warning(
    replayed: Any, physionet_mirror: Path, tmp_path: Path, in_fahrenheit: Any
) -> None:
    # every temperature refused: the replay counted refused values but, unlike evaluate,
    # never said that a whole column was refused nor that it looks like °F
    setA = physionet_mirror / "challenge-2019" / "training_setA"
    data = tmp_path / "data"
    names = ("p000001.psv", "p000002.psv", "p000003.psv", "p000004.psv")
    measured = in_fahrenheit([setA / n for n in names], data)
    assert measured > 10
    report = replayed(data, tmp_path / "out")
    (said,) = report["data"]["implausible_value_warnings"]
    assert said.startswith(f"temp_c: {measured} of {measured} measured values (100 %)")
    assert "they look like °F" in said
    md = (tmp_path / "out" / "replay.md").read_text()
    assert "**Warning:** temp_c:" in md and "scored without these values" in md


def test_a_folder_with_sex_coded_1_2_is_replayed_with_a_warning_as_evaluate_gives(
    replayed: Any, physionet_mirror: Path, tmp_path: Path
) -> None:
    # Gender, Unit1 and Unit2 have plausibility limits as the vitals do, and evaluate warns
    # of such a column mostly refused; the replay checked the vitals and labs alone, and a
    # folder whose every sex was coded 2 (ISO 5218 female) was replayed without a word
    setA = physionet_mirror / "challenge-2019" / "training_setA"
    data = tmp_path / "data"
    data.mkdir()
    for name in ("p000001.psv", "p000002.psv", "p000003.psv", "p000004.psv"):
        head, *rows = (setA / name).read_text().splitlines()
        g = head.split("|").index("Gender")
        rows = ["|".join(c[:g] + ["2"] + c[g + 1 :]) for c in (r.split("|") for r in rows)]
        (data / name).write_text("\n".join([head, *rows]) + "\n")
    report = replayed(data, tmp_path / "out")
    said = report["data"]["implausible_value_warnings"]
    assert [s.split(":")[0] for s in said] == ["gender_male"]
    md = (tmp_path / "out" / "replay.md").read_text()
    assert "**Warning:** gender_male:" in md


def test_a_child_in_the_folder_is_counted_and_flagged_on_the_page(
    replayed: Any, physionet_mirror: Path, tmp_path: Path
) -> None:
    """Set A holds no one under 18: a child's stay is scored, and counted apart."""
    data = tmp_path / "data"
    data.mkdir()
    setA = physionet_mirror / "challenge-2019" / "training_setA"
    n = len((setA / "p000001.psv").read_text().splitlines()) - 1
    _psv(setA / "p000001.psv", data / "p000001.psv", {i: {"Age": "4"} for i in range(n)})
    _psv(setA / "p000002.psv", data / "p000002.psv", {})
    report = replayed(data, tmp_path / "out")
    child = report["patients"]["p000001"]["outside_population"]
    adult = report["patients"]["p000002"]["outside_population"]
    assert child["hours"] == n and child["reasons"][0].startswith("age 4 y: below the youngest")
    # the adult is flagged only where a vital sign is rarer than the training patients' (the
    # test model's 80 patients make its range narrow)
    assert not any(r.startswith("age") for r in adult["reasons"])
    data_ = report["data"]
    assert data_["n_patients_outside_population"] == 1 + bool(adult["hours"])
    assert data_["n_hours_outside_population"] == n + adult["hours"]
    md = (tmp_path / "out" / "replay.md").read_text()
    assert (
        f"- {data_['n_patients_outside_population']} patients "
        f"({data_['n_hours_outside_population']} hours) scored outside the model's training "
        "population"
    ) in md
    page = (tmp_path / "out" / "replay.html").read_text()
    assert f"Outside the model's training population in {n} of {n} hours scored" in page

"""``vitalgru evaluate early-warning`` on foreign Challenge-2019 folders, with a small fitted
model (the registry stood in for): what is refused is said per column, and the files
written for the Challenge's scorer are ones it reads."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pipelines.evaluate as evaluate_mod
from vitalgru.io.psv_folder import list_psv
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
    evaluate: Any, set_a: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # every temperature refused as implausible, the report said only "N implausible values"
    data = tmp_path / "data"
    data.mkdir()
    measured = 0
    for src in set_a:
        head, *rows = src.read_text().splitlines()
        t = head.split("|").index("Temp")
        out = [head]
        for row in rows:
            cells = row.split("|")
            if cells[t] != "NaN":
                cells[t] = f"{float(cells[t]) * 9 / 5 + 32:.1f}"
                measured += 1
            out.append("|".join(cells))
        (data / src.name).write_text("\n".join(out) + "\n")
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

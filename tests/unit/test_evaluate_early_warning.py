"""``vitalgru evaluate early-warning`` on foreign Challenge-2019 folders, with a small fitted
model (the registry stood in for): what is refused is said per column."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import pipelines.evaluate as evaluate_mod
from vitalgru.io.psv_folder import list_psv
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

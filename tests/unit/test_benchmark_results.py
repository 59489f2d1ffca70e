"""The committed benchmark results are files any JSON reader takes, and the helper that
writes them keeps them so."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
sys.path.insert(0, str(RESULTS.parent))
from common import strict_json  # noqa: E402


def _refuse(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_each_results_file_is_strict_json(path: Path) -> None:
    # NaN (a class without a beat, an empty calibration bin) was written bare: JavaScript's
    # JSON.parse and other strict readers refused six of these files
    json.loads(path.read_text(), parse_constant=_refuse)


#: Keys whose numbers are shares (0 to 1), percentages, and counts or durations (>= 0).
_SHARE = re.compile(r"(^|_)(se|ppv|spec|f1|auroc|auprc|accuracy|fraction|brier|ece|event_rate"
                    r"|mean_risk|fpr)$")  # fmt: skip
_PERCENT = re.compile(r"(^|_)(se|ppv|ppv_ec57_vf|alarm_open|lost)_pct$")  # off_pct: signed
_COUNT = re.compile(r"^(n|n_.*|tp|fn|fp|matched|patients|seconds|wall_s|.*_s)$")


def _numbers(value: object, key: str = "") -> list[tuple[str, float]]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _numbers(v, str(k))]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v, key)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [(key.lower(), float(value))]
    return []


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_each_results_file_has_its_table_and_plausible_numbers(path: Path) -> None:
    # the files were only read as JSON: negated figures or an emptied file passed
    assert path.with_suffix(".md").is_file(), f"{path.name} has no markdown table beside it"
    assert path.with_suffix(".md").read_text().strip()
    numbers = _numbers(json.loads(path.read_text()))
    assert numbers, f"{path.name} holds no figure"
    for key, v in numbers:
        if _SHARE.search(key):
            assert 0.0 <= v <= 1.0, (key, v)
        elif _PERCENT.search(key):
            assert 0.0 <= v <= 100.0, (key, v)
        elif _COUNT.match(key):
            assert v >= 0, (key, v)


def test_strict_json_writes_null_for_what_is_not_a_number() -> None:
    got = json.loads(strict_json({"a": float("nan"), "b": [np.float32(1.5), -math.inf],
                                  "c": np.array([1, 2]), "d": np.int64(3)}))  # fmt: skip
    assert got == {"a": None, "b": [1.5, None], "c": [1, 2], "d": 3}


def test_the_early_warning_benchmark_takes_no_cap_on_its_fits() -> None:
    # the config's max_minutes_per_fit: null (no cap) could not be said on its command line
    from benchmarks.early_warning import build_parser

    parse = build_parser().parse_args
    for text in ("none", "None", "0"):
        assert parse(["--max-minutes-per-fit", text]).max_minutes_per_fit is None
    assert parse(["--max-minutes-per-fit", "15"]).max_minutes_per_fit == 15.0
    assert parse([]).max_minutes_per_fit == 4.0  # the packaged config's
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(SystemExit):
            parse(["--max-minutes-per-fit", bad])


def test_the_early_warning_calibration_prints_a_risk_score_as_a_score() -> None:
    # a model's risk score is the scale its alarm line is drawn on, not a probability: the
    # benchmark printed its mean (0.0665) as "6.65 %", as the evaluate report did before
    from benchmarks.early_warning import _markdown

    bins = [{"n": 5, "risk_min": 0.002, "risk_max": 0.2, "mean_risk": 0.0665, "observed": 0.02}]
    row = {"mean_risk": 0.0665, "event_rate": 0.0215, "brier": 0.0267, "ece": 0.045,
           "calibration_in_the_large": -1.34, "calibration_slope": 0.88, "table": bins}  # fmt: skip
    recal = {**row, "mean_risk": 0.022, "table": [{**bins[0], "mean_risk": 0.022}]}
    out = json.loads((RESULTS / "early_warning.json").read_text())
    out["calibration"] = {"gru_d_gbm_blend": row, "gru_d_gbm_blend recalibrated": recal}
    md = _markdown(out, tuple(out["per_fold"]))
    assert "| gru_d_gbm_blend | 0.0665 | 2.15 % | 0.0267 |" in md
    assert "| gru_d_gbm_blend recalibrated | 2.20 % | 2.15 % |" in md
    assert "| risk scores | hours | mean risk score | observed |" in md
    assert "| 0.002-0.200 | 5 | 0.0665 | 2.00 % |" in md
    assert "| probabilities | hours | mean probability | observed |" in md
    assert "| 0.002-0.200 | 5 | 2.20 % | 2.00 % |" in md
    assert "6.65" not in md


def test_the_ds2_intervals_are_those_of_the_saved_per_record_matrices() -> None:
    # `python benchmarks/ds2_intervals.py` reads every saved DS2 result with per-record
    # confusion matrices; its committed file is what the saved matrices give today
    from benchmarks.ds2_intervals import NAME, saved_ds2, summarise
    from vitalgru.metrics.bootstrap import DEFAULT_SEED

    saved = saved_ds2()
    assert {"arrhythmia.json", "arrhythmia_newer_cpu.json"} <= set(saved)
    committed = json.loads((RESULTS / f"{NAME}.json").read_text())
    assert set(committed["results"]) == set(saved)
    got = summarise(saved["arrhythmia.json"], committed["n_resamples"], committed["seed"])
    assert committed["seed"] == DEFAULT_SEED
    s_f1, v_f1 = got["figures"]["s_f1"], got["figures"]["v_f1"]
    assert s_f1["value"] == pytest.approx(0.6655, abs=1e-4)  # the README's 66.5 %
    assert s_f1["interval"] == pytest.approx([0.1112, 0.8867], abs=1e-4)
    assert v_f1["interval"] == pytest.approx([0.8384, 0.9680], abs=1e-4)
    assert (s_f1["target_is"], s_f1["published_is"]) == ("inside", "inside")
    saved_s = committed["results"]["arrhythmia.json"]["figures"]["s_f1"]
    assert saved_s["interval"] == pytest.approx(s_f1["interval"])
    # record 232 holds 1382 of DS2's 1837 S beats: without it S F1 is 19.3 %
    r232 = got["leave_one_record_out"]["232"]["S"]
    assert (r232["n"], r232["tp"]) == (1382, 1318)
    assert r232["f1_without"] == pytest.approx(0.1928, abs=1e-4)

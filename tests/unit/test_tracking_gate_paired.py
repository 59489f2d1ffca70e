"""The champion gate's paired record bootstrap, through a real embedded MLflow store: each
version's run logs its DS2 report (``evaluation/ds2.json``, a confusion matrix per
record), and the gate says whether the new version's difference is within what another set
of patients would move."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient

from vitalgru import tracking
from vitalgru.metrics.aami import aami_report
from vitalgru.tracking import (
    PAIRED_TAG,
    alias_history,
    get_alias_version,
    promote_if_better,
    registry_versions,
    start_run,
    tracking_uri,
)

NAME = "vitalgru-arrhythmia-paired"
DS2 = "evaluation/ds2.json"
KEYS = ["test_s_f1", "test_v_f1"]
S, V = 1, 2


def _cm(s_tp: int, s_fn: int, s_fp: int, v_tp: int = 0) -> np.ndarray:
    m = np.zeros((5, 5), np.int64)
    m[0, 0], m[S, S], m[S, 0], m[0, S], m[V, V] = 100 - s_fp, s_tp, s_fn, s_fp, v_tp
    return m


# the hand-made records of tests/unit/metrics/test_paired.py: "better" finds more S beats
# on record A and calls one N beat of record C S; "worse" finds more on B.
# S F1 on all three: better 20/25 = 0.8, worse 20/24 = 0.8333; V F1 1.0 for both.
BETTER = {"100": _cm(9, 1, 0, v_tp=5), "103": _cm(1, 1, 2), "105": _cm(0, 0, 1)}
WORSE = {"100": _cm(8, 2, 0, v_tp=5), "103": _cm(2, 0, 2), "105": _cm(0, 0, 0)}


def _report(cms: dict[str, np.ndarray]) -> dict[str, Any]:
    """The AAMI report of beats whose confusion matrix per record is ``cms``, as the
    arrhythmia flow logs it."""
    y, p, rid = [], [], []
    for r, m in cms.items():
        for (i, j), n in np.ndenumerate(m):
            y += [i] * int(n)
            p += [j] * int(n)
            rid += [r] * int(n)
    return aami_report(np.asarray(y), np.asarray(p), np.asarray(rid))


def _version(cms: dict[str, np.ndarray] | None, *, logged: bool = True) -> tuple[str, dict]:
    """A registered version whose run logged the DS2 report of ``cms`` (none: no report);
    its gate figures."""
    client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    with start_run("exp") as run:
        report = _report(cms) if cms is not None else None
        if report is not None and logged:
            run.log_dict(report, DS2)
        run.log_text("weights", "model/weights.txt")
    try:
        client.get_registered_model(NAME)
    except Exception:
        client.create_registered_model(NAME)
    mv = client.create_model_version(NAME, f"runs:/{run.run_id}/model", run.run_id)
    figures = {} if report is None else {
        f"test_{c.lower()}_f1": report["classes"][c]["f1"] for c in ("S", "V")}  # fmt: skip
    return str(mv.version), figures


class TestPairedGate:
    def test_a_gain_within_noise_is_promoted_and_said_so(
        self, store: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        v1, m1 = _version(BETTER)
        v2, m2 = _version(WORSE)
        first = promote_if_better(NAME, v1, m1, KEYS, record_report=DS2)
        assert first.promoted and first.paired is None  # nothing to compare with
        with caplog.at_level(logging.INFO, logger="vitalgru.tracking"):
            d = promote_if_better(NAME, v2, m2, KEYS, record_report=DS2)
        # the rule is the one it was: better on S (0.8333 against 0.8), the same on V
        assert d.promoted and d.reason.startswith(f"beats champion v{v1} on test_s_f1")
        assert get_alias_version(NAME) == v2
        p = d.paired
        assert p is not None and (p["against"], p["records"], p["resamples"]) == (v1, 3, 5000)
        s, v = p["keys"]["test_s_f1"], p["keys"]["test_v_f1"]
        # golden: every resample of the three records worked out by hand (test_paired.py)
        assert s["difference"] == pytest.approx(20 / 24 - 20 / 25)
        assert (s["low"], s["high"]) == pytest.approx((48 / 54 - 54 / 57, 4 / 6 - 2 / 7))
        assert s["share_better"] == pytest.approx(19 / 26, abs=0.02)
        assert (v["difference"], v["low"], v["high"], v["share_better"]) == (0.0, 0.0, 0.0, 0.0)
        line = (f"{NAME} v{v2} against champion v{v1} on 3 records: S F1 +3.3 points, "
                "paired record bootstrap 95 % interval -5.8 to +38.1 (better in ")  # fmt: skip
        said = [r.getMessage() for r in caplog.records if "paired record bootstrap" in r.message]
        assert len(said) == 1 and said[0].startswith(line), said
        assert said[0].endswith(
            "V F1 +0.0 points, paired record bootstrap 95 % interval "
            "+0.0 to +0.0 (better in 0 % of 5000 resamples): within noise"
        )
        assert "S F1" in said[0] and ": within noise; V F1" in said[0]

        # kept on the version with what it was measured on, read back by operators' views
        client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
        assert json.loads(client.get_model_version(NAME, v2).tags[PAIRED_TAG]) == p
        assert float(client.get_model_version(NAME, v2).tags["gate.test_s_f1"]) == m2["test_s_f1"]
        row = next(r for r in registry_versions(NAME) if r["version"] == v2)
        assert row["gate_paired"] == p and row["gate"] == {k: m2[k] for k in KEYS}
        assert tracking.version_provenance(NAME, v2)["gate_paired"] == p
        # briefly in the history (its tag keeps at most 5,000 characters of holders)
        entry = alias_history(NAME)[-1]
        assert (
            entry["paired"]
            == tracking.paired_brief(p)
            == (
                "S F1 +3.3 [-5.8, +38.1] within noise; V F1 +0.0 [+0.0, +0.0] within noise "
                "(paired, 3 records)"
            )
        )
        assert len(json.dumps(entry)) < len(json.dumps({**entry, "paired": said[0]})) - 150
        assert "paired" not in alias_history(NAME)[0]  # the first champion faced none

    def test_the_operator_reads_it_in_models_list_show_and_promote(
        self, store: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from pipelines.cli import main

        v1, m1 = _version(WORSE)
        v2, m2 = _version(BETTER)
        promote_if_better(NAME, v1, m1, KEYS, record_report=DS2)
        d = promote_if_better(NAME, v2, m2, KEYS, record_report=DS2)
        assert not d.promoted and get_alias_version(NAME, "challenger") == v2  # worse on S
        said = tracking.paired_text(d.paired)  # type: ignore[arg-type]
        assert said.startswith(f"against champion v{v1} on 3 records: S F1 -3.3 points, "
                               "paired record bootstrap 95 % interval -38.1 to +5.8")  # fmt: skip
        capsys.readouterr()
        assert main(["models", "list", NAME]) == 0
        listed = capsys.readouterr().out
        assert f"    version {v2} {said}" in listed
        assert main(["models", "show", NAME, v2]) == 0
        shown = " ".join(capsys.readouterr().out.split())
        assert f"paired {said}" in shown
        assert main(["models", "promote", NAME, v2, "--reason", "reviewed"]) == 0
        assert json.loads(capsys.readouterr().out)["gate_paired"] == said

    @pytest.mark.parametrize("missing", ["champion", "new"])
    def test_a_run_without_the_report_is_said_and_the_gate_decides_as_before(
        self, store: Path, missing: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        v1, m1 = _version(BETTER, logged=missing != "champion")
        v2, m2 = _version(WORSE, logged=missing != "new")
        promote_if_better(NAME, v1, m1, KEYS, record_report=DS2)
        with caplog.at_level(logging.INFO, logger="vitalgru.tracking"):
            d = promote_if_better(NAME, v2, m2, KEYS, record_report=DS2)
        assert d.promoted and get_alias_version(NAME) == v2  # as without the report
        assert d.paired is not None and "keys" not in d.paired
        who = f"champion version {v1}" if missing == "champion" else f"version {v2}"
        assert d.paired["missing"].startswith(f"{who}'s run ")
        assert f"has no readable {DS2}" in d.paired["missing"]
        said = [r.getMessage() for r in caplog.records if "no paired interval" in r.message]
        assert len(said) == 1 and said[0].startswith(
            f"{NAME} v{v2} no paired interval against champion v{v1}: {who}'s run"
        )
        assert "paired" not in alias_history(NAME)[-1]

    def test_versions_scored_on_other_records_are_not_paired(self, store: Path) -> None:
        v1, m1 = _version(BETTER)
        v2, m2 = _version({r: m for r, m in WORSE.items() if r != "105"})
        promote_if_better(NAME, v1, m1, KEYS, record_report=DS2)
        d = promote_if_better(NAME, v2, m2, KEYS, record_report=DS2)
        assert d.paired is not None and "other records (2 and 3" in d.paired["missing"]

    def test_a_champion_registered_by_hand_without_a_run(self, store: Path) -> None:
        client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
        client.create_registered_model(NAME)
        v1 = str(client.create_model_version(NAME, "file:///nowhere/model").version)
        v2, m2 = _version(WORSE)
        promote_if_better(NAME, v1, {"test_s_f1": 0.5, "test_v_f1": 0.9}, KEYS)
        d = promote_if_better(NAME, v2, m2, KEYS, record_report=DS2)
        assert d.promoted and d.paired == {
            "against": v1,
            "artifact": DS2,
            "missing": f"champion version {v1} has no run",
        }

    def test_without_a_report_or_a_class_f1_key_none_is_tried(self, store: Path) -> None:
        v1, m1 = _version(BETTER)
        v2, m2 = _version(WORSE)
        v3, _ = _version(WORSE)
        jk = [*KEYS, "test_jk_index"]
        promote_if_better(NAME, v1, {**m1, "test_jk_index": 0.5}, jk, record_report=DS2)
        d = promote_if_better(NAME, v2, {**m2, "test_jk_index": 0.5}, jk)  # early warning's way
        assert d.promoted and d.paired is None
        client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
        assert PAIRED_TAG not in client.get_model_version(NAME, v2).tags
        d = promote_if_better(NAME, v3, {"test_jk_index": 0.9}, ["test_jk_index"],
                              record_report=DS2)  # fmt: skip
        assert d.promoted and d.paired is None  # no class's F1 to pair

    def test_a_promotion_cut_short_is_recorded_with_its_interval(self, store: Path) -> None:
        from vitalgru.tracking.registry import _history_tag

        v1, m1 = _version(BETTER)
        v2, m2 = _version(WORSE)
        promote_if_better(NAME, v1, m1, KEYS, record_report=DS2)
        d = promote_if_better(NAME, v2, m2, KEYS, record_report=DS2)
        said = alias_history(NAME)[-1]["paired"]
        # the process stopped after the alias moved and before the history was written
        client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
        client.set_registered_model_tag(NAME, _history_tag("champion"),
                                        json.dumps(alias_history(NAME)[:-1]))  # fmt: skip
        again = promote_if_better(NAME, v2, m2, KEYS, record_report=DS2)
        assert again.promoted and alias_history(NAME)[-1]["version"] == v2
        assert alias_history(NAME)[-1]["paired"] == said == tracking.paired_brief(d.paired)  # type: ignore[arg-type]

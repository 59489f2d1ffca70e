"""The early-warning gate's paired patient bootstrap, through a real embedded MLflow store:
each version's run logs its cross-validation's held-out scores
(``cv/heldout_scores.parquet``), and the gate says whether the new version's utility gain
is within what another set of patients would move."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from vitalgru import tracking
from vitalgru.data.heldout_scores import heldout_scores_frame, write_heldout_scores
from vitalgru.metrics.paired_utility import paired_utility_difference
from vitalgru.metrics.utility import normalized_utility
from vitalgru.tracking import (
    PAIRED_TAG,
    alias_history,
    get_alias_version,
    promote_if_better,
    start_run,
    tracking_uri,
)

NAME = "vitalgru-early-warning-paired"
HELD = "cv/heldout_scores.parquet"
KEYS = ["utility", "auroc"]
THRESHOLDS = {0: 0.5, 1: 0.6}


def _cohort() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """40 stays of 8-40 hours, about a third septic (the label on for the last 6-14 h),
    in two folds: ids, offsets, hours, labels, folds."""
    rng = np.random.default_rng(5)
    lengths = rng.integers(8, 41, 40)
    labels = []
    for n in lengths:
        y = np.zeros(n, np.int8)
        if rng.random() < 0.35:
            y[n - rng.integers(6, min(15, n)) :] = 1
        labels.append(y)
    hours = np.concatenate([np.arange(1, n + 1) for n in lengths])
    offsets = np.r_[0, np.cumsum(lengths)]
    return ([f"p{i:06d}" for i in range(40)], offsets, hours, np.concatenate(labels),
            np.arange(40) % 2)  # fmt: skip


IDS, OFF, HOURS, LABELS, FOLDS = _cohort()
_rng = np.random.default_rng(9)
# the champion finds the septic hours less often than the new version
CHAMP = np.where(
    LABELS == 1, _rng.uniform(0.3, 0.9, LABELS.size), _rng.uniform(0, 0.62, LABELS.size)
)
NEW = np.where(LABELS == 1, _rng.uniform(0.4, 1.0, LABELS.size), _rng.uniform(0, 0.62, LABELS.size))


def _alarms(scores: np.ndarray) -> np.ndarray:
    return scores >= np.repeat([THRESHOLDS[int(k)] for k in FOLDS], np.diff(OFF))


def _frame(scores: np.ndarray) -> pd.DataFrame:
    return heldout_scores_frame(IDS, OFF, HOURS, LABELS, FOLDS, scores, THRESHOLDS)


def _version(frame: pd.DataFrame | None, tmp: Path, *, raw: bytes | None = None) -> str:
    """A registered version whose run logged ``frame`` as its held-out scores (None: no
    artifact; ``raw``: those bytes in its place)."""
    client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "heldout_scores.parquet"
    with start_run("exp") as run:
        if raw is not None:
            path.write_bytes(raw)
            run.log_artifact(path, "cv")
        elif frame is not None:
            run.log_artifact(write_heldout_scores(frame, path), "cv")
        run.log_text("weights", "model/weights.txt")
    try:
        client.get_registered_model(NAME)
    except Exception:
        client.create_registered_model(NAME)
    return str(client.create_model_version(NAME, f"runs:/{run.run_id}/model", run.run_id).version)


def _figures(scores: np.ndarray) -> dict[str, float]:
    return {"utility": normalized_utility(LABELS, _alarms(scores), OFF), "auroc": 0.8}


class TestPairedUtilityGate:
    def test_a_utility_gain_is_promoted_with_its_paired_interval(
        self, store: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        v1 = _version(_frame(CHAMP), store / "v1")
        # the new version's rows in another order: read back by patient and hour
        v2 = _version(_frame(NEW).sample(frac=1.0, random_state=1), store / "v2")
        first = promote_if_better(NAME, v1, _figures(CHAMP), KEYS, heldout_scores=HELD)
        assert first.promoted and first.paired is None  # nothing to compare with
        with caplog.at_level(logging.INFO, logger="vitalgru.tracking"):
            d = promote_if_better(NAME, v2, _figures(NEW), KEYS, heldout_scores=HELD)
        assert d.promoted and d.reason.startswith(f"beats champion v{v1} on utility")
        p = d.paired
        assert p is not None and (p["against"], p["artifact"]) == (v1, HELD)
        assert (p["patients"], p["resamples"], p["level"]) == (40, 5000, 0.95)
        u = p["keys"]["utility"]
        # golden: the challenge utility of each version's alarms, new minus champion
        gain = (normalized_utility(LABELS, _alarms(NEW), OFF)
                - normalized_utility(LABELS, _alarms(CHAMP), OFF))  # fmt: skip
        assert gain > 0.05 and u["difference"] == pytest.approx(gain, abs=1e-12)
        # and the interval is the paired patient bootstrap's on those alarms
        ref = paired_utility_difference(LABELS, _alarms(NEW), _alarms(CHAMP), OFF)
        assert (u["low"], u["high"], u["share_better"]) == pytest.approx(
            (ref.low, ref.high, ref.share_better), abs=1e-12)  # fmt: skip
        assert list(p["keys"]) == ["utility"]  # AUROC is not paired

        said = [r.getMessage() for r in caplog.records if "paired patient bootstrap" in r.message]
        line = (f"{NAME} v{v2} against champion v{v1} on 40 patients: utility {gain:+.3f}, "
                f"paired patient bootstrap 95 % interval {ref.low:+.3f} to {ref.high:+.3f} "
                f"(better in {100 * ref.share_better:.0f} % of 5000 resamples): ")  # fmt: skip
        assert len(said) == 1 and said[0].startswith(line), said
        client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
        assert json.loads(client.get_model_version(NAME, v2).tags[PAIRED_TAG]) == p
        assert alias_history(NAME)[-1]["paired"] == tracking.paired_brief(p)
        assert tracking.paired_brief(p) == (
            f"utility {gain:+.3f} [{ref.low:+.3f}, {ref.high:+.3f}] "
            f"{'within noise' if ref.low <= 0 <= ref.high else 'better beyond noise'} "
            "(paired, 40 patients)"
        )
        assert tracking.version_provenance(NAME, v2)["gate_paired"] == p

    def test_a_gain_within_noise_is_said_so(self, store: Path) -> None:
        # one hour of one patient alarmed more: a gain smaller than the noise
        nudged = CHAMP.copy()
        i = int(np.flatnonzero((LABELS == 1) & ~_alarms(CHAMP))[0])
        nudged[i] = 0.99
        v1 = _version(_frame(CHAMP), store / "v1")
        v2 = _version(_frame(nudged), store / "v2")
        promote_if_better(NAME, v1, _figures(CHAMP), KEYS, heldout_scores=HELD)
        d = promote_if_better(NAME, v2, _figures(nudged), KEYS, heldout_scores=HELD)
        assert d.promoted  # the rule is the one it was
        u = d.paired["keys"]["utility"]  # type: ignore[index]
        assert 0 < u["difference"] < 0.05 and u["low"] <= 0.0 <= u["high"]
        assert tracking.paired_text(d.paired).endswith(": within noise")  # type: ignore[arg-type]

    @pytest.mark.parametrize("missing", ["champion", "new"])
    def test_a_run_without_the_scores_is_said_and_the_gate_decides_as_before(
        self, store: Path, missing: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        v1 = _version(None if missing == "champion" else _frame(CHAMP), store / "v1")
        v2 = _version(None if missing == "new" else _frame(NEW), store / "v2")
        promote_if_better(NAME, v1, _figures(CHAMP), KEYS, heldout_scores=HELD)
        with caplog.at_level(logging.INFO, logger="vitalgru.tracking"):
            d = promote_if_better(NAME, v2, _figures(NEW), KEYS, heldout_scores=HELD)
        assert d.promoted and get_alias_version(NAME) == v2  # as without the scores
        who = f"champion version {v1}" if missing == "champion" else f"version {v2}"
        assert d.paired is not None and "keys" not in d.paired
        assert d.paired["missing"].startswith(f"{who}'s run ")
        assert f"has no readable {HELD}" in d.paired["missing"]
        said = [r.getMessage() for r in caplog.records if "no paired interval" in r.message]
        assert len(said) == 1 and said[0].startswith(
            f"{NAME} v{v2} no paired interval against champion v{v1}: {who}'s run"
        )
        assert "paired" not in alias_history(NAME)[-1]

    def test_scores_that_are_not_a_parquet_file_are_said(self, store: Path) -> None:
        v1 = _version(_frame(CHAMP), store / "v1")
        v2 = _version(None, store / "v2", raw=b"not parquet")
        promote_if_better(NAME, v1, _figures(CHAMP), KEYS, heldout_scores=HELD)
        d = promote_if_better(NAME, v2, _figures(NEW), KEYS, heldout_scores=HELD)
        assert d.promoted and f"version {v2}'s run " in d.paired["missing"]  # type: ignore[index]

    @pytest.mark.parametrize(
        ("other", "said"),
        [
            (lambda f: f[f["patient_id"] != "p000039"], "other patients (39 and 40, 1 not in both)"),
            (lambda f: f.assign(hour=f["hour"] + 1), "other hours of the same patients"),
            (lambda f: f.assign(sepsis_label=np.where(f.index == 0, 1, f["sepsis_label"])),
             "other labels (1 hours differ)"),
        ],
    )  # fmt: skip
    def test_versions_cross_validated_on_other_patients_are_not_paired(
        self, store: Path, other, said: str
    ) -> None:
        v1 = _version(_frame(CHAMP), store / "v1")
        v2 = _version(other(_frame(NEW)), store / "v2")
        promote_if_better(NAME, v1, _figures(CHAMP), KEYS, heldout_scores=HELD)
        d = promote_if_better(NAME, v2, _figures(NEW), KEYS, heldout_scores=HELD)
        assert d.promoted and d.paired is not None and "keys" not in d.paired
        assert said in d.paired["missing"], d.paired
        assert tracking.paired_text(d.paired).startswith(
            f"no paired interval against champion v{v1}: the two versions"
        )

    def test_without_the_utility_key_none_is_tried_and_both_artifacts_are_refused(
        self, store: Path
    ) -> None:
        v1 = _version(_frame(CHAMP), store / "v1")
        v2 = _version(_frame(NEW), store / "v2")
        promote_if_better(NAME, v1, {"auroc": 0.7}, ["auroc"], heldout_scores=HELD)
        d = promote_if_better(NAME, v2, {"auroc": 0.8}, ["auroc"], heldout_scores=HELD)
        assert d.promoted and d.paired is None
        with pytest.raises(ValueError, match="not both"):
            promote_if_better(NAME, v2, _figures(NEW), KEYS, heldout_scores=HELD,
                              record_report="evaluation/ds2.json")  # fmt: skip

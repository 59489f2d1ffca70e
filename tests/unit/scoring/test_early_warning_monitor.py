"""The live sepsis monitor gives, hour by hour, the risks of scoring whole stays, and
refuses rows it cannot place in time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vitalgru.baselines.gbm import GBMParams
from vitalgru.data.early_warning import build_cohort, patient_offsets
from vitalgru.dsp.vitals import vitals_plausibility
from vitalgru.io.psv import MEASUREMENT_COLUMNS, PSV_COLUMNS
from vitalgru.io.psv_folder import read_psv_folder
from vitalgru.metrics.calibration import recalibrate
from vitalgru.scoring import EarlyWarningMonitor, replay_stays
from vitalgru.training.early_warning import CVSettings, fit_final, score_cohort
from vitalgru.training.gru_d import GRUTrainParams

CHALLENGE = {v: k for k, v in PSV_COLUMNS.items()}  # vitalgru column -> Challenge name


@pytest.fixture(scope="module")
def cohort(physionet_mirror: Path):
    return build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=260)


@pytest.fixture(scope="module")
def blend(cohort):
    torch.set_num_threads(1)
    settings = CVSettings(
        val_fraction=0.3,
        engineered_inputs=True,
        gru=GRUTrainParams(hidden_size=8, max_epochs=1, batch_size=64),
        gbm=GBMParams(max_iter=10),
    )
    return fit_final(cohort.subset(np.arange(200)), settings, blend=True)


def _hours(frame, a: int, b: int) -> list[dict]:
    """Rows a..b of a cohort frame as a bedside feed sends them (Challenge names)."""
    cols = [c for c in frame.columns if c in CHALLENGE and c != "sepsis_label"]
    return [{CHALLENGE[c]: frame.iloc[i][c] for c in cols} for i in range(a, b)]


class TestEarlyWarningMonitor:
    def test_hour_by_hour_equals_whole_stays(self, cohort, blend) -> None:
        test = cohort.subset(np.arange(200, 260))
        want = score_cohort(blend.model, blend.preprocessing, test)
        mon = EarlyWarningMonitor(blend.model, blend.preprocessing)
        feeds = {}
        for i, pid in enumerate(test.patient_ids):
            mon.admit(pid)
            a, b = int(test.offsets[i]), int(test.offsets[i + 1])
            feeds[pid] = _hours(test.frame, a, b)
        got: dict[str, list[float]] = {p: [] for p in feeds}
        alarms = 0
        for t in range(max(len(v) for v in feeds.values())):  # stays of unequal length
            tick = mon.push({p: rows[t] for p, rows in feeds.items() if t < len(rows)})
            for r in tick:
                got[r.patient_id].append(r.risk)
                alarms += r.alarm
                assert r.alarm == (r.risk >= blend.preprocessing["threshold"])
                # the probability is the risk through the recalibration fitted with it
                recal = blend.preprocessing["recalibration"]
                assert r.probability == pytest.approx(float(recalibrate(r.risk, recal)[()]))
        live = np.concatenate([got[p] for p in test.patient_ids])
        np.testing.assert_allclose(live, want, rtol=0, atol=1e-5)
        assert alarms == int((want >= blend.preprocessing["threshold"]).sum())

    def test_skipped_hours_and_impossible_values(self, cohort, blend) -> None:
        test = cohort.subset(np.arange(200, 201))
        rows = _hours(test.frame, 0, int(test.offsets[1]))
        assert len(rows) > 12
        rows[5]["HR"] = 0.0  # impossible: treated as missing, and said so
        del rows[7:9]  # two ICU hours never sent
        mon = EarlyWarningMonitor(blend.model, blend.preprocessing)
        mon.admit("x")
        out = [mon.push({"x": r})[0] for r in rows]
        assert out[5].rejected == ("hr_bpm",) and out[4].rejected == ()
        assert [o.hour for o in out] == [int(r["ICULOS"]) for r in rows]
        # the same as evaluation scoring the file with those hours missing
        frame = test.frame.copy()
        frame.loc[5, "hr_bpm"] = 0.0
        keep = np.r_[0:7, 9 : len(frame)]
        gappy = cohort.subset(np.arange(200, 201))
        gappy = type(gappy)(frame.iloc[keep].reset_index(drop=True), np.array([0, keep.size]),
                            gappy.patient_ids, {}, [])  # fmt: skip
        cols = [*MEASUREMENT_COLUMNS, "age_years", "hosp_adm_time_h"]
        gappy.frame[cols] = vitals_plausibility(gappy.frame[cols].to_numpy(np.float32), cols)[0]
        want = score_cohort(blend.model, blend.preprocessing, gappy)
        np.testing.assert_allclose([o.risk for o in out], want, rtol=0, atol=1e-5)

    def test_a_stay_counted_from_hour_0(self, cohort, blend) -> None:
        # the file reader takes ICULOS 0 (an export counting the first hour 0); live, the
        # monitor refused it, so a replay of such a file stopped at its first row
        test = cohort.subset(np.arange(200, 203))
        frame = test.frame.copy()
        first = frame.groupby("patient_id")["hour"].transform("min")
        frame["hour"] = (frame["hour"] - first).astype(frame["hour"].dtype)
        zero = type(test)(frame, test.offsets, test.patient_ids, {}, [])
        want = score_cohort(blend.model, blend.preprocessing, zero)
        res = replay_stays(EarlyWarningMonitor(blend.model, blend.preprocessing), frame)
        hours = [[h.hour for h in res.risks[p]] for p in test.patient_ids]
        assert [h[0] for h in hours] == [0, 0, 0]
        live = [h.risk for p in test.patient_ids for h in res.risks[p]]
        np.testing.assert_allclose(live, want, rtol=0, atol=1e-5)

    def test_a_risk_equal_to_the_threshold_alarms(self, cohort, blend) -> None:
        """Live as offline, an alarm is ``risk >= threshold``: the threshold was chosen,
        and the alarm burden reported, counting hours at it as alarms, so a bedside
        monitor paging only above it would stay quiet where the evaluation paged."""
        row = _hours(cohort.frame, 0, 1)[0]
        mon = EarlyWarningMonitor(blend.model, blend.preprocessing)
        mon.admit("x")
        (r,) = mon.push({"x": row})
        at = EarlyWarningMonitor(blend.model, {**blend.preprocessing, "threshold": r.risk})
        at.admit("x")
        (r2,) = at.push({"x": row})
        assert r2.risk == r.risk and r2.alarm

    def test_rows_it_cannot_place_are_clear_errors(self, blend) -> None:
        mon = EarlyWarningMonitor(blend.model, blend.preprocessing)
        mon.admit("a")
        with pytest.raises(ValueError, match="ICULOS"):
            mon.push({"a": {"HR": 80}})
        mon.push({"a": {"HR": 80, "ICULOS": 3}})
        with pytest.raises(ValueError, match="does not follow"):
            mon.push({"a": {"HR": 81, "ICULOS": 3}})
        with pytest.raises(ValueError, match="unknown column 'Pulse'"):
            mon.push({"a": {"Pulse": 81, "ICULOS": 4}})
        with pytest.raises(ValueError, match="not a number"):
            mon.push({"a": {"HR": "high", "ICULOS": 4}})
        for flag in (True, False):  # not a 1 or a 0: a feed's serialiser gone wrong
            with pytest.raises(ValueError, match=f"Gender = {flag} is not a number"):
                mon.push({"a": {"Gender": flag, "ICULOS": 4}})
        # an hour past what the hour column holds (a feed sending seconds, or a date) was
        # taken: 200,000 wrapped round to 3,392, and 10**7 gave a NaN risk
        for hour in (32_768, 200_000, 10**7):
            with pytest.raises(ValueError, match="from 0 to 32767"):
                mon.push({"a": {"HR": 81, "ICULOS": hour}})
        with pytest.raises(ValueError, match="from 0 to 32767"):
            mon.push({"a": {"HR": 81, "ICULOS": -1}})
        with pytest.raises(KeyError, match="admit"):
            mon.push({"b": {"ICULOS": 1}})
        # a row that is not a mapping was an AttributeError ('list' object has no 'items')
        for row in ([80, 3], 80.0, None):
            with pytest.raises(ValueError, match="a row is a mapping of column to value"):
                mon.push({"a": row})  # type: ignore[dict-item]
        (refused,) = mon.push_rounds([{"a": [80, 3]}])  # type: ignore[list-item]
        assert refused[0] == [] and "a" in refused[1]
        # a refused push changed nothing: the next good hour is scored
        (r,) = mon.push({"a": {"hr": "nan", "o2sat": 97, "ICULOS": 4}})
        assert r.hour == 4 and 0.0 <= r.risk <= 1.0
        with pytest.raises(ValueError, match="not an early-warning model"):
            EarlyWarningMonitor(blend.model, {"fs": 360})


class TestExplain:
    def test_each_driver_is_the_risk_of_the_stay_with_that_measurement_typical(
        self, cohort, blend
    ) -> None:
        test = cohort.subset(np.arange(200, 201))
        rows = _hours(test.frame, 0, int(test.offsets[1]))[:30]
        rows[20]["HR"] = 400.0  # refused by the limits: not a value to replace
        mon = EarlyWarningMonitor(blend.model, blend.preprocessing)
        mon.admit("x")
        live = [mon.push({"x": r})[0] for r in rows][-1]
        got = mon.explain("x", top=50)
        assert got and all(d.risk == pytest.approx(live.risk, abs=1e-6) for d in got)
        drops = [d.risk_drop for d in got]
        assert all(x > 0 for x in drops) and drops == sorted(drops, reverse=True)
        assert mon.explain("x", top=2) == got[:2]
        typical = dict(zip(blend.preprocessing["norm_stats"]["columns"],
                           blend.preprocessing["norm_stats"]["mean"], strict=True))  # fmt: skip
        for d in got[:3]:  # what the monitor itself gives the stay with that column typical
            name = CHALLENGE[d.column]
            assert d.typical == pytest.approx(typical[d.column])
            seen = [r for r in rows if not pd.isna(r.get(name))]
            seen = [r for r in seen if not (name == "HR" and r[name] == 400.0)]
            assert d.value == pytest.approx(seen[-1][name])
            assert d.hours_ago == rows[-1]["ICULOS"] - seen[-1]["ICULOS"]
            other = EarlyWarningMonitor(blend.model, blend.preprocessing)
            other.admit("y")
            for r in rows:
                keep = pd.isna(r.get(name)) or (name == "HR" and r[name] == 400.0)
                (last,) = other.push({"y": r if keep else {**r, name: d.typical}})
            assert d.risk_if_typical == pytest.approx(last.risk, abs=1e-6)
            assert d.describe().startswith(f"{name} ") and "had it been typical" in d.describe()
        with pytest.raises(KeyError):
            mon.explain("nobody")
        mon.admit("empty")
        assert mon.explain("empty") == []


class TestReplayStays:
    def test_a_folder_replayed_hour_by_hour_is_scored_as_whole_stays(
        self, physionet_mirror: Path, cohort, blend
    ) -> None:
        # the raw rows of 40 patients (not cleaned: the monitor applies the limits itself),
        # one of them with an impossible heart rate
        raw = read_psv_folder(physionet_mirror / "challenge-2019" / "training_setA", limit=240)
        offsets, ids = patient_offsets(raw.frame)
        frame = raw.frame.iloc[int(offsets[200]) :].reset_index(drop=True)
        frame.loc[3, "hr_bpm"] = 400.0
        mon = EarlyWarningMonitor(blend.model, blend.preprocessing)
        ticks = []
        res = replay_stays(mon, frame, on_tick=lambda k, n: ticks.append((k, n)))
        assert mon.patients == []  # each discharged after their last row
        lengths = np.diff(offsets[200:])
        assert ticks[-1] == (int(lengths.max()),) * 2 and len(ticks) == lengths.max()
        assert list(res.risks) == ids[200:].tolist()
        assert [len(v) for v in res.risks.values()] == lengths.tolist()
        first = res.risks[ids[200]]
        assert first[3].rejected == ("hr_bpm",) and first[2].rejected == ()
        assert [r.hour for r in first] == frame["hour"].iloc[: lengths[0]].tolist()
        want = cohort.subset(np.arange(200, 240))
        want.frame.loc[3, "hr_bpm"] = np.nan  # what the limits make of 400
        live = np.array([r.risk for v in res.risks.values() for r in v])
        np.testing.assert_allclose(
            live, score_cohort(blend.model, blend.preprocessing, want), rtol=0, atol=1e-5
        )
        comp = res.compute_summary()
        assert comp["patients"] == 40 and comp["patient_hours"] == len(frame)
        assert comp["ticks"] == lengths.max() and comp["patient_hours_per_s"] > 0
        assert res.drivers == {} and comp["alarm_onsets_explained"] == 0
        # asked to, it explains every hour an alarm episode begins, and nothing else
        again = replay_stays(EarlyWarningMonitor(blend.model, blend.preprocessing), frame,
                             explain=2)  # fmt: skip
        onsets = {
            p: [r.hour for k, r in enumerate(v) if r.alarm and (k == 0 or not v[k - 1].alarm)]
            for p, v in res.risks.items()
        }
        assert {p: sorted(d) for p, d in again.drivers.items()} == {
            p: h for p, h in onsets.items() if h}  # fmt: skip
        assert sum(map(len, onsets.values())) >= 2, "the test data should raise alarms"
        assert all(len(d) <= 2 for v in again.drivers.values() for d in v.values())
        assert again.compute_summary()["alarm_onsets_explained"] == sum(map(len, onsets.values()))

    def test_a_frame_without_hours_is_refused(self, blend) -> None:
        mon = EarlyWarningMonitor(blend.model, blend.preprocessing)
        with pytest.raises(ValueError, match="'hour'"):
            replay_stays(mon, pd.DataFrame({"patient_id": ["a"], "hr_bpm": [80.0]}))

"""The shadow comparisons on hand-made calls: beats matched by time, a bound on the beats of
one side left waiting for the other's, the correlation of the two models' risks."""

from __future__ import annotations

import numpy as np
import pytest
from monitor_kit import untrained_monitor

from vitalgru.scoring.early_warning import HourRisk
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.shadow import EcgShadow, SepsisShadow


def _call(t: float, label: str) -> BeatCall:
    return BeatCall("p", 0, int(t * 360), t, label, (1.0, 0, 0, 0, 0), True, t + 4.0)


def test_beats_match_by_time_and_the_unmatched_do_not_pile_up() -> None:
    shadow = EcgShadow(untrained_monitor())
    shadow.record(([_call(1.0, "N"), _call(2.0, "V")], []), ([_call(2.0, "N")], []))
    shadow.record(([], []), ([_call(1.0, "N")], []))  # a tick later: still matched
    got = shadow.report()
    assert got["beats_matched"] == 2 and got["agreement"] == 0.5
    assert got["confusion"]["V"]["N"] == 1 and got["confusion"]["N"]["N"] == 1
    # beats the other side never calls (other beat times) wait, but only so many
    shadow.record(([_call(10.0 + k, "N") for k in range(EcgShadow.MAX_WAITING + 500)], []),
                  ([], []))  # fmt: skip
    assert len(shadow._waiting["p"]["champion"]) == EcgShadow.MAX_WAITING
    assert 10.0 / EcgShadow.MATCH_S not in shadow._waiting["p"]["champion"]  # the oldest went
    assert shadow.report()["beats"]["champion"]["N"] == EcgShadow.MAX_WAITING + 501


class _Challenger:
    """Stands in for the challenger's monitor: the risks given, in turn."""

    threshold = 0.5

    def __init__(self, risks: list[float]) -> None:
        self.risks = list(risks)

    def push(self, rows: dict) -> list[HourRisk]:
        return [HourRisk(p, 1, self.risks.pop(0), False) for p in rows]


def _compare(champion: list[float], shadow: list[float]) -> dict:
    cmp = SepsisShadow(_Challenger(shadow))  # type: ignore[arg-type]
    for k, x in enumerate(champion):
        cmp.score({f"p{k}": {}}, [HourRisk(f"p{k}", 1, x, False)])
    return cmp.report()


def test_risk_correlation_of_risks_that_barely_vary() -> None:
    rng = np.random.default_rng(0)
    wiggle = 0.42 + 1e-9 * rng.standard_normal(5000)
    # raw sums gave -1.0 for two identical models and 5.5e-07 for a constant champion
    assert _compare(list(wiggle), list(wiggle))["risk_correlation"] == pytest.approx(1.0)
    assert _compare([0.3] * 5000, list(rng.random(5000)))["risk_correlation"] is None
    x, y = rng.random(300), rng.random(300)
    got = _compare(list(x), list(0.5 * x + 0.5 * y))["risk_correlation"]
    assert got == pytest.approx(np.corrcoef(x, 0.5 * x + 0.5 * y)[0, 1], abs=1e-12)


def test_a_snapshot_of_raw_sums_is_still_taken_up() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.random(40), rng.random(40)
    sums = [x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()]
    cmp = SepsisShadow(_Challenger([]))  # type: ignore[arg-type]
    cmp.load({"hours": 40, "sums": sums, "abs_diff_sum": 1.0, "abs_diff_max": 0.5,
              "alarm_hours": {}, "onsets": {}, "patients": []})  # fmt: skip
    assert cmp.report()["risk_correlation"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    again = SepsisShadow(_Challenger([]))  # type: ignore[arg-type]
    again.load(cmp.snapshot())
    assert again.report() == cmp.report()

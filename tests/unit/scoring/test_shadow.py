"""The shadow comparisons on hand-made calls: beats matched by time, and a bound on the
beats of one side left waiting for the other's."""

from __future__ import annotations

from monitor_kit import untrained_monitor

from vitalgru.scoring.arrhythmia import BeatCall
from vitalgru.scoring.shadow import EcgShadow


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

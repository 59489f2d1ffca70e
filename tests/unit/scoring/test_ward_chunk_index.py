"""A feed's chunks, with their ``start`` index, lost, cut short, sent twice or out of order
in generated ways: the ward accounts for every sample (taken, dropped as sent again,
filled, skipped in a break), never raises, and reports each beat at the sample it was sent
as; a beat away from any loss at the very sample the unbroken stream reports it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from damage_kit import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from monitor_kit import untrained_monitor

from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_ecg_bed import MAX_FILL_S
from vitalgru.scoring.ward_journal import WardJournal

FS = 360
SECONDS = 30
#: What becomes of one chunk: sent once, lost, sent twice (its answer lost), sent without
#: its first samples (lost on the way: a gap of a few samples), or sent after the next one
#: (its samples then a break in the feed, and dropped when they come, as sent again).
FATE = st.sampled_from(["sent", "sent", "sent", "lost", "twice", "cut", "late"])
#: Beats this near a lost sample (s) may differ from the unbroken stream's: the detector
#: and the quality check start afresh after a break, the filters see the gap.
NEAR_S = 3.0


@pytest.fixture(scope="module")
def x(mitdb_dir: Path) -> np.ndarray:
    rec = wfdb.rdrecord(str(mitdb_dir / "119"), sampto=SECONDS * FS)  # V beats in bigeminy
    return rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)


def _ward() -> tuple[Ward, list[BeatCall]]:
    """A ward with patient ``p`` admitted, and the list its every beat is added to."""
    ward = Ward(untrained_monitor())
    beats: list[BeatCall] = []
    record = ward._record_ecg

    def seen(calls: list[BeatCall], alerts: list) -> None:
        beats.extend(calls)
        record(calls, alerts)

    ward._record_ecg = seen  # type: ignore[method-assign]
    ward.admit_ecg("p", float(FS))
    return ward, beats


def _feed(x: np.ndarray, plan: list[tuple[int, str, int]]) -> tuple[list[BeatCall], dict]:
    """Feed ``x`` in chunks as ``plan`` says, a tick after each: every beat and the final
    summary."""
    ward, beats = _ward()
    for a, b in _arrivals(x.size, plan):
        ward.add_ecg("p", x[a:b].tolist(), a)
        ward.tick()
    return beats, ward.discharge_ecg("p")


def _chunks(n: int, plan: list[tuple[int, str, int]]) -> list[tuple[int, int, str, int]]:
    out, a = [], 0
    for size, fate, cut in plan:
        if a >= n:
            break
        out.append((a, min(a + size, n), fate, cut))
        a += size
    if a < n:
        out.append((a, n, "sent", 0))
    return out


def _arrivals(n: int, plan: list[tuple[int, str, int]]) -> list[tuple[int, int]]:
    """The samples ``[a, b)`` of each chunk that arrives, in the order they arrive."""
    out: list[tuple[int, int]] = []
    late: list[tuple[int, int]] = []
    for a, b, fate, cut in _chunks(n, plan):
        if fate == "late":
            late.append((a, b))
        elif fate != "lost":
            out += [(a + (cut if fate == "cut" else 0), b)] * (2 if fate == "twice" else 1)
            out, late = out + late, []
    return out + late


@pytest.fixture(scope="module")
def clean(x: np.ndarray) -> list[BeatCall]:
    return _feed(x, [])[0]


@FUZZ
@given(plan=st.lists(st.tuples(st.integers(90, 540), FATE, st.integers(1, 30)), max_size=40))
def test_every_sample_is_accounted_for_and_every_beat_keeps_its_time(
    x: np.ndarray, clean: list[BeatCall], plan: list[tuple[int, str, int]]
) -> None:
    beats, summary = _feed(x, plan)
    # what the ward should make of the chunks that arrived, sample by sample; its stream
    # begins with the first (a feed's index need not begin at the admission)
    lost = np.zeros(x.size, bool)
    broken = np.zeros(x.size, bool)  # lost in breaks (a gap filled may still hold an R peak)
    expected, first, filled, skipped, again = None, 0, 0, 0, 0
    for a, b in _arrivals(x.size, plan):
        if expected is None:
            expected = first = a
        if a < expected:  # sent again, or after the next: only what is new is taken
            again += min(expected, b) - a
            a = min(expected, b)
        gap = a - expected
        lost[expected:a] = True
        if 0 < gap <= MAX_FILL_S * FS:
            filled += gap
        elif gap > 0:
            skipped += gap
            broken[a - gap : a] = True
        expected = max(expected, b)
    got = (summary["filled_samples"], summary["break_samples"], summary["repeated_samples"])
    assert got == (filled, skipped, again)
    assert summary["index_restarts"] == 0  # what comes again repeats what came
    assert summary["next_start"] == expected
    assert summary["received_s"] == pytest.approx(
        (x.size - first - lost.sum() + filled) / FS, abs=1e-3
    )  # rounded to the ms
    # every beat in order, none in a break; away from the losses, where the unbroken
    # stream has it
    at = np.array([c.sample_idx + first for c in beats], dtype=np.int64)
    lost[:first] = True
    assert (np.diff(at) > 0).all() and not broken[at].any()
    near = np.convolve(lost, np.ones(2 * int(NEAR_S * FS) + 1), "same") > 0
    far = {c.sample_idx for c in clean if not near[c.sample_idx]}
    assert far <= set(at.tolist())
    assert not lost.any() or summary["beats"] < len(clean) + 5


@FUZZ
@given(plan=st.lists(st.tuples(st.integers(90, 540), st.sampled_from(["sent", "sent", "twice",
                                                                    "restart"])), max_size=40))  # fmt: skip
def test_a_feed_that_restarts_its_count_loses_nothing(
    x: np.ndarray, clean: list[BeatCall], plan: list[tuple[int, str]]
) -> None:
    # the feed (or the monitor behind it) restarts its count from 0 at some chunks, and
    # sends some chunks twice (their answer lost): every restart is told from a resend by
    # its samples, nothing is dropped but the resends, and the stream is the unbroken one
    ward, beats = _ward()
    counted_from, restarts, again = 0, 0, 0
    for a, b, fate, _ in _chunks(x.size, [(size, fate, 0) for size, fate in plan]):
        if fate == "restart" and a > 0:
            counted_from, restarts = a, restarts + 1
        for _ in range(2 if fate == "twice" else 1):
            ward.add_ecg("p", x[a:b].tolist(), a - counted_from)
            ward.tick()
        again += (b - a) if fate == "twice" else 0
    summary = ward.discharge_ecg("p")
    assert (summary["index_restarts"], summary["repeated_samples"]) == (restarts, again)
    assert (summary["break_samples"], summary["filled_samples"]) == (0, 0)
    assert summary["next_start"] == x.size - counted_from
    assert summary["received_s"] == pytest.approx(x.size / FS, abs=1e-3)
    assert [(c.sample_idx, c.label) for c in beats] == [(c.sample_idx, c.label) for c in clean]


@FUZZ
@given(plan=st.lists(st.tuples(st.integers(90, 540), st.sampled_from(["sent", "unindexed",
                                                                    "twice"])), max_size=40))  # fmt: skip
def test_chunks_without_their_index_continue_the_count(
    x: np.ndarray, clean: list[BeatCall], plan: list[tuple[int, str]]
) -> None:
    # a client that sends `start` with some chunks and not with others: an unindexed chunk
    # continues the stream, and the indexed one after it is in order (it was taken as
    # coming after a break as long as the unindexed chunks, every later beat moved by it);
    # a chunk sent again after unindexed ones is still told for a resend
    ward, beats = _ward()
    again = 0
    for a, b, fate, _ in _chunks(x.size, [(size, fate, 0) for size, fate in plan]):
        ward.add_ecg("p", x[a:b].tolist(), None if fate == "unindexed" else a)
        ward.tick()
        if fate == "twice" and a > 0:
            ward.add_ecg("p", x[a:b].tolist(), a)
            ward.tick()
            again += b - a
    summary = ward.discharge_ecg("p")
    assert (summary["break_samples"], summary["filled_samples"]) == (0, 0)
    assert summary["repeated_samples"] == again
    assert summary["received_s"] == pytest.approx(x.size / FS, abs=1e-3)
    assert [(c.sample_idx, c.label) for c in beats] == [(c.sample_idx, c.label) for c in clean]


def test_a_chunk_sent_again_after_a_restart_is_not_taken_twice(tmp_path: Path) -> None:
    x = np.sin(np.arange(25 * 360) / 20.0)  # any samples: the counts are the point

    def chunk(k: int) -> tuple[list[float], int]:
        return x[k * 360 : (k + 1) * 360].tolist(), k * 360

    ward = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "w.sqlite"))
    ward.admit_ecg("bed-1", 360.0)
    for k in range(20):
        ward.add_ecg("bed-1", *chunk(k))
        ward.tick()
    ward.close()  # chunk 19's answer was lost in the stop: the feed sends it again
    again = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "w.sqlite"))
    again.restore(again.journal.load())
    again.add_ecg("bed-1", *chunk(19))
    again.add_ecg("bed-1", *chunk(20))
    again.tick()
    got = again.ecg_summary("bed-1")
    # taken as the stream's first chunk before: 22 s received, nothing repeated
    assert (got["received_s"], got["repeated_samples"]) == (21.0, 360)
    again.close()

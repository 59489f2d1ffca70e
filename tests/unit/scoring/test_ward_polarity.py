"""A live lead that is upside down (swapped electrodes): the ward keeps which way each
patient's QRS points, flags one that points against the model's lead's usual way (MLII: up)
in the patient's summary, the log and the patient's page, and takes the flag back once the
electrodes are put right; a replay's clinician page says it too."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import wfdb
from monitor_kit import untrained_monitor

from vitalgru.reports.monitoring import monitoring_report_html, patient_summary
from vitalgru.reports.ward import ecg_patient_page_html, ward_page_html
from vitalgru.scoring.ecg_stream import POLARITY_EVERY, POLARITY_RUNS, PatientMemory
from vitalgru.scoring.replay import replay
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

FS = 360.0


@pytest.fixture(scope="module")
def record_100(mitdb_dir: Path) -> np.ndarray:
    """Ten minutes of MIT-BIH 100's MLII (sinus rhythm, about 75 bpm)."""
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=int(600 * FS))
    return rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)


def _feed(ward: Ward, streams: dict[str, np.ndarray], chunk_s: float = 10.0) -> None:
    step = int(chunk_s * FS)
    n = max(x.size for x in streams.values())
    for a in range(0, n, step):
        for pid, x in streams.items():
            if a < x.size:
                ward.add_ecg(pid, x[a : a + step].tolist())
        ward.tick()


def test_an_inverted_lead_is_flagged_and_the_flag_ends_once_it_is_put_right(
    record_100: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    ward = Ward(untrained_monitor())
    ward.admit_ecg("upright", FS)
    ward.admit_ecg("swapped", FS)
    first = record_100[: int(20 * FS)]  # about 24 beats: no run of 32 measured yet
    _feed(ward, {"upright": first, "swapped": -first})
    for pid in ("upright", "swapped"):
        s = ward.ecg_summary(pid)
        assert s["qrs_polarity"] is None and s["polarity_warning"] is None
    with caplog.at_level(logging.INFO, logger="vitalgru.scoring.ward"):
        rest = record_100[int(20 * FS) : int(180 * FS)]
        _feed(ward, {"upright": rest, "swapped": -rest})
        up, down = ward.ecg_summary("upright"), ward.ecg_summary("swapped")
        assert up["qrs_polarity"] > 0.5 and up["polarity_warning"] is None
        assert down["qrs_polarity"] == pytest.approx(-up["qrs_polarity"], abs=0.05)
        assert "the QRS of lead MLII points down" in down["polarity_warning"]
        warned = [r for r in caplog.records if "points down" in r.getMessage()]
        assert len(warned) == 1 and "patient swapped" in warned[0].getMessage()
        page = ecg_patient_page_html(down, [])
        assert "Check the leads: the QRS of lead MLII points down" in page
        assert "Check the leads" not in ecg_patient_page_html(up, [])
        overview = ward_page_html([up, down], [])
        assert overview.count("check the leads: the QRS points against its usual way") == 1
        # the electrodes put right: once most of the latest runs are upright, the flag ends
        # (every inverted run so far is still among the latest: a majority of upright runs
        # is needed, about 75 bpm)
        assert 75 * 180 / 60 < POLARITY_EVERY * POLARITY_RUNS
        needed_s = (POLARITY_RUNS // 2 + 1) * POLARITY_EVERY * 60 / 75 + 30
        _feed(ward, {"swapped": record_100[int(180 * FS) : int((180 + needed_s) * FS)]})
        s = ward.ecg_summary("swapped")
        assert s["qrs_polarity"] > 0.3 and s["polarity_warning"] is None
        assert any("points its usual way again" in r.getMessage() for r in caplog.records)


def test_a_replay_says_which_lead_was_upside_down_on_its_page(record_100: np.ndarray) -> None:
    x = record_100[: int(120 * FS)]
    result = replay(untrained_monitor(), {"upright": (x, FS), "swapped": (-x, FS)}, chunk_s=5.0)
    up, down = result.polarity["upright"], result.polarity["swapped"]
    assert up[0] > 0.5 and up[1] is None
    assert down[0] == pytest.approx(-up[0], abs=0.05) and "points down" in str(down[1])
    pages = {
        pid: patient_summary(pid, 120.0, [c.time_s for c in calls], [c.label for c in calls],
                             [c.signal_ok for c in calls], [], result.polarity[pid])
        for pid, calls in result.calls.items()
    }  # fmt: skip
    assert pages["swapped"]["polarity_warning"] == down[1]
    assert pages["upright"]["qrs_polarity"] == round(up[0], 2)
    html = monitoring_report_html([pages["swapped"]], title="t")
    assert "Check the leads: the QRS of lead MLII points down" in html
    assert "Check the leads" not in monitoring_report_html([pages["upright"]], title="t")


def test_the_flag_is_kept_across_a_gateway_restart(
    record_100: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "ward.sqlite"
    ward = Ward(untrained_monitor(), journal=WardJournal(state))
    ward.admit_ecg("swapped", FS)
    _feed(ward, {"swapped": -record_100[: int(90 * FS)]})
    before = ward.ecg_summary("swapped")
    assert "points down" in before["polarity_warning"]
    ward.close()
    kept = ward.ecg.memory("swapped").polarities
    assert 2 <= kept.size <= POLARITY_RUNS and (kept < -0.3).all()

    again = Ward(untrained_monitor(), journal=WardJournal(state))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vitalgru.scoring.ward"):
        assert again.restore(again.journal.load())["ecg_memory"] == 1
        again.tick()  # no sample since the restart: the flag is the one kept
    s = again.ecg_summary("swapped")
    assert s["qrs_polarity"] == pytest.approx(before["qrs_polarity"], abs=1e-6)
    assert s["polarity_warning"] == before["polarity_warning"]
    assert any("patient swapped" in r.getMessage() and "points down" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    again.close()


def test_a_memory_kept_before_polarities_were_reads_with_none() -> None:
    mon = untrained_monitor()
    mon.admit("p", FS)
    m = mon.memory("p")
    assert m.polarities.shape == (0,)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(b'{"model": "x", "beats": 3}', np.uint8), h=m.h,
             templates=m.templates, rr_s=m.rr_s)  # fmt: skip
    old = PatientMemory.from_bytes(buf.getvalue())
    assert old.polarities.shape == (0,) and old.beats == 3
    fresh = untrained_monitor()
    odd = PatientMemory(m.model, m.h, m.templates, 0, m.rr_s, np.array([0.5, 1.5], np.float32))
    with pytest.raises(ValueError, match="QRS polarities"):
        fresh.admit("p", FS, memory=odd)
    many = np.full(POLARITY_RUNS + 1, 0.5, np.float32)
    with pytest.raises(ValueError, match="QRS polarities"):
        fresh.admit("p", FS, memory=PatientMemory(m.model, m.h, m.templates, 0, m.rr_s, many))
    fine = PatientMemory(m.model, m.h, m.templates, 0, m.rr_s, np.array([np.nan, -0.8, -0.7]))
    fresh.admit("p", FS, memory=PatientMemory.from_bytes(fine.to_bytes()))
    assert fresh.qrs_polarity("p")[0] == pytest.approx(-0.75)


def test_the_live_flag_does_not_blink_near_the_limit(
    record_100: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    ward = Ward(untrained_monitor())
    ward.admit_ecg("p", FS)
    _feed(ward, {"p": record_100[: int(10 * FS)]})
    stream = ward.ecg._get("p")
    flags = []
    with caplog.at_level(logging.INFO, logger="vitalgru.scoring.ward"):
        for value in (-0.318, -0.295, -0.308, -0.274, -0.31, 0.126):  # runs of beats
            stream.polarities.clear()  # the median of the latest runs: this value
            stream.polarities.append(value)
            ward._note_polarity("p", ward._ecg_beds["p"])
            flags.append(ward._ecg_beds["p"].polarity_warning is not None)
    assert flags == [True, True, True, True, True, False]  # set once, cleared once
    assert caplog.text.count("points down") == 1 and caplog.text.count("usual way again") == 1

"""Replaying recordings: what the monitor calls does not depend on whether the records are
annotated; annotations only add the scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wfdb
from monitor_kit import PREPROCESSING, untrained_monitor

from pipelines.replay import replay_markdown
from vitalgru.config import PhysioNetConfig
from vitalgru.errors import RecordError
from vitalgru.io import open_database
from vitalgru.scoring import replay_database

SECONDS = 60


@pytest.fixture(scope="module")
def folders(mitdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first minute of records 119 (V beats in bigeminy) and 100, with their beat
    annotations in one folder and without them in another."""
    annotated = tmp_path_factory.mktemp("annotated")
    bare = tmp_path_factory.mktemp("bare")
    n = SECONDS * 360
    for name in ("119", "100"):
        rec = wfdb.rdrecord(str(mitdb_dir / name), sampto=n)
        ann = wfdb.rdann(str(mitdb_dir / name), "atr", sampto=n)
        for out in (annotated, bare):
            wfdb.wrsamp(
                name, fs=360, units=rec.units, sig_name=rec.sig_name, p_signal=rec.p_signal,
                fmt=["16"] * 2, adc_gain=[200.0] * 2, baseline=[0] * 2, write_dir=str(out),
            )  # fmt: skip
        wfdb.wrann(name, "atr", ann.sample, symbol=ann.symbol, write_dir=str(annotated))
    return annotated, bare


def test_unannotated_records_are_replayed_and_reported_without_scores(
    folders: tuple[Path, Path],
) -> None:
    annotated, bare = (open_database(str(f), PhysioNetConfig()) for f in folders)
    names = ["119", "100"]
    res_a, rep_a = replay_database(untrained_monitor(), annotated, names)
    res_b, rep_b = replay_database(untrained_monitor(), bare, names, annotations=None)

    # the monitor never reads the annotations: the same beats, labels and alarms
    for rid in names:
        a, b = res_a.calls[rid], res_b.calls[rid]
        assert [(c.sample_idx, c.label) for c in a] == [(c.sample_idx, c.label) for c in b]
        assert [x.kind for x in res_a.alerts[rid]] == [x.kind for x in res_b.alerts[rid]]
    assert rep_b["calls"] == rep_a["calls"]
    assert rep_b["alerts"] == rep_a["alerts"]

    # with annotations: scores and counts; without: counts only
    assert rep_a["annotated"] and not rep_b["annotated"]
    assert {"beats", "detection"} <= set(rep_a) and not {"beats", "detection"} & set(rep_b)
    n_calls = sum(len(c) for c in res_b.calls.values())
    assert rep_b["calls"]["n_beats"] == n_calls > 120  # about 70 beats a minute each
    for rid in names:
        counts = rep_b["calls"]["records"][rid]["calls"]
        assert counts == {k: sum(c.label == k for c in res_b.calls[rid]) for k in "NSVFQ"}
    assert rep_a["detection"]["reference"] > 0.95 * n_calls

    md = replay_markdown(rep_b, "bare")
    assert "## bare: beats called" in md and "Beat detection" not in md
    assert "| 119 |" in md and "## Alarms" in md
    assert "## Beat detection" in replay_markdown(rep_a, "annotated")

    # the matched beats' figures carry their record-bootstrap intervals, as evaluate's do
    iv = rep_a["beats"]["intervals"]
    assert iv["n_records"] == 2 and iv["method"].startswith("record bootstrap")
    assert "from a record bootstrap (2 records" in replay_markdown(rep_a, "annotated")


def test_records_without_annotation_files_say_how_to_replay_them(
    folders: tuple[Path, Path],
) -> None:
    bare = open_database(str(folders[1]), PhysioNetConfig())
    with pytest.raises(RecordError, match="no record could be read.*--annotations none"):
        replay_database(untrained_monitor(), bare, ["119"])


def test_a_pause_that_ends_the_recording_is_raised_and_progress_reaches_the_end(
    mitdb_dir: Path,
) -> None:
    import numpy as np

    from vitalgru.scoring.replay import replay

    full = wfdb.rdrecord(str(mitdb_dir / "119"), sampto=40 * 360, channels=[0]).p_signal[:, 0]
    x = full[: int(29.3 * 360)]  # its last R peak at 28.92 s
    ended = np.r_[x, np.full(int(round((28.92 + 3.2 - 29.3) * 360)), x[-1])]  # 3.2 s, no beat
    for chunk_s in (1.0, 7.0, 1000.0):
        seen: list[tuple[int, int]] = []
        got = replay(untrained_monitor(), {"p": (ended, 360.0)}, chunk_s,
                     lambda k, n, seen=seen: seen.append((k, n)))  # fmt: skip
        # no R peak for 3.2 s, then the recording ends: nothing was raised before
        assert [round(a.onset_s, 2) for a in got.alerts["p"] if a.kind == "pause"] == [28.92]
        assert seen[-1][0] == seen[-1][1] == got.tick_compute_s.size  # (60, 61) before
        onsets = [(a.onset_s, a.raised_at_s) for a in got.alerts["p"]]
        assert onsets == sorted(onsets)  # in time order, whatever the chunks


def test_a_record_without_a_beat_called_has_its_row(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    import numpy as np

    bare = shutil.copytree(folders[1], tmp_path / "bare")
    wfdb.wrsamp("900", fs=360, units=["mV"], sig_name=["MLII"], p_signal=np.zeros((20 * 360, 1)),
                fmt=["16"], adc_gain=[200.0], baseline=[0], write_dir=str(bare))  # fmt: skip
    db = open_database(str(bare), PhysioNetConfig())
    res, rep = replay_database(untrained_monitor(), db, ["119", "900"], annotations=None)
    assert res.calls["900"] == [] and res.alerts["900"]  # flat: its alarms, no beat
    # it was left out of the table, as if it had not been replayed
    assert rep["calls"]["records"]["900"] == {"n_beats": 0, "calls": dict.fromkeys("NSVFQ", 0)}
    assert "| 900 |" in replay_markdown(rep, "bare")


def test_an_annotated_record_with_fewer_than_two_beats_is_replayed_and_scored(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    # an asystole (or a strip all ventricular flutter) annotated only "[" and "]": it was
    # excluded before the monitor saw it, its alarms gone from the report
    import shutil

    import numpy as np

    annotated = shutil.copytree(folders[0], tmp_path / "annotated")
    wfdb.wrsamp("900", fs=360, units=["mV"], sig_name=["MLII"], p_signal=np.zeros((20 * 360, 1)),
                fmt=["16"], adc_gain=[200.0], baseline=[0], write_dir=str(annotated))  # fmt: skip
    wfdb.wrann("900", "atr", np.array([10, 7000]), symbol=["[", "]"], write_dir=str(annotated))
    db = open_database(str(annotated), PhysioNetConfig())
    res, rep = replay_database(untrained_monitor(), db, ["119", "900"])
    assert "900" in res.calls and res.alerts["900"] and rep["excluded"] == {}
    assert "900" in rep["alerts"]["records"] and rep["alerts"]["records"]["900"]
    row = rep["detection"]["records"]["900"]
    assert row["reference"] == 0 and row["se"] is None  # nothing to find, nothing found


def test_a_record_replayed_on_the_fall_back_lead_is_marked_in_the_replays_outputs(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a model of lead V5: record 100 has it, 119 (MLII and V1) has neither it nor a
    # counterpart and is monitored on column 0 (MLII), its fall-back. Before, only the log
    # said so (evaluate marks it in its report)
    from pipelines import replay as replay_flow
    from vitalgru.tracking.models import LoadedModel

    mon = untrained_monitor()
    loaded = LoadedModel(module=mon.model, preprocessing={**PREPROCESSING, "lead": "V5"},
                         config={}, uri="models:/test/1", version="1")  # fmt: skip
    monkeypatch.setattr(replay_flow.tracking, "load_model", lambda *a, **k: loaded)
    out = tmp_path / "replay.json"
    report = replay_flow.replay_arrhythmia("models:/test/1", str(folders[0]), "119,100", str(out))
    written = json.loads(out.read_text())
    signal = {rid: written["records"][rid]["signal"] for rid in ("119", "100")}
    assert signal == {rid: report["records"][rid]["signal"] for rid in signal}
    assert signal["119"] == {"lead": "MLII", "lead_wanted": "V5", "lead_fallback": True}
    assert signal["100"] == {"lead": "V5", "lead_wanted": "V5", "lead_fallback": False}
    md = out.with_suffix(".md").read_text()
    assert "Monitored on a fall-back lead (1 records" in md and "119 MLII for V5" in md
    page = out.with_suffix(".html").read_text()
    assert page.count("Monitored on a fall-back lead: MLII for V5") == 1
    section = page.split("<h2>Patient 119</h2>")[1].split("<h2>Patient")[0]
    assert "Monitored on a fall-back lead" in section

"""Challenge-2019 tables without a ``SepsisLabel`` column (a hospital's own export, which
nobody labelled): read as unlabelled, never as negative, and never mixed with labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalgru.data.early_warning import build_cohort
from vitalgru.errors import RecordError
from vitalgru.io.psv import read_psv
from vitalgru.io.psv_folder import list_psv, read_psv_folder


def _unlabelled(src: Path, dst: Path, *, lower: bool = False, reverse: bool = False) -> Path:
    """``src`` with its SepsisLabel column dropped (its header in lower case, its columns
    in reverse order, if asked)."""
    rows = [line.split("|") for line in src.read_text().splitlines()]
    j = rows[0].index("SepsisLabel")
    rows = [r[:j] + r[j + 1 :] for r in rows]
    if reverse:
        rows = [r[::-1] for r in rows]
    if lower:
        rows[0] = [c.lower() for c in rows[0]]
    dst.write_text("\n".join("|".join(r) for r in rows) + "\n")
    return dst


@pytest.fixture()
def stays(physionet_mirror: Path) -> list[Path]:
    """Eight set-A stays, two of them septic."""
    files = list_psv(physionet_mirror / "challenge-2019" / "training_setA")[100:400]
    septic = [f for f in files if "|1\n" in f.read_text()]
    return sorted(septic[:2] + [f for f in files if f not in septic][:6])


class TestOneFile:
    @pytest.mark.parametrize("layout", [{}, {"lower": True}, {"reverse": True}])
    def test_a_file_without_the_label_column_is_read_unlabelled(
        self, stays: list[Path], tmp_path: Path, layout: dict
    ) -> None:
        # the file went to attrition as "header lacks column(s) ['SepsisLabel']"
        src = stays[0]
        df = read_psv(_unlabelled(src, tmp_path / src.name, **layout))
        assert "sepsis_label" not in df.columns
        assert df.equals(read_psv(src).drop(columns="sepsis_label"))

    def test_an_empty_label_column_is_a_bad_label_that_says_how_to_mean_none(
        self, stays: list[Path], tmp_path: Path
    ) -> None:
        # present but empty: a label join that failed, not an unlabelled export
        rows = [line.split("|") for line in stays[0].read_text().splitlines()]
        text = "\n".join("|".join(r[:-1] + ["NaN" if k else r[-1]]) for k, r in enumerate(rows))
        p = tmp_path / stays[0].name
        p.write_text(text + "\n")
        with pytest.raises(RecordError) as ei:
            read_psv(p)
        assert ei.value.reason == "bad_label"
        assert "it is empty: a file without labels leaves the column out" in str(ei.value)

    def test_rows_with_a_label_cell_under_a_header_without_one_are_refused(
        self, stays: list[Path], tmp_path: Path
    ) -> None:
        head, *rows = stays[0].read_text().splitlines()
        p = tmp_path / stays[0].name
        p.write_text("\n".join([head.rsplit("|", 1)[0], *rows]) + "\n")
        with pytest.raises(RecordError) as ei:
            read_psv(p)
        assert ei.value.reason == "bad_row_shape"
        assert "must each have 40 pipe-separated fields" in str(ei.value)


class TestFolder:
    def test_a_folder_without_labels_is_read_whole_and_unlabelled(
        self, stays: list[Path], tmp_path: Path
    ) -> None:
        # every file went to attrition, and the folder was "no usable patient"
        data = tmp_path / "data"
        data.mkdir()
        for src in stays:
            _unlabelled(src, data / src.name)
        cohort = read_psv_folder(data)
        assert not cohort.labelled and cohort.attrition == []
        assert "sepsis_label" not in cohort.frame.columns
        want = pd.concat([read_psv(s) for s in stays], ignore_index=True)
        assert cohort.frame.equals(want.drop(columns="sepsis_label"))
        # through the cache, read back unlabelled
        cache = tmp_path / "cache"
        first = read_psv_folder(data, cache_dir=cache)
        again = read_psv_folder(data, cache_dir=cache)
        assert not again.labelled and again.frame.equals(first.frame)

    def test_an_unlabelled_cohort_is_scored_but_has_no_labels_to_train_on(
        self, stays: list[Path], tmp_path: Path
    ) -> None:
        for src in stays:
            _unlabelled(src, tmp_path / src.name)
        cohort = build_cohort(tmp_path)
        assert not cohort.labelled and cohort.n_patients == len(stays)
        assert cohort.label_reversals() == {}
        sub, _ = cohort.subset(np.arange(3)).on_hourly_grid()
        assert not sub.labelled
        for need_labels in (lambda: cohort.labels, cohort.septic):
            with pytest.raises(ValueError, match="is unlabelled .* not trained on"):
                need_labels()

    @pytest.mark.parametrize("on_error", ["skip", "raise"])
    def test_a_folder_of_labelled_and_unlabelled_files_is_refused(
        self, stays: list[Path], tmp_path: Path, on_error: str
    ) -> None:
        # the unlabelled files went to attrition as missing columns and the rest was
        # scored: now neither quietly; nor may they pass for stays that never went septic
        for k, src in enumerate(stays):
            if k < 3:
                _unlabelled(src, tmp_path / src.name)
            else:
                (tmp_path / src.name).write_bytes(src.read_bytes())
        with pytest.raises(RecordError) as ei:
            read_psv_folder(tmp_path, on_error=on_error)  # type: ignore[arg-type]
        assert ei.value.reason == "mixed_labels"
        said = str(ei.value)
        assert f"5 of the 8 files read have a SepsisLabel column (e.g. {stays[3].name})" in said
        assert f"3 do not (e.g. {stays[0].name})" in said
        assert "not taken as negative" in said

    def test_a_broken_file_does_not_make_a_folder_mixed(
        self, stays: list[Path], tmp_path: Path
    ) -> None:
        # a file that cannot be read is attrition, whatever its header lacks
        for src in stays:
            _unlabelled(src, tmp_path / src.name)
        (tmp_path / "p999999.psv").write_text("HR|O2Sat\n1|2\n")
        cohort = read_psv_folder(tmp_path)
        assert not cohort.labelled
        assert [(e.item, e.reason) for e in cohort.attrition] == [
            ("p999999.psv", "missing_columns")
        ]

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from vitalgru.data.labels import AAMI_MAP, aami_class, aami_labels, is_beat
from vitalgru.data.splits import (
    DECHAZAL_DS1,
    DECHAZAL_DS2,
    MITDB_PACED,
    dechazal_split,
    patient_folds,
    patient_split,
)
from vitalgru.types import AAMIClass, Split

#: EC57 table 1 and the four symbols MIT-BIH does not use, as vitalgru.data.labels states it.
_EC57 = {
    AAMIClass.N: "NLRejBn",
    AAMIClass.S: "AaJS",
    AAMIClass.V: "VEr",
    AAMIClass.F: "F",
    AAMIClass.Q: "/fQ?",
}


class TestAAMIMapping:
    def test_each_symbol(self) -> None:
        assert aami_class("N") is AAMIClass.N
        assert aami_class("L") is AAMIClass.N
        assert aami_class("A") is AAMIClass.S
        assert aami_class("E") is AAMIClass.V
        assert aami_class("F") is AAMIClass.F
        assert aami_class("/") is AAMIClass.Q
        assert aami_class("+") is None
        assert aami_class("~") is None
        assert set(AAMI_MAP) == set("".join(_EC57.values()))  # no other symbol is a beat

    @pytest.mark.parametrize(
        ("symbol", "cls"), [(sym, cls) for cls, syms in _EC57.items() for sym in syms]
    )
    def test_every_ec57_beat_symbol_has_its_class(self, symbol: str, cls: AAMIClass) -> None:
        """Each of the 19 beat symbols, one by one: ``f`` (fusion of paced and normal) is Q,
        not F, yet occurs only in the paced records the de Chazal count test leaves out,
        so a wrong class there would move beats between F and Q unnoticed."""
        assert aami_class(symbol) is cls

    def test_labels_vector(self) -> None:
        np.testing.assert_array_equal(
            aami_labels(["N", "A", "V", "F", "Q", "+"]), [0, 1, 2, 3, 4, -1]
        )
        np.testing.assert_array_equal(is_beat(np.array(["N", "|", "j"])), [True, False, True])

    def test_published_dechazal_counts(self, mitdb_dir: Path) -> None:
        """de Chazal et al. 2004, table II: DS1 N 45,866 / S 944 / V 3,788 / F 415 / Q 8;
        DS2 N 44,259 / S 1,837 / V 3,221 / F 388 / Q 7."""
        expected = {
            Split.DS1: {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
            Split.DS2: {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7},
        }
        records = (mitdb_dir / "RECORDS").read_text().split()
        split = dechazal_split(records)
        counts: dict[Split, Counter[str]] = {Split.DS1: Counter(), Split.DS2: Counter()}
        for rec, s in split.items():
            ann = wfdb.rdann(str(mitdb_dir / rec), "atr")
            counts[s].update(str(AAMI_MAP[x]) for x in ann.symbol if x in AAMI_MAP)
        assert {k: dict(v) for k, v in counts.items()} == expected


class TestSplits:
    def test_dechazal_disjoint_and_complete(self) -> None:
        assert len(DECHAZAL_DS1) == len(DECHAZAL_DS2) == 22
        assert not set(DECHAZAL_DS1) & set(DECHAZAL_DS2)
        assert not set(MITDB_PACED) & (set(DECHAZAL_DS1) | set(DECHAZAL_DS2))
        s = dechazal_split(["100", "101", "102", "999"])
        assert s == {"100": Split.DS2, "101": Split.DS1}

    def test_patient_split_fractions_and_seed(self) -> None:
        ids = [f"p{i}" for i in range(100)] * 3  # duplicates collapse
        a = patient_split(ids, {Split.TRAIN: 0.7, Split.VALID: 0.1, Split.TEST: 0.2}, seed=1)
        b = patient_split(ids, {Split.TRAIN: 0.7, Split.VALID: 0.1, Split.TEST: 0.2}, seed=1)
        assert a == b and len(a) == 100
        assert Counter(a.values()) == {Split.TRAIN: 70, Split.VALID: 10, Split.TEST: 20}
        c = patient_split(ids, {Split.TRAIN: 0.7, Split.VALID: 0.1, Split.TEST: 0.2}, seed=2)
        assert a != c

    def test_patient_split_rejects_bad_fractions(self) -> None:
        with pytest.raises(ValueError, match="sum to 1"):
            patient_split(["a"], {Split.TRAIN: 0.5, Split.TEST: 0.4})

    def test_folds_balanced(self) -> None:
        f = patient_folds([str(i) for i in range(23)], 5, seed=0)
        sizes = Counter(f.values())
        assert set(sizes) == {0, 1, 2, 3, 4} and max(sizes.values()) - min(sizes.values()) <= 1
        with pytest.raises(ValueError):
            patient_folds(["a", "b"], 5)

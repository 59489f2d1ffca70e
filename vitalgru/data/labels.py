"""AAMI EC57 heartbeat classes from WFDB beat annotation symbols.

The mapping follows ANSI/AAMI EC57:2012 (section 4.2, table 1) as used for MIT-BIH by
de Chazal, O'Dwyer & Reilly, "Automatic classification of heartbeats using ECG morphology
and heartbeat interval features", IEEE Trans Biomed Eng 51(7):1196-1206 (2004), table I:

======  ==========================================================================
class   WFDB symbols
======  ==========================================================================
N       ``N`` normal, ``L`` left / ``R`` right bundle branch block,
        ``e`` atrial escape, ``j`` nodal (junctional) escape
S       ``A`` atrial premature, ``a`` aberrated atrial premature,
        ``J`` nodal (junctional) premature, ``S`` supraventricular premature
V       ``V`` premature ventricular contraction, ``E`` ventricular escape
F       ``F`` fusion of ventricular and normal
Q       ``/`` paced, ``f`` fusion of paced and normal, ``Q`` unclassifiable
======  ==========================================================================

Four more WFDB beat labels that MIT-BIH does not use but other PhysioNet databases do
(EC57 table 1, following the WFDB annotation codes): ``B`` bundle branch block beat
(unspecified) and ``n`` supraventricular escape are N, ``r`` R-on-T premature ventricular
contraction is V, ``?`` unclassifiable beat is Q.

Every other symbol (rhythm changes ``+``, noise ``~``, comments ``"``, ``|`` isolated QRS-like
artefact, ``x`` non-conducted P wave, ``!`` ventricular flutter wave, ...) is not a beat and
gets no class. With this mapping
the de Chazal DS1/DS2 counts on MIT-BIH are reproduced exactly (a test checks it).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vitalgru.types import AAMI_CLASSES, AAMIClass

AAMI_MAP: dict[str, AAMIClass] = {
    **dict.fromkeys("NLRejBn", AAMIClass.N),
    **dict.fromkeys("AaJS", AAMIClass.S),
    **dict.fromkeys("VEr", AAMIClass.V),
    "F": AAMIClass.F,
    **dict.fromkeys("/fQ?", AAMIClass.Q),
}

#: Symbols that mark a beat (a QRS complex) for R-peak scoring: the AAMI-mapped ones.
BEAT_SYMBOLS: frozenset[str] = frozenset(AAMI_MAP)

#: Integer label of each class (the order of ``vitalgru.types.AAMI_CLASSES``), by the class
#: or its letter (a ``StrEnum``: the same key).
CLASS_INDEX: dict[str, int] = {c: i for i, c in enumerate(AAMI_CLASSES)}


def aami_class(symbol: str) -> AAMIClass | None:
    """AAMI class of one WFDB beat symbol, or ``None`` for non-beat annotations."""
    return AAMI_MAP.get(symbol)


def aami_labels(symbols: Iterable[str]) -> np.ndarray:
    """Integer AAMI labels (0..4 for N, S, V, F, Q; -1 for non-beat symbols).

    Parameters
    ----------
    symbols : iterable of str
        WFDB annotation symbols.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int8.
    """
    return np.array(
        [CLASS_INDEX[c] if (c := AAMI_MAP.get(s)) is not None else -1 for s in symbols],
        dtype=np.int8,
    )


def is_beat(symbols: np.ndarray) -> np.ndarray:
    """Boolean mask of the annotations that are beats (have an AAMI class)."""
    return np.isin(np.asarray(symbols, dtype=str), list(BEAT_SYMBOLS))

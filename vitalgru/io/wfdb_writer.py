"""Beat labels written as WFDB annotation files, the format PhysioNet's own tools read.

A model's calls written this way open beside the signal in WAVE or LightWAVE, read back
with ``wfdb.rdann``, and can be compared with the reference annotations by the WFDB
Software Package's ``bxb``, the beat-by-beat comparator ANSI/AAMI EC57 names, so a figure
this project reports can be checked with a tool it did not write::

    WFDB=".:/path/to/mitdb" bxb -r 100 -a atr vgru

Each AAMI class is written as the MIT-BIH beat code that stands for it in EC57's mapping:
``N`` normal, ``A`` (atrial premature beat) for S, ``V``, ``F`` fusion, ``Q``
unclassifiable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import wfdb

from vitalgru.claims import replace_file

__all__ = ["AAMI_TO_MIT", "check_annotation_extension", "write_beat_labels"]

#: The MIT-BIH beat code written for each AAMI class (EC57 maps it back to that class).
AAMI_TO_MIT = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}


def check_annotation_extension(extension: str, reference: str | None = None) -> str:
    """``extension`` if it can name a WFDB annotation file (1 to 16 letters and digits) and
    is not ``reference``'s (WFDB tools find files by record and extension along a search
    path, so the model's labels must not pass for the annotators'). ValueError otherwise."""
    if not (extension.isascii() and extension.isalnum() and 1 <= len(extension) <= 16):
        raise ValueError(
            f"{extension!r} is not an annotation file extension (letters and digits, such as vgru)"
        )
    if reference is not None and extension.lower() == reference.lower():
        raise ValueError(
            f"the model's labels cannot be written as .{extension}: that is the reference "
            "annotations' extension; choose another (vgru)"
        )
    return extension


def write_beat_labels(
    folder: str | Path,
    record: str,
    extension: str,
    samples: np.ndarray | Sequence[int],
    labels: Sequence[str],
    fs: float,
) -> Path:
    """Write one record's beat labels as ``<folder>/<record>.<extension>``.

    Parameters
    ----------
    folder : path
        Created if missing.
    record : str
        The record's name as its database lists it (``100``, or ``p01/s1`` in a subfolder).
    extension : str
        Letters and digits (:func:`check_annotation_extension`).
    samples : array of int
        Each beat's R-peak sample at the record's own sampling rate, ascending.
    labels : sequence of str
        Each beat's AAMI class (``N``, ``S``, ``V``, ``F``, ``Q``).
    fs : float
        The record's sampling rate, stored in the file.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        Samples and labels of different lengths, a negative or decreasing sample, a label
        that is not an AAMI class, or a bad extension.
    """
    check_annotation_extension(extension)
    idx = np.asarray(samples, dtype=np.int64)
    if idx.ndim != 1 or idx.size != len(labels):
        raise ValueError(f"{record}: {idx.size} beat samples but {len(labels)} labels")
    if idx.size and (idx[0] < 0 or np.any(np.diff(idx) < 0)):
        raise ValueError(f"{record}: beat samples must be >= 0 and ascending")
    unknown = sorted({str(lab) for lab in labels} - set(AAMI_TO_MIT))
    if unknown:
        raise ValueError(f"{record}: labels {unknown} are not AAMI classes (N, S, V, F, Q)")
    path = Path(folder) / f"{record}.{extension}"  # a record in a subfolder keeps its path
    path.parent.mkdir(parents=True, exist_ok=True)
    if idx.size == 0:  # wrann refuses an empty list; a record with no beat has an empty file
        replace_file(path, b"\x00\x00")  # the end-of-file code of the MIT format
        return path
    # wrann names the file it writes after the record, so it writes into a folder of its
    # own beside the target and the file is renamed into place whole: bxb or a viewer
    # reading the folder meanwhile sees the last file or this one, never half of it
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as work:
        wfdb.wrann(
            path.name[: -len(extension) - 1],
            extension,
            idx,
            symbol=[AAMI_TO_MIT[str(lab)] for lab in labels],
            fs=float(fs),
            write_dir=work,
        )
        os.replace(Path(work) / path.name, path)
    return path

"""Challenge-2019 tables with and without outcome labels.

A hospital's own export in the Challenge's layout usually has no ``SepsisLabel`` column
(nobody labelled it). Such a file, whose header names the other 40 columns, is read as
**unlabelled** (:func:`vitalgru.io.psv.check_bytes`): its frame has no ``sepsis_label``
column, so nothing can mistake its stays for stays that were never septic. It can be
scored (risks, alarms, alarm burden, drift), never trained on nor measured for accuracy.

- A ``SepsisLabel`` column that is there but empty (``NaN`` in every row) is a
  ``bad_label`` file, as any label that is not 0 or 1: a label join that failed is not
  taken for no labels; the message says to leave the column out to mean "unlabelled".
- A folder is read labelled or unlabelled, never both (:func:`folder_labelled`): a folder
  where some files have the column and others do not is refused (``mixed_labels``),
  since the unlabelled stays would otherwise be scored as negative ones or left out unseen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from vitalgru.errors import RecordError

__all__ = ["LABEL", "folder_labelled"]

logger = logging.getLogger(__name__)

#: The label column's name in a Challenge-2019 header.
LABEL = "SepsisLabel"


def folder_labelled(
    folder: str | Path, files: Sequence[Path], has_label: Mapping[Path, bool]
) -> bool:
    """Whether the files read from ``folder`` are labelled (True when none were read).

    Raises
    ------
    RecordError
        ``mixed_labels``: some have a ``SepsisLabel`` column and some do not; the message
        says how many of each and names one of either.
    """
    without = [f.name for f in files if not has_label[f]]
    if not without:
        return True
    if len(without) == len(files):
        logger.info("%s: no file has a %s column; read as unlabelled", folder, LABEL)
        return False
    with_ = [f.name for f in files if has_label[f]]
    raise RecordError(
        folder,
        f"{len(with_)} of the {len(files)} files read have a {LABEL} column (e.g. "
        f"{with_[0]}) and {len(without)} do not (e.g. {without[0]}): a folder is read "
        "labelled or unlabelled, and the unlabelled stays are not taken as negative; put "
        "them in a folder of their own (or add their labels)",
        reason="mixed_labels",
    )

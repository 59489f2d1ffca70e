"""Names of the files written one per patient or record, as every file system takes them.

Evaluation writes a file named after each patient (the Challenge's predictions and labels)
or record (WFDB annotation files). Two ids that differ only in letter case (``P001``,
``p001``) are two files on Linux but one on a case-insensitive file system (macOS and
Windows as installed, their network shares): the second patient's file replaced the
first's, and the Challenge's scorer read one patient where two were scored. Such ids are
refused before anything is scored or written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from vitalgru.errors import FileNameClashError

__all__ = ["check_distinct_names"]


def check_distinct_names(names: Iterable[str], what: str) -> None:
    """:class:`~vitalgru.errors.FileNameClashError` (a ValueError), naming the first pair,
    when two of ``names`` differ only in letter case (or in the Unicode form of an accented
    letter, which macOS does not tell apart either).

    Parameters
    ----------
    names : iterable of str
        File names without their extension (patient ids, record names, ``p01/s1``).
    what : str
        What they name, plural, for the message (``"patients"``, ``"records"``).
    """
    seen: dict[str, str] = {}
    for name in names:
        key = unicodedata.normalize("NFC", name).casefold()
        first = seen.setdefault(key, name)
        if first != name:
            how = "letter case" if first.casefold() == name.casefold() else (
                "how an accented letter is encoded")  # fmt: skip
            raise FileNameClashError(
                f"{what} {first!r} and {name!r} differ only in {how}: their files "
                "would be one file on a case-insensitive file system (macOS, Windows), the "
                "second replacing the first; rename one of them"
            )

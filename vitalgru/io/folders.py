"""What a data folder holds when it holds no data: hints for the error a user reads.

A folder of records can be given one level too high (the mirror's root, the challenge's
folder above ``training_setA``) or before its download was unpacked (PhysioNet serves
whole databases and the challenge's sets as zip files). Each reader says which; the archive
check is shared here.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["archive_hint"]

#: Name endings of the archives a download is likely to sit in.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".gz", ".bz2", ".xz", ".7z")


def archive_hint(folder: str | Path, what: str) -> str:
    """``"; it holds <archives>: unpack <what> first"`` when ``folder`` holds archives,
    else ``""``: a message suffix. An unreadable folder gives no hint."""
    try:
        packed = sorted(
            f.name
            for f in Path(folder).iterdir()
            if f.is_file() and f.name.endswith(ARCHIVE_SUFFIXES)
        )
    except OSError:
        return ""
    return f"; it holds {', '.join(packed[:3])}: unpack {what} first" if packed else ""

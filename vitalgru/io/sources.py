"""Where PhysioNet databases come from, and opening one by name or folder.

:func:`resolve_source` decides between a local mirror (``PhysioNetConfig.mirror`` or
``$VITALGRU_PHYSIONET_MIRROR``) and downloads into a cache; :func:`open_database` turns a
PhysioNet name (``"mitdb"``, ``"mitdb/1.0.0"``) or a folder into a
:class:`~vitalgru.io.physionet.Database`, which lists, fetches, verifies and reads records
the same way whichever the source.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vitalgru.config import PhysioNetConfig
from vitalgru.errors import UnknownDatabaseError
from vitalgru.io.checksums import VerifiedState
from vitalgru.io.download import HttpFetcher
from vitalgru.io.physionet import Database, PatientIds

__all__ = [
    "ENV_MIRROR",
    "KNOWN_VERSIONS",
    "PATIENT_ID_MAPS",
    "Source",
    "open_database",
    "resolve_source",
]

#: Environment variable naming a local mirror (``<mirror>/<db>/<files>``).
ENV_MIRROR = "VITALGRU_PHYSIONET_MIRROR"

#: Latest published version of the databases this package is tested with; any other
#: database is opened as ``"<db>/<version>"``.
KNOWN_VERSIONS: dict[str, str] = {
    "mitdb": "1.0.0",  # MIT-BIH Arrhythmia Database
    "nstdb": "1.0.0",  # MIT-BIH Noise Stress Test Database
    "svdb": "1.0.0",  # MIT-BIH Supraventricular Arrhythmia Database
    "incartdb": "1.0.0",  # St Petersburg INCART 12-lead Arrhythmia Database
    "ltdb": "1.0.0",  # MIT-BIH Long-Term ECG Database
}

#: Per-database record -> patient mapping; records not listed are their own patient.
#: MIT-BIH Arrhythmia: records 201 and 202 come from the same subject (the 202 header:
#: "This record was taken from the same analog tape as record 201"); every other record
#: is a different subject (Moody & Mark 2001, IEEE EMB Mag. 20(3):45-50).
PATIENT_ID_MAPS: dict[str, Mapping[str, str]] = {"mitdb": {"202": "201"}}

_DB_SPEC = re.compile(
    r"^(?P<db>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:/(?P<version>[0-9][A-Za-z0-9_.-]*))?$"
)


@dataclass(frozen=True, slots=True)
class Source:
    """Where databases come from, resolved from a :class:`PhysioNetConfig`.

    Attributes
    ----------
    kind : {"mirror", "remote"}
        Local mirror, or download into ``cache_dir``.
    mirror : Path or None
        Mirror root when ``kind == "mirror"``.
    base_url : str
        PhysioNet files URL, ending in ``/``.
    cache_dir : Path
        Downloads (remote) and verification state (both kinds).
    """

    kind: Literal["mirror", "remote"]
    mirror: Path | None
    base_url: str
    cache_dir: Path


def _default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "vitalgru" / "physionet"


def resolve_source(cfg: PhysioNetConfig | None = None) -> Source:
    """Decide between mirror and download: ``cfg.mirror``, else ``$VITALGRU_PHYSIONET_MIRROR``,
    else remote ``cfg.base_url`` into ``cfg.cache_dir`` (default
    ``$XDG_CACHE_HOME/vitalgru/physionet`` or ``~/.cache/vitalgru/physionet``).

    Raises
    ------
    FileNotFoundError
        A configured mirror folder does not exist (names where it was configured).
    """
    cfg = cfg or PhysioNetConfig()
    cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else _default_cache_dir()
    base = cfg.base_url if cfg.base_url.endswith("/") else cfg.base_url + "/"
    mirror, origin = (cfg.mirror, "PhysioNetConfig.mirror") if cfg.mirror else (None, "")
    if mirror is None and os.environ.get(ENV_MIRROR):
        mirror, origin = Path(os.environ[ENV_MIRROR]), f"${ENV_MIRROR}"
    if mirror is not None:
        mirror = Path(mirror).expanduser().resolve()
        if not mirror.is_dir():
            raise FileNotFoundError(f"PhysioNet mirror {mirror} (from {origin}) is not a folder")
        return Source("mirror", mirror, base, cache)
    return Source("remote", None, base, cache)


def _local_folder_meant(m: re.Match[str], src: Source, text: str) -> bool:
    """A name (``mydb``, ``ward4/2024``) that no source knows but that is a folder here is
    a folder: not a PhysioNet database this version knows, and not in the mirror. (A
    relative folder of two parts reads like ``<db>/<version>``; one that is there is not
    fetched from PhysioNet.)"""
    db = m.group("db")
    if db in KNOWN_VERSIONS:
        return False
    if src.mirror is not None and (src.mirror / db).is_dir():
        return False
    return Path(text).expanduser().is_dir()


def open_database(
    name_or_path: str | Path,
    cfg: PhysioNetConfig | None = None,
    *,
    patient_ids: PatientIds | None = None,
    backoff_s: float | None = None,
) -> Database:
    """Open a database by PhysioNet name (``"mitdb"``, ``"mitdb/1.0.0"``) or folder path.

    Parameters
    ----------
    name_or_path : str or Path
        ``"<db>"`` (version from :data:`KNOWN_VERSIONS`), ``"<db>/<version>"``, or a
        folder with ``.hea`` files (a :class:`~pathlib.Path`, or a string that is not a
        database name, e.g. ``"./data/mydb"``).
    cfg : PhysioNetConfig, optional
        Source, cache, retries and verification settings (see :func:`resolve_source`).
    patient_ids : mapping or callable, optional
        Record -> patient id; defaults to :data:`PATIENT_ID_MAPS` for the database name
        (or folder name).
    backoff_s : float, optional
        Wait before the first download retry, in seconds, doubled per retry; overrides
        ``cfg.backoff_s``.

    Raises
    ------
    UnknownDatabaseError
        A name without a version that this version knows no version of, and that is not a
        folder either (a ``ValueError``).
    FileNotFoundError
        The folder does not exist, or the database is not in the configured mirror.
    """
    cfg = cfg or PhysioNetConfig()
    src = resolve_source(cfg)
    m = None if isinstance(name_or_path, Path) else _DB_SPEC.match(str(name_or_path))
    if m is not None and _local_folder_meant(m, src, str(name_or_path)):
        m = None
    if m is None:
        root = Path(name_or_path).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(
                f"database folder {root} does not exist (and {str(name_or_path)!r} is not a "
                "PhysioNet database name like 'mitdb' or 'mitdb/1.0.0')"
            )
        ids = patient_ids if patient_ids is not None else PATIENT_ID_MAPS.get(root.name)
        return Database(
            root.name,
            root,
            state=_state_for(src, root.name, root),
            verify_checksums=cfg.verify_checksums,
            patient_ids=ids,
        )
    db, version = m.group("db"), m.group("version")
    ids = patient_ids if patient_ids is not None else PATIENT_ID_MAPS.get(db)
    if src.mirror is not None:
        root = src.mirror / db
        if version and (root / version).is_dir():
            root = root / version
        if not root.is_dir():
            raise FileNotFoundError(
                f"database {db!r} is not in the PhysioNet mirror {src.mirror} "
                f"(expected {root}); add it there, or unset the mirror to download it"
            )
        return Database(
            db,
            root,
            state=_state_for(src, db, root),
            verify_checksums=cfg.verify_checksums,
            patient_ids=ids,
            version=version,
        )
    version = version or KNOWN_VERSIONS.get(db)
    if version is None:
        raise UnknownDatabaseError(
            f"no known version for database {db!r}, and no folder {name_or_path} here; name "
            f"it as '{db}/<version>' (known: "
            f"{', '.join(f'{k}/{v}' for k, v in KNOWN_VERSIONS.items())}) or give a folder "
            "of WFDB records"
        )
    root = src.cache_dir / db / version
    fetcher = HttpFetcher(
        retries=cfg.retries,
        timeout_s=cfg.timeout_s,
        backoff_s=cfg.backoff_s if backoff_s is None else backoff_s,
    )
    return Database(
        db,
        root,
        url=f"{src.base_url}{db}/{version}/",
        fetcher=fetcher,
        state=_state_for(src, db, root),
        verify_checksums=cfg.verify_checksums,
        patient_ids=ids,
        version=version,
    )


def _state_for(src: Source, name: str, root: Path) -> VerifiedState:
    key = hashlib.sha1(str(root).encode(), usedforsecurity=False).hexdigest()[:12]
    return VerifiedState(root, src.cache_dir / "verified" / f"{name}-{key}.json")

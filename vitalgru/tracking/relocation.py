"""A local SQLite store whose folder was moved, copied or restored under another path.

MLflow keeps every artifact location as an absolute path: an experiment's
``artifact_location``, each run's ``artifact_uri``, each logged model's
``artifact_location`` and each registered version's ``storage_location``. A working
folder (``mlflow.db`` with ``mlartifacts/`` beside it) moved with ``mv``, copied with
``cp -a`` or restored from a backup under another path still names the old folder in all
of them, and MLflow has no setting that reads them relative to the store. Measured on a
moved folder: ``evaluate``, ``monitor`` and ``serve`` failed to load either champion
("not an MLflow pyfunc model", naming a temporary folder), and the next training
recreated the old folder and wrote its model there; in a copy whose original was still
in place every command read, and the next training wrote, the original's files.

:func:`relocate_store` finds such a store and points its locations at the folder the
store is in now, once, the first time a process opens it.
"""

from __future__ import annotations

import logging
import sqlite3
import urllib.parse
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.errors import StoreMovedError

logger = logging.getLogger(__name__)

#: The folder beside a store that holds its experiments' artifacts
#: (:func:`vitalgru.tracking.runs._experiment_id`).
ARTIFACTS = "mlartifacts"

#: MLflow's columns holding an artifact location (absolute ``file://`` URIs, or a bare
#: path for the ``Default`` experiment MLflow makes with a new store), by table. A table
#: or column an MLflow version lacks is skipped.
LOCATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def _local_path(location: str) -> Path | None:
    """The folder a ``file://`` URI or a bare absolute path names, else None."""
    if location.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
    if location.startswith("/"):
        return Path(location)
    return None


def _old_roots(con: sqlite3.Connection, here: Path) -> list[tuple[str, Path]]:
    """The folders (as recorded, and as a path) that held this store's artifacts before it
    was moved: an experiment's location ``<old>/mlartifacts/<name>`` where ``<old>`` is not
    the store's folder ``here`` and ``here/mlartifacts/<name>`` exists (the artifacts came
    along). A store moved without its artifacts, or one whose experiments keep them
    elsewhere on purpose, has none."""
    roots: dict[str, Path] = {}
    for (location,) in con.execute("SELECT artifact_location FROM experiments"):
        if not isinstance(location, str) or f"/{ARTIFACTS}/" not in location:
            continue
        raw, _, name = location.rpartition(f"/{ARTIFACTS}/")
        old = _local_path(raw)
        if old is None or old == here or "/" in name.strip("/"):
            continue
        if (here / ARTIFACTS / urllib.parse.unquote(name)).is_dir():
            roots[raw] = old
    return list(roots.items())


def _columns(con: sqlite3.Connection) -> list[tuple[str, str]]:
    found = []
    for table, column in LOCATION_COLUMNS:
        cols = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        if column in cols:
            found.append((table, column))
    return found


def _rewrites(
    con: sqlite3.Connection, roots: list[tuple[str, Path]], here: Path
) -> list[tuple[str, str, int, str]]:
    """(table, column, rowid, new value) of every location under an old root, made to name
    the same place under ``here``. A location is kept where its files are at the old place
    and not under ``here`` (written there after the move, by a release without this
    check): pointed here, it would name nothing."""
    out = []
    for raw, old in roots:
        # each root as it is written in URIs and as a bare path (the Default experiment)
        prefixes = {raw + "/": here.as_uri() + "/", str(old) + "/": str(here) + "/"}
        for table, column in _columns(con):
            for rowid, value in con.execute(f"SELECT rowid, {column} FROM {table}"):
                if not isinstance(value, str):
                    continue
                for before, after in prefixes.items():
                    if not value.startswith(before):
                        continue
                    new = after + value[len(before) :]
                    was, now = _local_path(value), _local_path(new)
                    if was is not None and now is not None and was.exists() and not now.exists():
                        break
                    out.append((table, column, rowid, new))
                    break
    return out


def relocate_store(db: Path) -> int:
    """Point the artifact locations of SQLite store ``db`` at its own folder if it was
    moved there from another; the number of locations rewritten (0: it was not moved).

    Called with the store's creation claim held (:func:`vitalgru.tracking.stores.
    mlflow_client`), so one process at a time rewrites it; a second finds nothing left.

    Raises
    ------
    vitalgru.errors.StoreMovedError
        The store was moved but cannot be written here (a read-only folder or file).
    """
    here = db.resolve().parent
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            roots = _old_roots(con, here)
            todo = _rewrites(con, roots, here) if roots else []
        finally:
            con.close()
    except sqlite3.Error as e:  # not a store MLflow made (yet): MLflow says what it is
        logger.debug("MLflow store %s not checked for a move: %s", db, e)
        return 0
    if not todo:
        return 0
    olds = ", ".join(str(old) for _, old in roots)
    try:
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            for table, column, rowid, new in todo:
                con.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))
            con.execute("COMMIT")
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StoreMovedError(
            f"the MLflow store {db} was moved here from {olds}, and its {len(todo)} "
            f"artifact locations still name that folder; they cannot be updated ({e}): "
            f"make {db} and its folder writable and run the command again (it updates them "
            "once)"
        ) from e
    logger.warning(
        "the MLflow store %s was moved here from %s: %d artifact locations now name %s",
        db, olds, len(todo), here / ARTIFACTS,
    )  # fmt: skip
    return len(todo)


def missing_files(
    client: MlflowClient, local: Path | None, name: str | None, version: str | None
) -> str | None:
    """Why registered version ``name``/``version``, downloaded into ``local``, came without
    its files, or None (they came, or it is not a version whose files are on this
    machine). MLflow downloads nothing from a local location that is not there and says
    so only in a log line: the load then failed on the empty temporary folder ("not an
    MLflow pyfunc model"), naming neither the model's folder nor a move. ``local`` None:
    asked before anything is downloaded."""
    if name is None or version is None or (local is not None and (local / "MLmodel").exists()):
        return None
    try:
        location = client.get_model_version_download_uri(name, version) or ""
    except MlflowException:
        return None
    path = _local_path(location)
    if path is None or (path / "MLmodel").exists():
        return None
    return (
        f"its files are not in {path}, where the store records them ("
        + ("no such folder" if not path.exists() else "no MLmodel file there")
        + "): a working folder is moved, copied or restored with its mlflow.db and "
        "mlartifacts/ together"
    )


def missing_model_files(client: MlflowClient, pinned: str) -> str | None:
    """:func:`missing_files` of ``pinned``, a ``models:/NAME/VERSION`` URI (as
    :func:`vitalgru.tracking.resolve_model_uri` gives it), before it is downloaded; None
    for any other URI. For a command that starts a flow: a model without its files failed
    inside the flow, after Prefect's traceback."""
    name, _, version = pinned.removeprefix("models:/").rpartition("/")
    if not pinned.startswith("models:/") or not name or not version.isdigit():
        return None
    return missing_files(client, None, name, version)

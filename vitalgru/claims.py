"""Files and folders that one process writes while others wait: a claim on a lock file;
files written whole or not at all (:func:`replacing`, :func:`replace_file`); and SQLite
files taken up only when they are of the kind a writer makes (:func:`sqlite_owner`).

A dataset folder is rewritten by an ingest (the nightly deployment, or a training whose
config changed) while a training may be reading it; two flows writing one output folder
mix each other's files; two gateways on one state file overwrite each other's memory. Each
writer holds an exclusive claim while it writes, each reader a shared one while it reads,
so a reader sees the folder before a rewrite or after it, never half of each.

A claim is a ``flock`` on a lock file, held while the block runs. The kernel releases it
when the holder's process ends, however it ends, so a crash leaves nothing stale to clean
up. The exclusive holder writes its process id into the file, for the message a blocked
process gives. Where ``flock`` does not exist (not POSIX), nothing is claimed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: nothing is claimed
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FOLDER_WAIT_S",
    "ClaimBusy",
    "check_writable",
    "hold",
    "copy_owner_only",
    "naming",
    "owner_only",
    "reading",
    "replace_file",
    "replacing",
    "writing",
]

logger = logging.getLogger(__name__)

#: How often a waiting claim tries again (seconds).
POLL_S = 0.25
#: How long a flow waits for another process writing the folder it needs (seconds): a
#: scheduled training queued behind a nightly ingest downloading its records waits for it.
FOLDER_WAIT_S = 6 * 3600.0
#: The lock file inside a claimed folder.
FOLDER_LOCK = ".lock"


class ClaimBusy(OSError):
    """Another process holds the claim (and the wait, if any, ran out)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


def _holder(fd: int) -> str:
    """The exclusive holder's process id, or "" (readers hold it: they write none).

    A writer that crashed leaves its id in the file (nothing cleared it); readers that
    claim the file after it write none, so an id whose process has gone is not named."""
    pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
    try:
        os.kill(int(pid), 0)  # signal 0: is there such a process? (nothing is sent)
    except (ValueError, ProcessLookupError):
        return ""  # none written, or its process has gone
    except PermissionError:
        pass  # another user's process: there
    return pid


@contextlib.contextmanager
def hold(
    lock: str | os.PathLike,
    what: str,
    *,
    shared: bool = False,
    wait_s: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    busy: str = "another process",
) -> Iterator[None]:
    """Hold the claim named by the file ``lock`` while the block runs.

    ``shared`` claims may be held by many processes at once and exclude an exclusive one;
    an exclusive claim excludes every other. A blocked claim waits up to ``wait_s`` seconds
    (calling ``on_wait(holder_pid)`` once when it starts to wait; the pid is "" while
    readers hold it), then raises :class:`ClaimBusy` naming ``what``, ``busy`` (who holds
    such claims: "another gateway") and the holder's process id. A shared claim whose lock
    file cannot be made (a read-only folder: nobody writes there; or a folder that is not
    there) reads unclaimed; an exclusive one raises ``OSError``.
    """
    if fcntl is None:
        yield
        return
    lock = Path(lock)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if shared and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOENT):
            yield  # a read-only place (no writer there either), or nothing to read
            return
        raise OSError(e.errno, f"{what} cannot be held: {e.strerror}", str(lock)) from None
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = time.monotonic() + max(0.0, wait_s)
        told = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
                    who = f"process {holder}, holding" if holder else "holding"
                    raise ClaimBusy(
                        f"{what} is in use by {busy} ({who} {lock}){waited}", holder
                    ) from None
                if not told and on_wait is not None:
                    on_wait(holder)
                told = True
                time.sleep(POLL_S)
        if not shared:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError as e:  # a full disk: the error named no file
                raise naming(e, lock) from e
        try:
            yield
        finally:
            if not shared:
                os.ftruncate(fd, 0)  # no holder named once it is let go
    finally:
        os.close(fd)  # releases the claim; the file stays for the next holder


def writing(
    folder: str | os.PathLike, what: str, *, log: Any = None, wait_s: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """An exclusive claim on ``folder`` (made if missing) while its files are written:
    other writers wait, and so do readers (:func:`reading`), so none of them sees half
    of one write and half of another. A wait is logged once on ``log`` (a logger; default
    this module's); ``wait_s`` defaults to :data:`FOLDER_WAIT_S`."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return _folder_claim(folder, what, False, log, wait_s)


def reading(
    folder: str | os.PathLike, what: str, *, log: Any = None, wait_s: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """A shared claim on ``folder`` while its files are read: readers go together; one
    that comes while a writer holds :func:`writing` waits for the write to end."""
    return _folder_claim(folder, what, True, log, wait_s)


def _folder_claim(
    folder: str | os.PathLike, what: str, shared: bool, log: Any, wait_s: float | None
) -> contextlib.AbstractContextManager[None]:
    def told(pid: str) -> None:
        holder = f"process {pid}" if pid else "a process reading it"
        (log or logger).info("waiting for %s: %s holds it", what, holder)

    wait = FOLDER_WAIT_S if wait_s is None else wait_s
    return hold(Path(folder) / FOLDER_LOCK, what, shared=shared, wait_s=wait, on_wait=told)


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (unique to this writer) for the block to write;
    renamed over ``path`` when the block ends, removed if it raises. A reader sees the old
    file or the new one, never half, and a write that fails leaves the old file as it was.
    For writers that take a path (numpy, pandas, pyarrow); :func:`replace_file` for data
    in hand."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException as e:
        named = e
        if isinstance(e, OSError) and e.filename in (None, str(tmp), tmp):
            named = naming(e, p)
        with contextlib.suppress(OSError):  # after naming: a full disk is told by its space
            tmp.unlink()
        if named is not e:
            raise named from e
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Raise the ``OSError`` that writing the file ``path`` (an SQLite database, with its
    journal beside it) would meet, before any long work: its folder is made if missing and
    a file made and removed in it, and the file itself, if there, must be readable and
    writable. The check of the folder holds for root too (a read-only file system, a full
    one); the file's mode only for other users."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=p.parent):
            pass
    except OSError as e:  # named: the folder, not the probe's random name
        raise naming(e, p.parent) from e
    if p.exists() and not os.access(p, os.R_OK | os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))


def naming(e: OSError, path: str | os.PathLike) -> OSError:
    """``e`` as an error of its kind that names ``path``: a write that finds the disk full
    names no file (nor do pyarrow's errors), and one into the temporary file a writer of
    ``path`` uses names a file the user never asked for. numpy's short write ("525168
    requested and 321504 written") has no errno: it is a full disk where the folder has no
    space left, else an I/O error. ``e`` itself for any other error without an errno."""
    code = e.errno
    if code is None and _SHORT_WRITE.fullmatch(str(e)):
        try:
            full = os.statvfs(Path(path).parent).f_bavail == 0
        except OSError:
            full = False
        code = errno.ENOSPC if full else errno.EIO
    if code is None:
        return e
    return OSError(code, os.strerror(code), str(path))


#: numpy's words for a write cut short (``ndarray.tofile``, under ``np.save``).
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def replace_file(path: str | os.PathLike, data: str | bytes, mode: int = 0o666) -> Path:
    """Write ``path`` whole or not at all (:func:`replacing`), the data flushed to disk
    before the rename; the file is created with ``mode``, less the umask. A report a
    dashboard polls, a token file. Returns ``path``."""
    body = data.encode() if isinstance(data, str) else data
    with replacing(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def owner_only(path: Path | str) -> None:
    """Make ``path`` an empty file readable by its owner only when there is none (a SQLite
    file holding patient data: its ``-wal`` and ``-shm`` take the mode from it)."""
    try:  # through a symbolic link to the file it names (O_EXCL refuses a link, even
        # one to nothing yet, and SQLite then made the file with the usual mode)
        os.close(os.open(os.path.realpath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # there already; or a folder missing, which SQLite's open names
        pass


def copy_owner_only(src: Path | str, dst: Path | str) -> None:
    """Copy ``src`` to ``dst``, a new file readable by its owner only (whatever the umask):
    a copy of a file holding patient data keeps it from the other users as the original
    does. OSError when ``dst`` exists (nothing is overwritten) or cannot be written."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out)


def sqlite_owner(db: sqlite3.Connection, key: str, path: Path | str, what: str) -> str | None:
    """What a SQLite file's ``meta`` table says under ``key`` (``kind``, ``schema``): None for
    a file without tables (new: to be made ``what``). ValueError, the file left as it is,
    for one holding tables without that mark: another program's database (an MLflow store
    given as a ward state), or the other of a gateway's two files (state and access log
    swapped), which writing our tables into would spoil."""
    tables = sorted(r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))  # fmt: skip
    if not tables:
        return None
    got = None
    if "meta" in tables:
        got = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if got is None:
        shown = ", ".join(tables[:6]) + (", ..." if len(tables) > 6 else "")
        raise ValueError(
            f"{path} is not {what}: it holds other tables ({shown}); it was left as it is"
        )
    return str(got[0])

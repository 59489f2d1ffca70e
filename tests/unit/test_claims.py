"""Claims on lock files: one writer, many readers, waiting, and the messages of a refusal."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from claim_kit import folder_held_by_another_process

from vitalgru import claims
from vitalgru.claims import ClaimBusy, hold, reading, replace_file, writing


def _in_another_process(lock: Path, shared: bool) -> subprocess.CompletedProcess:
    code = ("import sys; from vitalgru.claims import hold\n"
            f"try:\n    hold({str(lock)!r}, 'the thing', shared={shared}).__enter__()\n"
            "except OSError as e:\n    print(e); sys.exit(3)")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with hold(lock, "the thing"):
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(ClaimBusy) as e, hold(lock, "the thing", busy="another ingest"):
            pass
        assert str(e.value) == (
            f"the thing is in use by another ingest (process {os.getpid()}, holding {lock})"
        )
        assert e.value.holder == str(os.getpid())
        for shared in (False, True):  # another process: neither writer nor reader
            out = _in_another_process(lock, shared)
            assert out.returncode == 3 and f"process {os.getpid()}" in out.stdout
    assert lock.read_text() == ""  # let go: no holder named any more
    with hold(lock, "the thing"):
        pass


def test_readers_go_together_and_keep_a_writer_out(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with hold(lock, "the thing", shared=True), hold(lock, "the thing", shared=True):
        assert _in_another_process(lock, shared=True).returncode == 0
        with pytest.raises(ClaimBusy, match=r"the thing is in use by another process \(holding"):
            with hold(lock, "the thing"):
                pass
    with hold(lock, "the thing"):
        pass


def test_a_writer_that_crashed_is_not_named(tmp_path: Path) -> None:
    # A writer killed while it held the folder leaves its process id in the lock file
    # (nothing cleared it); a writer kept out by readers after it must not name it.
    with folder_held_by_another_process(tmp_path, 60) as pid:
        os.kill(pid, signal.SIGKILL)
    lock = tmp_path / claims.FOLDER_LOCK
    assert lock.read_text() == f"{pid}\n"
    with reading(tmp_path, "the dataset folder"):
        with pytest.raises(ClaimBusy) as e, writing(tmp_path, "the dataset folder", wait_s=0):
            pass
    assert (
        str(e.value) == (f"the dataset folder is in use by another process (holding {lock})")
        and e.value.holder == ""
    )
    with writing(tmp_path, "the dataset folder"):  # and the next writer names itself
        assert lock.read_text() == f"{os.getpid()}\n"


def test_a_blocked_claim_waits_for_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    taken, waits = threading.Event(), []

    def holder() -> None:
        with hold(lock, "the thing"):
            taken.set()
            time.sleep(0.8)

    t = threading.Thread(target=holder)
    t.start()
    taken.wait(10)
    t0 = time.monotonic()
    with hold(lock, "the thing", shared=True, wait_s=30, on_wait=waits.append):
        waited = time.monotonic() - t0
    t.join()
    assert waited > 0.3 and waits == [str(os.getpid())]  # told once, with the holder


def test_a_wait_runs_out(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with hold(lock, "the thing"):
        t0 = time.monotonic()
        with pytest.raises(ClaimBusy, match=r"holding .*x\.lock\) after waiting 0\.5 s$"):
            with hold(lock, "the thing", wait_s=0.5):
                pass
        assert time.monotonic() - t0 >= 0.5


def test_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "new" / "dataset"
    with writing(folder, "the dataset folder"):  # made when missing
        assert (folder / claims.FOLDER_LOCK).read_text() == f"{os.getpid()}\n"
        with caplog.at_level(logging.INFO, logger="vitalgru.claims"), pytest.raises(ClaimBusy):
            with reading(folder, "the dataset folder", wait_s=0.3):
                pass
    assert caplog.messages == [f"waiting for the dataset folder: process {os.getpid()} holds it"]
    with reading(tmp_path / "not-there", "the dataset folder"):  # the reader says what is missing
        pass
    assert not (tmp_path / "not-there").exists()

    def refused(*a: object, **k: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(claims.os, "open", refused)
    with reading(folder, "the dataset folder"):  # read-only: nobody writes there either
        pass
    with pytest.raises(OSError, match=r"the dataset folder cannot be held: Permission denied"):
        with writing(folder, "the dataset folder"):
            pass


def test_a_file_is_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "monitoring.json"
    replace_file(report, '{"status": "ok"}')
    assert report.read_text() == '{"status": "ok"}'
    assert report.stat().st_mode & 0o777 == 0o666 & ~_umask()
    secret = replace_file(tmp_path / "tokens.json", b"{}", mode=0o600)
    assert secret.stat().st_mode & 0o777 == 0o600

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(claims.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left") as e:
        replace_file(report, '{"status": "drift", "half": ')
    # the error names the report (a full disk's names no file: the user saw a traceback
    # ending in "[Errno 28] No space left on device" and no path)
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(report))
    # Yesterday's report is still there, whole, and nothing half-written beside it.
    assert report.read_text() == '{"status": "ok"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitoring.json", "tokens.json"]
    # a writer that takes a path (pyarrow: "[Errno 28] Error writing bytes to file") and
    # one that names the temporary file: the error names the file the caller asked for
    for raised in (OSError(errno.ENOSPC, "Error writing bytes to file"), None):
        with pytest.raises(OSError) as e, claims.replacing(report) as tmp:
            tmp.write_text("half")
            raise raised or PermissionError(errno.EACCES, "Permission denied", str(tmp))
        assert e.value.filename == str(report) and e.value.errno in (errno.ENOSPC, errno.EACCES)
        assert isinstance(e.value, PermissionError) == (raised is None)
    assert report.read_text() == '{"status": "ok"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitoring.json", "tokens.json"]
    # a lock file that cannot take its holder's id on a full disk names the lock
    monkeypatch.setattr(claims.os, "pwrite", lambda *a: full_disk(0))
    with pytest.raises(OSError, match="No space left") as e:
        with writing(tmp_path / "data", "the dataset folder"):
            pass
    assert e.value.filename == str(tmp_path / "data" / claims.FOLDER_LOCK)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_file_made_owner_only_through_a_link_is_owner_only(tmp_path: Path) -> None:
    # O_EXCL refuses a symbolic link, even one to nothing yet: SQLite then made the target
    # with the usual mode (-rw-r--r--)
    from vitalgru.claims import owner_only

    target = tmp_path / "real" / "ward.sqlite"
    target.parent.mkdir()
    link = tmp_path / "ward.sqlite"
    link.symlink_to(target)
    owner_only(link)
    assert target.exists() and target.stat().st_mode & 0o777 == 0o600
    owner_only(tmp_path / "missing" / "x.sqlite")  # a folder missing: left to SQLite to name

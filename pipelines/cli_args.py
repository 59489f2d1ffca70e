"""What the ``vitalgru`` commands share: the argument types that check a value when the
command line is read (not minutes later), the check that a task's input was given, the
servers checked before a flow starts, the epilog naming the environment variables, and how
a result is printed."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vitalgru.claims import check_writable
from vitalgru.errors import ServerUnavailableError, error_chain

EPILOG = (
    "Environment: VITALGRU_PHYSIONET_MIRROR (local PhysioNet mirror), MLFLOW_TRACKING_URI "
    "(default: sqlite:///./mlflow.db), PREFECT_API_URL (default: Prefect's temporary local "
    "server)."
)


def results_path(out: str) -> str:
    """``--out`` of evaluate: a ``.json`` file, or a folder (existing, ending in ``/``, or a
    name without a suffix). Checked when the command line is read, not after the scoring,
    which can take minutes."""
    if out.endswith(("/", os.sep)) or Path(out).is_dir() or Path(out).suffix in ("", ".json"):
        return out
    raise argparse.ArgumentTypeError(
        f"{out!r} is neither a .json file nor a folder (end a folder's name with / when it "
        "has a dot)"
    )


def check_mlflow(writes: bool = False) -> None:
    """A tracking server that does not answer fails in seconds, not after MLflow's four
    minutes of retries (:func:`vitalgru.tracking.check_stores`); for a command that
    ``writes`` runs or models, a local store it cannot write fails now, not after the
    training (:func:`vitalgru.tracking.unwritable_store`)."""
    from vitalgru.tracking import check_stores, unwritable_store

    check_stores()
    if writes and (why := unwritable_store()) is not None:
        raise SystemExit(why)


def check_mirror(physionet: Any = None) -> None:
    """A PhysioNet mirror that is not a folder (``$VITALGRU_PHYSIONET_MIRROR``, or the
    config's ``physionet.mirror``) is a FileNotFoundError now, in a second, not from inside
    a flow after a Prefect server has started (:func:`vitalgru.io.sources.resolve_source`)."""
    from vitalgru.io.sources import resolve_source

    resolve_source(physionet)


def check_prefect(attempts: int = 3, wait_s: float = 2.0) -> None:
    """A Prefect API server (``PREFECT_API_URL``, from the environment or the Prefect
    profile) that does not answer is a clear error before a flow starts, not Prefect's
    traceback from inside it. Without one, each flow starts a temporary local server.
    As for MLflow's (:func:`vitalgru.tracking.check_stores`), an answer of a status a
    client retries (502 or 503 from a proxy whose server is down; 408, 429, 5xx) is none:
    Prefect's client retried it for minutes, then failed the flow."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    url = settings.api.url
    if not url:
        db = settings.server.database.connection_url
        check_prefect_database(db.get_secret_value() if db is not None else "")
        return
    # here, not at the top: vitalgru.io's package imports wfdb and pandas (half a second
    # of every `vitalgru --help` and `vitalgru models ...` before this)
    from vitalgru.io.download import server_unreachable

    t0 = time.monotonic()
    reason = server_unreachable(
        url.rstrip("/") + "/health", attempts, wait_s, transient_is_down=True
    )
    if reason is not None:
        raise ServerUnavailableError.after_tries(
            "Prefect API", url, "PREFECT_API_URL", reason, attempts, time.monotonic() - t0,
            "unset it (environment or Prefect profile) to let each flow start a temporary "
            "local server",
        )  # fmt: skip


def check_prefect_database(url: str) -> None:
    """The SQLite file a temporary Prefect server keeps (``~/.prefect/prefect.db`` unless
    ``PREFECT_HOME`` or the database URL say otherwise) can be written, or a
    ``SystemExit`` naming it. A home folder that is read-only, not there and not makeable,
    or another user's, made each of the server's starts fail on "unable to open database
    file": a flow waited out the start-up timeout (two minutes) through thousands of
    lines of tracebacks, then ended in one more."""
    scheme, sep, rest = url.partition(":///")
    if not (sep and scheme.startswith("sqlite")) or rest.startswith(":memory:"):
        return  # a database server, or nothing on disk
    db = Path(rest.split("?", 1)[0])
    try:
        check_writable(db)
    except OSError as e:
        raise SystemExit(
            f"the temporary Prefect server cannot keep its database {db}: "
            f"{e.strerror or e} ({e.filename or db.parent}); set PREFECT_HOME to a folder "
            "this user may write (or HOME; or PREFECT_API_URL to a Prefect server)"
        ) from None


#: ``--annotations`` value for records nobody annotated.
NO_ANNOTATIONS = "none"


def annotation_ext(text: str) -> str:
    """An annotation file extension (``atr``, ``qrs``, ...) or ``none``."""
    if text.lower() == NO_ANNOTATIONS:
        return NO_ANNOTATIONS
    if not (text.isascii() and text.isalnum() and len(text) <= 16):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an annotation file extension (letters and digits, such as "
            f"atr) or {NO_ANNOTATIONS!r}"
        )
    return text


def annotation_ext_or_none(ext: str) -> str | None:
    """What the pipelines take: the extension, or None for unannotated records."""
    return None if ext == NO_ANNOTATIONS else ext


def parsed(text: str, cast: type, noun: str) -> Any:
    """``cast(text)``, or the argparse error saying ``text`` is not ``noun``."""
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None


def drop(text: str) -> float:
    v = parsed(text, float, "a number")
    if not (0 <= v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return v


def count(text: str) -> int:
    v = parsed(text, int, "a whole number")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return v


def seconds(text: str, allow_zero: bool = False) -> float:
    v = parsed(text, float, "a number of seconds")
    if not ((v > 0 or (allow_zero and v == 0)) and v < float("inf")):
        least = "0 or more" if allow_zero else "positive"
        raise argparse.ArgumentTypeError(f"must be a {least} number of seconds, got {text}")
    return v


def positive_seconds(text: str) -> float:
    return seconds(text)


def margin_seconds(text: str) -> float:
    return seconds(text, allow_zero=True)


def days(text: str) -> float:
    v = parsed(text, float, "a number of days")
    if not 0 < v < 36_500:
        raise argparse.ArgumentTypeError(f"days must be > 0, got {text}")
    return v


def non_negative_minutes(text: str) -> float:
    v = parsed(text, float, "a number of minutes")
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"minutes must be >= 0, got {text}")
    return v


def percent_below_100(text: str) -> float:
    v = parsed(text, float, "a percentage")
    if not (0 <= v < 100):
        raise argparse.ArgumentTypeError(f"the percentage must be >= 0 and < 100, got {text}")
    return v


def non_negative_hours(text: str) -> float:
    v = parsed(text, float, "a number of hours")
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"hours must be >= 0, got {text}")
    return v


def utc_time(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time with its UTC offset."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date (YYYY-MM-DD) or an ISO time with its offset, got {text!r}"
        ) from None
    if t.tzinfo is None:
        if len(text.strip()) != 10:  # a time without an offset: which zone is not guessed
            raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add +00:00 or Z)")
        t = t.replace(tzinfo=UTC)
    return t


def escalation_minutes(text: str) -> tuple[float, ...]:
    """``15`` (one level), ``5,15,30`` (an escalation chain: minutes after the alarm at which
    each level falls due, increasing) or ``0`` (never: an empty tuple)."""
    parts = [s.strip() for s in text.split(",")]
    minutes = tuple(non_negative_minutes(s) for s in parts)
    if minutes == (0.0,):
        return ()
    if any(m <= 0 for m in minutes) or any(
        b <= a for a, b in zip(minutes, minutes[1:], strict=False)
    ):
        raise argparse.ArgumentTypeError(
            f"escalation levels must be minutes > 0, each later than the one before "
            f"(or 0 alone: never), got {text}"
        )
    return minutes


def positive_rate(text: str) -> float:
    v = parsed(text, float, "a number of requests per second")
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"a rate must be > 0 requests per second, got {text}")
    return v


def listed(text: str) -> list[str]:
    """A comma-separated option as a list (an argparse ``type``); one given with no entry
    (``--mllp-allow ""``, an unset shell variable) is an error: left empty, the gateway read
    it as not given, so any sender or every unit."""
    entries = [x.strip() for x in text.split(",") if x.strip()]
    if not entries:
        raise argparse.ArgumentTypeError(
            f"no entry in {text!r}: name at least one (or leave the option out)"
        )
    return entries


def port(text: str) -> int:
    v = parsed(text, int, "a port number")
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {text}")
    return v


def written_annotation_ext(text: str) -> str:
    """``--write-annotations``: the extension of the WFDB annotation files the model's labels
    are written to (letters and digits)."""
    from vitalgru.io.wfdb_writer import check_annotation_extension

    try:
        return check_annotation_extension(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: What to do where the system refused a file, by the error's number.
_REMEDIES = {
    errno.ENOSPC: "free space on that disk, or give a path on another",
    errno.EDQUOT: "free space within the disk quota, or give a path on another disk",
    errno.EROFS: "give a path on a writable file system",
    errno.EACCES: "let the user running vitalgru write there (or read it), or give another path",
    errno.EPERM: "let the user running vitalgru write there (or read it), or give another path",
}

#: SQLite's words for the same refusals (it names no file).
_SQLITE_REFUSALS = ("disk is full", "readonly database", "unable to open database file")


def system_refusal(error: BaseException) -> str | None:
    """One line for an error the system gave a file (a full disk, a read-only file system,
    a permission): the path, what was refused and what to do; None for any other error.
    The error may be the cause of another (MLflow and SQLAlchemy wrap SQLite's), so the
    chain of causes is searched."""
    for e in error_chain(error):
        if isinstance(e, OSError) and e.errno in _REMEDIES:
            strerror = os.strerror(e.errno)
            if e.filename is None:
                return f"{strerror} (no file named by the error): {_REMEDIES[e.errno]}"
            where = e.filename
            if e.filename2 is not None:
                where = f"{where} -> {e.filename2}"
            return f"{where}: {strerror}: {_REMEDIES[e.errno]}"
        if isinstance(e, sqlite3.OperationalError) and any(w in str(e) for w in _SQLITE_REFUSALS):
            return f"a database cannot be written ({e}){_sqlite_hint()}"
    return None


def error_line(error: Exception) -> str:
    """One line for an error a command reports as it is: an ``OSError`` with an errno and a
    file as what was refused and where (``the ward state ... cannot be held: Permission
    denied (ward.sqlite.lock)``), with what to do when the system refused it (a full disk,
    a read-only file system, a permission); any other error as its message."""
    if isinstance(error, OSError) and error.errno is not None and error.filename is not None:
        where = os.fspath(error.filename)
        line = f"{error.strerror or os.strerror(error.errno)} ({where})"
        remedy = _REMEDIES.get(error.errno)
        return f"{line}: {remedy}" if remedy else line
    return str(error)


def _sqlite_hint() -> str:
    """The local MLflow store, the database a command most likely wrote, if it is one."""
    if "mlflow" not in sys.modules:  # no MLflow store opened: the gateway's, Prefect's
        return ": check the disk and permissions of the SQLite files the command writes"
    from vitalgru.tracking.stores import sqlite_file, tracking_uri

    db = sqlite_file(tracking_uri())
    if db is None:
        return ": check the disk and permissions of the SQLite files the command writes"
    return (
        f": check the space on the disk and the permissions of the MLflow store {db} and "
        "its folder (MLFLOW_TRACKING_URI names another)"
    )


def print_json(result: dict[str, Any]) -> None:
    """A command's result on standard output, as indented JSON."""
    print(json.dumps(result, indent=2, default=str))


_TASK_INPUT = {
    "arrhythmia": ("db", "--db NAME_OR_FOLDER"),
    "early-warning": ("data", "--data FOLDER"),
}


#: The options of one task only (``evaluate`` and ``replay``), by the task they belong to.
_TASK_OPTIONS = {
    "arrhythmia": (
        "db",
        "records",
        "config",
        "annotations",
        "write_annotations",
        "chunk_s",
        "margin_s",
    ),
    "early-warning": ("data", "patients", "write_predictions"),
}


def require_input(args: argparse.Namespace) -> None:
    """Exit with a usage message when the task's input option is missing (argparse cannot
    say that one option is required for one choice of the positional argument), or an
    option of the other task is given (it was ignored: ``evaluate early-warning --db``
    scored the folder of ``--data`` and said nothing)."""
    attr, usage = _TASK_INPUT[args.task]
    if not getattr(args, attr):
        raise SystemExit(f"{args.command} {args.task} needs {usage}")
    other = next(t for t in _TASK_OPTIONS if t != args.task)
    given = [o for o in _TASK_OPTIONS[other] if getattr(args, o, None) not in (None, False)]
    if given:
        names = ", ".join("--" + o.replace("_", "-") for o in given)
        raise SystemExit(
            f"{args.command} {args.task} does not read {names}: "
            + (f"it is an {other} option" if len(given) == 1 else f"they are {other} options")
        )
    if args.write_annotations is None:
        return
    from vitalgru.io.wfdb_writer import check_annotation_extension

    try:  # not the reference annotations' own extension
        check_annotation_extension(
            args.write_annotations, getattr(args, "annotations", None) or "atr"
        )
    except ValueError as e:
        raise SystemExit(f"vitalgru: error: {e}") from None

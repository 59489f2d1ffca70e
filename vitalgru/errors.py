"""Exceptions with messages a user can act on. All subclass ``ValueError`` or ``OSError``
so callers that only know the built-ins still catch them."""

from __future__ import annotations

from pathlib import Path


class VitalgruError(Exception):
    """Base class of vitalgru's own errors."""


class RecordError(VitalgruError, ValueError):
    """A record or table cannot be read or contradicts itself. Names the file.

    ``reason`` is a short machine-readable code that ends up in ``attrition.csv``.
    """

    def __init__(self, path: str | Path, message: str, reason: str = "unreadable") -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {message}")


class SignalError(VitalgruError, ValueError):
    """A record was read, but the signal it would be scored on holds no ECG (the lead is
    missing, flat, clipped or off throughout). Names the record and the lead.

    ``reason`` is a short machine-readable code that ends up in ``attrition.csv``.
    """

    def __init__(self, record: str, message: str, reason: str = "unusable_lead") -> None:
        self.record = record
        self.reason = reason
        super().__init__(f"record {record}: {message}")


class AnnotationMismatchError(VitalgruError, ValueError):
    """A record's reference beat annotations do not fit its signal: too few of them lie on
    a heartbeat the detector finds (an annotation file of another record, or shifted in
    time). Scoring would report labels for windows that hold no such beat.

    ``reason`` (``"annotations_mismatch"``) ends up in ``attrition.csv``.
    """

    def __init__(self, record: str, message: str, share: float, n_beats: int) -> None:
        self.record = record
        self.reason = "annotations_mismatch"
        self.share = share  # of the judged beats, those on a detected heartbeat
        self.n_beats = n_beats  # beats judged (those in usable signal)
        super().__init__(f"record {record}: {message}")


class ChecksumError(VitalgruError, ValueError):
    """A file's SHA-256 differs from the one its database publishes."""

    def __init__(self, path: str | Path, expected: str, actual: str) -> None:
        self.path = str(path)
        self.reason = "checksum_mismatch"
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{self.path}: SHA-256 {actual[:16]}... does not match the published "
            f"{expected[:16]}...; the file is corrupt or was changed"
        )


class UnknownRecordError(VitalgruError, ValueError):
    """A record name that the database does not list."""

    def __init__(self, database: str, record: str, known: list[str] | None = None) -> None:
        self.reason = "unknown_record"
        hint = f" (it lists {len(known)} records, e.g. {', '.join(known[:5])})" if known else ""
        super().__init__(f"database {database!r} has no record {record!r}{hint}")


class UnknownDatabaseError(VitalgruError, ValueError):
    """A database named neither by a known PhysioNet name (or ``name/version``) nor by an
    existing folder."""


class Hl7ReadError(VitalgruError, ValueError):
    """An HL7 v2 message that cannot be read at all. ``hl7_error``: why, as a code of HL7
    table 0357 for ``ERR-3``: 100 (segment sequence error) when it does not begin with
    ``MSH``; 102 (data type error) when its bytes are not of its character set or its
    separators (``MSH-1``, ``MSH-2``) are not ones HL7 allows."""

    def __init__(self, message: str, hl7_error: int) -> None:
        self.hl7_error = hl7_error
        super().__init__(message)


class FileNameClashError(VitalgruError, ValueError):
    """Two patients or records whose files, written one each, would be one file on a
    case-insensitive file system: their names differ only in letter case."""


class DownloadError(VitalgruError, OSError):
    """A network fetch failed after its retries."""


class ServerUnavailableError(VitalgruError, OSError):
    """A server the environment names (MLflow tracking or registry, Prefect API) does not
    answer; the message names it, the variable it came from and the way out."""

    @classmethod
    def after_tries(
        cls, what: str, url: str, var: str, reason: str, tries: int, spent_s: float, remedy: str
    ) -> ServerUnavailableError:
        """The error for ``what`` at ``url`` (from ``$var``), given up after ``tries`` that
        took ``spent_s`` seconds in all (the waits between them, and any that timed out)."""
        return cls(
            f"the {what} {url} (${var}) does not answer ({reason}; {tries} tries over "
            f"{spent_s:.0f} s). Start it, correct ${var}, or {remedy}"
        )


class RegistryError(VitalgruError, OSError):
    """The model registry failed part way through a change made by hand (a locked store,
    a server's error); the message says what was done and that running it again finishes
    it. Also: what a decision needs (a champion's figures) could not be read."""


class StoreMovedError(VitalgruError, OSError):
    """A local MLflow store moved to another folder (``mv``, a copy, a restored backup)
    whose artifact locations, which MLflow keeps as absolute paths, still name the old
    folder and cannot be updated where it is now (a read-only folder or file)."""


class ConfigError(VitalgruError, ValueError):
    """A configuration file is malformed or has unknown keys."""


class ModelLoadError(VitalgruError, ValueError):
    """A model URI that does not resolve (unknown name, alias or version), or what it
    points at is not a model vitalgru logged (or one newer than this vitalgru reads)."""


class ModelNotRegistered(ModelLoadError):
    """A ``models:/`` URI that names nothing the registry holds: no registered model of
    that name, no version holding that alias (none promoted yet), or no such version. The
    message says what the registry does hold."""


class ConflictError(VitalgruError, ValueError):
    """A request the monitor's state refuses as it is now: a patient admitted twice, a
    merge into a record with a stream of its own, an alarm acknowledged twice (HTTP 409)."""


class ModelMissingError(VitalgruError, ValueError):
    """A request for a monitor the ward was started without, or to a ward that has
    stopped (HTTP 503: the gateway cannot serve it)."""


class WardClosedError(ModelMissingError):
    """A request to a ward that has stopped (:meth:`Ward.close`): nothing it took now could
    be kept (HTTP 503)."""


def error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every error behind it, each once, nearest first: its cause, its
    context and errors it wraps as arguments (requests wraps urllib3's; Prefect and MLflow
    re-raise or wrap). Where a command looks for what really went wrong."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is o for o in out):
            continue
        out.append(e)
        todo += [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException))]
    return out

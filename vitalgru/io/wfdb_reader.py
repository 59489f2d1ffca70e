"""Read WFDB records and annotations from a folder, refusing files that contradict themselves.

wfdb-python reads what it is given: a ``.dat`` shorter than its header promises comes back
as a numpy broadcasting error or as silently short data, a header with a wrong signal count
as an ``IndexError``, an unknown format code as a ``KeyError``. This module checks a
record's header against its signal files *before* decoding them and raises
:class:`vitalgru.errors.RecordError` naming the file, with a machine-readable ``reason``
that ends up in ``attrition.csv``:

=====================  ===============================================================
reason                 meaning
=====================  ===============================================================
``missing_header``     no ``<record>.hea``
``bad_header``         the header cannot be parsed, its signal lines disagree with
                       its signal count, or a signal line holds a field wfdb-python
                       would misread (``2OO`` for a gain) or a gain with no finite scale
``bad_format``         a signal format code WFDB does not define
``missing_dat``        a signal file the header names does not exist
``truncated_dat``      a signal file holds fewer bytes than the header's sample count
                       and formats imply
``dat_size_mismatch``  a signal file holds more bytes than that (the header's sample
                       count or signal list is wrong), or a size that is not a whole
                       number of frames when the header gives no sample count
``bad_checksum``       a signal's samples do not sum to the checksum its header states
                       (a corrupted copy, or a header edited without it)
``missing_channel``    a requested lead the record does not have
``missing_annotations``  no ``<record>.<extension>``
``bad_annotations``    the annotation file cannot be decoded, or does not end with
                       WFDB's end-of-annotations word (it was cut short)
=====================  ===============================================================

NaN-only or constant signals are *not* reading errors; signal quality is judged later.

The header and the signal files' sizes are checked by :mod:`vitalgru.io.wfdb_header`. A
multi-segment record (MIMIC's layout) is read as one, each of its segments checked as a
record of its own (:mod:`vitalgru.io.wfdb_segments`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import wfdb

from vitalgru.errors import RecordError
from vitalgru.io.wfdb_header import HeaderInfo, check_record_files, physical_unit, read_header
from vitalgru.io.wfdb_segments import read_segmented, read_segmented_header, select_channels
from vitalgru.types import Annotations, Record

__all__ = ["read_annotations_file", "read_record_files"]

logger = logging.getLogger(__name__)

#: Sample value WFDB reserves for "no data" per format (signal(5)): the most negative
#: value the format can hold. Format 8 stores first differences and has none.
_INVALID_SAMPLE: dict[str, int] = {
    "80": -128,
    "508": -128,
    "310": -512,
    "311": -512,
    "212": -2048,
    "16": -32768,
    "61": -32768,
    "160": -32768,
    "516": -32768,
    "24": -(2**23),
    "524": -(2**23),
    "32": -(2**31),
}
_WIDE = {"8", "24", "32", "524"}  # 8: first differences, summed beyond 16 bits


def read_record_files(
    directory: str | Path,
    record: str,
    *,
    channels: Sequence[str | int] | None = None,
    patient_id: str | None = None,
    database: str = "",
    header: HeaderInfo | None = None,
    verify_checksums: bool = True,
) -> Record:
    """Read one WFDB record from ``directory`` into a :class:`vitalgru.types.Record`.

    Parameters
    ----------
    directory : str or Path
        Folder holding ``<record>.hea`` and its signal files.
    record : str
        Record name (``"100"``), possibly with a sub-folder (``"p00/p000020"``).
    channels : sequence of str or int, optional
        Leads to keep, by name (case-insensitive) or index, in the order given. ``None``
        keeps all, in header order.
    patient_id : str, optional
        Defaults to ``record``.
    database : str
        Stored on the record.
    header : HeaderInfo, optional
        The already-parsed header of this record (saves parsing it again). Without it, a
        multi-segment record is read as one (:func:`vitalgru.io.wfdb_segments.read_segmented`:
        its segments joined, NaN in gaps).
    verify_checksums : bool
        Check each signal read against the 16-bit checksum its header states
        (``bad_checksum``); False reads a changed signal file as it is, as a database
        whose SHA-256 verification is off does.

    Returns
    -------
    Record
        ``signal`` is ``(n_samples, n_channels)`` float32 in physical units, voltages
        converted to mV; ``fs`` is the header's frame frequency in Hz (signals with
        several samples per frame are averaged to one per frame); invalid samples are
        NaN, and so are the last ``skew`` samples of a skewed signal (``format:skew``,
        whose samples are brought back to their frames) and every sample of a null
        signal (format 0: listed, nothing recorded).

    Raises
    ------
    RecordError
        The header is missing or malformed, or a signal file is missing, truncated or
        of a size the header contradicts (see the module docstring for ``reason`` codes).
        A requested channel that does not exist raises ``missing_channel``.
    """
    directory = Path(directory)
    if header is None and (seg := read_segmented_header(directory, record)) is not None:
        return read_segmented(directory, seg, read_record_files, channels=channels,
                              patient_id=patient_id, database=database,
                              verify_checksums=verify_checksums)  # fmt: skip
    header = header if header is not None else read_header(directory, record)
    hea = directory / f"{record}.hea"
    idx = select_channels(header.sig_name, channels, hea)
    # signal files are named relative to their header, which sits in the record's sub-folder
    sig_len = check_record_files((directory / record).parent, header)
    read = [i for i in idx if header.fmt[i] != "0"]  # format 0: a null signal, no samples
    wide = any(header.fmt[i] in _WIDE for i in read)
    spf = [header.samps_per_frame[i] for i in read]
    multi = any(n > 1 for n in spf)
    samples: list[np.ndarray] = []
    if read:
        samples = _decode(directory, record, hea, read, wide=wide, multi=multi)
    counts = [int(c.size) for c in samples]
    if counts != [sig_len * n for n in spf]:
        raise RecordError(
            hea,
            f"decoded samples {counts} differ from the header's ({sig_len} frames of "
            f"{spf} samples)",
            reason="dat_size_mismatch",
        )
    if verify_checksums:
        _check_checksums(directory / record, header, read, samples)
    decoded = dict(zip(read, samples, strict=True))
    sig = np.empty((sig_len, len(idx)), dtype=np.float32)
    units: list[str] = []
    for col, i in enumerate(idx):
        scale, unit = physical_unit(header.units[i])
        units.append(unit)
        x = sig[:, col]
        if i not in decoded:  # a null signal: nothing recorded, read as invalid (signal(5))
            x[:] = np.nan
            continue
        n = header.samps_per_frame[i]
        d = decoded[i].reshape(sig_len, n)  # (frames, samples per frame)
        np.subtract(d[:, 0] if n == 1 else d.mean(axis=1), header.baseline[i], out=x,
                    dtype=np.float32)  # fmt: skip
        x *= np.float32(scale / header.adc_gain[i])
        invalid = _INVALID_SAMPLE.get(header.fmt[i])
        if invalid is not None:  # a frame with an invalid sample is a gap, whole
            x[(d == invalid).any(axis=1)] = np.nan
        _deskew(x, header.skew[i] if i < len(header.skew) else 0)
    return Record(
        record_id=record,
        patient_id=record if patient_id is None else patient_id,
        signal=sig,
        fs=header.fs,
        channels=tuple(header.sig_name[i] for i in idx),
        units=tuple(units),
        database=database,
    )


def _decode(
    directory: Path, record: str, hea: Path, idx: list[int], *, wide: bool, multi: bool
) -> list[np.ndarray]:
    """Each signal's digital samples as stored, frame after frame (``idx``: none null).

    Digital samples, converted by the caller: wfdb's own float conversion goes through
    float64 and costs several times more than the read itself. A signal with several
    samples per frame is read unaveraged, so that an invalid sample is seen as one before
    the frame is averaged (averaged, -32768 is a spike, not a gap). Samples are read as
    stored, skew ignored: the header's checksums are of the stored samples, and the skew
    is applied by the caller.
    """
    try:
        rec = wfdb.rdrecord(
            str(directory / record),
            channels=idx,
            physical=False,
            return_res=32 if wide else 16,
            smooth_frames=not multi,
            ignore_skew=True,
        )
    except MemoryError:  # the process's memory limit, not a damaged file: no attrition
        raise
    except Exception as e:  # decoding failed despite consistent sizes
        raise RecordError(hea, f"cannot decode signal data: {e}", reason="unreadable") from e
    if multi:
        return list(rec.e_d_signal or [])
    return [] if rec.d_signal is None else list(rec.d_signal.T)


def _deskew(x: np.ndarray, skew: int) -> None:
    """Move a signal stored ``skew`` frames late back to its frames, in place.

    A skewed signal's sample ``t`` is stored in frame ``t + skew`` (header(5)), so its
    last ``skew`` samples lie beyond the file: they are NaN, as wfdb-python reads them
    invalid. Read unskewed, the signal lagged the others by ``skew`` samples.
    """
    if skew <= 0:
        return
    keep = max(x.size - skew, 0)
    x[:keep] = x[skew : skew + keep]
    x[keep:] = np.nan


def _check_checksums(
    record: Path, header: HeaderInfo, idx: list[int], samples: list[np.ndarray]
) -> None:
    """Refuse signals whose samples do not sum to the checksum their header states.

    WFDB headers carry a 16-bit checksum of each signal's samples (``header(5)``), which
    wfdb-python does not check: a signal file with bytes changed (a bad disk, a copy
    corrupted on its way) read as a record like any other. A checksum of 0 is not
    checked: headers written by hand put 0 where they know none.
    """
    for col, i in enumerate(idx):
        want = header.checksum[i] if i < len(header.checksum) else None
        if not want:
            continue
        total = int(np.sum(samples[col], dtype=np.int64))
        got = (total + 2**15) % 2**16 - 2**15  # as a signed 16-bit number, as WFDB writes it
        if (got - want) % 2**16:  # wfdb-python writes it unsigned (65516 for -20)
            raise RecordError(
                record.parent / header.file_name[i],
                f"signal {i} ({header.sig_name[i]}): its samples sum to checksum {got}, but "
                f"{header.record}.hea states {want}; the signal file was changed after it "
                "was written (a corrupted copy), or the header was edited without updating "
                "its checksum",
                reason="bad_checksum",
            )


def read_annotations_file(
    directory: str | Path, record: str, extension: str = "atr"
) -> Annotations:
    """Read ``<directory>/<record>.<extension>`` (all annotations, beats and non-beats).

    Returns
    -------
    Annotations
        ``sample_idx`` ``(n,)`` int64 at the record's frame rate (a file that stores a
        time resolution of its own is brought to it; without a readable header, at the
        file's own rate); ``symbol`` ``(n,)`` str;
        ``aux_note`` with trailing NUL bytes stripped (``"(AFIB"``).

    Raises
    ------
    RecordError
        ``missing_annotations`` or ``bad_annotations`` (undecodable, or cut short: no
        end-of-annotations word at its end), naming the file.
    """
    directory = Path(directory)
    path = directory / f"{record}.{extension}"
    if not path.is_file():
        raise RecordError(path, "annotation file does not exist", reason="missing_annotations")
    _check_annotation_end(path)
    try:
        ann = wfdb.rdann(str(directory / record), extension,
                         return_label_elements=["symbol", "label_store"])  # fmt: skip
    except MemoryError:  # the process's memory limit, not a damaged file: no attrition
        raise
    except Exception as e:  # wfdb raises ValueError/IndexError on corrupt bytes
        raise RecordError(path, f"cannot decode annotations: {e}", reason="bad_annotations") from e
    sample = np.asarray(ann.sample, dtype=np.int64)
    fs = ann.fs
    if not fs:
        fs = _record_fs(directory, record)
    elif (frame_fs := _frame_fs(directory, record)) is not None and frame_fs != fs:
        # a file written at a time resolution of its own (WFDB's high-resolution
        # annotations, "## time resolution: 500" in a 250 Hz record): its times are
        # brought to the record's frames, as WFDB's own readers do, so the beats sit
        # on the samples the signal reader gives
        sample = np.round(sample * (frame_fs / fs)).astype(np.int64)
        fs = frame_fs
    symbol = np.asarray(_symbols(path, ann, sample), dtype=str)
    if symbol.shape != sample.shape:
        raise RecordError(
            path,
            f"{sample.shape[0]} annotation times but {symbol.shape[0]} symbols",
            reason="bad_annotations",
        )
    if sample.size and (np.any(sample < 0) or np.any(np.diff(sample) < 0)):
        raise RecordError(
            path, "annotation sample indices are negative or not sorted", reason="bad_annotations"
        )
    aux = tuple((a or "").rstrip("\x00") for a in (ann.aux_note or [""] * sample.size))
    return Annotations(sample_idx=sample, symbol=symbol, fs=float(fs), aux_note=aux)


def _symbols(path: Path, ann: wfdb.Annotation, sample: np.ndarray) -> list[str]:
    """The annotations' symbols; a code WFDB does not define (and the file does not
    define either) is named as WFDB's ``annstr`` names it, ``[45]``, and logged.

    wfdb-python gives such a code the float NaN, which became the symbol ``'nan'``: a
    beat whose code a damaged byte changed was left out of the beats without a word.
    """
    symbols = list(ann.symbol) if ann.symbol is not None else []
    odd = [i for i, s in enumerate(symbols) if not isinstance(s, str)]
    if odd:
        codes = ann.label_store if ann.label_store is not None else [None] * len(symbols)
        for i in odd:
            symbols[i] = f"[{codes[i]}]"
        first = odd[0]
        logger.warning(
            "%s: %d annotation(s) of a code WFDB does not define, kept as such (not beats); "
            "the first, %s, at sample %s: a damaged file, or codes of a local convention",
            path, len(odd), symbols[first], sample[first] if first < sample.size else "?",
        )  # fmt: skip
    return symbols


def _check_annotation_end(path: Path) -> None:
    """Refuse an annotation file that does not end with WFDB's end-of-annotations word.

    A WFDB annotation file is a sequence of 16-bit words closed by the word 0 (annotation
    type 0 at time 0; ``annot(5)``). wfdb-python stops at the end of the bytes without
    looking for it, so a file cut at an even length read as a shorter, valid-looking list
    of beats: half a record's beats lost without a word.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(size - 2, 0))
        end = f.read(2)
    if size % 2 or end != b"\x00\x00":
        raise RecordError(
            path,
            f"truncated: {size} bytes without the end-of-annotations word (two zero bytes) "
            "a WFDB annotation file ends with; the download was interrupted or the file "
            "was cut",
            reason="bad_annotations",
        )


def _frame_fs(directory: Path, record: str) -> float | None:
    """The record's frame rate from its header; None when there is no readable header
    (annotations read on their own keep their file's rate)."""
    try:
        return _record_fs(directory, record)
    except RecordError:
        return None


def _record_fs(directory: Path, record: str) -> float:
    """The frame rate a record's header states, one of segments included."""
    seg = read_segmented_header(directory, record)
    return seg.fs if seg is not None else read_header(directory, record).fs

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
``bad_header``         the header cannot be parsed, or its signal lines disagree with
                       its signal count
``bad_format``         a signal format code WFDB does not define
``missing_dat``        a signal file the header names does not exist
``truncated_dat``      a signal file holds fewer bytes than the header's sample count
                       and formats imply
``dat_size_mismatch``  a signal file holds more bytes than that (the header's sample
                       count or signal list is wrong), or a size that is not a whole
                       number of frames when the header gives no sample count
``missing_channel``    a requested lead the record does not have
``missing_annotations``  no ``<record>.<extension>``
``bad_annotations``    the annotation file cannot be decoded
=====================  ===============================================================

NaN-only or constant signals are *not* reading errors; signal quality is judged later.

The byte sizes follow the WFDB signal-format specification (PhysioNet, "WFDB signal
files", ``signal(5)``): format 212 packs two 12-bit samples into 3 bytes, formats 310/311
pack three 10-bit samples into 4 bytes, formats 8/80 use one byte, 16/61/160 two, 24
three and 32 four bytes per sample; 508/516/524 are FLAC-compressed and have no fixed
size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from vitalgru.errors import RecordError
from vitalgru.types import Annotations, Record

logger = logging.getLogger(__name__)

__all__ = [
    "HeaderInfo",
    "check_record_files",
    "data_file_bytes",
    "read_annotations_file",
    "read_header",
    "read_record_files",
]

#: Bytes per sample of the fixed-size WFDB formats (signal(5)); 212 and 310/311 are
#: packed and handled by :func:`data_file_bytes`.
_FIXED_BYTES: dict[str, int] = {"8": 1, "80": 1, "16": 2, "61": 2, "160": 2, "24": 3, "32": 4}
_PACKED = {"212", "310", "311"}
_COMPRESSED = {"508", "516", "524"}  # FLAC: size not implied by the sample count
_KNOWN_FORMATS = set(_FIXED_BYTES) | _PACKED | _COMPRESSED | {"0"}  # 0: null signal, no file

#: ADC units per physical unit when a header gives gain 0 or none (WFDB DEFGAIN, signal(5)).
_DEFAULT_GAIN = 200.0
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
_WIDE = {"24", "32", "524"}

#: Physical voltage units converted to millivolts (ECG convention of this package).
_TO_MV: dict[str, float] = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    """What a single-segment header says about its signal files.

    Attributes
    ----------
    record : str
        Record name.
    fs : float
        Frame sampling frequency in Hz.
    sig_len : int or None
        Samples per signal, ``None`` when the header omits it.
    sig_name : tuple of str
        Signal (lead) names; unnamed signals are called ``sig<i>``.
    units : tuple of str
        Physical units as written in the header.
    fmt : tuple of str
        Format code per signal.
    file_name : tuple of str
        Signal file per signal.
    samps_per_frame : tuple of int
        Samples per frame per signal.
    byte_offset : tuple of int
        Byte offset of the first sample in its file, per signal.
    adc_gain : tuple of float
        ADC units per physical unit, per signal (a header gain of 0 means the WFDB
        default of 200, signal(5)).
    baseline : tuple of int
        ADC value of physical zero, per signal.
    """

    record: str
    fs: float
    sig_len: int | None
    sig_name: tuple[str, ...]
    units: tuple[str, ...]
    fmt: tuple[str, ...]
    file_name: tuple[str, ...]
    samps_per_frame: tuple[int, ...]
    byte_offset: tuple[int, ...]
    adc_gain: tuple[float, ...]
    baseline: tuple[int, ...]

    @property
    def n_sig(self) -> int:
        return len(self.sig_name)

    def data_files(self) -> list[str]:
        """Signal files in order of first use (formats other than 0)."""
        out: list[str] = []
        for name, fmt in zip(self.file_name, self.fmt, strict=True):
            if fmt != "0" and name not in out:
                out.append(name)
        return out


def _record_line_gives_fs(hea: Path) -> bool:
    """Whether the header's record line (its first line that is not a comment) has a
    sampling-frequency field: ``name[/segments] n_signals fs[/counter[(base)]] ...``."""
    for line in hea.read_text(errors="replace").splitlines():
        tokens = line.split("#", 1)[0].split()
        if tokens:
            return len(tokens) >= 3
    return False


def read_header(directory: str | Path, record: str) -> HeaderInfo:
    """Parse and sanity-check ``<directory>/<record>.hea``.

    Raises
    ------
    RecordError
        ``missing_header``, ``bad_header`` (unparseable, multi-segment, signal lines that
        disagree with the signal count), ``unknown_fs`` (no sampling frequency) or
        ``bad_format``.
    """
    hea = Path(directory) / f"{record}.hea"
    if not hea.is_file():
        raise RecordError(hea, "header file does not exist", reason="missing_header")
    try:
        h = wfdb.rdheader(str(Path(directory) / record))
    except Exception as e:  # wfdb raises HeaderSyntaxError, ValueError, IndexError, ...
        raise RecordError(hea, f"cannot parse header: {e}", reason="bad_header") from e
    if isinstance(h, wfdb.MultiRecord) or getattr(h, "seg_name", None):
        raise RecordError(
            hea, "multi-segment records are not supported by this reader", reason="bad_header"
        )
    n_sig = int(h.n_sig or 0)
    fields = {
        "signal file": h.file_name,
        "format": h.fmt,
        "samples per frame": h.samps_per_frame,
        "signal name": h.sig_name,
    }
    for label, values in fields.items():
        n = len(values) if values is not None else 0
        if n != n_sig:
            raise RecordError(
                hea,
                f"record line declares {n_sig} signals but the header has {n} {label} "
                "entries (missing or extra signal lines)",
                reason="bad_header",
            )
    if n_sig == 0:
        raise RecordError(hea, "header declares no signals", reason="bad_header")
    fmts = tuple(str(f) for f in h.fmt)
    for i, f in enumerate(fmts):
        if f not in _KNOWN_FORMATS:
            raise RecordError(
                hea,
                f"signal {i} has format {f!r}, which WFDB does not define "
                f"(known: {', '.join(sorted(_KNOWN_FORMATS, key=int))})",
                reason="bad_format",
            )
    if not _record_line_gives_fs(hea):
        # wfdb-python silently takes WFDB's historical default of 250 Hz; an ECG read at
        # the wrong rate gives wrong RR intervals and beat widths, so never guess.
        raise RecordError(
            hea,
            "the record line gives no sampling frequency (WFDB would assume 250 Hz); "
            "add the rate after the signal count, e.g. 'rec 2 360'",
            reason="unknown_fs",
        )
    if not (h.fs and h.fs > 0):
        raise RecordError(hea, f"sampling frequency must be > 0, got {h.fs}", reason="bad_header")
    if h.sig_len is not None and h.sig_len < 0:
        raise RecordError(hea, f"negative sample count {h.sig_len}", reason="bad_header")
    names = tuple(str(n) if n else f"sig{i}" for i, n in enumerate(h.sig_name))
    units = tuple(str(u) if u else "mV" for u in (h.units or ["mV"] * n_sig))
    return HeaderInfo(
        record=record,
        fs=float(h.fs),
        sig_len=None if h.sig_len is None else int(h.sig_len),
        sig_name=names,
        units=units,
        fmt=fmts,
        file_name=tuple(str(f) for f in h.file_name),
        samps_per_frame=tuple(int(s or 1) for s in h.samps_per_frame),
        byte_offset=tuple(int(b or 0) for b in (h.byte_offset or [0] * n_sig)),
        adc_gain=tuple(float(g) if g else _DEFAULT_GAIN for g in (h.adc_gain or [0.0] * n_sig)),
        baseline=tuple(int(b or 0) for b in (h.baseline or [0] * n_sig)),
    )


def _packed_bytes(fmt: str, n_samples: int) -> int:
    if fmt == "212":  # two samples in three bytes; a trailing odd sample takes two
        return (n_samples // 2) * 3 + (2 if n_samples % 2 else 0)
    # 310 / 311: three samples in four bytes; a trailing 1 or 2 samples take 2 or 4 bytes
    return (n_samples // 3) * 4 + (0, 2, 4)[n_samples % 3]


def data_file_bytes(header: HeaderInfo, file_name: str, sig_len: int) -> int | None:
    """Bytes ``file_name`` must hold for ``sig_len`` frames, or ``None`` if not implied.

    Includes the byte offset. ``None`` for compressed (FLAC) formats.
    """
    idx = [i for i, f in enumerate(header.file_name) if f == file_name]
    fmts = {header.fmt[i] for i in idx}
    if fmts & _COMPRESSED:
        return None
    if len(fmts) != 1:
        # WFDB requires one format per signal file.
        raise RecordError(
            file_name,
            f"signals stored in {file_name} have different formats {sorted(fmts)}",
            reason="bad_header",
        )
    fmt = fmts.pop()
    n = sig_len * sum(header.samps_per_frame[i] for i in idx)
    offset = header.byte_offset[idx[0]]
    if fmt in _PACKED:
        return offset + _packed_bytes(fmt, n)
    return offset + n * _FIXED_BYTES[fmt]


def check_record_files(directory: str | Path, header: HeaderInfo) -> int:
    """Check every signal file against the header; return the number of samples per signal.

    Raises
    ------
    RecordError
        ``missing_dat``, ``truncated_dat`` or ``dat_size_mismatch``, naming the file.
    """
    directory = Path(directory)
    sig_len = header.sig_len
    for name in header.data_files():
        path = directory / name
        if not path.is_file():
            raise RecordError(
                path, f"signal file named by {header.record}.hea is missing", reason="missing_dat"
            )
        size = path.stat().st_size
        if sig_len is None:
            sig_len = _infer_sig_len(path, header, name, size)
        expected = data_file_bytes(header, name, sig_len)
        if expected is None:
            continue
        if size < expected:
            raise RecordError(
                path,
                f"truncated: {size} bytes but {header.record}.hea implies {expected} "
                f"({sig_len} samples x {header.n_sig} signals, formats {set(header.fmt)}); "
                "the download was interrupted or the file was cut",
                reason="truncated_dat",
            )
        if size > expected:
            raise RecordError(
                path,
                f"{size} bytes but {header.record}.hea implies {expected} "
                f"({sig_len} samples, {header.n_sig} signals, formats {set(header.fmt)}); "
                "the header's sample count or signal list contradicts the data",
                reason="dat_size_mismatch",
            )
    return int(sig_len or 0)


def _infer_sig_len(path: Path, header: HeaderInfo, name: str, size: int) -> int:
    """Frames in a signal file whose header omits the sample count (WFDB allows this)."""
    i = header.file_name.index(name)
    fmt, offset = header.fmt[i], header.byte_offset[i]
    if fmt in _COMPRESSED:
        raise RecordError(
            path, "compressed signal file and no sample count in the header", reason="bad_header"
        )
    per_frame = sum(header.samps_per_frame[j] for j, f in enumerate(header.file_name) if f == name)
    n_bytes = max(size - offset, 0)
    if fmt == "212":
        n_samples = (n_bytes // 3) * 2 + (1 if n_bytes % 3 == 2 else 0)
    elif fmt in ("310", "311"):
        n_samples = (n_bytes // 4) * 3 + (n_bytes % 4) // 2
    else:
        n_samples = n_bytes // _FIXED_BYTES[fmt]
    n = n_samples // per_frame
    if data_file_bytes(header, name, n) != size:
        raise RecordError(
            path,
            f"{size} bytes is not a whole number of {header.n_sig}-signal frames in formats "
            f"{set(header.fmt)}, and the header gives no sample count",
            reason="dat_size_mismatch",
        )
    return n


def _unit_scale(unit: str) -> tuple[float, str]:
    key = unit.strip().lower()
    if key in _TO_MV:
        return _TO_MV[key], "mV"
    return 1.0, unit


def _select(header: HeaderInfo, channels: Sequence[str | int] | None, hea: Path) -> list[int]:
    if channels is None:
        return list(range(header.n_sig))
    upper = [n.upper() for n in header.sig_name]
    out: list[int] = []
    for c in channels:
        if isinstance(c, int) and not isinstance(c, bool):
            if not -header.n_sig <= c < header.n_sig:
                raise RecordError(
                    hea,
                    f"channel index {c} out of range for {header.n_sig} signals {header.sig_name}",
                    reason="missing_channel",
                )
            out.append(c % header.n_sig)
        elif isinstance(c, str):
            if c.upper() not in upper:
                raise RecordError(
                    hea, f"no signal named {c!r}; signals are {header.sig_name}", "missing_channel"
                )
            out.append(upper.index(c.upper()))
        else:
            raise TypeError(f"channels must be names or indices, got {type(c).__name__}")
    return out


def read_record_files(
    directory: str | Path,
    record: str,
    *,
    channels: Sequence[str | int] | None = None,
    patient_id: str | None = None,
    database: str = "",
    header: HeaderInfo | None = None,
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
        The already-parsed header of this record (saves parsing it again).

    Returns
    -------
    Record
        ``signal`` is ``(n_samples, n_channels)`` float32 in physical units, voltages
        converted to mV; ``fs`` is the header's frame frequency in Hz (signals with
        several samples per frame are averaged to one per frame); invalid samples are
        NaN.

    Raises
    ------
    RecordError
        The header is missing or malformed, or a signal file is missing, truncated or
        of a size the header contradicts (see the module docstring for ``reason`` codes).
        A requested channel that does not exist raises ``missing_channel``.
    """
    directory = Path(directory)
    header = header if header is not None else read_header(directory, record)
    hea = directory / f"{record}.hea"
    idx = _select(header, channels, hea)
    sig_len = check_record_files(directory, header)
    wide = any(header.fmt[i] in _WIDE for i in idx)
    try:
        # Digital samples, converted below: wfdb's own float conversion goes through
        # float64 and costs several times more than the read itself.
        rec = wfdb.rdrecord(
            str(directory / record),
            channels=idx,
            physical=False,
            return_res=32 if wide else 16,
            smooth_frames=True,
        )
    except Exception as e:  # decoding failed despite consistent sizes
        raise RecordError(hea, f"cannot decode signal data: {e}", reason="unreadable") from e
    dig = rec.d_signal
    if dig is None or dig.shape != (sig_len, len(idx)):
        got = None if dig is None else dig.shape
        raise RecordError(
            hea,
            f"decoded shape {got} differs from the header's ({sig_len}, {len(idx)})",
            reason="dat_size_mismatch",
        )
    sig = np.empty(dig.shape, dtype=np.float32)
    units: list[str] = []
    for col, i in enumerate(idx):
        scale, unit = _unit_scale(header.units[i])
        d = dig[:, col]
        x = sig[:, col]
        np.subtract(d, header.baseline[i], out=x, dtype=np.float32)
        x *= np.float32(scale / header.adc_gain[i])
        invalid = _INVALID_SAMPLE.get(header.fmt[i])
        if invalid is not None:
            x[d == invalid] = np.nan
        units.append(unit)
    return Record(
        record_id=record,
        patient_id=record if patient_id is None else patient_id,
        signal=sig,
        fs=header.fs,
        channels=tuple(header.sig_name[i] for i in idx),
        units=tuple(units),
        database=database,
    )


def read_annotations_file(
    directory: str | Path, record: str, extension: str = "atr"
) -> Annotations:
    """Read ``<directory>/<record>.<extension>`` (all annotations, beats and non-beats).

    Returns
    -------
    Annotations
        ``sample_idx`` ``(n,)`` int64 at the annotation file's ``fs`` (the record's
        frame rate when the file does not store one); ``symbol`` ``(n,)`` str;
        ``aux_note`` with trailing NUL bytes stripped (``"(AFIB"``).

    Raises
    ------
    RecordError
        ``missing_annotations`` or ``bad_annotations``, naming the file.
    """
    directory = Path(directory)
    path = directory / f"{record}.{extension}"
    if not path.is_file():
        raise RecordError(path, "annotation file does not exist", reason="missing_annotations")
    try:
        ann = wfdb.rdann(str(directory / record), extension)
    except Exception as e:  # wfdb raises ValueError/IndexError on corrupt bytes
        raise RecordError(path, f"cannot decode annotations: {e}", reason="bad_annotations") from e
    fs = ann.fs
    if not fs:
        fs = read_header(directory, record).fs
    sample = np.asarray(ann.sample, dtype=np.int64)
    symbol = np.asarray(ann.symbol if ann.symbol is not None else [], dtype=str)
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

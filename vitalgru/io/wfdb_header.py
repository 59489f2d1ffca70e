"""WFDB headers, and the sizes of the signal files they name, checked before anything is
decoded (:mod:`vitalgru.io.wfdb_reader` reads the records).

:func:`read_header` parses a single-segment header into :class:`HeaderInfo`, refusing a
format code WFDB does not define, signal lines that disagree with the signal count or
hold a field wfdb-python would misread (:mod:`vitalgru.io.wfdb_signal_lines`)
(``bad_header``, ``bad_format``) and a record line whose sampling frequency is missing or
not a rate in Hz (``unknown_fs``: wfdb-python would read it at 250 Hz, and this module never
guesses a rate); :func:`check_record_files` checks every signal file the
header names against the bytes its sample count and formats imply (``missing_dat``,
``truncated_dat``, ``dat_size_mismatch``), each as a :class:`vitalgru.errors.RecordError`
naming the file.

The byte sizes follow the WFDB signal-format specification (PhysioNet, "WFDB signal
files", ``signal(5)``): format 212 packs two 12-bit samples into 3 bytes, formats 310/311
pack three 10-bit samples into 4 bytes, formats 8/80 use one byte, 16/61/160 two, 24
three and 32 four bytes per sample; 508/516/524 are FLAC-compressed and have no fixed
size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import wfdb

from vitalgru.errors import RecordError
from vitalgru.io.wfdb_signal_lines import check_signal_lines

__all__ = [
    "HeaderInfo",
    "check_record_files",
    "check_record_line",
    "data_file_bytes",
    "physical_unit",
    "read_header",
]

#: Bytes per sample of the fixed-size WFDB formats (signal(5)); 212 and 310/311 are
#: packed and handled by :func:`data_file_bytes`.
_FIXED_BYTES: dict[str, int] = {"8": 1, "80": 1, "16": 2, "61": 2, "160": 2, "24": 3, "32": 4}
_PACKED = {"212", "310", "311"}
_COMPRESSED = {"508", "516", "524"}  # FLAC: size not implied by the sample count
_KNOWN_FORMATS = set(_FIXED_BYTES) | _PACKED | _COMPRESSED | {"0"}  # 0: null signal, no file

#: ADC units per physical unit when a header gives gain 0 or none (WFDB DEFGAIN, signal(5)).
_DEFAULT_GAIN = 200.0

#: Physical voltage units converted to millivolts (ECG convention of this package).
_TO_MV: dict[str, float] = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


def physical_unit(unit: str) -> tuple[float, str]:
    """``(factor, unit)`` that a signal in ``unit`` is read in: voltages in mV (a µV
    signal times 1e-3), any other unit as it is (factor 1)."""
    key = unit.strip().lower()
    if key in _TO_MV:
        return _TO_MV[key], "mV"
    return 1.0, unit


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
    checksum : tuple of int or None
        16-bit checksum of each signal's samples as the header states it (``None`` where
        it gives none); empty when not read.
    skew : tuple of int
        Frames by which each signal is stored late in its file (``format:skew``,
        header(5)): sample ``t`` of the signal is stored in frame ``t + skew``; empty
        when not read (no skew).
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
    checksum: tuple[int | None, ...] = ()
    skew: tuple[int, ...] = ()

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


#: The rate field of a record line (WFDB header(5)): ``frequency[/counter[(base)]]``, each
#: a decimal number; the base counter value may be negative.
_RATE = re.compile(
    r"(?P<fs>\d+\.?\d*|\.\d+)"
    r"(?:/(?P<counter>\d+\.?\d*|\.\d+)(?:\((?P<base>-?(?:\d+\.?\d*|\.\d+))\))?)?"
)


def _record_line(hea: Path) -> list[str]:
    """Fields of the header's record line (its first line that is not a comment):
    ``name[/segments] n_signals [rate [n_samples [base_time [base_date]]]]``."""
    for line in hea.read_text(errors="replace").splitlines():
        tokens = line.split("#", 1)[0].split()
        if tokens:
            return tokens
    return []


def check_record_line(hea: Path, h: wfdb.Record) -> None:
    """Refuse a record line whose rate or sample count wfdb-python would have guessed.

    wfdb-python reads the line with a regular expression that stops at the first character
    it does not expect and fills what it did not reach with defaults: a rate of ``abc`` or
    ``-360`` becomes WFDB's historical 250 Hz, ``36O`` becomes 36 Hz and the sample count
    after it is dropped. The fields are therefore read here as header(5) defines them and
    must agree with what wfdb made of them.
    """
    tokens = _record_line(hea)
    if len(tokens) < 3:
        # wfdb-python silently takes WFDB's historical default of 250 Hz; an ECG read at
        # the wrong rate gives wrong RR intervals and beat widths, so never guess.
        raise RecordError(
            hea,
            "the record line gives no sampling frequency (WFDB would assume 250 Hz); "
            "add the rate after the signal count, e.g. 'rec 2 360'",
            reason="unknown_fs",
        )
    rate = _RATE.fullmatch(tokens[2])
    if rate is None:
        raise RecordError(
            hea,
            f"the record line's sampling frequency {tokens[2]!r} is not a rate in Hz "
            "(header(5): frequency[/counter frequency[(base counter)]], e.g. '360'); "
            "WFDB would assume 250 Hz",
            reason="unknown_fs",
        )
    fs = float(rate["fs"])
    if not (math.isfinite(fs) and fs > 0):
        raise RecordError(
            hea, f"sampling frequency must be > 0, got {tokens[2]!r}", reason="bad_header"
        )
    if h.fs is None or float(h.fs) != fs:
        raise RecordError(
            hea, f"the record line states {fs:g} Hz but wfdb read {h.fs}", reason="bad_header"
        )
    if len(tokens) > 3 and (not tokens[3].isdigit() or h.sig_len != int(tokens[3])):
        raise RecordError(
            hea,
            f"the record line's sample count {tokens[3]!r} is not a whole number of samples "
            f"(wfdb read {h.sig_len})",
            reason="bad_header",
        )


def read_header(directory: str | Path, record: str) -> HeaderInfo:
    """Parse and sanity-check ``<directory>/<record>.hea``.

    Raises
    ------
    RecordError
        ``missing_header``, ``bad_header`` (unparseable, multi-segment, signal lines that
        disagree with the signal count, a signal line field that is not as header(5)
        defines it or a gain with no finite scale, a rate of 0, a sample count that is not
        a whole number), ``unknown_fs`` (no sampling frequency, or one that is not
        ``frequency[/counter frequency[(base counter)]]`` in decimal numbers) or
        ``bad_format``.
    """
    hea = Path(directory) / f"{record}.hea"
    if not hea.is_file():
        raise RecordError(hea, "header file does not exist", reason="missing_header")
    try:
        h = wfdb.rdheader(str(Path(directory) / record))
    except MemoryError:  # the process's memory limit, not a damaged file: no attrition
        raise
    except Exception as e:  # wfdb raises HeaderSyntaxError, ValueError, IndexError, ...
        raise RecordError(hea, f"cannot parse header: {e}", reason="bad_header") from e
    if isinstance(h, wfdb.MultiRecord) or getattr(h, "seg_name", None):
        raise RecordError(
            hea,
            "a multi-segment header where a record's or a segment's is needed (a segment "
            "cannot have segments; vitalgru.io.read_record_files reads such a record)",
            reason="bad_header",
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
    check_record_line(hea, h)
    check_signal_lines(hea, int(h.n_sig or 0))
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
        checksum=tuple(None if c is None else int(c) for c in (h.checksum or [None] * n_sig)),
        skew=tuple(int(k or 0) for k in (h.skew or [0] * n_sig)),
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

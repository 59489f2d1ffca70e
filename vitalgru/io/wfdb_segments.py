"""Multi-segment WFDB records, as MIMIC's waveform databases write them.

A multi-segment header (header(5)) has the record line ``name/n_segments n_signals rate
n_samples`` followed by one line per segment, ``segment_name n_samples``; each segment is
an ordinary record in the same folder. A segment named ``~`` is a gap: samples that were
not recorded. In a *variable layout* the first segment has 0 samples and is the layout
header, which names every signal the record may hold; each segment then holds some of
them, in any order. In a *fixed layout* every segment holds the signals of the first.

The record is read as one: its signals are the layout's (or the first segment's), each
segment's samples placed at its frames, and a gap, or a signal a segment does not hold,
is NaN (quality checks then flag those windows, as a lead that came off). Each segment is
checked as a single-segment record is (:mod:`vitalgru.io.wfdb_header`); a segment whose
rate or sample count contradicts the record's header is ``bad_header``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import wfdb

from vitalgru.errors import RecordError
from vitalgru.io.wfdb_header import check_record_line, physical_unit, read_header
from vitalgru.types import Record

__all__ = ["SegmentedHeader", "read_segmented", "read_segmented_header", "select_channels"]

GAP = "~"  # header(5): a segment of this name holds no samples (a gap in the recording)


@dataclass(frozen=True, slots=True)
class SegmentedHeader:
    """What a multi-segment header says.

    Attributes
    ----------
    record : str
        Record name, with its sub-folder when it has one (``"p00/3000003"``).
    fs : float
        Frame frequency in Hz; every segment must have it.
    segments : tuple of (str, int)
        Each segment's record name (relative to the database folder, ``"~"`` for a gap)
        and its number of frames, in order; the layout segment (0 frames) included.
    layout : str or None
        The layout segment's record name (variable layout), None for a fixed layout.
    """

    record: str
    fs: float
    segments: tuple[tuple[str, int], ...]
    layout: str | None

    @property
    def sig_len(self) -> int:
        return sum(n for _, n in self.segments)

    def segment_records(self) -> list[str]:
        """Record names of the segments that have a header (the layout's included)."""
        return [name for name, _ in self.segments if name != GAP]


def _is_segmented(hea: Path) -> bool:
    """Whether the header's record line names segments (``name/n_segments``)."""
    try:
        text = hea.read_text(errors="replace")
    except OSError:  # unreadable: said by read_header, as for any header
        return False
    for line in text.splitlines():
        tokens = line.split("#", 1)[0].split()
        if tokens:
            return "/" in tokens[0]
    return False


def read_segmented_header(directory: str | Path, record: str) -> SegmentedHeader | None:
    """Parse ``<directory>/<record>.hea`` when it is a multi-segment header, else None
    (a missing or single-segment header is :func:`~vitalgru.io.wfdb_header.read_header`'s).

    Raises
    ------
    RecordError
        ``bad_header``: unparseable, segment lines that disagree with the segment count or
        the record's sample count, a segment name that is a path; ``unknown_fs`` as for a
        single-segment header.
    """
    hea = Path(directory) / f"{record}.hea"
    if not hea.is_file() or not _is_segmented(hea):
        return None
    try:
        h = wfdb.rdheader(str(Path(directory) / record))
    except Exception as e:  # wfdb raises HeaderSyntaxError, ValueError, IndexError, ...
        raise RecordError(hea, f"cannot parse header: {e}", reason="bad_header") from e
    if not isinstance(h, wfdb.MultiRecord):
        raise RecordError(hea, "the record line names segments but wfdb read none", "bad_header")
    check_record_line(hea, h)
    names, lengths = list(h.seg_name or []), [int(n) for n in (h.seg_len or [])]
    if not names or len(names) != int(h.n_seg or 0) or len(lengths) != len(names):
        raise RecordError(
            hea,
            f"record line declares {h.n_seg} segments but the header has {len(names)} "
            "segment lines",
            reason="bad_header",
        )
    for name in names:
        if name == PurePosixPath(record).name:
            raise RecordError(hea, "the record names itself as a segment", reason="bad_header")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise RecordError(hea, f"segment name {name!r} is a path", reason="unsafe_path")
    if h.sig_len is not None and sum(lengths) != int(h.sig_len):
        raise RecordError(
            hea,
            f"its segments hold {sum(lengths)} samples but its record line states {h.sig_len}",
            reason="bad_header",
        )
    parent = PurePosixPath(record).parent
    rel = [n if n == GAP or str(parent) == "." else str(parent / n) for n in names]
    layout = rel[0] if lengths[0] == 0 and names[0] != GAP else None
    return SegmentedHeader(record, float(h.fs), tuple(zip(rel, lengths, strict=True)), layout)


def select_channels(
    names: Sequence[str], channels: Sequence[str | int] | None, hea: Path
) -> list[int]:
    """Indices into ``names`` of ``channels`` (names, case-insensitive, or indices; all
    when None), in the order given.

    Raises
    ------
    RecordError
        ``missing_channel``: a name the record does not have, an index out of range.
    TypeError
        A channel that is neither a name nor an index.
    """
    n = len(names)
    if channels is None:
        return list(range(n))
    upper = [s.upper() for s in names]
    out: list[int] = []
    for c in channels:
        if isinstance(c, int) and not isinstance(c, bool):
            if not -n <= c < n:
                raise RecordError(
                    hea,
                    f"channel index {c} out of range for {n} signals {tuple(names)}",
                    reason="missing_channel",
                )
            out.append(c % n)
        elif isinstance(c, str):
            if c.upper() not in upper:
                raise RecordError(
                    hea, f"no signal named {c!r}; signals are {tuple(names)}", "missing_channel"
                )
            out.append(upper.index(c.upper()))
        else:
            raise TypeError(f"channels must be names or indices, got {type(c).__name__}")
    return out


def _layout(directory: Path, seg: SegmentedHeader, hea: Path) -> tuple[list[str], list[str]]:
    """Signal names and units of the record: its layout header's, or its first segment's."""
    first = seg.layout or next((n for n, k in seg.segments if n != GAP and k > 0), None)
    if first is None:
        raise RecordError(hea, "every segment is a gap (~): no signal", reason="bad_header")
    if not (directory / f"{first}.hea").is_file():
        raise RecordError(
            directory / f"{first}.hea",
            f"segment header named by {PurePosixPath(seg.record).name}.hea does not exist",
            reason="missing_header",
        )
    try:
        h = wfdb.rdheader(str(directory / first))
    except Exception as e:
        raise RecordError(
            directory / f"{first}.hea", f"cannot parse header: {e}", reason="bad_header"
        ) from e
    names = [str(n) if n else f"sig{i}" for i, n in enumerate(h.sig_name or [])]
    units = [physical_unit(str(u) if u else "mV")[1] for u in (h.units or ["mV"] * len(names))]
    if not names:
        raise RecordError(directory / f"{first}.hea", "names no signals", reason="bad_header")
    return names, units


def read_segmented(
    directory: str | Path,
    seg: SegmentedHeader,
    read_one: Callable[..., Record],
    *,
    channels: Sequence[str | int] | None = None,
    **kwargs: Any,
) -> Record:
    """Read a multi-segment record as one :class:`~vitalgru.types.Record`.

    Parameters
    ----------
    directory : str or Path
        The database folder the record's name is relative to.
    seg : SegmentedHeader
        From :func:`read_segmented_header`.
    read_one : callable
        Reads one single-segment record:
        :func:`vitalgru.io.wfdb_reader.read_record_files`.
    channels : sequence of str or int, optional
        Signals to keep, of the layout's (by name, case-insensitive, or index).
    **kwargs
        ``patient_id``, ``database``, ``verify_checksums``, passed to ``read_one``.

    Returns
    -------
    Record
        ``signal`` ``(n_samples, n_channels)`` float32, NaN in gaps and where a segment
        does not hold a signal; ``channels`` the layout's names.

    Raises
    ------
    RecordError
        A segment that cannot be read (its own ``reason``), or whose rate or length
        contradicts the record's header, or whose units for a signal differ from another
        segment's (``bad_header``).
    """
    directory = Path(directory)
    hea = directory / f"{seg.record}.hea"
    names, layout_units = _layout(directory, seg, hea)
    idx = select_channels(names, channels, hea)
    want = [names[i] for i in idx]
    units: list[str | None] = [None] * len(idx)
    sig = np.full((seg.sig_len, len(idx)), np.nan, dtype=np.float32)
    pos = 0
    for name, n in seg.segments:
        if name == GAP or n == 0:
            pos += n
            continue
        h = read_header(directory, name)
        where = directory / f"{name}.hea"
        if h.fs != seg.fs or (h.sig_len is not None and h.sig_len != n):
            raise RecordError(
                where,
                f"segment of {h.sig_len} samples at {h.fs:g} Hz, but "
                f"{PurePosixPath(seg.record).name}.hea states {n} at {seg.fs:g} Hz",
                reason="bad_header",
            )
        held = {s.upper() for s in h.sig_name}
        cols = [k for k, s in enumerate(want) if s.upper() in held]
        if cols:
            part = read_one(directory, name, channels=[want[k] for k in cols], header=h, **kwargs)
            if part.signal.shape[0] != n:
                raise RecordError(
                    where,
                    f"segment holds {part.signal.shape[0]} samples, but "
                    f"{PurePosixPath(seg.record).name}.hea states {n}",
                    reason="bad_header",
                )
            sig[pos : pos + n, cols] = part.signal
            for k, unit in zip(cols, part.units, strict=True):
                if units[k] not in (None, unit):
                    raise RecordError(
                        where,
                        f"signal {want[k]} is in {unit} here but in {units[k]} in an earlier "
                        "segment",
                        reason="bad_header",
                    )
                units[k] = unit
        pos += n
    return Record(
        record_id=seg.record,
        patient_id=kwargs.get("patient_id") or seg.record,
        signal=sig,
        fs=seg.fs,
        channels=tuple(want),
        units=tuple(
            u if u is not None else layout_units[i] for u, i in zip(units, idx, strict=True)
        ),
        database=kwargs.get("database", ""),
    )

"""The signal lines of a WFDB header checked field by field as ``header(5)`` defines them,
for :func:`vitalgru.io.wfdb_header.read_header`: wfdb-python reads them with one regular
expression whose fields may all be empty, and a field it cannot read shifts or drops the
ones after it without a word."""

from __future__ import annotations

import math
import re
from pathlib import Path

from vitalgru.errors import RecordError

__all__ = ["check_signal_lines"]

#: A signal line's format field (header(5)): ``format[xsamples][:skew][+offset]``.
_FORMAT_FIELD = re.compile(r"\d+(?:x\d+)?(?::\d+)?(?:\+\d+)?")
#: Its gain field: ``gain[(baseline)][/units]``, the gain a decimal number, the units in
#: the characters wfdb-python reads as units (others end its reading of the line).
_GAIN_FIELD = re.compile(
    r"-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?(?:\((?P<baseline>-?\d+)\))?(?:/[\w^?%/-]*)?"
)
#: Fields after the gain, in order: ADC resolution, ADC zero, initial value, checksum,
#: block size; the description follows them.
_INT_FIELDS = (("ADC resolution", r"\d+"), ("ADC zero", r"-?\d+"), ("initial value", r"-?\d+"),
               ("checksum", r"-?\d+"), ("block size", r"\d+"))  # fmt: skip
#: WFDB keeps samples and baselines in a C ``int`` (``WFDB_Sample``, 32 bits).
_INT32 = 2**31
_FLOAT32_MAX = 3.4e38


def _signal_lines(hea: Path, n_sig: int) -> list[list[str]]:
    """Fields of the header's first ``n_sig`` signal lines (after the record line)."""
    lines = []
    for line in hea.read_text(errors="replace").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line.split())
    return lines[1 : 1 + n_sig]


def check_signal_lines(hea: Path, n_sig: int) -> None:
    """Refuse signal lines whose numbers wfdb-python would have misread.

    wfdb-python reads a signal line with one regular expression whose fields may all be
    empty: a field it cannot read ends the numbers there, the rest of the line becomes
    the signal's description and every field not reached takes its default. A gain of
    ``2OO`` is read as 2 (a signal 100 times too large), an ADC zero of ``1O24`` as 1 and
    the baseline that defaults to it with it, ``nan`` as the default gain of 200 with no
    word of it. Each field is therefore checked here as header(5) defines it, and the
    gain must give a finite physical value.
    """
    for i, fields in enumerate(_signal_lines(hea, n_sig)):
        where = f"signal {i} ({' '.join(fields[:2])})"
        if len(fields) > 1 and not _FORMAT_FIELD.fullmatch(fields[1]):
            raise RecordError(
                hea,
                f"{where}: format field {fields[1]!r} is not format[xsamples][:skew][+offset]",
                reason="bad_header",
            )
        if len(fields) > 2:
            gain = _GAIN_FIELD.fullmatch(fields[2])
            if gain is None:
                raise RecordError(
                    hea,
                    f"{where}: gain field {fields[2]!r} is not gain[(baseline)][/units] "
                    "with a decimal gain (wfdb-python would read the fields after it wrongly)",
                    reason="bad_header",
                )
            value = float(fields[2].split("(")[0].split("/")[0])
            # samples are scaled by 1/gain (x1000 for volts) into float32 millivolts
            if not math.isfinite(value) or (value and abs(1e3 / value) > _FLOAT32_MAX):
                raise RecordError(
                    hea,
                    f"{where}: gain {fields[2]!r} is not finite, or too close to 0 to scale "
                    "samples by",
                    reason="bad_header",
                )
            if gain["baseline"] is not None and abs(int(gain["baseline"])) >= _INT32:
                raise RecordError(
                    hea,
                    f"{where}: baseline {gain['baseline']} does not fit a 32-bit sample",
                    reason="bad_header",
                )
        for (label, pattern), field in zip(_INT_FIELDS, fields[3:8], strict=False):
            if not re.fullmatch(pattern, field):
                if re.match(r"[-+]?\.?\d", field):  # a number gone wrong, not a description
                    raise RecordError(
                        hea,
                        f"{where}: {label} {field!r} is not a whole number",
                        reason="bad_header",
                    )
                break  # the description starts here (header(5) lets trailing fields go)
            if abs(int(field)) >= _INT32:
                raise RecordError(
                    hea, f"{where}: {label} {field} does not fit 32 bits", reason="bad_header"
                )

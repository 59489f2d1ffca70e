"""Reader for PhysioNet/CinC Challenge 2019 hourly tables (``.psv``, one file per patient).

Each file is a pipe-separated table with a fixed 41-column header (Reyna et al., "Early
Prediction of Sepsis From Clinical Data: The PhysioNet/Computing in Cardiology Challenge
2019", Crit Care Med 48(2):210-217, 2020), one row per ICU hour, ``NaN`` where nothing
was measured. Columns are renamed to snake_case names that carry their unit
(:data:`PSV_COLUMNS`).

A whole training set (17,652 files) is read by :func:`vitalgru.io.psv_folder.read_psv_folder`
with this module's checks and parsers, in one parse.

Nothing that can be read without guessing is lost: a header with the 41 columns in
another order is read by name, and a non-numeric measurement cell (``"eighty"`` for HR)
is read as missing, logged with its file, row and value, and counted
(:attr:`vitalgru.io.psv_folder.PsvCohort.non_numeric_cells`); an empty (or blank) line
among the rows, as two exports joined or a stray Enter leave, is skipped, logged and counted
(:attr:`vitalgru.io.psv_folder.PsvCohort.empty_lines`). Only a non-numeric hour or label,
which would leave the table's time axis or outcome unknown, sends the file to attrition.

A file whose header names the other 40 columns and no ``SepsisLabel`` is read as
unlabelled, a frame without ``sepsis_label`` (:mod:`vitalgru.io.psv_labels`).
"""

from __future__ import annotations

import codecs
import gzip
import io
import logging
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from vitalgru.errors import RecordError
from vitalgru.io.psv_labels import LABEL

logger = logging.getLogger(__name__)

#: Challenge column -> vitalgru column. Units follow the challenge's data description
#: (physionet.org/content/challenge-2019, "Table 1"), with two corrections where the
#: documented unit contradicts the values: ``Lactate`` is documented as mg/dL but its
#: values (median about 2, range 0.2-30) are mmol/L; ``Magnesium`` is documented as
#: mmol/dL but its values (median about 2) are mg/dL. ``FiO2`` is a fraction (0.21-1).
PSV_COLUMNS: dict[str, str] = {
    "HR": "hr_bpm",
    "O2Sat": "spo2_pct",
    "Temp": "temp_c",
    "SBP": "sbp_mmhg",
    "MAP": "map_mmhg",
    "DBP": "dbp_mmhg",
    "Resp": "resp_per_min",
    "EtCO2": "etco2_mmhg",
    "BaseExcess": "base_excess_mmol_l",
    "HCO3": "hco3_mmol_l",
    "FiO2": "fio2_frac",
    "pH": "ph",
    "PaCO2": "paco2_mmhg",
    "SaO2": "sao2_pct",
    "AST": "ast_iu_l",
    "BUN": "bun_mg_dl",
    "Alkalinephos": "alkaline_phos_iu_l",
    "Calcium": "calcium_mg_dl",
    "Chloride": "chloride_mmol_l",
    "Creatinine": "creatinine_mg_dl",
    "Bilirubin_direct": "bilirubin_direct_mg_dl",
    "Glucose": "glucose_mg_dl",
    "Lactate": "lactate_mmol_l",
    "Magnesium": "magnesium_mg_dl",
    "Phosphate": "phosphate_mg_dl",
    "Potassium": "potassium_mmol_l",
    "Bilirubin_total": "bilirubin_total_mg_dl",
    "TroponinI": "troponin_i_ng_ml",
    "Hct": "hct_pct",
    "Hgb": "hgb_g_dl",
    "PTT": "ptt_s",
    "WBC": "wbc_10e3_ul",
    "Fibrinogen": "fibrinogen_mg_dl",
    "Platelets": "platelets_10e3_ul",
    "Age": "age_years",
    "Gender": "gender_male",
    "Unit1": "unit_micu",
    "Unit2": "unit_sicu",
    "HospAdmTime": "hosp_adm_time_h",
    "ICULOS": "hour",
    "SepsisLabel": "sepsis_label",
}

#: The 41 header fields, in file order.
PSV_HEADER: tuple[str, ...] = tuple(PSV_COLUMNS)

#: Time-varying measurements (vital signs then laboratory values), vitalgru names.
VITAL_COLUMNS: tuple[str, ...] = tuple(PSV_COLUMNS[c] for c in PSV_HEADER[:8])
LAB_COLUMNS: tuple[str, ...] = tuple(PSV_COLUMNS[c] for c in PSV_HEADER[8:34])
MEASUREMENT_COLUMNS: tuple[str, ...] = VITAL_COLUMNS + LAB_COLUMNS
#: The unit of each measurement, as the Challenge documents it and its vitalgru name ends.
_UNIT_SUFFIXES = (("_per_min", "/min"), ("_mmol_l", "mmol/L"), ("_10e3_ul", "×10³/µL"),
                  ("_mg_dl", "mg/dL"), ("_g_dl", "g/dL"), ("_ng_ml", "ng/mL"), ("_iu_l", "IU/L"),
                  ("_mmhg", "mmHg"), ("_bpm", "bpm"), ("_pct", "%"), ("_c", "°C"), ("_s", "s"))  # fmt: skip
MEASUREMENT_UNITS: dict[str, str] = {
    c: next((u for suffix, u in _UNIT_SUFFIXES if c.endswith(suffix)), "")  # FiO2, pH: none
    for c in MEASUREMENT_COLUMNS
}
#: Per-patient descriptors (constant over a stay, except where the source is missing).
STATIC_COLUMNS: tuple[str, ...] = (
    "age_years",
    "gender_male",
    "unit_micu",
    "unit_sicu",
    "hosp_adm_time_h",
)

_HEADER_BYTES = "|".join(PSV_HEADER).encode()
_BY_LOWER = {c.lower(): c for c in PSV_HEADER}
N_FIELDS = len(PSV_HEADER)
_NULLS = ["NaN", "nan", ""]
#: The largest ICU hour (``ICULOS``) a stay may have: 32,767 h, 3.7 years, what the hour
#: column (int16) holds; a larger one would wrap round to a negative hour.
MAX_ICU_HOUR = int(np.iinfo(np.int16).max)
#: Pipe-separated, no quoting: a quote in a cell is a character of that cell (a quoted
#: field could otherwise swallow pipes and rows).
_PSV_PARSE = pacsv.ParseOptions(delimiter="|", quote_char=False)


def patient_id_of(path: Path) -> str:
    """The patient id of a table's file: its name without ``.psv`` or ``.psv.gz`` (in any
    case): ``p000001.psv``, ``p000001.PSV`` and ``p000001.psv.gz`` are all ``p000001``."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def table_bytes(path: Path) -> bytes:
    """A table file's bytes, a gzip-compressed one (``.psv.gz``) uncompressed.

    Raises
    ------
    RecordError
        The file cannot be read (``unreadable``), or is named ``.gz`` but is not whole
        gzip data (``bad_gzip``).
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RecordError(path, f"cannot read: {e.strerror or e}", reason="unreadable") from e
    if not path.name.lower().endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise RecordError(path, f"not readable as gzip: {e}", reason="bad_gzip") from e


def _as_utf8(path: Path, raw: bytes) -> bytes:
    """A file's bytes without a byte-order mark, UTF-16 re-encoded as UTF-8.

    Spreadsheet programs save tables with a UTF-8 mark before the first column name, or as
    UTF-16 ("Unicode text"); the measurements in such a file are as good as any.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :]
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError(path, f"broken UTF-16 text: {e.reason}", reason="bad_encoding") from e
    return raw


def check_bytes(path: Path, raw: bytes) -> tuple[bytes, int, np.ndarray | None, int, bool]:
    """Header and row-shape checks on one file's bytes; returns ``(body, n_rows, order,
    n_empty, labelled)`` where ``order`` is ``None`` for the standard header, else the
    file's column of each :data:`PSV_HEADER` field (the header names all 41, in another
    order or case), ``n_empty`` counts the empty or blank lines among the rows, which
    ``body`` leaves out (logged), and ``labelled`` is False for a header of the 40 other
    columns without ``SepsisLabel``: ``body`` then has an empty label cell appended to
    each row, so that it parses as the 41 columns (a NaN label, :func:`validate_table`
    told ``labelled=False``). A byte-order mark or UTF-16 text is read as the same table
    (:func:`_as_utf8`)."""
    raw = _as_utf8(path, raw)
    if not raw.strip():
        raise RecordError(path, "file is empty", reason="empty_file")
    raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # Windows or old Mac lines
    head, sep, body = raw.partition(b"\n")
    head = head.strip()
    order = None
    labelled = True
    if head != _HEADER_BYTES:
        # Names are matched ignoring case (an export that writes "hr|o2sat|..." means the
        # same columns; no two of the 41 differ only in case).
        fields = [
            _BY_LOWER.get(f.strip().lower(), f.strip())
            for f in head.decode("utf-8", "replace").split("|")
        ]
        unknown = [f for f in fields if f not in PSV_COLUMNS]
        missing = [c for c in PSV_HEADER if c not in fields]
        labelled = LABEL in fields  # without the column at all: an unlabelled export
        if unknown:
            raise RecordError(
                path,
                f"unknown column(s) {unknown[:5]} in the header; a Challenge-2019 table "
                f"has exactly the 41 columns {PSV_HEADER[0]}..{PSV_HEADER[-1]}",
                reason="unknown_columns",
            )
        if missing != ([] if labelled else [LABEL]):
            raise RecordError(
                path, f"header lacks column(s) {missing[:5]}", reason="missing_columns"
            )
        if len(fields) != N_FIELDS - (not labelled):
            dup = sorted({f for f in fields if fields.count(f) > 1})
            raise RecordError(path, f"header repeats column(s) {dup[:5]}", reason="bad_header")
        # an unlabelled file's label is the empty cell appended to each of its rows
        order = np.array([fields.index(c) if c in fields else len(fields) for c in PSV_HEADER],
                         dtype=np.int64)  # fmt: skip
    body = body.strip(b"\n \t")
    if not body:
        raise RecordError(path, "header but no data rows", reason="no_rows")
    lines = body.split(b"\n")
    rows = [line for line in lines if line.strip()]
    n_empty = len(lines) - len(rows)
    if n_empty:
        # one stray empty line cost the whole stay as bad_row_shape; it holds no hour
        logger.warning("%s: %d empty line(s) among the rows skipped", path, n_empty)
        body = b"\n".join(rows)
    n_fields = [line.count(b"|") + 1 for line in rows]
    wanted = N_FIELDS - (not labelled)
    wrong = [i for i, n in enumerate(n_fields) if n != wanted]
    if wrong:
        raise RecordError(
            path,
            f"rows must each have {wanted} pipe-separated fields; data row "
            f"{wrong[0] + 1} has {n_fields[wrong[0]]}"
            + (f" ({len(wrong)} rows in all)" if len(wrong) > 1 else ""),
            reason="bad_row_shape",
        )
    if not labelled:
        body = b"\n".join(line + b"|" for line in rows)
    return body + b"\n", len(n_fields), order, n_empty, labelled


def parse_body(path: Path, body: bytes) -> np.ndarray:
    """Parse bodies into ``(n_rows, 41)`` float64 in file column order; a
    ``non_numeric`` RecordError if any cell is not a number (see :func:`parse_lenient`)."""
    try:
        tbl = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=list(PSV_HEADER)),
            parse_options=_PSV_PARSE,
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.float64() for c in PSV_HEADER},
                null_values=_NULLS,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        msg = str(e).splitlines()[0]
        raise RecordError(path, f"non-numeric cell: {msg}", reason="non_numeric") from e
    arr = np.column_stack(
        [tbl.column(i).to_numpy(zero_copy_only=False).astype(np.float64) for i in range(N_FIELDS)]
    )
    return arr


def parse_lenient(
    path: Path, body: bytes, order: np.ndarray | None
) -> tuple[np.ndarray, dict[str, int]]:
    """One file's body with every non-numeric measurement cell read as NaN.

    Returns the ``(n_rows, 41)`` table in :data:`PSV_HEADER` order and the count of such
    cells per vitalgru column. A non-numeric ``ICULOS`` or ``SepsisLabel`` is a
    ``non_numeric`` RecordError: without them the rows have no time or outcome.
    """
    try:
        return reorder_fields(parse_body(path, body), order), {}
    except RecordError:
        pass
    # bytes that are not UTF-8 make their cell non-numeric, not the file unreadable
    body = body.decode("utf-8", "replace").encode("utf-8")
    try:
        tbl = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(N_FIELDS)]),
            parse_options=_PSV_PARSE,
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in range(N_FIELDS)},
                null_values=_NULLS,
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:  # the shape checks should prevent it
        msg = str(e).splitlines()[0]
        raise RecordError(path, f"cannot parse the rows: {msg}", reason="bad_row_shape") from e
    text = reorder_fields(
        np.column_stack([tbl.column(i).to_numpy(zero_copy_only=False) for i in range(N_FIELDS)]),
        order,
    )
    arr = np.full(text.shape, np.nan)
    counts: dict[str, int] = {}
    commas = _decimal_comma_cells(text)
    if commas.any():
        logger.warning("%s: %d cell(s) with a decimal comma (e.g. %r) read as numbers",
                       path, int(commas.sum()), str(text[commas][0]))  # fmt: skip
        text = text.copy()
        text[commas] = np.char.replace(text[commas].astype(str), ",", ".")
    for j, name in enumerate(PSV_HEADER):
        col = pd.Series(text[:, j], dtype=object)
        num = pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(col.notna().to_numpy() & np.isnan(num))
        if bad.size:
            first = f"row {int(bad[0]) + 1}: {str(text[bad[0], j])[:20]!r}"
            if name in ("ICULOS", "SepsisLabel"):
                raise RecordError(path, f"non-numeric {name} ({first})", reason="non_numeric")
            counts[PSV_COLUMNS[name]] = int(bad.size)
            logger.warning(
                "%s: %d non-numeric %s cell(s) read as missing (%s)", path, bad.size, name, first
            )
        arr[:, j] = num
    return arr, counts


_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,(\d+)\s*$")


def _decimal_comma_cells(text: np.ndarray) -> np.ndarray:
    """Cells of a file that hold a number written with a decimal comma (``37,5``), as a
    European export writes them. In a pipe-separated file a comma separates no field, but
    ``1,234`` may be a thousands separator; so a file's comma cells are read as decimals
    only when one of them cannot be one (its comma is not followed by exactly three
    digits). Returns a boolean mask of ``text``'s shape (all False otherwise)."""
    mask = np.zeros(text.shape, dtype=bool)
    frac_lengths = set()
    for idx, cell in np.ndenumerate(text):
        if isinstance(cell, str) and "," in cell:
            m = _DECIMAL_COMMA.match(cell)
            if m:
                mask[idx] = True
                frac_lengths.add(len(m.group(1)))
    if frac_lengths and frac_lengths != {3}:
        return mask
    return np.zeros(text.shape, dtype=bool)


def reorder_fields(arr: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    return arr if order is None else arr[:, order]


def validate_table(path: Path, arr: np.ndarray, labelled: bool = True) -> None:
    """RecordError for a table whose hours are missing, not whole or not increasing, or,
    when ``labelled``, whose ``SepsisLabel`` is not 0 or 1 in every row."""
    hours = arr[:, PSV_HEADER.index("ICULOS")]
    label = arr[:, PSV_HEADER.index(LABEL)]
    if np.isnan(hours).any():
        raise RecordError(path, "ICULOS (hour) is missing in some rows", reason="missing_hour")
    odd = np.flatnonzero((hours != np.floor(hours)) | (hours < 0) | (hours > MAX_ICU_HOUR))
    if odd.size:
        raise RecordError(
            path,
            f"ICULOS must be a whole number of hours from 0 to {MAX_ICU_HOUR}; data row "
            f"{int(odd[0]) + 1} has {hours[odd[0]]:g}",
            reason="bad_hours",
        )
    if (np.diff(hours) <= 0).any():
        raise RecordError(path, "ICULOS (hour) does not increase row by row", reason="bad_hours")
    if labelled and (np.isnan(label).any() or not np.isin(label, (0.0, 1.0)).all()):
        empty = " (it is empty: a file without labels leaves the column out)"
        raise RecordError(path, "SepsisLabel must be 0 or 1 in every row"
                          + (empty if np.isnan(label).all() else ""), reason="bad_label")  # fmt: skip


def to_frame(arr: np.ndarray, patient_ids: np.ndarray, labelled: bool = True) -> pd.DataFrame:
    """The frame of parsed rows (:attr:`vitalgru.io.psv_folder.PsvCohort.frame`); without
    a ``sepsis_label`` column when not ``labelled``."""
    cols: dict[str, object] = {"patient_id": patient_ids}
    for i, name in enumerate(PSV_HEADER):
        out = PSV_COLUMNS[name]
        if name == LABEL and not labelled:
            continue
        if out == "hour":
            cols[out] = arr[:, i].astype(np.int16)
        elif out == "sepsis_label":
            cols[out] = arr[:, i].astype(np.int8)
        else:
            cols[out] = arr[:, i].astype(np.float32)
    order = ["patient_id", "hour", *[PSV_COLUMNS[c] for c in PSV_HEADER if c != "ICULOS"]]
    return pd.DataFrame(cols)[[c for c in order if c in cols]]


def read_psv(path: str | Path) -> pd.DataFrame:
    """Read one Challenge-2019 patient table.

    Parameters
    ----------
    path : str or Path
        A ``.psv`` file, or a gzip-compressed ``.psv.gz``; the patient id is the file
        name without them (:func:`patient_id_of`, ``p000001``).

    Returns
    -------
    pandas.DataFrame
        Columns as in :attr:`vitalgru.io.psv_folder.PsvCohort.frame`, one row per ICU hour
        (an empty line among the rows is skipped and logged); no ``sepsis_label`` for a
        file without the ``SepsisLabel`` column (unlabelled).

    Raises
    ------
    RecordError
        Unreadable or malformed file; ``reason`` is one of ``empty_file``, ``no_rows``,
        ``bad_encoding`` (UTF-16 that does not decode; a byte-order mark is fine),
        ``unknown_columns``, ``missing_columns``, ``bad_header``, ``bad_row_shape``,
        ``non_numeric`` (in ``ICULOS`` or ``SepsisLabel``; elsewhere such a cell is read
        as missing and logged), ``missing_hour``, ``bad_hours``, ``bad_label``,
        ``unreadable``, ``bad_gzip``.
    """
    p = Path(path)
    body, _, order, _, labelled = check_bytes(p, table_bytes(p))
    arr, _ = parse_lenient(p, body, order)
    validate_table(p, arr, labelled)
    return to_frame(arr, np.full(arr.shape[0], patient_id_of(p), dtype=object), labelled)

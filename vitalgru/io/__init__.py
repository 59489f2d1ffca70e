"""PhysioNet access: download, local mirror, checksums, WFDB and Challenge-2019 readers.

Start with :func:`open_database` (a PhysioNet name such as ``"mitdb"``, or a folder);
the returned :class:`Database` lists, fetches, verifies and reads records the same way
whether its files come from a download cache, a local mirror or a plain folder.
Challenge-2019 vitals tables are read by :func:`read_psv` / :func:`read_psv_folder`.
"""

from vitalgru.io.checksums import VerifiedState, parse_sha256sums, sha256_file
from vitalgru.io.download import HttpFetcher, HttpStatusError
from vitalgru.io.fetch_report import FetchReport, FileFailure
from vitalgru.io.ingest import IngestResult, attrition_entry, ingest_records, iter_records
from vitalgru.io.physionet import Database
from vitalgru.io.psv import read_psv
from vitalgru.io.psv_folder import PsvCohort, list_psv, read_psv_folder
from vitalgru.io.sources import (
    ENV_MIRROR,
    KNOWN_VERSIONS,
    PATIENT_ID_MAPS,
    Source,
    open_database,
    resolve_source,
)
from vitalgru.io.wfdb_header import HeaderInfo, read_header
from vitalgru.io.wfdb_reader import read_annotations_file, read_record_files

__all__ = [
    "ENV_MIRROR",
    "KNOWN_VERSIONS",
    "PATIENT_ID_MAPS",
    "Database",
    "FetchReport",
    "FileFailure",
    "HeaderInfo",
    "HttpFetcher",
    "HttpStatusError",
    "IngestResult",
    "PsvCohort",
    "Source",
    "VerifiedState",
    "attrition_entry",
    "ingest_records",
    "iter_records",
    "list_psv",
    "open_database",
    "parse_sha256sums",
    "read_annotations_file",
    "read_header",
    "read_psv",
    "read_psv_folder",
    "read_record_files",
    "resolve_source",
    "sha256_file",
]

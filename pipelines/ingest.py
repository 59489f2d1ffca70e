"""Prefect flow ``ingest``: PhysioNet database -> beat dataset folder.

Steps: resolve and fetch (download or mirror) + verify checksums -> per record: read,
resample, filter, quality, detect, window (cached on the record's checksums and the
config hash) -> assemble dataset files, manifest and attrition.

Runs against Prefect's temporary local server when ``PREFECT_API_URL`` is unset, and
against a real server when it is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.context import TaskRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.prefect_server import stop_with_this_process
from pipelines.run_logs import send_to_run_logs
from vitalgru import __version__
from vitalgru.claims import writing
from vitalgru.config import ArrhythmiaDataConfig, IngestConfig, PhysioNetConfig, config_hash
from vitalgru.config import load_config as _load
from vitalgru.data.dataset_files import (
    load_part,
    processing_digest,
    prune_parts,
    save_part,
    write_dataset,
)
from vitalgru.data.ingest import process_record
from vitalgru.data.splits import dechazal_split
from vitalgru.errors import VitalgruError
from vitalgru.io import attrition_entry, open_database, sha256_file
from vitalgru.types import AttritionEntry

logger = logging.getLogger(__name__)


def load_ingest_config(
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    out_dir: str | None = None,
) -> IngestConfig:
    """The resolved ingest config (packaged default, file, overrides, ``out_dir``)."""
    ov = dict(overrides or {})
    if out_dir is not None:
        ov["out_dir"] = out_dir
    return _load(IngestConfig, config_path, ov, default_name="ingest.yaml")


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Another try can mend the network or a server (a download that failed after its own
    retries), not a mirror folder that is not there, a file that fails its checksum or a
    database this version does not know."""
    exc = getattr(state, "data", None)
    return isinstance(exc, OSError) and not isinstance(
        exc, FileNotFoundError | NotADirectoryError | PermissionError
    )


@task(name="fetch-database", retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=_worth_retrying)  # fmt: skip
def fetch_database(database: str, physionet: dict[str, Any], records: list[str] | None) -> dict:
    """Download (or locate on the mirror) and verify every file the records need.

    Records with a failing file (download error, checksum mismatch, missing) go to
    attrition; the rest continue.
    """
    cfg = PhysioNetConfig.model_validate(physionet)
    db = open_database(database, cfg)
    # a record asked for twice is one record: read once, and at most one attrition entry
    wanted = db.list_records() if records is None else list(dict.fromkeys(records))
    report = db.fetch(records=wanted, workers=4 if db.is_remote else 1)
    bad = set(report.failed_records)
    # the published checksum stands for the file only when the file was checked against
    # it; unchecked (a mirror's file, or a download cached earlier), a file changed in
    # place kept its old part
    sums = db.checksums() if cfg.verify_checksums else {}
    digests = {}
    for rel in report.ok:
        digests[rel] = sums.get(rel) or sha256_file(db.root / rel)
    return {
        "name": db.name,
        "root": str(db.root),
        "records": [r for r in wanted if r not in bad],
        "checksums": digests,
        # each record's files as its header names them (a signal file need not be called
        # <record>.dat), so that its part is keyed on what it is read from
        "files": {r: fs for r, fs in report.files.items() if r not in bad},
        "attrition": [asdict(e) for e in report.attrition()],
    }


def _part_key(ctx: TaskRunContext, params: dict[str, Any]) -> str:
    # The cached result is the part's path, so the path is the key: it already holds the
    # record's source checksums, the config hash, the package version and the processing
    # code's digest. A part deleted since is caught by the flow, which recomputes it with
    # refresh_cache.
    part = Path(params["parts_dir"]).resolve() / params["key"]
    return "ingest-part-" + hashlib.sha256(str(part).encode()).hexdigest()[:32]


@task(name="process-record", cache_key_fn=_part_key, persist_result=True)
def process_record_task(
    database: str,
    physionet: dict[str, Any],
    record: str,
    split: str,
    arrhythmia: dict[str, Any],
    parts_dir: str,
    key: str,
    code: str,
) -> dict[str, Any]:
    """Read, clean, check, detect and window one record; write it as a part folder made by
    the processing code ``code`` (its digest, also in ``key``)."""
    cfg = ArrhythmiaDataConfig.model_validate(arrhythmia)
    db = open_database(database, PhysioNetConfig.model_validate(physionet))
    try:
        rec = db.read_record(record)
        ann = db.read_annotations(record)
        item = process_record(rec, ann, cfg, split)
    except (VitalgruError, ValueError) as e:
        return {"error": asdict(attrition_entry(db.name, record, e))}
    path = save_part(item, Path(parts_dir) / key, code)
    return {"part": str(path)}


@task(name="write-dataset")
def write_dataset_task(
    parts: list[str], out_dir: str, attrition: list[dict[str, Any]], meta: dict[str, Any]
) -> str:
    items = [load_part(Path(p)) for p in parts]
    entries = [AttritionEntry(**a) for a in attrition]
    return str(write_dataset(out_dir, items, entries, meta))


def _record_key(record: str, checksums: dict[str, str], cfg_hash: str, code: str) -> str:
    """The part's name: the record, the checksums of the files it is read from (``checksums``
    holds only those: its header, the signal files the header names and its annotation
    files), the config and the processing code
    (:func:`vitalgru.data.dataset_files.processing_digest`) it was made with."""
    # a file missing from the key kept a part (or a cached refusal) after it changed: the
    # files were once found by name, <record>.<ext>, and a signal file the header calls
    # otherwise (WFDB allows any name) was not among them
    blob = json.dumps([record, sorted(checksums.items()), cfg_hash, __version__, code]).encode()
    return f"{record.replace('/', '__')}-{hashlib.sha256(blob).hexdigest()[:16]}"


def _files_of(record: str, fetched: dict[str, Any]) -> dict[str, str]:
    """Checksums of the files ``record`` is read from, as the fetch found them."""
    return {rel: fetched["checksums"][rel] for rel in fetched["files"].get(record, [])}


# the runner's threads are a ceiling: the flow submits IngestConfig.workers at a time
@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=64), log_prints=True)
def ingest_flow(
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Build the arrhythmia beat dataset; returns the dataset folder and its class counts.

    The folder is claimed while it is built (:func:`vitalgru.claims.writing`): another
    ingest into it, or a training reading it, waits until this one has written it all.
    """
    stop_with_this_process()  # a kill leaves no temporary server
    send_to_run_logs()  # the library's lines in the run's logs in Prefect
    log = get_run_logger()
    cfg = load_ingest_config(config_path, overrides, out_dir)
    out = Path(cfg.out_dir).resolve()
    with writing(out, f"the dataset folder {out}", log=log):
        return _build(cfg, out, log)


def _build(cfg: IngestConfig, out: Path, log: Any) -> dict[str, Any]:
    a = cfg.arrhythmia
    physionet = cfg.physionet.model_dump(mode="json")
    fetched = fetch_database(a.database, physionet, list(a.records) if a.records else None)
    attrition: list[dict[str, Any]] = list(fetched["attrition"])
    records: list[str] = fetched["records"]
    assignment = {r: str(s) for r, s in dechazal_split(records, a.exclude_records).items()}
    for r in records:
        if r not in assignment:
            reason = "excluded_by_config" if r in a.exclude_records else "not_in_split"
            attrition.append(asdict(AttritionEntry(fetched["name"], r, "split", reason, "")))
    chash = config_hash(a)
    code = processing_digest()
    parts_dir = out / ".parts"
    args = {
        r: (a.database, physionet, r, s, a.model_dump(mode="json"), str(parts_dir),
            _record_key(r, _files_of(r, fetched), chash, code), code)
        for r, s in sorted(assignment.items())
    }  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    names = list(args)
    for i in range(0, len(names), cfg.workers):  # at most `workers` records at a time
        futures = {r: process_record_task.submit(*args[r]) for r in names[i : i + cfg.workers]}
        results.update({r: f.result() for r, f in futures.items()})
    stale = [r for r, res in results.items()
             if "part" in res and not (Path(res["part"]) / "facts.json").exists()]  # fmt: skip
    if stale:
        log.info("recomputing %d cached parts that are gone from disk", len(stale))
        fresh = process_record_task.with_options(refresh_cache=True)
        results.update({r: fresh.submit(*args[r]).result() for r in stale})
    parts = []
    for res in results.values():
        if "error" in res:
            attrition.append(res["error"])
            log.warning("excluded %s: %s", res["error"]["item"], res["error"]["detail"])
        else:
            parts.append(res["part"])
    meta = {
        "database": fetched["name"],
        "source_root": fetched["root"],
        "fs": a.windows.fs,
        "lead": a.windows.lead,  # a name, or an index as an int (a str "1" named no lead)
        # every window setting processing reads (the live quality window and its hop decide
        # each beat's signal_ok, which the quality gate was tuned on)
        "window": a.windows.model_dump(mode="json", exclude={"lead", "fs"}),
        "filters": a.filters.model_dump(mode="json"),
        "split_scheme": a.split,
        "config": cfg.model_dump(mode="json"),
        "config_hash": chash,
        "processing_digest": code,
        "package_version": __version__,
        "source_checksums": fetched["checksums"],
    }
    manifest = write_dataset_task(parts, str(out), attrition, meta)
    removed, freed = prune_parts(parts_dir, code)
    if removed:
        log.info("removed %d cached parts made by other processing code (%.1f MB)",
                 removed, freed / 1e6)  # fmt: skip
    counts = json.loads(Path(manifest).read_text())["class_counts"]
    log.info("dataset written to %s: %s", out, counts)
    return {
        "dataset": str(out),
        "manifest": manifest,
        "class_counts": counts,
        "attrition": len({e["item"] for e in attrition}),  # records, not files
    }

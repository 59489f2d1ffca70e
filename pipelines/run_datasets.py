"""The training and evaluation data of the training flows, logged to their MLflow runs as
datasets (:func:`vitalgru.tracking.log_dataset`), each with a digest a reviewer can
recompute from the run's ``dataset/`` artifacts:

- arrhythmia: the DS1 records the networks were fitted and selected on (``training``) and
  the DS2 records scored (``evaluation``), each digest over the records' source files and
  their SHA-256 (the manifest's ``source_checksums``), the dataset config hash and the
  processing code's digest (:func:`records_digest`);
- early warning: the cohort the registered model was trained on (``training``; digest: the
  manifest's ``source_digest``, the SHA-256 of ``source_sha256.csv``'s lines, cut to
  MLflow's 36 characters) and the same patients as the cross-validation scored them
  (``evaluation``; digest: the manifest's ``cohort_digest`` of patients, folds and labels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vitalgru import tracking
from vitalgru.data.arrhythmia_dataset import BeatDataset

__all__ = ["log_arrhythmia_datasets", "log_early_warning_datasets", "records_digest"]

#: Digests of the data, cut to 32 hex digits (MLflow keeps at most 36 characters).
_DIGEST_HEX = 32


def records_digest(manifest: Mapping[str, Any], records: Sequence[str]) -> str:
    """SHA-256 (32 hex digits) naming the data of ``records`` in a beat dataset: the
    ``config_hash`` and ``processing_digest`` of its manifest, then for each record in id
    order each of its source files (``<record>.<ext>``) with its SHA-256 from
    ``source_checksums`` (``<record>:unverified`` where the manifest has none)."""
    sums = manifest.get("source_checksums") or {}
    h = hashlib.sha256()
    h.update(f"config_hash:{manifest.get('config_hash')}\n".encode())
    h.update(f"processing_digest:{manifest.get('processing_digest')}\n".encode())
    for r in sorted(set(map(str, records))):
        files = sorted(f for f in sums if f.rsplit(".", 1)[0] == r)
        for f in files:
            h.update(f"{f}:{sums[f]}\n".encode())
        if not files:
            h.update(f"{r}:unverified\n".encode())
    return h.hexdigest()[:_DIGEST_HEX]


def log_arrhythmia_datasets(
    run: tracking.TrackedRun,
    ds: BeatDataset,
    *,
    fit_records: Sequence[str],
    val_records: Sequence[str],
    eval_records: Sequence[str],
) -> tuple[tracking.LoggedDataset, tracking.LoggedDataset]:
    """Log the DS1 beats the networks were fitted on (``fit_records``) and selected on
    (``val_records``: early stopping, the rhythm and quality gates) as the ``training``
    dataset, and the DS2 beats scored (``eval_records``) as the ``evaluation`` one."""
    db = str(ds.manifest.get("database", "mitdb"))
    train = sorted({*map(str, fit_records), *map(str, val_records)})

    def log(records: Sequence[str], split: str, context: str, tags: dict[str, Any]) -> Any:
        rows = ds.beats[ds.beats["record_id"].astype(str).isin(records)]
        return tracking.log_dataset(
            run, rows.reset_index(drop=True), name=f"{db} {split}",
            digest=records_digest(ds.manifest, records), source=ds.path, context=context,
            targets="aami",
            tags={"records": ",".join(records), "beats": len(rows), **tags,
                  "digest_of": "records' source files and SHA-256 (dataset/manifest.json "
                               "source_checksums), config_hash, processing_digest"},
        )  # fmt: skip

    fitted = {"fit_records": ",".join(sorted(map(str, fit_records))),
              "validation_records": ",".join(sorted(map(str, val_records))) or "none"}  # fmt: skip
    return (
        log(train, "DS1", "training", fitted),
        log(sorted(map(str, eval_records)), "DS2", "evaluation", {}),
    )


def log_early_warning_datasets(
    run: tracking.TrackedRun, dataset_dir: str | Path, manifest: Mapping[str, Any], seed: int
) -> tuple[tracking.LoggedDataset, tracking.LoggedDataset]:
    """Log the cohort of an early-warning dataset folder (its ``hourly.parquet``) as the
    ``training`` dataset and, as the ``evaluation`` one, the same patients as the
    cross-validation scored them (each by a model trained without them)."""
    folder = Path(dataset_dir)
    hours = pd.read_parquet(folder / "hourly.parquet")
    name = f"{manifest.get('dataset', 'challenge-2019')} {Path(str(manifest['source'])).name}"
    counts = {
        "patients": manifest.get("n_patients"),
        "septic_patients": manifest.get("n_septic_patients"),
        "patient_hours": manifest.get("n_patient_hours"),
        "source_files": manifest.get("source_files"),
    }
    train = tracking.log_dataset(
        run, hours, name=name, digest=str(manifest["source_digest"])[:_DIGEST_HEX],
        source=folder, context="training", targets="sepsis_label",
        tags={**counts, "patients_listed_in": "dataset/folds.csv",
              "digest_of": "the source files and their SHA-256 (dataset/source_sha256.csv; "
                           "the manifest's source_digest)"},
    )  # fmt: skip
    n_folds = manifest.get("n_folds")
    cv = tracking.log_dataset(
        run, hours, name=f"{name} {n_folds}-fold CV", digest=str(manifest["cohort_digest"]),
        source=folder, context="evaluation", targets="sepsis_label",
        tags={**counts, "folds": n_folds, "seed": seed,
              "scored_as": "cross-validation by patient: each patient scored by the model of "
                           "the fold that did not train on it; the registered model was "
                           "trained on all of them",
              "digest_of": "patients, their folds and hourly labels (the manifest's "
                           "cohort_digest, as in the gate's vitalgru.gate_evaluated_on)"},
    )  # fmt: skip
    return train, cv

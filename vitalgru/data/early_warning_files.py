"""The sepsis early-warning dataset on disk: a cleaned cohort of
:mod:`vitalgru.data.early_warning` and its patient folds written to a folder as
``hourly.parquet``, ``folds.csv``, ``manifest.json`` and ``attrition.csv`` under the folder's
claim (:func:`write_dataset`), and read back whole (:func:`load_dataset`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import vitalgru
from vitalgru.claims import reading, replace_file, replacing, writing
from vitalgru.data.early_warning import EarlyWarningCohort, patient_offsets
from vitalgru.dsp.vitals import PLAUSIBILITY_LIMITS
from vitalgru.io.ingest import write_attrition
from vitalgru.types import AttritionEntry

# the cohort module's name, as these messages had before they moved here
logger = logging.getLogger("vitalgru.data.early_warning")

__all__ = ["load_dataset", "write_dataset"]


def write_dataset(
    cohort: EarlyWarningCohort,
    folds: np.ndarray,
    out_dir: str | Path,
    *,
    extra_manifest: dict[str, Any] | None = None,
) -> Path:
    """Write the cleaned cohort, folds, manifest and attrition to ``out_dir``.

    Files: ``hourly.parquet`` (the cleaned frame), ``folds.csv`` (``patient_id,fold,septic``),
    ``manifest.json`` (counts, implausible values per column, plausibility limits, package
    version, source), ``attrition.csv``.

    Written under the folder's claim (:func:`vitalgru.claims.writing`), so a reader
    (:func:`load_dataset`) waits for the write; each file under a temporary name and
    renamed, the manifest taken away first and written last, so a crash part way leaves
    a folder that says it is no dataset, never a manifest over another write's files.
    """
    out = Path(out_dir)
    with writing(out, f"the early-warning dataset folder {out}", log=logger):
        _write_files(cohort, folds, out, extra_manifest)
    return out


def _write_files(
    cohort: EarlyWarningCohort,
    folds: np.ndarray,
    out: Path,
    extra_manifest: dict[str, Any] | None,
) -> None:
    (out / "manifest.json").unlink(missing_ok=True)
    with replacing(out / "hourly.parquet") as t:
        cohort.frame.to_parquet(t, index=False, compression="zstd")
    septic = cohort.septic()
    folds_df = pd.DataFrame(
        {"patient_id": cohort.patient_ids, "fold": folds, "septic": septic.astype(int)}
    )
    with replacing(out / "folds.csv") as t:
        folds_df.to_csv(t, index=False)
    manifest: dict[str, Any] = {
        "dataset": "challenge-2019",
        "source": cohort.source,
        "vitalgru_version": vitalgru.__version__ if hasattr(vitalgru, "__version__") else "",
        "n_patients": cohort.n_patients,
        "n_patient_hours": len(cohort.frame),
        "n_septic_patients": int(septic.sum()),
        "n_folds": int(folds.max() + 1) if folds.size else 0,
        "fold_sizes": np.bincount(folds).tolist() if folds.size else [],
        "implausible_values": cohort.implausible_counts,
        "non_numeric_values": cohort.non_numeric_counts,
        "skipped_hours": cohort.skipped_hours(),
        "label_reversals": cohort.label_reversals(),
        "plausibility_limits": {k: list(v) for k, v in PLAUSIBILITY_LIMITS.items()},
        "n_excluded_files": len(cohort.attrition),
    }
    if extra_manifest:
        manifest.update(extra_manifest)
    with replacing(out / "attrition.csv") as t:
        write_attrition(cohort.attrition, t)
    replace_file(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))


def load_dataset(dataset_dir: str | Path) -> tuple[EarlyWarningCohort, np.ndarray, dict[str, Any]]:
    """Read back what :func:`write_dataset` wrote: ``(cohort, folds, manifest)``, under a
    shared claim on the folder (a write in progress is waited for)."""
    d = Path(dataset_dir)
    with reading(d, f"the early-warning dataset folder {d}", log=logger):
        for name in ("hourly.parquet", "folds.csv", "manifest.json"):
            if not (d / name).exists():
                raise FileNotFoundError(f"{d} is not an early-warning dataset: {name} is missing")
        frame = pd.read_parquet(d / "hourly.parquet")
        manifest = json.loads((d / "manifest.json").read_text())
        folds_df = pd.read_csv(d / "folds.csv", dtype={"patient_id": str})
        att = None
        if (d / "attrition.csv").exists():
            att = pd.read_csv(d / "attrition.csv", dtype=str, keep_default_na=False)
    offsets, ids = patient_offsets(frame)
    if ids.tolist() != folds_df["patient_id"].tolist():
        raise ValueError(f"{d}: folds.csv does not list the patients of hourly.parquet in order")
    attrition: list[AttritionEntry] = []
    if att is not None:
        attrition = [AttritionEntry(**r) for r in att.to_dict("records")]
    cohort = EarlyWarningCohort(
        frame=frame,
        offsets=offsets,
        patient_ids=ids,
        implausible_counts=dict(manifest.get("implausible_values", {})),
        attrition=attrition,
        source=str(manifest.get("source", "")),
        non_numeric_counts=dict(manifest.get("non_numeric_values", {})),
    )
    return cohort, folds_df["fold"].to_numpy(np.int64), manifest

"""Prefect flow ``train-arrhythmia``: ingest -> train -> evaluate -> register -> promote
(scoring any WFDB database with a logged model is :mod:`pipelines.evaluate`'s).

Thin orchestration over :mod:`vitalgru.training.arrhythmia` and :mod:`vitalgru.tracking`:
every training is one MLflow run (params, resolved config, dataset manifest, per-epoch
metrics, confusion matrices, final metrics, model + preprocessing), registered as
``vitalgru-arrhythmia``; the gate gives it the ``champion`` alias only if it beats the
current champion on DS2 S and V F1 measured on the same DS2 beats (the first model becomes
champion); the difference is said with its paired record-bootstrap interval.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task

from pipelines.arrhythmia_files import load_arrhythmia_config, write_report
from pipelines.ingest import fetch_database, ingest_flow
from pipelines.prefect_server import stop_with_this_process
from pipelines.promotion import promote_task
from pipelines.run_datasets import log_arrhythmia_datasets
from pipelines.run_logs import send_to_run_logs
from vitalgru import tracking
from vitalgru.claims import reading
from vitalgru.config import ArrhythmiaTrainConfig, config_hash
from vitalgru.data.arrhythmia_dataset import BeatDataset, RecordBeats, load_beat_dataset
from vitalgru.data.dataset_files import processing_digest
from vitalgru.data.drift import arrhythmia_reference, beat_inputs
from vitalgru.data.splits import DECHAZAL_DS1, DECHAZAL_DS2, dechazal_split
from vitalgru.errors import ConfigError
from vitalgru.metrics.aami import CLASS_NAMES, aami_report, report_markdown
from vitalgru.metrics.aami_intervals import record_intervals
from vitalgru.reports.model_card import ARRHYTHMIA_MODEL_DESCRIPTION, arrhythmia_version_card
from vitalgru.training.arrhythmia import train_arrhythmia
from vitalgru.training.arrhythmia_eval import signal_summary
from vitalgru.training.arrhythmia_fit import feature_settings, predict_records
from vitalgru.training.loop import Callback, TqdmProgress
from vitalgru.types import AAMI_SUMMARY_STATS

logger = logging.getLogger(__name__)

#: The run artifact of the DS2 evaluation (an AAMI report with each record's confusion
#: matrix), from which the gate puts a new version's difference from the champion beside a
#: paired record-bootstrap interval.
DS2_REPORT = "evaluation/ds2.json"


def check_validation_records(cfg: ArrhythmiaTrainConfig) -> None:
    """The records a training needs, checked before any flow starts, where it costs
    nothing, instead of after the ingest (or the training): DS2 records to evaluate on
    (a config without one trained to the end and then failed), and, with ``cv_folds:
    null``, ``val_records`` that are DS1 records of the de Chazal split that the ingest
    keeps (the network early-stops on them).

    Raises
    ------
    ConfigError
        No DS2 record among those ingested, or a validation record that is not such a DS1
        record.
    """
    data = cfg.ingest.arrhythmia
    if data.split != "dechazal2004":
        return
    split = dechazal_split(data.records if data.records is not None else
                           (*DECHAZAL_DS1, *DECHAZAL_DS2), data.exclude_records)  # fmt: skip
    if "DS2" not in split.values():
        raise ConfigError(
            "ingest.arrhythmia.records holds no DS2 record: the model is evaluated (and "
            f"gated) on DS2 ({', '.join(DECHAZAL_DS2)}); name some, or leave records unset"
        )
    if cfg.cv_folds is not None:
        return
    ds1 = sorted(r for r, s in split.items() if s == "DS1")
    bad = [r for r in cfg.val_records if r not in ds1]
    if bad:
        raise ConfigError(
            f"val_records {bad} are not DS1 records that this config ingests; validation "
            f"must come from DS1 (here: {', '.join(ds1) or 'none'})"
        )


def dataset_dir(cfg: ArrhythmiaTrainConfig) -> Path:
    return Path(cfg.dataset_dir if cfg.dataset_dir is not None else cfg.ingest.out_dir).resolve()


class _MlflowEpochs(Callback):
    """Per-epoch metrics into the MLflow run. The step counts epochs across fits, so the
    networks of a cross-validated training follow one another on the same curves (they
    arrive fold by fold, ``fits_per_fold`` networks each); each point also carries
    ``fold`` and ``member`` (0 for a single fit). The keys start with ``prefix``: under the
    run's own keys, MLflow's summary of a key (its value at the highest step) showed the
    last epoch of the last network, not the run's final figure logged without a step."""

    def __init__(
        self, run: tracking.TrackedRun, prefix: str = "epoch.", fits_per_fold: int = 1
    ) -> None:
        self.run = run
        self.prefix = prefix
        self.fits_per_fold = max(1, fits_per_fold)
        self.fit = -1
        self.step = 0

    def on_fit_start(self, max_epochs: int, steps_per_epoch: int) -> None:
        self.fit += 1

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.step += 1
        clean = {f"{self.prefix}{k}": float(v) for k, v in metrics.items() if v == v}
        # the refit on all of DS1 (``refit_full``, its epochs counted by refit_epoch) is no
        # fold of its own: fold and member 0, marked ``refit``
        refit = "refit_epoch" in metrics
        fit = 0 if refit else max(self.fit, 0)
        clean[f"{self.prefix}fold"] = float(fit // self.fits_per_fold)
        clean[f"{self.prefix}member"] = float(fit % self.fits_per_fold)
        clean[f"{self.prefix}refit"] = float(refit)
        self.run.log_metrics(clean, step=self.step)


@task(name="ingest-mitdb")
def ingest_task(cfg_json: dict[str, Any]) -> str:
    """Reuse the dataset when it was made with this config and this processing code (its
    manifest's config hash and processing digest) from this source as it is now: the same
    ``ingest.physionet`` settings, the same database folder, and the same checksum for every
    file (what the ingest flow's per-record parts are keyed on, found the same way: the
    published checksums, or the files' own); otherwise run the ingest flow, which remakes
    only the records whose part is stale. (Read under the folder's shared claim: an ingest
    writing it is waited for.)

    Looking the checksums up costs well under a second on a mirror; running the ingest flow
    every time would cost a Prefect task run per record and a rewrite of the whole folder.
    """
    cfg = ArrhythmiaTrainConfig.model_validate(cfg_json)
    out = dataset_dir(cfg)
    man = out / "manifest.json"
    data = cfg.ingest.arrhythmia
    physionet = cfg.ingest.physionet.model_dump(mode="json")
    log = get_run_logger()
    with reading(out, f"the dataset folder {out}", log=log):
        facts = json.loads(man.read_text()) if man.exists() else {}
    want = (config_hash(data), processing_digest())
    have = (facts.get("config_hash"), facts.get("processing_digest"))
    if facts and have == want:
        src = fetch_database.fn(data.database, physionet,
                                list(data.records) if data.records else None)  # fmt: skip
        why = _source_changed(facts, physionet, src)
        if why is None:
            log.info("dataset %s is up to date (config hash %s, processing code %s, source %s)",
                     out, *want, src["root"])  # fmt: skip
            return str(out)
        log.info("dataset %s was made from another source (%s); remaking it", out, why)
    elif man.exists():
        log.info("dataset %s was made with config %s and processing code %s; remaking it "
                 "for %s and %s", out, *have, *want)  # fmt: skip
    ingest = cfg.ingest.model_dump(mode="json")
    ingest.pop("out_dir")
    res = ingest_flow(overrides=ingest, out_dir=str(out))
    return str(res["dataset"])


def _source_changed(
    facts: Mapping[str, Any], physionet: dict[str, Any], src: Mapping[str, Any]
) -> str | None:
    """How the source now differs from the one a dataset's manifest says it was made from
    (None: it does not)."""
    made = facts.get("config", {}).get("physionet")
    if made != physionet:
        changed = sorted(k for k in {*physionet, *(made or {})}
                         if (made or {}).get(k) != physionet.get(k))  # fmt: skip
        return f"ingest.physionet {', '.join(changed)} differ"
    if facts.get("source_root") != src["root"]:
        return f"database folder {facts.get('source_root')}, now {src['root']}"
    old, new = facts.get("source_checksums") or {}, src["checksums"]
    if old != new:
        files = sorted(f for f in {*old, *new} if old.get(f) != new.get(f))
        return f"{len(files)} file(s) changed, added or gone: {', '.join(files[:5])}"
    return None


def _rhythm_gate_text(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return "off"
    return (
        f"S called N where the RR entropy exceeds {gate['entropy_min']:g} and the "
        f"normalised RMSSD {gate['nrmssd_min']:g} (atrial fibrillation)"
    )


def _quality_gate_text(keep_v_above: float | None) -> str:
    if keep_v_above is None:
        return "off"
    return f"in rejected signal, V only above probability {keep_v_above:g}"


@task(name="train-evaluate-register")
def train_task(cfg_json: dict[str, Any], data_dir: str) -> dict[str, Any]:
    """Train on DS1, evaluate on DS2, log everything to one MLflow run and register."""
    cfg = ArrhythmiaTrainConfig.model_validate(cfg_json)
    ds = load_beat_dataset(data_dir)
    want, have = config_hash(cfg.ingest.arrhythmia), ds.manifest.get("config_hash")
    if have != want:  # another ingest rewrote it after the ingest step
        raise ValueError(
            f"the dataset {data_dir} was rewritten under another config (hash {have}, this "
            f"training's {want}) after this training's ingest step; run the training again"
        )
    with tracking.start_run(cfg.experiment, run_name="train-arrhythmia",
                            tags={"task": "arrhythmia"}) as run:  # fmt: skip
        tracking.log_config(run, cfg)
        run.log_dict(ds.manifest, "dataset/manifest.json")
        epochs = _MlflowEpochs(run, fits_per_fold=cfg.seeds_per_fold)  # 1 without cv_folds
        bar = TqdmProgress("arrhythmia", show=("train_loss", cfg.monitor, "lr"),
                           fits_per_fold=cfg.seeds_per_fold if cfg.cv_folds else None)  # fmt: skip
        res = train_arrhythmia(ds, cfg, callbacks=[bar, epochs])
        if res.noise_source is not None:  # mixed in during training, kept in no dataset
            run.log_params({"resolved.noise_digest": res.noise_source["digest"],
                            "resolved.noise_verified": res.noise_source["verified"]})  # fmt: skip
            run.log_dict(res.noise_source, "dataset/noise.json")
        # with cross-validation each network's own (below); res.fit is only the first's
        single = {} if res.fold_fits else {"resolved.best_epoch": res.fit.best_epoch + 1,
                                           "resolved.stop_reason": res.fit.stop_reason}  # fmt: skip
        if res.refit is not None:  # the model logged: its epochs, and whether all ran
            single.update({"resolved.refit_epochs": len(res.refit.history),
                           "resolved.refit_stop_reason": res.refit.stop_reason})  # fmt: skip
        run.log_params(
            {
                "resolved.train_records": ",".join(res.train_records),
                **single,
                "resolved.n_parameters": sum(p.numel() for p in res.model.parameters()),
                # the gates chosen after training (on DS1 held-out records)
                "resolved.rhythm_gate": json.dumps(getattr(res.model, "rhythm_gate", None)),
                "resolved.quality_gate": json.dumps(getattr(res.model, "quality_gate", None)),
            }
        )
        if res.fold_fits:
            run.log_params(
                {
                    "resolved.cv_fold_records": ";".join(",".join(f) for f in res.fold_records),
                    "resolved.cv_fold_best_epochs": ",".join(
                        str(f.best_epoch + 1) for f in res.fold_fits
                    ),
                    "resolved.cv_fold_stop_reasons": ",".join(f.stop_reason for f in res.fold_fits),
                }
            )
        # DS2 is touched only here, after training and model selection are done.
        ds2 = ds.split_records("DS2")
        _, ds2_data = log_arrhythmia_datasets(run, ds, fit_records=res.train_records,
                                              val_records=res.val_records, eval_records=ds2)  # fmt: skip
        recs = ds.records(ds2, feature_settings(cfg))
        probs = predict_records(res.model, recs)
        y = np.concatenate([r.labels for r in recs])
        p = np.concatenate([q.argmax(axis=1) for q in probs])
        rid = np.concatenate([np.full(len(r), r.record_id) for r in recs])
        report = aami_report(y, p, rid)
        report["intervals"] = record_intervals(report["records"])  # patients, not beats
        for r_id, r in report["records"].items():  # the same signal facts evaluate reports
            r["signal"] = signal_summary(ds.manifest.get("records", {}).get(r_id, {}))
        # the DS2 figures are the logged model's, logged with it below (MLflow copies the
        # run's figures logged before the model to it without saying what they were measured on)
        tested = _flat_metrics(report, "test")
        others = {k: v for k, v in res.val_metrics.items() if v == v}
        others["train_seconds"] = res.train_seconds
        run.log_metrics(others)
        metrics = {**tested, **others}
        run.log_dict(report, DS2_REPORT)
        run.log_text(report_markdown(report, "DS2 (trained on DS1)"), "evaluation/ds2.md")
        tracking.log_confusion_matrix(
            run,
            report["confusion_matrix"],
            list(CLASS_NAMES),
            "evaluation/ds2_confusion.png",
            title="DS2 confusion matrix",
        )
        members = len(getattr(res.model, "members", [res.model]))
        card = arrhythmia_version_card(
            report,
            train_records=res.train_records,
            run_id=run.run_id,
            model_facts={
                "parameters": f"{sum(p.numel() for p in res.model.parameters()):,}",
                "networks averaged": members,
                "look-ahead (beats)": res.model.lookahead_beats + res.model.output_delay,
                "AF rhythm gate": _rhythm_gate_text(getattr(res.model, "rhythm_gate", None)),
                "quality gate": _quality_gate_text(getattr(res.model, "quality_gate", None)),
            },
        )
        ref = tracking.log_model(
            run,
            res.model,
            preprocessing={**res.preprocessing, "reference": _reference(ds, res.train_records, p)},
            config={
                "train": cfg.model_dump(mode="json"),
                "dataset_manifest": ds.manifest,
                "noise_source": res.noise_source,
            },
            registered_name=cfg.registered_name,
            description=card,
            model_description=ARRHYTHMIA_MODEL_DESCRIPTION,
        )
        run.log_metrics(tested, model_id=ref.model_id, dataset=ds2_data)
    return {
        "run_id": run.run_id,
        "model_uri": ref.uri,
        "version": ref.version,
        "metrics": metrics,
        "report": report,
        "evaluated_on": ds2_evaluated_on(recs, str(ds.manifest.get("database", "MIT-BIH"))),
    }


def ds2_evaluated_on(recs: Sequence[RecordBeats], database: str) -> str:
    """What the DS2 figures were measured on, for the gate (``evaluated_on``): the records
    scored, each with its beat count, and a digest of every scored beat's label (a revised
    annotation file changes labels, not always counts). Figures on fewer DS2 records (a
    config naming some) are another measure: the gate does not compare them."""
    order = sorted(recs, key=lambda r: r.record_id)
    h = hashlib.sha256()
    for r in order:
        labels = np.ascontiguousarray(r.labels, dtype="<i8")
        h.update(f"{r.record_id}:{len(labels)}\0".encode() + labels.tobytes())
    beats = " ".join(f"{r.record_id}:{len(r.labels)}" for r in order)
    return (
        f"{database} DS2: {len(recs)} records, {sum(len(r.labels) for r in recs)} beats "
        f"(record:beats {beats}), labels sha256 {h.hexdigest()[:16]}"
    )


def _reference(ds: BeatDataset, train_records: list[str], ds2_pred: np.ndarray) -> dict[str, Any]:
    """The beats the model was trained on and its calls on DS2 (records it never saw), as
    the reference ``vitalgru monitor arrhythmia`` compares new records with."""
    rows = np.flatnonzero(ds.beats["record_id"].isin(train_records).to_numpy())
    beats = ds.beats.iloc[rows]
    ok = beats["signal_ok"].to_numpy(bool) if "signal_ok" in beats.columns else None
    inputs = beat_inputs(
        np.asarray(ds.windows[rows]),
        beats["sample_idx"].to_numpy(np.int64),
        beats["record_id"].to_numpy(str),
        ds.fs,
        ok,
    )
    return arrhythmia_reference(inputs, ds2_pred, n_records=len(set(train_records)))


def _flat_metrics(report: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The figures of an :func:`aami_report` as flat metrics, named as
    :func:`vitalgru.types.aami_metric_names` names them (what gate keys are checked on)."""
    out = {
        f"{prefix}_{k}": float(report[k]) for k in AAMI_SUMMARY_STATS if report.get(k) is not None
    }
    for c, stats in report["classes"].items():
        for s, v in stats.items():
            if v is not None:
                out[f"{prefix}_{c.lower()}_{s}"] = float(v)
    return out


@flow(name="train-arrhythmia")
def train_arrhythmia_flow(
    config_path: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ingest MIT-BIH, train on DS1, evaluate on DS2, register and gate-promote.

    Returns
    -------
    dict
        ``run_id``, ``model_uri``, ``version``, ``metrics`` (flat, ``test_*`` on DS2,
        ``val_*`` on the DS1 validation records), ``promoted``, ``promotion_reason``,
        ``promotion_paired`` (the gate's paired record-bootstrap interval of the difference
        from the champion, or why there is none; None for a first champion), ``dataset`` and ``report_paths`` (JSON and markdown of the DS2 evaluation).
    """
    stop_with_this_process()  # a kill leaves no temporary server
    send_to_run_logs()  # the library's lines in the run's logs in Prefect
    cfg = load_arrhythmia_config(config_path, overrides)
    check_validation_records(cfg)  # also for a deployment's run, not only the CLI's
    cfg_json = cfg.model_dump(mode="json")
    data = ingest_task(cfg_json)
    out = train_task(cfg_json, data)
    # the evaluation is written before the gate: a folder that cannot be written stops the
    # flow before the version is promoted, not after
    paths = write_report(
        out["report"], cfg.report_dir.resolve() / f"ds2_v{out['version']}.json",
        f"DS2, model {out['model_uri']}",
    )  # fmt: skip
    decision = promote_task(
        cfg.registered_name, out["version"], out["metrics"], list(cfg.gate_keys),
        out["evaluated_on"], DS2_REPORT,
    )  # fmt: skip
    return {
        "run_id": out["run_id"],
        "model_uri": out["model_uri"],
        "version": out["version"],
        "metrics": out["metrics"],
        "promoted": decision["promoted"],
        "promotion_reason": decision["reason"],
        "promotion_paired": decision["paired"],
        "dataset": data,
        "report_paths": paths,
    }

"""Configuration: pydantic models, one per concern, loaded from YAML.

Unknown keys are errors (``extra="forbid"``), so a typo in a config file fails loudly
instead of silently falling back to a default. Default configs ship inside the package
(``vitalgru/configs``); ``configs/`` at the repository root holds editable copies.

Composition is one level deep: an experiment file may name profile files under
``defaults:`` (paths relative to itself, or names of packaged configs) and override keys;
reading and validating the files is :mod:`vitalgru.config_files`' (:func:`load_config`,
named here too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from vitalgru.config_checks import StrictConfig, not_empty, record_names_as_text

# the files' reading, named here as it always was: `from vitalgru.config import load_config`
from vitalgru.config_files import load_config as load_config
from vitalgru.config_files import resolve_config_dict as resolve_config_dict

# the ingest's sections, named here as they always were (the task configs nest them)
from vitalgru.config_ingest import ArrhythmiaDataConfig as ArrhythmiaDataConfig
from vitalgru.config_ingest import BeatWindowConfig as BeatWindowConfig
from vitalgru.config_ingest import FilterConfig as FilterConfig
from vitalgru.config_ingest import IngestConfig as IngestConfig
from vitalgru.config_ingest import PhysioNetConfig as PhysioNetConfig
from vitalgru.types import AAMI_CLASS_STATS, aami_metric_names

#: What an arrhythmia version can be gated on: the DS2 evaluation's metrics as the training
#: flow logs them (``test_v_f1``, ``test_jk_index``), less the per-class beat counts, which
#: are the same for every version.
ARRHYTHMIA_GATE_KEYS: tuple[str, ...] = aami_metric_names(
    "test", tuple(s for s in AAMI_CLASS_STATS if s != "n")
)
#: What an arrhythmia fit can early-stop on (``monitor``), and whether more or less is
#: better: the validation metrics of each epoch (``vitalgru.training.arrhythmia_fit.
#: evaluate_records``): (S F1 + V F1) / 2, the loss, the AAMI figures less the beat counts.
#: ``train_loss`` is not one: an epoch is chosen on held-out records.
ARRHYTHMIA_MONITOR_KEYS: dict[str, Literal["min", "max"]] = {
    "val_sv_f1": "max",
    "val_loss": "min",
    **dict.fromkeys(
        aami_metric_names("val", tuple(s for s in AAMI_CLASS_STATS if s != "n")), "max"
    ),
}
#: What an early-warning version can be gated on: the registered model's cross-validated
#: means (``pipelines.early_warning`` logs these names).
EARLY_WARNING_GATE_KEYS: tuple[str, ...] = ("utility", "auroc", "auprc")


def _gate_keys(v: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    """Gate keys are checked when the config is read: a typo was found at promotion,
    after the whole training had run."""
    if not v:
        raise ValueError(f"gate_keys must name at least one of {', '.join(known)}")
    unknown = [k for k in v if k not in known]
    if unknown:
        raise ValueError(
            f"gate_keys {unknown} are not metrics the evaluation logs; "
            f"choose from {', '.join(known)}"
        )
    return v


#: Largest seed a config takes: numpy's generators take seeds below 2**32, and a fit adds
#: its fold and member to the config's (a seed past it failed after the ingest had run).
MAX_SEED = 2**31 - 1


def config_hash(cfg: BaseModel) -> str:
    """Stable short hash of a resolved config (for manifests and caching)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# --- Task configs. Each class is owned by its task; keep edits inside the class body. ---


class ArrhythmiaTrainConfig(StrictConfig):
    """Arrhythmia beat classifier: data, model and training (``vitalgru train arrhythmia``)."""

    ingest: IngestConfig = IngestConfig()
    dataset_dir: Path | None = None  # None: ingest.out_dir
    # Where the DS2 evaluation of each registered version is written (ds2_v<N>.json, .md);
    # it was two folders above the dataset, outside the output tree for any other layout.
    report_dir: Path = Path("vitalgru-out/reports/arrhythmia")
    _no_empty_dataset = field_validator("dataset_dir", mode="before")(
        lambda v: not_empty(v, "dataset_dir", "ingest.out_dir")
    )
    _no_empty_report = field_validator("report_dir", mode="before")(
        lambda v: not_empty(v, "report_dir")
    )
    # Record-grouped validation inside DS1 (model selection, early stopping); these four
    # hold 263 S and 933 V beats. 201 and 203, DS1's atrial-fibrillation records, stay in
    # training: without them the model calls irregular AF beats S.
    val_records: tuple[str, ...] = ("118", "119", "220", "223")
    _names = field_validator("val_records", mode="before")(record_names_as_text)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    # wall-clock budget for training (None: no cap, as max_minutes_per_fit takes it)
    max_minutes: float | None = Field(default=18.0, gt=0)
    # torch intra-op threads (held to the CPUs the process may run on); on the shared
    # 2-core machine 2 threads were slower than 1
    num_threads: int = Field(default=1, ge=1, le=256)
    # Causal per-beat features (vitalgru.data.beat_features.FeatureSettings).
    template_beats: int = Field(default=32, ge=1)
    local_rr_beats: int = Field(default=10, ge=1)
    long_rr_beats: int = Field(default=300, ge=1)
    # Model (vitalgru.models.arrhythmia.ArrhythmiaGRU).
    conv_widths: tuple[Annotated[int, Field(ge=1)], ...] = (8, 16, 24)  # channels per layer
    d_beat: int = Field(default=64, ge=1)
    hidden: int = Field(default=64, ge=1)
    num_layers: int = Field(default=1, ge=1, le=4)
    dropout: float = Field(default=0.4, ge=0, lt=1)
    # beats after beat k whose GRU state labels beat k (features add rr_next: total 2)
    output_delay: int = Field(default=1, ge=0, le=1)
    # Optimisation: sequences of consecutive beats, random crops, AdamW + warmup/cosine.
    seq_len: int = Field(default=256, ge=2)
    batch_size: int = Field(default=16, ge=1)
    sequences_per_epoch: int = Field(default=256, ge=1)
    max_epochs: int = Field(default=30, ge=1)
    min_epochs: int = Field(default=10, ge=1)
    patience: int = Field(default=8, ge=0)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.1, ge=0)
    warmup_frac: float = Field(default=0.05, ge=0, lt=1)
    grad_clip: float | None = Field(default=1.0, gt=0)  # None: no clipping (<= 0 reverses)
    ema_decay: float | None = Field(default=None, gt=0, lt=1)  # weight averaging per step
    loss: Literal["ce", "focal"] = "ce"
    # w_c = (n / (K n_c))^p; p = 1 (full inverse frequency) won on validation S F1
    class_weight_power: float = Field(default=1.0, ge=0, le=1)
    # the cap on n / (K n_c) before the weights are divided by N's (so about 4.5 times it
    # relative to N on DS1: S 48.6, F and Q 89.9 with 20; see class_weights)
    max_class_weight: float = Field(default=20.0, ge=1)
    focal_gamma: float = Field(default=2.0, ge=0)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    augment_scale: float = Field(default=0.1, ge=0, lt=1)  # random per-sequence gain +-
    augment_noise: float = Field(default=0.02, ge=0)  # Gaussian noise, in template scale
    # Heart-rate augmentation: every RR interval of a training sequence times exp(u), u
    # uniform in +-augment_rate (one draw per sequence), so a patient is also seen at a
    # faster or slower rate. Only the absolute log-RR features move; the ratios to the
    # patient's running means, and the rhythm features, are unchanged by a common factor.
    augment_rate: float = Field(default=0.0, ge=0, lt=1)
    # Recorded noise (vitalgru.data.noise): the share of training sequences given a stretch
    # of real baseline wander / muscle artefact from noise_records of noise_database (read
    # through ingest.physionet: a mirror or PhysioNet), at an SNR drawn uniformly from
    # noise_snr_db (noise power: the channel's whole-record variance; nst's windowed measure
    # puts the same noise 7-13 dB lower, benchmarks/results/noise_scale.md). 0: off. The default cut false V calls in unseen
    # electrode-motion noise by 71 % and tied DS1 out of fold (runs 43-44).
    noise_augment: float = Field(default=1.0, ge=0, le=1)
    # Simulated atrial fibrillation (vitalgru.data.arrhythmia_dataset.simulated_af_record):
    # every training record also trains as a copy re-timed so that about this share of its
    # beats lie in AF episodes, where N and S beats are scored as "N or S". 0: off. 0.25 and
    # 0.5 tied or lost out of fold (runs 66-67: 0.811 / 0.804 against 0.814) and cut false S
    # in unseen AF patients by only 5-9 % (run 68), not adopted.
    simulated_af: float = Field(default=0.0, ge=0, lt=1)
    noise_database: str = "nstdb"
    noise_records: tuple[str, ...] = ("bw", "ma")
    noise_snr_db: tuple[float, float] = (-6.0, 18.0)
    # mean of S and V F1 on the validation records; one of ARRHYTHMIA_MONITOR_KEYS
    monitor: str = "val_sv_f1"
    # retrain on all DS1 for the best epoch count; needs cv_folds: null (the cross-validated
    # ensemble is its folds' networks, and a refit was skipped without a word)
    refit_full: bool = False
    # >= 2: record-grouped K-fold CV inside DS1 instead of val_records; each fold's model
    # is early-stopped on its held-out records, DS1 out-of-fold metrics are reported and
    # the K models are averaged into one ensemble (max_minutes covers all the fits).
    cv_folds: int | None = Field(default=4, ge=2, le=22)
    # Networks per CV fold, each from its own seed (seed + fold + member: consecutive
    # config seeds share most networks, see the README's arrhythmia section); a fold's
    # out-of-fold output is its networks' mean and the ensemble holds them all. 3 raised
    # DS1 out-of-fold (S+V F1)/2 from 0.766 +- 0.035 (one per fold, seeds 0-4) to 0.796
    # (benchmarks/results/arrhythmia_experiments.md, run 18). Needs cv_folds.
    seeds_per_fold: int = Field(default=3, ge=1, le=16)
    # Processes training the fits side by side (each with num_threads threads); the
    # result does not depend on it while max_minutes does not bind: max_minutes is the
    # wall time of all the fits, so one process gives each fit half the time two do (raise
    # max_minutes with it). Scripts using > 1 need an `if __name__ == "__main__"`. Held
    # to the CPUs the process may run on (taskset, a container's cpuset) over num_threads.
    workers: int = Field(default=2, ge=1, le=64)
    # RR intervals in the window of the AF rhythm features (entropy, normalised RMSSD).
    rhythm_beats: int = Field(default=64, ge=8, le=1000)
    # "auto": after training, pick the AF rhythm gate (S -> N in AF-like rhythm) that
    # maximises held-out (S+V F1)/2 (DS1 out-of-fold with cv_folds); "off": no gate.
    rhythm_gate: Literal["auto", "off"] = "auto"
    # "auto": then pick the quality gate (in signal with a bad live quality verdict, a V
    # call only above a V probability from QUALITY_KEEP_V_GRID) that maximises held-out
    # (S+V F1)/2, or none; "off": never.
    quality_gate: Literal["auto", "off"] = "auto"
    # DS2 metrics for promotion, each one of ARRHYTHMIA_GATE_KEYS
    gate_keys: tuple[str, ...] = ("test_s_f1", "test_v_f1")
    _gate = field_validator("gate_keys")(lambda v: _gate_keys(v, ARRHYTHMIA_GATE_KEYS))
    registered_name: str = "vitalgru-arrhythmia"
    experiment: str = "vitalgru-arrhythmia"

    @model_validator(mode="after")
    def _seeds_need_folds(self) -> ArrhythmiaTrainConfig:
        if self.seeds_per_fold > 1 and self.cv_folds is None:
            raise ValueError(
                f"seeds_per_fold {self.seeds_per_fold} needs cv_folds (with cv_folds: null "
                "one network is trained on the val_records split); set seeds_per_fold: 1"
            )
        return self

    @field_validator("monitor")
    @classmethod
    def _a_validation_metric(cls, v: str) -> str:
        # an unknown name failed at the end of the first epoch, after the ingest
        if v not in ARRHYTHMIA_MONITOR_KEYS:
            raise ValueError(
                f"monitor {v!r} is not a metric of the validation records; choose from "
                + ", ".join(ARRHYTHMIA_MONITOR_KEYS)
            )
        return v

    @model_validator(mode="after")
    def _refit_needs_one_split(self) -> ArrhythmiaTrainConfig:
        if self.refit_full and self.cv_folds is not None:
            raise ValueError(
                f"refit_full retrains the single network of cv_folds: null; with cv_folds "
                f"{self.cv_folds} the folds' networks are the model and no refit is made. "
                "Set refit_full: false, or cv_folds: null and seeds_per_fold: 1"
            )
        return self

    @model_validator(mode="after")
    def _validation_needs_records(self) -> ArrhythmiaTrainConfig:
        if self.cv_folds is None and not self.val_records:
            raise ValueError(
                "cv_folds: null early-stops on val_records, which is empty; name DS1 records "
                "to hold out, or set cv_folds"
            )
        return self

    @model_validator(mode="after")
    def _noise_settings(self) -> ArrhythmiaTrainConfig:
        lo, hi = self.noise_snr_db
        if not lo <= hi:
            raise ValueError(f"noise_snr_db must be (low, high) with low <= high, got {lo, hi}")
        if self.noise_augment > 0 and not self.noise_records:
            raise ValueError("noise_augment > 0 needs at least one of noise_records")
        return self


class EarlyWarningConfig(StrictConfig):
    """Sepsis early warning on Challenge-2019 tables (``vitalgru train early-warning``)."""

    physionet: PhysioNetConfig = PhysioNetConfig()
    data_dir: str = "challenge-2019/training_setA"  # relative to the mirror, or a folder path
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    n_folds: int = Field(default=5, ge=2, le=20)
    registered_name: str = "vitalgru-early-warning"
    experiment: str = "vitalgru-early-warning"
    cache_dir: Path | None = None  # parsed-cohort parquet cache; None -> ~/.cache/vitalgru
    _no_empty_cache = field_validator("cache_dir", mode="before")(
        lambda v: not_empty(v, "cache_dir", "the default cache folder under ~/.cache/vitalgru")
    )
    limit_patients: int | None = Field(default=None, ge=20)  # first N files, for quick runs
    out_dir: Path = Path("vitalgru-out/early_warning")
    _no_empty = field_validator("out_dir", mode="before")(lambda v: not_empty(v, "out_dir"))
    # Models cross-validated; "gru_d" is the one registered.
    models: tuple[Literal["gru_d", "gbm", "news2", "qsofa"], ...] = (
        "gru_d",
        "gbm",
        "news2",
        "qsofa",
    )
    # Share of each training set held out (by patient) for early stopping and the threshold.
    val_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    # Also feed the network the engineered causal summaries the trees use.
    engineered_inputs: bool = True
    hidden_size: int = Field(default=32, ge=1, le=1024)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    lr: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=1e-2, ge=0.0)
    batch_size: int = Field(default=32, ge=1)
    max_epochs: int = Field(default=20, ge=1)
    patience: int = Field(default=5, ge=1)
    pos_weight: float = Field(default=4.0, gt=0.0)  # weight of septic-labelled hours in the loss
    # Wall-clock cap of one GRU-D fit, checked after each epoch (null: none). It only stops
    # a fit (stop reason time_budget); the learning rate follows the epochs' steps alone.
    max_minutes_per_fit: float | None = Field(default=4.0, gt=0.0)
    gbm_max_iter: int = Field(default=500, ge=1)
    gbm_learning_rate: float = Field(default=0.03, gt=0.0)
    gbm_max_leaf_nodes: int = Field(default=31, ge=2)
    gbm_negative_subsample: float = Field(default=0.15, gt=0.0, le=1.0)  # label-0 hours kept
    gbm_min_samples_leaf: int = Field(default=300, ge=1)
    gbm_l2_regularization: float = Field(default=10.0, ge=0.0)
    gbm_max_features: float = Field(default=0.15, gt=0.0, le=1.0)  # features a split may use
    # Give the trees the path-signature terms too (Lévy areas of six vital signs over the
    # last 6 and 12 hours: vitalgru.baselines.features.signature_features). Ahead on the
    # validation shares for each of three tree seeds (benchmarks/results/
    # early_warning_experiments.md).
    gbm_signatures: bool = True
    # The model registered: the GRU-D alone, or its blend with the trees.
    register_model: Literal["gru_d", "gru_d_gbm_blend"] = "gru_d_gbm_blend"
    # The GRU-D's weight in the blend's risk (the trees get the rest); cross-validated and
    # registered alike. 0.25: above the equal-weight mean on the validation shares for each
    # of nine (GRU-D, trees) seed pairs (benchmarks/results/early_warning_experiments.md).
    blend_gru_weight: float = Field(default=0.25, ge=0.0, le=1.0)
    # torch intra-op threads, held to the CPUs the process may run on (taskset, a cpuset)
    torch_threads: int = Field(default=2, ge=1, le=64)
    # champion must beat on every key; each one of EARLY_WARNING_GATE_KEYS
    gate_keys: tuple[str, ...] = ("utility", "auroc")
    _gate = field_validator("gate_keys")(lambda v: _gate_keys(v, EARLY_WARNING_GATE_KEYS))

    @model_validator(mode="after")
    def _registered_model_is_cross_validated(self) -> EarlyWarningConfig:
        # the flow refused this only once it had started (a plain ValueError)
        needed = ("gru_d", "gbm") if self.register_model == "gru_d_gbm_blend" else ("gru_d",)
        missing = [m for m in needed if m not in self.models]
        if missing:
            other = " or register_model: gru_d" if "gru_d" in self.models else ""
            raise ValueError(
                f"register_model {self.register_model!r} needs models {list(needed)} "
                f"cross-validated; models {list(self.models)} lacks {missing}: add "
                f"{' and '.join(missing)} to models{other}"
            )
        return self

"""The ingest's settings: where PhysioNet data comes from, how an ECG is filtered and cut
into beat windows, and what ``vitalgru ingest`` builds (:class:`IngestConfig`).

The task configs of :mod:`vitalgru.config` nest these sections; each is checked alone and,
where two settings depend on each other (a filter's cut-offs and the sampling rate), by the
section that holds both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vitalgru.config_checks import StrictConfig, not_empty, record_names_as_text


class PhysioNetConfig(StrictConfig):
    """Where PhysioNet data comes from.

    ``mirror`` (or the environment variable ``VITALGRU_PHYSIONET_MIRROR``, resolved by
    :func:`vitalgru.io.sources.resolve_source`) is a local folder laid out like
    PhysioNet's (``<mirror>/<db>/<files>``); otherwise files are downloaded from
    ``base_url`` into ``cache_dir``.
    """

    base_url: str = "https://physionet.org/files/"
    mirror: Path | None = None
    cache_dir: Path | None = None  # None -> ~/.cache/vitalgru/physionet
    verify_checksums: bool = True
    retries: int = Field(default=3, ge=0, le=20)
    backoff_s: float = Field(default=1.0, ge=0)  # first retry wait, doubled per retry
    timeout_s: float = Field(default=60.0, gt=0)

    _no_empty_mirror = field_validator("mirror", mode="before")(
        lambda v: not_empty(v, "mirror", "no mirror, download from base_url")
    )
    _no_empty_cache = field_validator("cache_dir", mode="before")(
        lambda v: not_empty(v, "cache_dir", "the default cache folder, ~/.cache/vitalgru/physionet")
    )


class FilterConfig(StrictConfig):
    """ECG conditioning. Cut-offs follow common practice for diagnostic-bandwidth ECG
    reduced to the beat-classification band (AHA 2007 recommendations allow a 0.5 Hz
    high-pass for monitoring; most QRS energy lies below 40 Hz).

    They are the -3 dB points of one pass of the filter (the causal filter of a stream). The
    dataset's windows are filtered zero-phase, twice, which narrows the band: with the
    defaults -3 dB at 0.62 and 32.5 Hz at 360 Hz and a notch 3.1 Hz wide (58.5-61.6 Hz); see
    :func:`vitalgru.dsp.filters.ecg_clean`.

    A band-pass, ``0 < baseline_hz < lowpass_hz``, and a notch above 0 Hz or none (null);
    :class:`ArrhythmiaDataConfig` checks that each lies below the Nyquist frequency of
    ``windows.fs``. These are the conditions of :func:`vitalgru.dsp.filters.design_ecg_sos`,
    checked when the config is read: a filter it cannot design sent every record to the
    ingest's attrition.
    """

    baseline_hz: float = Field(default=0.5, gt=0)
    lowpass_hz: float = Field(default=40.0, gt=0)
    notch_hz: float | None = 60.0  # mains frequency of the source (MIT-BIH: USA, 60 Hz)
    order: int = Field(default=2, ge=1, le=8)

    @field_validator("notch_hz")
    @classmethod
    def _notch_above_zero(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError(f"notch_hz must be above 0 Hz, got {v} (null: no notch)")
        return v

    @model_validator(mode="after")
    def _band_pass(self) -> FilterConfig:
        if not self.baseline_hz < self.lowpass_hz:
            raise ValueError(
                f"baseline_hz ({self.baseline_hz}) must be below lowpass_hz "
                f"({self.lowpass_hz}) for a band-pass"
            )
        return self


class BeatWindowConfig(StrictConfig):
    """Beat-centred windows for arrhythmia classification."""

    lead: str | int = "MLII"  # lead name, or index; falls back to ``fallback_lead``
    fallback_lead: int = 0
    fs: float = Field(default=360.0, gt=0)  # every record is resampled to this rate
    before_s: float = Field(default=0.25, gt=0)
    after_s: float = Field(default=0.45, gt=0)
    local_rr_beats: int = Field(default=10, ge=1)
    quality_window_s: float = Field(default=10.0, gt=0)
    # How often the live (trailing-window) quality verdict is renewed; see signal_ok in
    # vitalgru.data.ingest.
    quality_hop_s: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _a_sample_each_side(self) -> BeatWindowConfig:
        # a window of no sample before or after the R peak cannot be cut (every record
        # was refused at the ingest)
        for name in ("before_s", "after_s"):
            v = getattr(self, name)
            if round(v * self.fs) < 1:
                raise ValueError(
                    f"{name} {v} s is under one sample at fs {self.fs} Hz; "
                    f"it must be at least {1 / self.fs:.3g} s"
                )
        return self


class ArrhythmiaDataConfig(StrictConfig):
    database: str = "mitdb"
    # The inter-patient DS1/DS2 split the training and its evaluation read; the only one
    # (a "patient" option put every record in a test split the training never reads).
    split: Literal["dechazal2004"] = "dechazal2004"
    exclude_records: tuple[str, ...] = ("102", "104", "107", "217")  # paced (de Chazal 2004)
    records: tuple[str, ...] | None = None  # None: every record the database lists
    filters: FilterConfig = FilterConfig()
    windows: BeatWindowConfig = BeatWindowConfig()

    _names = field_validator("exclude_records", "records", mode="before")(record_names_as_text)

    @field_validator("records")
    @classmethod
    def _names_a_record(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # an empty list (a run form's list with its items taken out) ingested every record
        # of the database, as null does, while the training refused it for lack of DS2
        if v is not None and not v:
            raise ValueError("names no record: name some, or null for every record")
        return v

    @model_validator(mode="after")
    def _filter_below_nyquist(self) -> ArrhythmiaDataConfig:
        # records are filtered at windows.fs: a cut-off at or above its Nyquist frequency
        # designs no filter
        f, nyq = self.filters, self.windows.fs / 2
        for name in ("lowpass_hz", "notch_hz"):
            v = getattr(f, name)
            if v is not None and not v < nyq:
                raise ValueError(
                    f"filters.{name} {v} Hz must lie below the Nyquist frequency {nyq:g} Hz "
                    f"of windows.fs {self.windows.fs:g} Hz"
                    + (" (null: no notch)" if name == "notch_hz" else "")
                )
        return self


class IngestConfig(StrictConfig):
    """What ``vitalgru ingest`` builds."""

    physionet: PhysioNetConfig = PhysioNetConfig()
    arrhythmia: ArrhythmiaDataConfig = ArrhythmiaDataConfig()
    out_dir: Path = Path("vitalgru-out/datasets/mitdb")
    workers: int = Field(default=2, ge=1, le=64)

    _no_empty = field_validator("out_dir", mode="before")(lambda v: not_empty(v, "out_dir"))

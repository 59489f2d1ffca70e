"""Signal processing (numpy/scipy only; ``fs`` in Hz is always explicit).

ECG: offline functions and their streaming (causal, stateful) counterparts.

==========================  ====================  ============================================
offline                     streaming             what
==========================  ====================  ============================================
``ecg_clean``               ``EcgCleaner``        baseline / band-pass / power-line filter
``ecg_rpeaks``              ``RpeakStream``       R-peak detection (same peaks either way)
``resample``                -                     polyphase resampling, exact rational ratio
``map_indices``             -                     sample indices between rates
``ecg_quality``             -                     per-window quality flags and score
``ecg_quality_trailing``    ``QualityStream``     the same on trailing windows (live verdicts)
``beat_windows``            -                     beat-centred windows for classification
``rr_features``             (causal columns)      RR-interval features (de Chazal 2004)
==========================  ====================  ============================================

Vital signs (hourly tables, many patients back to back, causal): ``vitals_plausibility``,
``vitals_last_observed``, ``vitals_time_since_observed``, ``patient_offsets``.
"""

from vitalgru.dsp.beats import RR_FEATURES, beat_windows, rr_features
from vitalgru.dsp.filters import (
    CausalFilter,
    EcgCleaner,
    check_fs,
    design_ecg_sos,
    ecg_clean,
    interpolate_nonfinite,
)
from vitalgru.dsp.quality import ecg_quality
from vitalgru.dsp.quality_result import QualityResult
from vitalgru.dsp.quality_stream import QualityStream, ecg_quality_trailing
from vitalgru.dsp.resample import map_indices, rate_ratio, resample
from vitalgru.dsp.rpeaks import RpeakStream, ecg_rpeaks
from vitalgru.dsp.vitals import (
    PLAUSIBILITY_LIMITS,
    patient_offsets,
    vitals_last_observed,
    vitals_plausibility,
    vitals_time_since_observed,
)

__all__ = [
    "PLAUSIBILITY_LIMITS",
    "RR_FEATURES",
    "CausalFilter",
    "EcgCleaner",
    "QualityResult",
    "QualityStream",
    "RpeakStream",
    "beat_windows",
    "check_fs",
    "design_ecg_sos",
    "ecg_clean",
    "ecg_quality",
    "ecg_quality_trailing",
    "ecg_rpeaks",
    "interpolate_nonfinite",
    "map_indices",
    "patient_offsets",
    "rate_ratio",
    "resample",
    "rr_features",
    "vitals_last_observed",
    "vitals_plausibility",
    "vitals_time_since_observed",
]

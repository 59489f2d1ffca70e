"""Signal processing (numpy/scipy only; ``fs`` in Hz is always explicit).

Offline functions and their streaming (causal, stateful) counterparts:

=====================  ===========================  ==========================================
offline                streaming                    what
=====================  ===========================  ==========================================
``ecg_clean``          ``EcgCleaner``               baseline / band-pass / power-line filter
``ecg_rpeaks``         ``RpeakStream``              R-peak detection (same peaks either way)
``resample``           -                            polyphase resampling, exact rational ratio
``map_indices``        -                            sample indices between rates
``ecg_quality``        -                            per-window quality flags and score
=====================  ===========================  ==========================================
"""

from vitalgru.dsp.filters import (
    CausalFilter,
    EcgCleaner,
    check_fs,
    design_ecg_sos,
    ecg_clean,
    interpolate_nonfinite,
)
from vitalgru.dsp.quality import QualityResult, ecg_quality
from vitalgru.dsp.resample import map_indices, rate_ratio, resample
from vitalgru.dsp.rpeaks import RpeakStream, ecg_rpeaks

__all__ = [
    "CausalFilter",
    "EcgCleaner",
    "QualityResult",
    "RpeakStream",
    "check_fs",
    "design_ecg_sos",
    "ecg_clean",
    "ecg_quality",
    "ecg_rpeaks",
    "interpolate_nonfinite",
    "map_indices",
    "rate_ratio",
    "resample",
]

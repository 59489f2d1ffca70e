"""ECG filters: zero-phase for offline work, causal with carried state for streaming.

Two forms of the same design:

* :func:`ecg_clean` filters a whole recording forwards and backwards (``sosfiltfilt``), so
  waves keep their timing (zero phase) and the magnitude response is squared.
* :class:`CausalFilter` / :class:`EcgCleaner` run ``sosfilt`` chunk by chunk and carry the
  filter state (``zi``) from one chunk to the next, so filtering a stream in any chunk sizes
  gives exactly what filtering it whole with the same causal filter gives.

Default cut-offs follow common ECG practice: a 0.5 Hz high-pass removes baseline wander
(AHA recommendation for monitoring-grade ECG, Kligfield et al. 2007, Circulation
115:1306) and a 40 Hz low-pass removes muscle noise; the power-line notch sits at 60 Hz
(North America, where MIT-BIH was recorded) or 50 Hz. The cut-offs are those of one pass
(order-2 Butterworth sections, -3 dB at 0.5 and 40 Hz; notch -3 dB over 59.0-61.0 Hz):
the band the causal filters pass. :func:`ecg_clean` runs the design twice, which squares
its response and narrows the band: -3 dB at 0.62 and 32.5 Hz at 360 Hz (33.0 Hz at
250 Hz, 35.6 Hz at 128 Hz), with a notch 3.1 Hz wide (58.5-61.6 Hz at 60 Hz). The arrhythmia models were trained on windows
filtered that way, so the design is kept as it is.

Non-finite samples (NaN, inf) are rejected with a ``ValueError`` naming the first bad index:
filtering would smear one NaN over the rest of the signal. Use
:func:`vitalgru.dsp.quality.ecg_quality` to flag such windows and
:func:`interpolate_nonfinite` to fill short gaps deliberately before filtering.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
from scipy import signal as sps

logger = logging.getLogger(__name__)

__all__ = [
    "CausalFilter",
    "EcgCleaner",
    "check_fs",
    "design_ecg_sos",
    "ecg_clean",
    "interpolate_nonfinite",
]

#: Quality factor of the power-line notch: a -3 dB width of notch_hz / 30 in one pass (2 Hz
#: at 60 Hz; 3.1 Hz zero-phase, where the response is squared), narrow enough to leave the
#: QRS spectrum (roughly 5-40 Hz) untouched.
NOTCH_Q = 30.0


def check_fs(fs: float, *, cutoffs_hz: Sequence[float] = (), what: str = "fs") -> float:
    """Validate a sampling rate and, optionally, that cut-offs lie below Nyquist.

    Parameters
    ----------
    fs : float
        Sampling frequency in Hz; must be positive and finite.
    cutoffs_hz : sequence of float
        Frequencies in Hz that must lie strictly between 0 and ``fs / 2``.
    what : str
        Name used in error messages.

    Returns
    -------
    float
        ``fs`` as a Python float.
    """
    if isinstance(fs, bool) or not isinstance(fs, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a number in Hz, got {type(fs).__name__}")
    fs = float(fs)
    if not math.isfinite(fs) or fs <= 0:
        raise ValueError(f"{what} must be a positive, finite sampling rate in Hz, got {fs}")
    nyq = fs / 2.0
    for c in cutoffs_hz:
        if not (0.0 < float(c) < nyq):
            raise ValueError(
                f"cut-off {c} Hz is not between 0 and the Nyquist frequency {nyq} Hz of "
                f"{what}={fs} Hz; lower the cut-off or resample to a higher rate first"
            )
    return fs


def _as_signal(x: np.ndarray, *, name: str = "x", allow_nonfinite: bool = False) -> np.ndarray:
    """``x`` as float64, 1-D ``(n,)`` or 2-D ``(n, channels)``; rejects NaN/inf unless asked."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (n,) or 2-D (n, channels), got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not allow_nonfinite:
        bad = ~np.isfinite(arr)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise ValueError(
                f"{name} has {int(bad.sum())} non-finite samples (first at index {first}); "
                "flag them with vitalgru.dsp.ecg_quality or fill short gaps with "
                "vitalgru.dsp.interpolate_nonfinite before filtering"
            )
    return arr


def interpolate_nonfinite(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN/inf samples by linear interpolation along axis 0 and say where.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n,)`` or ``(n, channels)`` signal.

    Returns
    -------
    filled : numpy.ndarray
        float64 copy, same shape, non-finite samples replaced (edges take the nearest finite
        value; an all-non-finite channel becomes zeros).
    mask : numpy.ndarray
        bool, same shape, True where a sample was filled.
    """
    arr = _as_signal(x, allow_nonfinite=True).copy()
    mask = ~np.isfinite(arr)
    cols = arr.reshape(arr.shape[0], -1)
    mcols = mask.reshape(arr.shape[0], -1)
    idx = np.arange(arr.shape[0])
    for c in range(cols.shape[1]):
        bad = mcols[:, c]
        if bad.all():
            cols[:, c] = 0.0
        elif bad.any():
            cols[bad, c] = np.interp(idx[bad], idx[~bad], cols[~bad, c])
    return arr, mask


def design_ecg_sos(
    fs: float,
    *,
    baseline_hz: float | None = 0.5,
    lowpass_hz: float | None = 40.0,
    notch_hz: float | None = 60.0,
    order: int = 2,
) -> np.ndarray:
    """Second-order sections of the ECG cleaning filter (Butterworth band + notch).

    Parameters
    ----------
    fs : float
        Sampling frequency in Hz.
    baseline_hz : float or None
        High-pass cut-off in Hz (baseline-wander removal); None skips it.
    lowpass_hz : float or None
        Low-pass cut-off in Hz; None skips it.
    notch_hz : float or None
        Power-line frequency in Hz (50 or 60); None skips the notch. A notch at or above
        Nyquist is an error.
    order : int
        Butterworth order of each of the high-pass and low-pass parts.

    Returns
    -------
    numpy.ndarray
        ``(n_sections, 6)`` float64 SOS matrix for :func:`scipy.signal.sosfilt`.
    """
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    cut = [c for c in (baseline_hz, lowpass_hz, notch_hz) if c is not None]
    fs = check_fs(fs, cutoffs_hz=cut)
    # A copy of a cached design: a streaming scorer filters each beat's stretch, and
    # designing the filter cost more than running it.
    return _design_ecg_sos(fs, baseline_hz, lowpass_hz, notch_hz, int(order)).copy()


@functools.lru_cache(maxsize=64)
def _design_ecg_sos(
    fs: float,
    baseline_hz: float | None,
    lowpass_hz: float | None,
    notch_hz: float | None,
    order: int,
) -> np.ndarray:
    if baseline_hz is not None and lowpass_hz is not None and baseline_hz >= lowpass_hz:
        raise ValueError(
            f"baseline_hz ({baseline_hz}) must be below lowpass_hz ({lowpass_hz}) for a band-pass"
        )
    parts = []
    if baseline_hz is not None:
        parts.append(sps.butter(order, baseline_hz, "highpass", fs=fs, output="sos"))
    if lowpass_hz is not None:
        parts.append(sps.butter(order, lowpass_hz, "lowpass", fs=fs, output="sos"))
    if notch_hz is not None:
        b, a = sps.iirnotch(notch_hz, NOTCH_Q, fs=fs)
        parts.append(sps.tf2sos(b, a))
    if not parts:
        raise ValueError("at least one of baseline_hz, lowpass_hz, notch_hz must be set")
    return np.vstack(parts)


def ecg_clean(
    x: np.ndarray,
    fs: float,
    *,
    baseline_hz: float | None = 0.5,
    lowpass_hz: float | None = 40.0,
    notch_hz: float | None = 60.0,
    order: int = 2,
) -> np.ndarray:
    """Zero-phase ECG cleaning: baseline-wander high-pass, low-pass and power-line notch.

    Runs :func:`scipy.signal.sosfiltfilt` along axis 0, so the effective magnitude response is
    the square of :func:`design_ecg_sos`'s and the phase is zero (wave timing is kept). The
    band is narrower than the cut-offs: with the defaults, -3 dB at 0.62 and 32.5 Hz at
    360 Hz (33.0 Hz at 250 Hz) and a notch 3.1 Hz wide (58.5-61.6 Hz); the cut-offs are the
    -3 dB points of one pass. For a stream use :class:`EcgCleaner`, the causal counterpart
    (one pass: -3 dB at 0.5 and 40 Hz, notch 2 Hz wide).

    Parameters
    ----------
    x : numpy.ndarray
        ``(n,)`` or ``(n, channels)`` signal in physical units (mV); finite values only.
    fs : float
        Sampling frequency in Hz.
    baseline_hz, lowpass_hz, notch_hz, order
        See :func:`design_ecg_sos`.

    Returns
    -------
    numpy.ndarray
        float64 array with the shape of ``x``.
    """
    arr = _as_signal(x)
    sos = design_ecg_sos(
        fs, baseline_hz=baseline_hz, lowpass_hz=lowpass_hz, notch_hz=notch_hz, order=order
    )
    if arr.shape[0] == 0:
        return arr.copy()
    # sosfiltfilt pads by reflection; very short inputs get the longest pad they allow.
    padlen = min(3 * (2 * sos.shape[0] + 1), arr.shape[0] - 1)
    return _sosfiltfilt(sos, arr, padlen)


def _sosfiltfilt(sos: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """:func:`scipy.signal.sosfiltfilt` along axis 0 with odd padding, bit for bit, holding
    two copies of the padded signal at a time where scipy holds three: the padded input is
    dropped once the forward pass has run (a day's lead at 1000 Hz is 0.7 GB a copy)."""
    if padlen > 0:
        first, last = x[:1], x[-1:]
        ext = np.concatenate(
            (2 * first - x[padlen:0:-1], x, 2 * last - x[-2 : -(padlen + 2) : -1]), axis=0
        )
    else:
        ext = x
    zi = sps.sosfilt_zi(sos).reshape((sos.shape[0], 2) + (1,) * (x.ndim - 1))
    y, _ = sps.sosfilt(sos, ext, axis=0, zi=zi * ext[:1])
    del ext
    z = zi * y[-1:]
    y, _ = sps.sosfilt(sos, y[::-1], axis=0, zi=z)  # the forward output is freed here
    y = y[::-1]
    return y[padlen:-padlen] if padlen > 0 else y


class CausalFilter:
    """A causal SOS filter whose state is carried across chunks (for streaming).

    ``process`` on consecutive chunks returns exactly what :func:`scipy.signal.sosfilt`
    returns on their concatenation (same initial state), whatever the chunk sizes.

    Parameters
    ----------
    sos : numpy.ndarray
        ``(n_sections, 6)`` second-order sections.
    n_channels : int or None
        Number of channels of 2-D chunks ``(n, n_channels)``; None for 1-D chunks ``(n,)``.
    steady_state : bool
        If True the state is set from the first sample (``sosfilt_zi`` scaled by it), which
        suppresses the start-up transient of a signal with a DC offset; else zeros.
    """

    def __init__(
        self, sos: np.ndarray, *, n_channels: int | None = None, steady_state: bool = True
    ) -> None:
        sos = np.asarray(sos, dtype=np.float64)
        if sos.ndim != 2 or sos.shape[1] != 6:
            raise ValueError(f"sos must have shape (n_sections, 6), got {sos.shape}")
        self.sos = sos
        self.n_channels = n_channels
        self.steady_state = steady_state
        self._zi: np.ndarray | None = None
        self.n_seen = 0

    def reset(self) -> None:
        """Forget the carried state (start a new stream)."""
        self._zi = None
        self.n_seen = 0

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter the next chunk.

        Parameters
        ----------
        chunk : numpy.ndarray
            ``(n,)`` (or ``(n, n_channels)``) finite samples; ``n`` may be 0.

        Returns
        -------
        numpy.ndarray
            float64, same shape as ``chunk``.
        """
        arr = _as_signal(chunk, name="chunk")
        expect = 1 if self.n_channels is None else 2
        if arr.ndim != expect or (expect == 2 and arr.shape[1] != self.n_channels):
            want = "(n,)" if self.n_channels is None else f"(n, {self.n_channels})"
            raise ValueError(f"chunk must have shape {want}, got {arr.shape}")
        if arr.shape[0] == 0:
            return arr.copy()
        if self._zi is None:
            base = sps.sosfilt_zi(self.sos)  # (n_sections, 2)
            if arr.ndim == 2:
                base = np.repeat(base[:, :, None], arr.shape[1], axis=2)
            scale = arr[0] if self.steady_state else np.zeros_like(arr[0])
            self._zi = base * scale
        y, self._zi = sps.sosfilt(self.sos, arr, axis=0, zi=self._zi)
        self.n_seen += arr.shape[0]
        return y


class EcgCleaner(CausalFilter):
    """Causal counterpart of :func:`ecg_clean` for streams (same design, one pass).

    The response is the single-pass filter of :func:`design_ecg_sos` (not squared, not
    zero-phase): its -3 dB points are the cut-offs (0.5-40 Hz by default, notch 2 Hz wide),
    a wider band than :func:`ecg_clean`'s two passes, and waves are delayed by the filter's
    group delay (a few ms in the QRS band for the default order-2 design). Parameters as in
    :func:`design_ecg_sos`, plus ``n_channels`` and ``steady_state`` as in
    :class:`CausalFilter`.
    """

    def __init__(
        self,
        fs: float,
        *,
        baseline_hz: float | None = 0.5,
        lowpass_hz: float | None = 40.0,
        notch_hz: float | None = 60.0,
        order: int = 2,
        n_channels: int | None = None,
        steady_state: bool = True,
    ) -> None:
        self.fs = check_fs(fs)
        super().__init__(
            design_ecg_sos(
                fs, baseline_hz=baseline_hz, lowpass_hz=lowpass_hz, notch_hz=notch_hz, order=order
            ),
            n_channels=n_channels,
            steady_state=steady_state,
        )

"""Resampling between sampling rates (128, 250, 257, 360, 500 Hz, ...) and index mapping.

:func:`resample` uses polyphase filtering (:func:`scipy.signal.resample_poly`) with the exact
rational ratio ``fs_out / fs_in`` reduced to lowest terms (257 -> 360 Hz is up 360, down 257),
so no rate is rounded and the output length is ``ceil(n * fs_out / fs_in)``; a ratio too fine
for that (359.99 -> 360 Hz) is taken at the closest one with terms up to ``MAX_RATIO_TERM``
when it is within ``MAX_RATE_ERROR`` (:func:`rate_ratio`, logged). The
anti-aliasing (downsampling) and anti-imaging (upsampling) filter is a Kaiser-windowed FIR
designed here (:func:`lowpass_taps`), applied with zero phase: sample ``k`` of the output is
at time ``k / fs_out`` exactly like sample ``i`` of the input is at ``i / fs_in``. With ``nyq``
the lower of the two Nyquist frequencies, it passes ``0 - 0.8 nyq`` flat (within 0.01 dB; 100 Hz
for 360 -> 250 Hz, 51 Hz for 360 -> 128 Hz), is -6 dB at ``0.9 nyq`` and attenuates everything
from ``nyq`` up by at least 60 dB, so an alias or an image is at least 60 dB below the tone it
comes from. (scipy's default filter has its -6 dB point at ``nyq`` itself: a 126 Hz tone
resampled 360 -> 250 Hz came out at 124 Hz only 7 dB down.)

:func:`map_indices` converts sample indices (R peaks, annotations) between rates with the same
time convention.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from vitalgru.dsp.filters import _as_signal, check_fs

logger = logging.getLogger(__name__)

__all__ = ["MAX_RATE_ERROR", "MAX_RATIO_TERM", "lowpass_taps", "map_indices", "rate_ratio",
           "resample"]  # fmt: skip

#: Largest numerator/denominator of the ratio :func:`rate_ratio` gives; a rate such as
#: 359.99 Hz (36000/35999 to 360 Hz) would otherwise need an impractically long polyphase
#: filter, and is taken at the closest ratio within it instead.
MAX_RATIO_TERM = 10_000
#: Largest relative rate error of that closest ratio (1e-4: 0.1 ms in a 1 s RR interval);
#: a pair of rates no ratio within ``MAX_RATIO_TERM`` comes this close to is refused.
MAX_RATE_ERROR = 1e-4


def rate_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """``(up, down)`` with ``fs_out / fs_in == up / down`` in lowest terms.

    Exact when both terms are at most :data:`MAX_RATIO_TERM`; otherwise the closest
    ratio within them (:meth:`fractions.Fraction.limit_denominator`: 359.99 -> 360 Hz is
    taken as 1/1), logged once per pair of rates with its relative rate error. The
    signal and the sample indices (:func:`resample`, :func:`map_indices`, the live
    monitor) all use that same ratio, so beats stay on their samples; only the time
    scale is off, by that error.

    Parameters
    ----------
    fs_in, fs_out : float
        Sampling rates in Hz; non-integer rates are taken as exact decimals (``128.5``).

    Returns
    -------
    tuple of int
        ``(up, down)``.

    Raises
    ------
    ValueError
        A rate that is not positive and finite, or no ratio with terms up to
        :data:`MAX_RATIO_TERM` within :data:`MAX_RATE_ERROR` of the exact one.
    """
    fs_in = check_fs(fs_in, what="fs_in")
    fs_out = check_fs(fs_out, what="fs_out")
    return _ratio(fs_in, fs_out)


@lru_cache(maxsize=256)
def _ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    exact = Fraction(str(fs_out)) / Fraction(str(fs_in))
    if exact.numerator <= MAX_RATIO_TERM and exact.denominator <= MAX_RATIO_TERM:
        return exact.numerator, exact.denominator
    # bound the larger term: the denominator of a ratio below 1, the numerator above it
    small = (exact if exact < 1 else 1 / exact).limit_denominator(MAX_RATIO_TERM)
    near = small if exact < 1 or small == 0 else 1 / small
    error = float(abs(near - exact) / exact)  # 1 when nothing but 0 is near
    if error > MAX_RATE_ERROR:
        raise ValueError(
            f"the ratio {fs_out}/{fs_in} Hz reduces to {exact.numerator}/{exact.denominator}, "
            f"too fine for polyphase resampling (terms above {MAX_RATIO_TERM}), and the "
            f"closest ratio within them ({near.numerator}/{near.denominator}) is {error:.1e} "
            f"off the rate (more than {MAX_RATE_ERROR:.0e}); state the rate in the header "
            "or the feed as the recorder sampled it, or resample it first"
        )
    logger.warning(
        "%s Hz -> %s Hz: the exact ratio %s/%s is too fine for polyphase resampling; taken "
        "as %s/%s, a relative rate error of %.1e (the signal's time scale is off by that, "
        "its beats stay on their samples)",
        fs_in, fs_out, exact.numerator, exact.denominator, near.numerator, near.denominator,
        error,
    )  # fmt: skip
    return near.numerator, near.denominator


#: The resampling filter, relative to the lower Nyquist frequency: -6 dB at
#: ``CUTOFF_NYQ``, transition ``CUTOFF_NYQ +- TRANSITION_NYQ / 2`` (0.8-1.0: flat below
#: 0.8, stopband from the Nyquist frequency on, so nothing above it folds back),
#: ``STOPBAND_DB`` attenuation in the stopband (Kaiser's design formula; 10 dB of margin
#: over the 60 dB the module promises).
CUTOFF_NYQ = 0.9
TRANSITION_NYQ = 0.2
STOPBAND_DB = 70.0


@lru_cache(maxsize=32)
def _taps(up: int, down: int) -> np.ndarray:
    rate = max(up, down)  # the filter runs at up * fs_in; the lower Nyquist is 1 / rate of its
    numtaps, beta = sps.kaiserord(STOPBAND_DB, TRANSITION_NYQ / rate)
    numtaps |= 1  # odd: a whole-sample delay, which resample_poly removes exactly
    h = sps.firwin(numtaps, CUTOFF_NYQ / rate, window=("kaiser", beta))
    h.flags.writeable = False
    return h


def lowpass_taps(fs_in: float, fs_out: float) -> np.ndarray:
    """The low-pass FIR :func:`resample` runs at ``up * fs_in`` (``up, down`` from
    :func:`rate_ratio`): Kaiser window, -6 dB at 0.9 and >= 60 dB down from 1.0 of the lower
    Nyquist frequency, unit gain at DC (``resample_poly`` multiplies it by ``up``).

    Returns
    -------
    numpy.ndarray
        ``(numtaps,)`` float64, ``numtaps`` odd; a read-only array shared between calls.
    """
    return _taps(*rate_ratio(fs_in, fs_out))


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample a signal from ``fs_in`` to ``fs_out`` (polyphase, exact rational ratio).

    Parameters
    ----------
    x : numpy.ndarray
        ``(n,)`` or ``(n, channels)`` finite samples; resampled along axis 0.
    fs_in, fs_out : float
        Input and output sampling rates in Hz.

    Returns
    -------
    numpy.ndarray
        float64, ``(ceil(n * fs_out / fs_in),)`` or ``(ceil(n * fs_out / fs_in), channels)``,
        low-pass filtered by :func:`lowpass_taps` (flat to 0.8, -6 dB at 0.9 of the lower
        Nyquist frequency). A copy of ``x`` when the rates are equal (nothing filtered).
    """
    arr = _as_signal(x)
    up, down = rate_ratio(fs_in, fs_out)
    if up == down:
        return arr.copy()
    if arr.shape[0] == 0:
        return np.zeros((0,) + arr.shape[1:])
    if arr.shape[0] == 1:  # a line through one sample has no slope: it was NaN
        return np.repeat(arr.astype(np.float64), -(-up // down), axis=0)
    # padtype="line" extends the signal by its end trend, so a baseline offset or drift does
    # not ring at the edges as it would with zero padding.
    return sps.resample_poly(arr, up, down, axis=0, window=_taps(up, down), padtype="line")


def map_indices(
    idx: np.ndarray,
    fs_in: float,
    fs_out: float,
    *,
    n_out: int | None = None,
    n_in: int | None = None,
) -> np.ndarray:
    """Map sample indices from a signal at ``fs_in`` to the same instants at ``fs_out``.

    Index ``i`` is at time ``i / fs_in``; it maps to ``round(i * fs_out / fs_in)`` (half away
    from zero, computed exactly in integers for the rational ratio). The last samples of a
    signal can map past the end of its :func:`resample` output when the rate falls by 2x or
    more (360 -> 128 Hz: sample 10 of 11 maps to 4, the output has 4 samples), so give
    ``n_in`` or ``n_out`` to map into a signal of known length.

    Parameters
    ----------
    idx : numpy.ndarray
        ``(k,)`` non-negative integer sample indices at ``fs_in``.
    fs_in, fs_out : float
        Sampling rates in Hz.
    n_out : int or None
        Length of the signal at ``fs_out``; if given, indices are clipped to ``n_out - 1``.
    n_in : int or None
        Length of the signal at ``fs_in`` (indices must lie in it); if given, indices are
        clipped to the last sample of its :func:`resample` output,
        ``ceil(n_in * fs_out / fs_in) - 1``.

    Returns
    -------
    numpy.ndarray
        ``(k,)`` int64 indices at ``fs_out``.
    """
    arr = np.asarray(idx)
    if arr.dtype.kind not in "iu":
        if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
            raise TypeError(f"idx must be integer sample indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"idx must be non-negative sample indices, got minimum {arr.min()}")
    up, down = rate_ratio(fs_in, fs_out)
    out = (arr * (2 * up) + down) // (2 * down)  # round(i * up / down), ties upwards
    if n_in is not None:
        if n_in < 1:
            raise ValueError(f"n_in must be a positive length, got {n_in}")
        if arr.size and arr.max() >= n_in:
            raise ValueError(
                f"idx must be sample indices of a signal of n_in={n_in} samples, got "
                f"maximum {arr.max()}"
            )
        out = np.minimum(out, -(-n_in * up // down) - 1)  # resample's length, less one
    if n_out is not None:
        if n_out < 1:
            raise ValueError(f"n_out must be a positive length, got {n_out}")
        out = np.minimum(out, n_out - 1)
    return out.astype(np.int64)

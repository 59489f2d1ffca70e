"""Recorded ECG noise for training-time augmentation of the arrhythmia classifier.

Beats in real monitoring come with electrode motion, muscle artefact and baseline wander,
and a classifier that has only seen clean Holter beats calls noise bursts ventricular
(``benchmarks/noise_stress.py``: 452 false V calls in 2,278 beats of nstdb record 118e12).
Gaussian noise is a poor stand-in: muscle artefact comes in bursts with a broad
spectrum, and baseline wander is slow and large. The MIT-BIH Noise Stress Test Database
(nstdb, Moody, Muldrow & Mark 1984) holds half-hour recordings of each noise type alone
(``bw``, ``ma``, ``em``), made on active volunteers with the ECG out of view; this module
turns such records into a bank of noise the training adds to beats.

Scale: the signal power is ``a**2 / 8`` for a QRS peak-to-peak amplitude ``a``, as in
nstdb, the noise power is the noise channel's variance over the whole record, and
``SNR = 10 log10(signal / noise)`` in dB. That noise power is *not* nst's: PhysioNet's
``nst``, which made nstdb's test records, measures noise as the root mean square of
1-second windows, each with its own mean removed (trimmed mean of the first 300), which
leaves out slow drift and the rarest bursts. By that measure the bank's channels are
6.8-13.3 dB quieter than their variance says (``bw`` 11.5-13.3, ``ma`` 6.8-7.5; measured
by ``benchmarks/noise_scale.py``), so the default -6 to 18 dB is about 1 to 31 dB in
nstdb's terms. The range was chosen with this scale (``arrhythmia_experiments.md``, runs
41-45) and is kept. The bank holds each noise channel
scaled to unit variance *before* the dataset's ECG filter, then filtered like the ECG, so
a stretch multiplied by ``a / (sqrt(8) 10**(SNR / 20))`` is what the ingest would have
seen had that noise been added to the raw recording at that SNR (most of ``bw``'s power
lies under the 0.5 Hz high-pass and is removed, as it would be).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import torch

from vitalgru.config import FilterConfig
from vitalgru.data.ingest import dataset_filter
from vitalgru.dsp.filters import interpolate_nonfinite
from vitalgru.dsp.resample import resample
from vitalgru.io.checksums import sha256_file
from vitalgru.io.physionet import Database
from vitalgru.io.wfdb_header import read_header

#: Shortest usable noise channel, in seconds (a training crop spans a few minutes).
MIN_NOISE_S = 60.0


@dataclass(frozen=True)
class NoiseBank:
    """Filtered noise channels at the dataset's sampling rate.

    Attributes
    ----------
    channels : list of numpy.ndarray
        ``(n,)`` float32 each: unit variance before filtering, then filtered.
    names : list of str
        ``"<record>:<channel>"`` of each.
    fs : float
    source : mapping, optional
        What the channels were read from (:func:`noise_source`), where known.
    """

    channels: list[np.ndarray]
    names: list[str]
    fs: float
    source: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.channels or len(self.channels) != len(self.names):
            raise ValueError("a NoiseBank needs at least one channel, each with a name")


def load_noise_bank(
    db: Database, records: Sequence[str], fs: float, filters: Mapping[str, Any]
) -> NoiseBank:
    """Read noise-only records and prepare them like the dataset's ECG.

    Parameters
    ----------
    db : vitalgru.io.physionet.Database
        Where the records are (``nstdb``: a local mirror or PhysioNet).
    records : sequence of str
        Record names (``"bw"``, ``"ma"``, ``"em"``); every channel of each is used.
    fs : float
        The dataset's sampling rate (records at another rate are resampled).
    filters : mapping
        The dataset's ``filters`` (a :class:`vitalgru.config.FilterConfig` as a dict, as
        in its manifest), applied by :func:`vitalgru.data.ingest.dataset_filter`.

    Raises
    ------
    ValueError
        No records, malformed filter settings, or a channel that is shorter than a
        minute, flat or all missing.
    """
    if not records:
        raise ValueError("no noise records given")
    channels, names = [], []
    f = FilterConfig.model_validate(dict(filters))
    for rid in records:
        rec = db.read_record(rid)
        for c, name in enumerate(rec.channels):
            raw = rec.signal[:, c].astype(np.float64)
            if not np.isfinite(raw).any():
                raise ValueError(f"noise record {rid} channel {name} is all missing")
            raw, _ = interpolate_nonfinite(raw)
            if rec.fs != fs:
                raw = resample(raw, rec.fs, fs)
            if raw.size < MIN_NOISE_S * fs:
                raise ValueError(
                    f"noise record {rid} channel {name}: {raw.size / fs:.1f} s, "
                    f"need at least {MIN_NOISE_S:.0f} s"
                )
            raw = raw - raw.mean()
            sd = float(raw.std())
            if not sd > 0:
                raise ValueError(f"noise record {rid} channel {name} is flat")
            channels.append(dataset_filter(raw / sd, fs, f).astype(np.float32))
            names.append(f"{rid}:{name}")
    return NoiseBank(channels, names, float(fs))


def noise_source(db: Database, records: Sequence[str]) -> dict[str, Any]:
    """The files a noise bank of ``records`` is read from, for the run that trains with it.

    The noise changes the trained weights as much as the beats do, but is mixed in during
    training and kept in no dataset: this is its record. Each record's header and the
    signal files the header names are hashed (after reading; nstdb's three noise records
    are a few MB).

    Returns
    -------
    dict
        ``database`` (``db.name``), ``version``, ``records``, ``files`` (``name``,
        ``size`` in bytes, ``sha256`` of each, in reading order), ``digest`` (SHA-256, 16
        hex digits, over every file's name and SHA-256: one value that changes when any
        byte of them does), ``verified`` (whether every file was checked against the
        database's ``SHA256SUMS.txt`` before reading) and ``verification`` (why not,
        in words, where not).
    """
    files: list[dict[str, Any]] = []
    for rid in dict.fromkeys(records):
        parent = PurePosixPath(rid).parent
        names = [f"{PurePosixPath(rid).name}.hea", *read_header(db.root, rid).data_files()]
        for rel in dict.fromkeys(str(parent / n) if str(parent) != "." else n for n in names):
            path = db.root / rel
            files.append({"name": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f['name']}\0{f['sha256']}\n".encode())
    sums = db.checksums() if db.verify_checksums else {}
    if not db.verify_checksums:
        why = "not verified: checksum verification is off (verify_checksums)"
    elif not sums:
        why = f"not verified: {db.name} has no SHA256SUMS.txt; the hashes are of the files read"
    elif missing := [f["name"] for f in files if f["name"] not in sums]:
        why = f"not verified: SHA256SUMS.txt does not list {', '.join(missing)}"
    else:
        why = "verified against SHA256SUMS.txt"
    return {
        "database": db.name,
        "version": db.version,
        "records": list(dict.fromkeys(records)),
        "files": files,
        "digest": h.hexdigest()[:16],
        "verified": why.startswith("verified"),
        "verification": why,
    }


def add_recorded_noise(
    x: torch.Tensor,
    sample_idx: torch.Tensor,
    lengths: torch.Tensor,
    bank: NoiseBank,
    n_samples: int,
    p: float,
    snr_db: tuple[float, float],
    gen: torch.Generator,
) -> torch.Tensor:
    """Add a stretch of recorded noise to some sequences' beat morphology.

    Each sequence, with probability ``p``, gets noise from one bank channel on a random
    run of consecutive beats (a quarter to all of them), at an SNR drawn uniformly from
    ``snr_db``. Beats keep their true spacing: beat ``k``'s window takes the noise that
    lies ``sample_idx[k] - sample_idx[first]`` samples into the stretch, so overlapping
    windows share noise as they would in a recording. The noise enters both morphology
    channels (the window and the window minus the running template, which a median over
    many beats keeps nearly clean) in the template-amplitude units of the features; the
    QRS peak-to-peak amplitude of the SNR is the template's (channel 0 minus channel 1).

    Parameters
    ----------
    x : torch.Tensor
        ``(B, T, 2 * n_samples + F)`` beat features (the layout of
        :func:`vitalgru.data.beat_features.beat_features`).
    sample_idx : torch.Tensor
        ``(B, T)`` R-peak positions at ``bank.fs``.
    lengths : torch.Tensor
        ``(B,)`` valid beats per sequence (the rest is padding).
    bank : NoiseBank
    n_samples : int
        Samples per beat window.
    p : float
        Share of sequences that get noise.
    snr_db : (float, float)
        SNR range in dB.
    gen : torch.Generator
        Source of randomness (seeded: the same draws every run).

    Returns
    -------
    torch.Tensor
        A new tensor (``x`` itself when no sequence drew noise; ``x`` is never modified).
    """
    lo, hi = snr_db
    b_size, t_max, _ = x.shape
    # noise * gain * (template peak-to-peak) is the noise at the drawn SNR
    add = np.zeros((b_size, t_max, n_samples), np.float32)
    gain = np.zeros((b_size, t_max, 1), np.float32)
    idx_all = sample_idx.numpy()
    for b in range(b_size):
        n = int(lengths[b])
        draws = torch.rand(5, generator=gen).tolist()
        if draws[0] >= p or n < 1:
            continue
        run = max(1, int(round(n * (0.25 + 0.75 * draws[1]))))
        start = int(draws[2] * (n - run + 1))
        noise = bank.channels[int(torch.randint(len(bank.channels), (1,), generator=gen))]
        rel = idx_all[b, start : start + run] - idx_all[b, start]
        span = int(rel[-1]) + n_samples
        offset = 0 if span >= noise.size else int(draws[3] * (noise.size - span))
        pos = (offset + rel[:, None] + np.arange(n_samples)[None, :]) % noise.size  # wraps
        add[b, start : start + run] = noise[pos]
        gain[b, start : start + run] = 1.0 / (
            np.sqrt(8.0) * 10.0 ** ((lo + (hi - lo) * draws[4]) / 20.0)
        )
    if not gain.any():
        return x
    template = x[..., :n_samples] - x[..., n_samples : 2 * n_samples]
    ptp = template.amax(dim=-1, keepdim=True) - template.amin(dim=-1, keepdim=True)
    noise_t = torch.from_numpy(add) * torch.from_numpy(gain) * ptp
    out = x.clone()
    out[..., :n_samples] += noise_t
    out[..., n_samples : 2 * n_samples] += noise_t
    return out

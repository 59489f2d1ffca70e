"""Recorded-noise bank (nstdb) and the augmentation that adds it to beat features."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vitalgru.config import FilterConfig, PhysioNetConfig
from vitalgru.data.beat_features import N_RR_FEATURES
from vitalgru.data.noise import NoiseBank, add_recorded_noise, load_noise_bank, noise_source
from vitalgru.io import open_database

L = 40  # samples per beat window in the synthetic batches


class _Db:
    """Stands in for a Database: one record of the given channels."""

    def __init__(self, signal: np.ndarray, fs: float = 360.0) -> None:
        self.rec = SimpleNamespace(
            signal=signal, fs=fs, channels=tuple(f"c{i}" for i in range(signal.shape[1]))
        )

    def read_record(self, rid: str) -> SimpleNamespace:
        return self.rec


def _batch(lengths: list[int], gap: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Beats ``gap`` samples apart whose template (channel 0 - channel 1) has
    peak-to-peak 2, and random RR features."""
    t_max = max(lengths)
    g = torch.Generator().manual_seed(0)
    template = torch.sin(torch.linspace(0, 2 * np.pi, L))
    ch1 = 0.1 * torch.randn((len(lengths), t_max, L), generator=g)
    rr = torch.randn((len(lengths), t_max, N_RR_FEATURES), generator=g)
    x = torch.cat([ch1 + template, ch1, rr], dim=-1)
    idx = torch.arange(t_max)[None, :].repeat(len(lengths), 1) * gap + 1000
    return x, idx, torch.tensor(lengths)


class TestBank:
    def test_nstdb_noise_records(self, physionet_mirror: Path) -> None:
        db = open_database("nstdb", PhysioNetConfig(mirror=physionet_mirror))
        filters = FilterConfig().model_dump()
        bank = load_noise_bank(db, ["bw", "ma"], 360.0, filters)
        assert bank.names == ["bw:noise1", "bw:noise2", "ma:noise1", "ma:noise2"]
        sd = [float(c.std()) for c in bank.channels]
        assert all(c.size == 650000 and c.dtype == np.float32 for c in bank.channels)
        # unit variance before the ECG filter; baseline wander lies mostly under its
        # 0.5 Hz high-pass, muscle artefact mostly inside its pass band
        assert all(0 < s < 1 for s in sd)
        assert max(sd[:2]) < 0.5 * min(sd[2:])
        low = load_noise_bank(db, ["ma"], 250.0, filters)  # resampled to a dataset's rate
        assert low.fs == 250.0 and abs(low.channels[0].size - 650000 * 250 / 360) <= 1

    def test_the_files_read_are_named_and_a_changed_byte_changes_the_digest(
        self, physionet_mirror: Path, tmp_path: Path
    ) -> None:
        # the noise changes the weights, but no run said which files it came from
        nstdb = tmp_path / "mirror" / "nstdb"  # a copy of one noise record, not the mirror
        nstdb.mkdir(parents=True)
        for name in ("bw.hea", "bw.dat"):
            shutil.copyfile(physionet_mirror / "nstdb" / name, nstdb / name)
        cfg = PhysioNetConfig(mirror=tmp_path / "mirror")
        db = open_database("nstdb", cfg)
        src = noise_source(db, ["bw"])
        assert [(f["name"], f["size"]) for f in src["files"]] == [
            ("bw.hea", (nstdb / "bw.hea").stat().st_size),
            ("bw.dat", (nstdb / "bw.dat").stat().st_size),
        ]
        assert (
            src["files"][1]["sha256"] == hashlib.sha256((nstdb / "bw.dat").read_bytes()).hexdigest()
        )
        assert (src["database"], src["records"], len(src["digest"])) == ("nstdb", ["bw"], 16)
        assert src["verified"] is False and "no SHA256SUMS.txt" in src["verification"]
        assert noise_source(open_database("nstdb", cfg), ["bw"]) == src  # the same bytes
        data = bytearray((nstdb / "bw.dat").read_bytes())
        # two frames swapped: changed bytes whose sums, the header's checksums, stay (a
        # changed sample alone is refused as a corrupted file, bad_checksum)
        data[999:1005] = data[1002:1005] + data[999:1002]
        assert data != (nstdb / "bw.dat").read_bytes()
        (nstdb / "bw.dat").write_bytes(bytes(data))
        changed = noise_source(open_database("nstdb", cfg), ["bw"])
        assert changed["digest"] != src["digest"]
        assert changed["files"][0] == src["files"][0] and changed["files"][1] != src["files"][1]
        # with a checksum list covering them, the files were checked before reading
        (nstdb / "SHA256SUMS.txt").write_text(
            "".join(f"{f['sha256']}  {f['name']}\n" for f in changed["files"])
        )
        db = open_database("nstdb", cfg)
        db.read_record("bw")
        assert noise_source(db, ["bw"])["verified"] is True

    def test_bad_noise_records_rejected(self) -> None:
        filters = FilterConfig().model_dump()
        with pytest.raises(ValueError, match="flat"):
            load_noise_bank(_Db(np.ones((40000, 1))), ["x"], 360.0, filters)
        with pytest.raises(ValueError, match="all missing"):
            load_noise_bank(_Db(np.full((40000, 1), np.nan)), ["x"], 360.0, filters)
        with pytest.raises(ValueError, match="at least 60 s"):
            load_noise_bank(
                _Db(np.random.default_rng(0).normal(size=(3600, 1))), ["x"], 360.0, filters
            )
        with pytest.raises(ValueError, match="no noise records"):
            load_noise_bank(_Db(np.ones((40000, 1))), [], 360.0, filters)


class TestAddRecordedNoise:
    def _bank(self) -> NoiseBank:
        white = np.random.default_rng(1).normal(size=200_000).astype(np.float32)
        return NoiseBank([white / white.std()], ["white:0"], 360.0)

    def test_scale_follows_nstdb_snr_and_windows_share_noise(self) -> None:
        x, idx, lengths = _batch([60, 45])
        gen = torch.Generator().manual_seed(3)
        out = add_recorded_noise(x, idx, lengths, self._bank(), L, 1.0, (20.0, 20.0), gen)
        d0, d1 = (out - x)[..., :L], (out - x)[..., L : 2 * L]
        torch.testing.assert_close(d0, d1)  # the same noise in both morphology channels
        assert torch.equal(out[..., 2 * L :], x[..., 2 * L :])  # RR features exact
        assert torch.all(d0[1, 45:] == 0)  # padding untouched
        for b, n in enumerate(lengths.tolist()):
            hit = np.flatnonzero(d0[b].abs().sum(dim=-1).numpy() > 0)
            assert hit.size >= n // 4 and np.all(np.diff(hit) == 1)  # one contiguous run
            # nstdb: noise sd = peak-to-peak / (sqrt(8) 10^(SNR/20)); here ptp 2, 20 dB
            rms = float(d0[b, hit].pow(2).mean().sqrt())
            assert rms == pytest.approx(2 / (np.sqrt(8) * 10), rel=0.1)
            # beats 10 samples apart see one continuous recording
            k = int(hit[0])
            torch.testing.assert_close(d0[b, k, 10:], d0[b, k + 1, :-10])
        assert not torch.equal(out, x) and torch.equal(x, _batch([60, 45])[0])  # x kept

    def test_share_and_seed(self) -> None:
        x, idx, lengths = _batch([30] * 64)
        bank = self._bank()

        def noisy(p: float, seed: int) -> torch.Tensor:
            gen = torch.Generator().manual_seed(seed)
            out = add_recorded_noise(x, idx, lengths, bank, L, p, (0.0, 24.0), gen)
            return (out - x).abs().sum(dim=(1, 2)) > 0

        assert int(noisy(0.25, 0).sum()) in range(8, 25)  # about 16 of 64 sequences
        assert torch.equal(noisy(0.25, 0), noisy(0.25, 0))
        assert not noisy(0.0, 0).any()
        gen = torch.Generator().manual_seed(0)
        assert add_recorded_noise(x, idx, lengths, bank, L, 0.0, (0.0, 24.0), gen) is x

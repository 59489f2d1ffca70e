from __future__ import annotations

import pytest
import torch

from vitalgru.training import cpu_training


class TestCpuTraining:
    def test_restores_threads_and_float_mode(self) -> None:
        before = torch.get_num_threads()
        tiny = torch.tensor([1e-310], dtype=torch.float64)
        with cpu_training(1):
            assert torch.get_num_threads() == 1
            assert float(tiny * 1.0) == 0.0  # denormal flushed inside
        assert torch.get_num_threads() == before
        assert float(tiny * 1.0) != 0.0  # and normal semantics after

    def test_rejects_zero_threads(self) -> None:
        with pytest.raises(ValueError, match="threads"):
            with cpu_training(0):
                pass

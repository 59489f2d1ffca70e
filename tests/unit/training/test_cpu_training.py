from __future__ import annotations

import os

import pytest
import torch

from vitalgru.training import cpu_training
from vitalgru.training.loop import usable_cpus


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


class TestUsableCpus:
    """The thread and process counts of a training are held to the CPUs the process may
    run on (``taskset``, a container's cpuset): ``torch_threads: 2`` and ``workers: 2``
    ran two threads and two processes on one CPU, the second process with its own copy
    of the training data."""

    def test_threads_are_held_to_the_usable_cpus(self, monkeypatch: pytest.MonkeyPatch) -> None:
        before = torch.get_num_threads()
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
        assert usable_cpus() == 1
        with cpu_training(2):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == before
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
        with cpu_training(2):
            assert torch.get_num_threads() == 2

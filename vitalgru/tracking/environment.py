"""Which floating-point environment made a run: the machine, torch's CPU kernels, thread
counts and the versions of the numerical packages.

The same code, config and data give other weights on another machine or library version:
torch picks its CPU kernels by the CPU's instruction set (``ATEN_CPU_CAPABILITY=avx2`` on
an AVX-512 machine changed most weight tensors of a training, with identical params and
tags), the thread count changes the order of sums, and scikit-learn fits the trees of a
blend, scipy filters and resamples the ECG, pandas reads the hourly tables. The source tags
(:mod:`vitalgru.tracking.source`) name the code; these tags name the rest, so two runs that
differ can be told apart from their tags alone. Read from the running process, standard
library only (the CPU model from ``/proc/cpuinfo`` on Linux, else
:func:`platform.processor`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from pathlib import Path

import torch

ENV_TAG_PREFIX = "vitalgru.env."
#: Distributions whose versions are tagged (where installed): the numerical stack a run's
#: numbers pass through.
VERSIONED = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "wfdb", "mlflow")
#: Environment variables that change torch's kernels or threads; ``unset`` where not set.
_ENV_VARS = {
    "aten_cpu_capability": "ATEN_CPU_CAPABILITY",
    "omp_num_threads": "OMP_NUM_THREADS",
    "mkl_num_threads": "MKL_NUM_THREADS",
}
_CPUINFO = Path("/proc/cpuinfo")


def environment_tags() -> dict[str, str]:
    """The tags naming this process's float environment (prefix ``vitalgru.env.``).

    ``python``, ``platform`` (:func:`platform.platform`), ``cpu`` (:func:`cpu_model`),
    ``torch_cpu_capability`` (the kernels torch dispatches to: ``AVX512``, ``AVX2``,
    ``DEFAULT``...), ``torch_threads`` and ``torch_interop_threads`` (torch's counts now:
    a training that sets its own, ``num_threads``, has that among its params), the
    variables ``ATEN_CPU_CAPABILITY``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``
    (``unset`` where not set), and ``version.<name>`` for each of :data:`VERSIONED` that is
    installed.
    """
    tags = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "torch_cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch_threads": str(torch.get_num_threads()),
        "torch_interop_threads": str(torch.get_num_interop_threads()),
        **{k: os.environ.get(var, "unset") for k, var in _ENV_VARS.items()},
        **{f"version.{name}": v for name in VERSIONED if (v := _version(name)) is not None},
    }
    return {ENV_TAG_PREFIX + k: v for k, v in tags.items()}


@functools.cache
def cpu_model() -> str:
    """The CPU's model name: the first ``model name`` of ``/proc/cpuinfo`` where there is
    one (Linux on x86), else :func:`platform.processor`, else the machine type
    (``aarch64``); ``unknown`` where none says."""
    try:
        for line in _CPUINFO.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None

"""Which networks do which task, named once: read where a model is loaded for a task (the
``kinds`` of :func:`vitalgru.tracking.load_model`, in the gateway, evaluation, replay and
monitoring) and where a registered version is given an alias
(:mod:`vitalgru.tracking.registry`), so that a network of one task is neither scored nor
promoted as the other's.
"""

from __future__ import annotations

from torch import nn

from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.models.early_warning import GRUDEarlyWarning, SepsisBlend

__all__ = ["ARRHYTHMIA_KINDS", "EARLY_WARNING_KINDS", "TASK_KINDS"]

#: The beat classifiers: one network, or an ensemble of them with its gates.
ARRHYTHMIA_KINDS: tuple[type[nn.Module], ...] = (ArrhythmiaGRU, ArrhythmiaEnsemble)
#: The sepsis early-warning models: GRU-D alone, or blended with the boosted trees.
EARLY_WARNING_KINDS: tuple[type[nn.Module], ...] = (SepsisBlend, GRUDEarlyWarning)
#: The model classes of each task, by the task's name (``vitalgru-<task>`` in the registry).
TASK_KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "arrhythmia": ARRHYTHMIA_KINDS,
    "early-warning": EARLY_WARNING_KINDS,
}

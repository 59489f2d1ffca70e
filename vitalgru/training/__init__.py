"""Training: a generic fit loop (:mod:`vitalgru.training.loop`) and one module per task.

Task modules are imported by their full name (``vitalgru.training.arrhythmia``), so that
importing the package does not pull in every task's data code.
"""

from vitalgru.training.loop import Callback as Callback
from vitalgru.training.loop import FitResult as FitResult
from vitalgru.training.loop import FitSettings as FitSettings
from vitalgru.training.loop import TqdmProgress as TqdmProgress
from vitalgru.training.loop import cpu_training as cpu_training
from vitalgru.training.loop import fit as fit

"""Baselines for sepsis early warning: bedside scores (NEWS2, qSOFA) and gradient-boosted
trees on engineered features. numpy / pandas / scikit-learn only, never torch."""

from vitalgru.baselines.features import engineered_features, signature_features
from vitalgru.baselines.gbm import GBMParams, fit_gbm, predict_gbm
from vitalgru.baselines.scores import news2, qsofa

__all__ = [
    "GBMParams",
    "engineered_features",
    "fit_gbm",
    "news2",
    "predict_gbm",
    "qsofa",
    "signature_features",
]

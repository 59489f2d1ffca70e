"""The contract every vitalgru network follows, and a guarded way to rebuild one.

A network is stored (by :mod:`vitalgru.tracking`) as three things: its class path
``"module:qualname"``, the JSON-serialisable constructor arguments from ``config_dict()``,
and its ``state_dict()``. It is rebuilt with ``from_config`` + ``load_state_dict``, never by
unpickling, so a logged recurrent model accepts sequences of any length and no code from an
artifact runs unless its class lives in an allowed package (:func:`build_model`).

This module depends on torch alone.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

import torch
from torch import nn

__all__ = [
    "DEFAULT_ALLOWED_PREFIXES",
    "SequenceModel",
    "build_model",
    "check_model_contract",
    "model_class_path",
    "require_finite",
    "resolve_model_class",
]

#: Packages whose classes :func:`build_model` may import by default. A class path read from
#: a model artifact is data, not code; only classes in these packages are trusted with it.
DEFAULT_ALLOWED_PREFIXES: tuple[str, ...] = ("vitalgru.models",)


@runtime_checkable
class SequenceModel(Protocol):
    """What a vitalgru network provides (structural: no base class to inherit).

    ``forward(x, h0=None, **extra) -> (logits, h_n)``

    - ``x``: ``(batch, time, n_features)`` float32 (``batch_first``); any ``time``, 0
      included (empty logits, the state unchanged). A NaN the network would read is refused
      with ``ValueError``, not scored: through a recurrence it would spoil every later output
      and the state carried for the patient (a model says where a NaN is allowed, such as
      an unmeasured value or the trees' undefined features).
    - ``h0``: ``(num_layers * num_directions, batch, hidden_size)`` or ``None`` (zeros).
    - ``logits``: ``(batch, n_classes)`` for sequence classifiers or
      ``(batch, time, n_outputs)`` for per-step scorers; unnormalised (no softmax/sigmoid).
    - ``h_n``: the final hidden state, same layout as ``h0``, so a streaming scorer can carry
      it into the next chunk.

    The loss lives in training, not in the model.
    """

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, **extra: Any
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def config_dict(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments: ``type(m).from_config(m.config_dict())``
        builds an identically shaped (untrained) network."""
        ...

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Self: ...


def require_finite(x: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` when ``x`` holds a NaN or an infinity.

    A recurrent network would carry one into every later step and into the state a
    streaming scorer keeps for the patient, and a NaN probability's argmax is class 0: a
    silent "normal" for the rest of the stay.
    """
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what} hold {bad} NaN or infinite value(s); clean them first")


def model_class_path(model: nn.Module | type[nn.Module]) -> str:
    """``"module:qualname"`` of a model (instance or class), as stored with its weights.

    Raises
    ------
    ValueError
        The class is defined inside a function (``<locals>`` in its qualname) and so
        cannot be imported again to rebuild it.
    """
    cls = model if isinstance(model, type) else type(model)
    if "<locals>" in cls.__qualname__:
        raise ValueError(
            f"{cls.__qualname__} is defined inside a function; define the model class at "
            "module level so it can be imported when the model is loaded"
        )
    if cls.__module__ == "__main__":
        raise ValueError(
            f"{cls.__qualname__} is defined in __main__; define it in an importable module "
            "(vitalgru.models.<name>) so a stored model can be rebuilt elsewhere"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


def _module_allowed(module: str, allowed_prefixes: Sequence[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in allowed_prefixes)


def resolve_model_class(
    class_path: str, allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES
) -> type[nn.Module]:
    """Import the class named by ``"module:qualname"`` after checking where it lives.

    Parameters
    ----------
    class_path : str
        ``"package.module:ClassName"`` (from :func:`model_class_path`).
    allowed_prefixes : sequence of str
        Packages the module must be in (exactly, or a submodule of one). Defaults to
        ``("vitalgru.models",)``; tests pass their own module explicitly.

    Raises
    ------
    ValueError
        Malformed path, a module outside the allowed packages, or an import failure.
    TypeError
        The name is not an ``nn.Module`` subclass with a ``from_config`` classmethod.
    """
    if not isinstance(class_path, str) or class_path.count(":") != 1:
        raise ValueError(
            f"model class path must look like 'package.module:Class', got {class_path!r}"
        )
    module_name, qualname = class_path.split(":")
    if not module_name or not qualname or "<locals>" in qualname:
        raise ValueError(
            f"model class path must look like 'package.module:Class', got {class_path!r}"
        )
    if not _module_allowed(module_name, allowed_prefixes):
        raise ValueError(
            f"refusing to import model class {class_path!r}: module {module_name!r} is not "
            f"inside the allowed packages {tuple(allowed_prefixes)}; pass allowed_prefixes "
            "to trust another package"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"cannot import module {module_name!r} of model class {class_path!r}: {e}"
        ) from e
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise ValueError(
                f"module {module_name!r} has no {qualname!r}; was the model class renamed "
                "since the model was stored?"
            ) from e
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise TypeError(f"{class_path!r} is not a torch.nn.Module subclass (got {obj!r})")
    if not callable(getattr(obj, "from_config", None)):
        raise TypeError(f"{class_path!r} has no from_config(cfg) classmethod (see SequenceModel)")
    return obj


def build_model(
    class_path: str,
    cfg: dict[str, Any],
    allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES,
) -> nn.Module:
    """Rebuild an (untrained) network from its class path and ``config_dict()``.

    Parameters
    ----------
    class_path : str
        ``"package.module:ClassName"``; checked by :func:`resolve_model_class`.
    cfg : dict
        Constructor arguments as returned by the model's ``config_dict()``.
    allowed_prefixes : sequence of str
        Packages trusted to provide model classes (default ``("vitalgru.models",)``).

    Returns
    -------
    torch.nn.Module
        A new instance, in training mode, with freshly initialised weights.

    Raises
    ------
    ValueError, TypeError
        See :func:`resolve_model_class`; also when ``from_config`` returns something that
        is not an instance of the class.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"model config must be a dict, got {type(cfg).__name__}")
    cls = resolve_model_class(class_path, allowed_prefixes)
    model = cls.from_config(cfg)  # type: ignore[attr-defined]
    if not isinstance(model, cls):
        raise TypeError(
            f"{class_path}.from_config returned {type(model).__name__}, not an instance of "
            f"{cls.__qualname__}"
        )
    return model


def check_model_contract(
    model: nn.Module, allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES
) -> dict[str, Any]:
    """Check that a model can be stored and rebuilt, before it is stored.

    Verifies that ``config_dict()`` is JSON-serialisable, that the class path is importable
    from an allowed package, and that ``from_config(config_dict())`` yields a network whose
    ``state_dict`` has the same keys and shapes (so ``load_state_dict(strict=True)`` will
    succeed at load time rather than fail in production).

    Returns
    -------
    dict
        The model's ``config_dict()`` after a JSON round trip (what will be stored).

    Raises
    ------
    TypeError
        No ``config_dict``/``from_config``, or a config that JSON cannot encode.
    ValueError
        A class path outside the allowed packages, or a rebuilt network whose parameters
        differ in names or shapes from the given one.
    """
    if not callable(getattr(model, "config_dict", None)):
        raise TypeError(
            f"{type(model).__qualname__} has no config_dict(); vitalgru models must provide "
            "config_dict() and from_config(cfg) (see vitalgru.models.base.SequenceModel)"
        )
    raw = model.config_dict()
    try:
        cfg = json.loads(json.dumps(raw))
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{type(model).__qualname__}.config_dict() is not JSON-serialisable: {e}; return "
            "plain ints/floats/strs/lists/dicts"
        ) from e
    rebuilt = build_model(model_class_path(model), cfg, allowed_prefixes)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if want != got:
        diff = sorted(set(want.items()) ^ set(got.items()))[:6]
        raise ValueError(
            f"{type(model).__qualname__}.from_config(config_dict()) does not rebuild the same "
            f"network; differing parameters (name, shape): {diff}"
        )
    return cfg

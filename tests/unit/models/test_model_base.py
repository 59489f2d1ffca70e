"""The model contract helpers: class paths, guarded rebuilding, contract checks."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from vitalgru.models.base import (
    DEFAULT_ALLOWED_PREFIXES,
    SequenceModel,
    build_model,
    check_model_contract,
    model_class_path,
    resolve_model_class,
)


class TinyGRU(nn.Module):
    def __init__(self, n_features: int = 2, hidden_size: int = 4) -> None:
        super().__init__()
        self.n_features, self.hidden_size = n_features, hidden_size
        self.gru = nn.GRU(n_features, hidden_size, batch_first=True)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, **extra: Any):
        out, h_n = self.gru(x, h0)
        return out, h_n

    def config_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "hidden_size": self.hidden_size}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TinyGRU:
        return cls(**cfg)


class ForgetfulGRU(TinyGRU):
    """config_dict omits hidden_size, so from_config rebuilds a different network."""

    def __init__(self, n_features: int = 2, hidden_size: int = 4) -> None:
        super().__init__(n_features, hidden_size)

    def config_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features}


class PathConfigGRU(TinyGRU):
    def config_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "where": object()}


class WrongFactory(TinyGRU):
    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TinyGRU:
        return TinyGRU(**cfg)


class NotAModule:
    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> NotAModule:
        return cls()


HERE = (TinyGRU.__module__,)


class TestClassPath:
    def test_instance_and_class(self) -> None:
        want = f"{TinyGRU.__module__}:TinyGRU"
        assert model_class_path(TinyGRU()) == want
        assert model_class_path(TinyGRU) == want

    def test_local_class_rejected(self) -> None:
        class Local(nn.Module):
            pass

        with pytest.raises(ValueError, match="inside a function"):
            model_class_path(Local())


class TestBuildModel:
    def test_round_trip(self) -> None:
        m = TinyGRU(3, 5)
        rebuilt = build_model(model_class_path(m), m.config_dict(), HERE)
        assert type(rebuilt) is TinyGRU
        assert rebuilt.config_dict() == {"n_features": 3, "hidden_size": 5}
        assert isinstance(rebuilt, SequenceModel)

    def test_default_trust_is_vitalgru_models(self) -> None:
        assert DEFAULT_ALLOWED_PREFIXES == ("vitalgru.models",)
        with pytest.raises(ValueError, match="not inside the allowed packages"):
            build_model(model_class_path(TinyGRU), {})

    def test_prefix_must_match_a_whole_package(self) -> None:
        # "vitalgru.models_evil" is not inside "vitalgru.models".
        with pytest.raises(ValueError, match="refusing"):
            resolve_model_class("vitalgru.models_evil:X")
        with pytest.raises(ValueError, match="refusing"):
            resolve_model_class("os:system", allowed_prefixes=("vitalgru.models",))

    @pytest.mark.parametrize("bad", ["TinyGRU", "a:b:c", ":X", "mod:", "m:f.<locals>.C"])
    def test_malformed_paths(self, bad: str) -> None:
        with pytest.raises(ValueError, match="package.module:Class"):
            resolve_model_class(bad, allowed_prefixes=("",))

    def test_missing_module_and_name(self) -> None:
        with pytest.raises(ValueError, match="cannot import"):
            resolve_model_class("vitalgru.models.no_such_module:X")
        with pytest.raises(ValueError, match="renamed"):
            resolve_model_class(f"{TinyGRU.__module__}:Gone", HERE)

    def test_not_a_module(self) -> None:
        with pytest.raises(TypeError, match="not a torch.nn.Module"):
            resolve_model_class(f"{TinyGRU.__module__}:NotAModule", HERE)
        with pytest.raises(TypeError, match="not a torch.nn.Module"):
            resolve_model_class(f"{TinyGRU.__module__}:HERE", HERE)

    def test_factory_must_return_the_class(self) -> None:
        with pytest.raises(TypeError, match="not an instance"):
            build_model(f"{TinyGRU.__module__}:WrongFactory", {}, HERE)

    def test_config_must_be_dict(self) -> None:
        with pytest.raises(TypeError, match="dict"):
            build_model(model_class_path(TinyGRU), [2, 4], HERE)  # type: ignore[arg-type]


class TestCheckModelContract:
    def test_returns_json_config(self) -> None:
        assert check_model_contract(TinyGRU(2, 6), HERE) == {"n_features": 2, "hidden_size": 6}

    def test_config_that_does_not_rebuild(self) -> None:
        with pytest.raises(ValueError, match="does not rebuild the same network"):
            check_model_contract(ForgetfulGRU(2, 7), HERE)

    def test_unserialisable_config(self) -> None:
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            check_model_contract(PathConfigGRU(), HERE)

    def test_missing_config_dict(self) -> None:
        with pytest.raises(TypeError, match="config_dict"):
            check_model_contract(nn.GRU(2, 3), ("torch",))

    def test_vitalgru_arrhythmia_model_meets_contract(self) -> None:
        from vitalgru.models.arrhythmia import ArrhythmiaGRU

        m = ArrhythmiaGRU()
        cfg = check_model_contract(m)  # default trust: vitalgru.models
        assert build_model(model_class_path(m), cfg).config_dict() == m.config_dict()

"""The test configuration's warning filters (pyproject.toml): a deprecation that a library
lays on a call of ours fails the test that makes it, so that it is changed before an
upgrade removes what it warns of; one that stays inside a library only shows."""

from __future__ import annotations

import warnings

import pytest
from starlette.exceptions import StarletteDeprecationWarning


def _calls_a_deprecated_api_from(module: str, category: type[Warning]) -> None:
    """Warn as a library does at its deprecated entry point (``stacklevel`` left at 1 names
    the frame that warns): from a function whose module is ``module``."""
    scope = {"__name__": module, "warnings": warnings, "category": category}
    exec("def call():\n    warnings.warn('this goes away', category)\n", scope)
    scope["call"]()


CATEGORIES = [DeprecationWarning, PendingDeprecationWarning, FutureWarning,
              StarletteDeprecationWarning]  # fmt: skip


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize(
    "module",
    ["vitalgru.tracking.models", "pipelines.gateway", "benchmarks.gateway", "tests.unit.x"],
)
def test_a_deprecation_on_our_call_fails_the_test(module: str, category: type[Warning]) -> None:
    with pytest.raises(category, match="this goes away"):
        _calls_a_deprecated_api_from(module, category)


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("module", ["mlflow.store.tracking", "vitalgrudge", "pipelinesx.y"])
def test_a_deprecation_inside_a_library_is_shown_not_raised(
    module: str, category: type[Warning]
) -> None:
    with warnings.catch_warnings(record=True) as seen:
        # (catch_warnings keeps the filters in force; record only collects what they show)
        _calls_a_deprecated_api_from(module, category)
    assert [str(w.message) for w in seen] == ["this goes away"]


def test_the_test_client_runs_on_httpx2() -> None:
    # starlette's TestClient falls back to httpx with a StarletteDeprecationWarning (shown,
    # not raised: it names fastapi.testclient); the dev extra installs httpx2 for it
    import starlette.testclient

    assert starlette.testclient.httpx.__name__ == "httpx2"

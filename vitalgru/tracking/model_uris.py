"""Which model a ``models:/`` or ``runs:/`` URI names, asked of the registry before anything is
downloaded.

An alias (``models:/<name>@champion``) or ``latest`` is pinned to the version it names now,
so the version a caller loads is the one it reports; a name, alias or version the registry
lacks is said with what it holds instead (:class:`~vitalgru.errors.ModelNotRegistered`). A
model folder or other artifact URI is taken as it is, and no store is opened for it.
"""

from __future__ import annotations

import contextlib

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.errors import ModelLoadError, ModelNotRegistered
from vitalgru.tracking.stores import check_stores, missing_store, mlflow_client, registry_uri

__all__ = ["pin_model_uri", "resolve_model_uri"]


def _parse_models_uri(client: MlflowClient, uri: str) -> tuple[str, str | None, str | None]:
    """(download URI pinned to a version, registered name, version) for ``models:/`` URIs."""
    if not uri.startswith("models:/"):
        return uri, None, None
    rest = uri[len("models:/") :].strip("/")
    try:
        if "@" in rest:
            name, alias = rest.rsplit("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
            return f"models:/{name}/{mv.version}", name, str(mv.version)
        if "/" in rest:
            name, ver = rest.rsplit("/", 1)
            if ver.isdigit():
                client.get_model_version(name, ver)
                return f"models:/{name}/{ver}", name, ver
            if ver == "latest":
                versions = client.search_model_versions(f"name = '{name}'")
                if not versions:  # MLflow raises nothing here: said as for NAME@ALIAS
                    lacks = _not_registered(client, rest) or f"{name} has no version yet"
                    raise ModelNotRegistered(
                        f"cannot resolve {uri}: {lacks}, in registry {registry_uri()}"
                    )
                latest = max(versions, key=lambda v: int(v.version))
                return f"models:/{name}/{latest.version}", name, str(latest.version)
    except MlflowException as e:
        lacks = _not_registered(client, rest)
        if lacks is not None:
            raise ModelNotRegistered(
                f"cannot resolve {uri}: {lacks}, in registry {registry_uri()}"
            ) from e
        raise ModelLoadError(
            f"cannot resolve {uri} in registry {registry_uri()}: {e.message}"
        ) from e
    return uri, None, None  # models:/<model_id>: a logged model outside the registry


def _not_registered(client: MlflowClient, rest: str) -> str | None:
    """What the registry lacks of ``NAME@ALIAS`` or ``NAME/VERSION`` (``VERSION`` a number
    or ``latest``; None: it holds it,
    or it cannot be asked: the error was something else), and what it holds instead."""
    name, alias = rest.rsplit("@", 1) if "@" in rest else (rest.rsplit("/", 1)[0], None)
    try:
        model = client.get_registered_model(name)
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    except MlflowException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            return None
        with contextlib.suppress(MlflowException):
            others = [m.name for m in client.search_registered_models(max_results=20)]
            return (f"no model is registered as {name!r} (registered: "
                    f"{', '.join(others) or 'none yet; train one first'})")  # fmt: skip
        return f"no model is registered as {name!r}"
    held = ", ".join(map(str, versions)) or "none"
    if alias is not None:
        if alias in (model.aliases or {}):
            return None
        if alias == "champion":
            return (f"no version of {name} is its champion yet (versions: {held}): a "
                    "training makes one when its model passes the gate, or `vitalgru models "
                    "promote` by hand")  # fmt: skip
        return (f"no version of {name} holds the alias {alias!r} (versions: {held}): "
                f"`vitalgru models promote --alias {alias}` gives it one")  # fmt: skip
    version = rest.rsplit("/", 1)[1]
    if version == "latest" and not versions:
        return f"{name} has no version yet (versions: none): a training registers one"
    if not version.isdigit() or int(version) in versions:
        return None
    return f"{name} has no version {version} (versions: {held})"


def resolve_model_uri(uri: str) -> str:
    """The version a ``models:/`` URI names now (``models:/<name>/<version>``; other URIs as
    given), without downloading anything: for a command to check the model it will read
    before it starts a flow. ModelLoadError as
    :func:`~vitalgru.tracking.models.load_model` raises it."""
    return pin_model_uri(uri)[0]


def pin_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(download URI pinned to a version, registered name, version) of ``uri``
    (:func:`_parse_models_uri`), opening the stores only for a registry or run
    URI: a model folder (or another artifact URI) is read as it is. Opening them for a
    folder made the default store ``mlflow.db`` in the working folder: an empty store was
    left behind, and where that folder was read-only the folder's model failed to load
    after MLflow's retries, with SQLite's "unable to open database file"."""
    if not uri.startswith(("models:/", "runs:/")):
        return uri, None, None
    if (why := missing_store()) is not None:
        raise ModelLoadError(f"cannot load {uri}: {why}")
    # a server that does not answer, said in seconds: MLflow's retries held a library
    # caller (a flow run by a deployment, a notebook) for over ten minutes before its error
    check_stores(attempts=2, wait_s=1.0, timeout_s=5.0)
    return _parse_models_uri(mlflow_client(), uri)

"""Where MLflow's stores are: ``$MLFLOW_TRACKING_URI`` / ``$MLFLOW_REGISTRY_URI``, else an
embedded SQLite store ``./mlflow.db``; whether they are there or reachable; and a client for
them (a new SQLite store made ready by one process at a time).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import urllib.parse
from pathlib import Path

import mlflow
import requests
import urllib3.exceptions
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.claims import ClaimBusy, check_writable, hold, replacing
from vitalgru.errors import ServerUnavailableError, error_chain
from vitalgru.io.download import server_unreachable
from vitalgru.tracking.relocation import relocate_store

logger = logging.getLogger(__name__)


def tracking_uri() -> str:
    """Tracking store URI: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.

    The working directory is read at call time.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / 'mlflow.db').as_posix()}"


def registry_uri() -> str:
    """Model registry URI: ``$MLFLOW_REGISTRY_URI``, else the tracking URI."""
    env = os.environ.get("MLFLOW_REGISTRY_URI", "").strip()
    return env or tracking_uri()


def sqlite_file(uri: str) -> Path | None:
    """The database file of a local SQLite store URI, else None (as MLflow opens it: a
    ``~`` is a folder of that name, not the home folder)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def local_store_dir(uri: str) -> Path | None:
    """Folder of a local SQLite or file store (where ``mlartifacts`` goes), else None."""
    if (db := sqlite_file(uri)) is not None:
        return db.resolve().parent
    if uri.startswith("file://"):
        return Path(uri[len("file://") :]).expanduser().resolve()
    if "://" not in uri:  # a bare path is a file store
        return Path(uri).expanduser().resolve()
    return None


def missing_store() -> str | None:
    """Why the stores a model is read from are not there, or None.

    A local SQLite store (the default ``./mlflow.db``, or one named by
    ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``) whose file does not exist holds no
    model, and MLflow would create an empty one on the first query, leaving a stray
    ``mlflow.db`` behind a "model not found". Reading commands ask this first: the usual
    cause is a command run from another folder than the one where models were registered.
    """
    for uri, var in ((tracking_uri(), "MLFLOW_TRACKING_URI"),
                     (registry_uri(), "MLFLOW_REGISTRY_URI")):  # fmt: skip
        path = sqlite_file(uri)
        if path is None or path.is_file():
            continue
        if os.environ.get(var, "").strip():
            return f"{var}={uri} names no existing store (there is no file {path})"
        return (
            f"there is no MLflow store in this folder ({path} does not exist; without "
            "MLFLOW_TRACKING_URI the store is mlflow.db in the working directory): run the "
            "command from the folder where `vitalgru run` or `vitalgru train` registered the "
            "model, or set MLFLOW_TRACKING_URI to that store (e.g. sqlite:////path/to/mlflow.db)"
        )
    return None


def unwritable_store() -> str | None:
    """Why this process cannot write the local SQLite stores (each file, and a file made in
    its folder), or None. The ``mlartifacts`` folder beside a store is not checked: a
    store's folder this user may write holds it, unless it was made by another user. A
    training in a read-only working folder, or one of another user, trained to the end
    and then failed to log its run, after MLflow's retries of "unable to open database
    file"."""
    for uri, var in ((tracking_uri(), "MLFLOW_TRACKING_URI"),
                     (registry_uri(), "MLFLOW_REGISTRY_URI")):  # fmt: skip
        path = sqlite_file(uri)
        if path is None:
            continue
        if (stale := _stale_store(path, var, uri)) is not None:
            return stale
        try:
            check_writable(path)
        except OSError as e:
            said = f"the MLflow store {path} cannot be written: {e.strerror or e} "
            said += f"({e.filename or path.parent}): "
            if os.environ.get(var, "").strip():
                return said + f"set {var} (now {uri}) to a store this user may write"
            return said + (
                "without MLFLOW_TRACKING_URI the store is mlflow.db in the working folder: "
                "run the command from a folder this user may write, or set "
                "MLFLOW_TRACKING_URI to a store it may (e.g. sqlite:////path/to/mlflow.db)"
            )
    return None


def _stale_store(path: Path, var: str, uri: str) -> str | None:
    """Why ``$var`` seems kept from where this working folder was before it was moved, or
    None: it names a SQLite store in a folder that is not there, while the working folder
    holds an ``mlflow.db`` of its own. A training then made the gone folder again, with a
    new, empty registry in it, and registered its model there, away from the folder's."""
    if not os.environ.get(var, "").strip() or path.parent.exists():
        return None
    here = Path.cwd() / "mlflow.db"
    if not here.is_file():
        return None
    return (
        f"{var}={uri} names a store in a folder that is not there ({path.parent}), while "
        f"this folder holds its own {here}: kept from before the folder was moved? unset "
        f"{var} to use {here.name} here, or make {path.parent} to start a new store there"
    )


def check_stores(attempts: int = 3, wait_s: float = 2.0, timeout_s: float = 5.0) -> None:
    """Fail fast if a tracking or registry *server* does not answer, or refuses this
    client's requests.

    MLflow retries a refused connection seven times with growing waits, so a mistyped
    ``MLFLOW_TRACKING_URI`` or a server that is down costs about four minutes before its
    error. This asks each ``http(s)`` store's ``/health`` up to ``attempts`` times,
    ``wait_s`` apart (a server restarting in those seconds is still found). An HTTP
    answer counts as reachable unless its status is one MLflow's client retries (408, 429,
    5xx): a proxy in front of a server that is down answers 502 or 503, and every MLflow
    call would then be retried for four minutes, as for a refused connection. A server
    that answers then gets one API request, which its Host check (``--allowed-hosts``)
    refuses when the name in ``uri`` is not one it allows (:func:`_host_refused`). Local
    stores (SQLite, files) are not checked.

    Raises
    ------
    ServerUnavailableError
        Naming the URI, the environment variable it came from and what to do (for a refused
        Host, the name to add to the server's ``--allowed-hosts``).
    """
    stores = {tracking_uri(): "MLFLOW_TRACKING_URI"}
    stores.setdefault(registry_uri(), "MLFLOW_REGISTRY_URI")
    for uri, var in stores.items():
        if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
            continue
        t0 = time.monotonic()
        reason = server_unreachable(
            uri.rstrip("/") + "/health", attempts, wait_s, timeout_s, transient_is_down=True
        )
        if reason is not None:
            remedy = (
                "unset it to use the local SQLite store ./mlflow.db"
                if var == "MLFLOW_TRACKING_URI"
                else "unset it to keep the registry in the tracking store"
            )
            raise ServerUnavailableError.after_tries(
                "MLflow server", uri, var, reason, attempts, time.monotonic() - t0, remedy
            )
        if (refusal := _host_refused(uri, timeout_s)) is not None:
            host = urllib.parse.urlsplit(uri).netloc
            raise ServerUnavailableError(
                f"the MLflow server {uri} (${var}) refuses the name it is reached by, "
                f"{host!r} ({refusal}): it answers only the Host headers its --allowed-hosts "
                f"names, a guard against DNS rebinding that spares /health. Add {host!r} to "
                "the server's --allowed-hosts (MLFLOW_ALLOWED_HOSTS in docker/compose.yaml), "
                f"or set ${var} to a name it allows"
            )


#: Failures of the connection to a server, as requests and urllib3 raise them (a refused or
#: broken connection, no answer in time, a retried status answered on every try).
_CONNECTION_FAILURES = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.RetryError,
    urllib3.exceptions.MaxRetryError,
    urllib3.exceptions.ProtocolError,
)

#: MLflow's words for a 5xx it does not retry (501, 505, ...), with a body that is not JSON.
_NOT_RETRIED_5XX = re.compile(r"failed with error code (5\d\d) != ")


def server_lost(error: BaseException) -> str | None:
    """One line for an MLflow error whose cause is a tracking or registry server that
    stopped answering after the command's start check (:func:`check_stores`) passed: its
    connection refused or broken, no answer within ``MLFLOW_HTTP_REQUEST_TIMEOUT``, or an
    HTTP 5xx on every one of MLflow's tries. The line names the server and what the command
    leaves: the run it had open was ended ``FAILED`` if the server answered that, else it
    shows ``RUNNING`` until the next run of its experiment on this host ends it. None for
    any other error (an MLflow refusal of a request is left as it is)."""
    errors = error_chain(error)
    mlflow_errors = [e for e in errors if isinstance(e, MlflowException)]
    if not mlflow_errors:
        return None
    causes = [e for e in errors if isinstance(e, _CONNECTION_FAILURES)]
    status = next(
        (m.group(1) for e in mlflow_errors if (m := _NOT_RETRIED_5XX.search(e.message))), None
    )
    if not causes and status is None:
        return None
    said = " ".join(e.message for e in mlflow_errors) + "/"
    # the server the failed request went to (MLflow names its URL, or only the endpoint)
    servers = [(u, v) for u, v in ((tracking_uri(), "MLFLOW_TRACKING_URI"),
                                   (registry_uri(), "MLFLOW_REGISTRY_URI"))
               if urllib.parse.urlsplit(u).scheme in ("http", "https")]  # fmt: skip
    if not servers:
        return None
    uri, var = next(((u, v) for u, v in servers if u.rstrip("/") + "/" in said), servers[0])
    return (
        f"the MLflow server {uri} (${var}) stopped answering during the command "
        f"({_failure(causes, status)}): what the command was writing there is incomplete; "
        "a run it had open was ended FAILED if the server took that, else it shows RUNNING "
        "until the next run of its experiment on this host ends it. Run the command again "
        "once the server answers"
    )


def _failure(causes: list[BaseException], status: str | None) -> str:
    """A few words for the connection's failure."""
    for e in causes:
        reason = getattr(e, "reason", None)
        if isinstance(e, urllib3.exceptions.MaxRetryError) and reason is not None:
            text = str(reason)
            if (m := re.search(r"too many (\d{3}) error responses", text)) is not None:
                return f"HTTP {m.group(1)} on every try"
            if "Connection refused" in text:
                return "connection refused"
            if isinstance(reason, urllib3.exceptions.TimeoutError):
                return _no_answer()
            return text.split(": ", 1)[-1][:200]
    if status is not None:
        return f"HTTP {status}"
    if any(isinstance(e, requests.Timeout | urllib3.exceptions.TimeoutError) for e in causes):
        return _no_answer()
    return str(causes[-1])[:200]


def _no_answer() -> str:
    timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "").strip() or "120"
    return f"no answer within {timeout} s, MLFLOW_HTTP_REQUEST_TIMEOUT, on every try"


#: What an MLflow server answers a request whose Host header its ``--allowed-hosts`` does
#: not name (mlflow.server.security_utils), on every path but its health checks.
_HOST_REFUSED = "Invalid Host header"


def _host_refused(uri: str, timeout_s: float) -> str | None:
    """MLflow's refusal of the Host header ``uri`` sends (``HTTP 403: <its words>``), or
    None. ``/health`` is exempt from the server's Host check and answers 200 regardless;
    the API refuses every call with 403, which MLflow's client does not retry: a
    command passed the check, and a training computed for minutes before its first
    MLflow call failed on it. Any other answer, or none, is left to MLflow's client."""
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with requests.get(url, timeout=timeout_s) as r:
            if r.status_code == 403 and _HOST_REFUSED in r.text:
                return f"HTTP 403: {r.text.strip()[:200]}"
    except requests.RequestException:
        pass
    return None


def mlflow_client() -> MlflowClient:
    """A client for the current stores, with MLflow's fluent API pointed at them too
    (``mlflow.start_run`` and ``mlflow.pyfunc.log_model`` use the fluent API).

    A local SQLite store is made ready (created, its schema migrated; or, moved from another
    folder, its artifact locations pointed at the folder it is in now:
    :func:`~vitalgru.tracking.relocation.relocate_store`) under a claim the
    first time this process uses it: MLflow migrates a new file when a client is made, with
    nothing keeping a second process out, and two trainings started together in a fresh
    folder failed one of them (``duplicate column name: step``). A new file is made whole
    or not at all (:func:`_create_store`).
    """
    t_uri, r_uri = tracking_uri(), registry_uri()
    _point_fluent_api(t_uri, r_uri)
    with contextlib.ExitStack() as claims:
        new = [u for u in dict.fromkeys((t_uri, r_uri)) if u not in _READY and sqlite_file(u)]
        # one claim per file: two spellings of one file (a relative and an absolute URI)
        # would wait on this process's own claim
        for db in dict.fromkeys(_db_path(u) for u in new):
            _claim_creation(claims, db)
            if not db.exists():
                _create_store(db)
            else:  # a folder moved, copied or restored: its artifacts are beside it now
                relocate_store(db)
        client = MlflowClient(tracking_uri=t_uri, registry_uri=r_uri)
        if r_uri in new and r_uri != t_uri:
            client.search_registered_models(max_results=1)  # the registry store opens lazily
    _READY.update(new)
    return client


def _point_fluent_api(t_uri: str, r_uri: str) -> None:
    """Point MLflow's fluent API at the stores, leaving the environment as it was.

    ``mlflow.set_tracking_uri`` and ``mlflow.set_registry_uri`` also write
    ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` into the process's environment,
    which :func:`tracking_uri` and :func:`registry_uri` read: after the first client, a
    process that changed ``MLFLOW_TRACKING_URI`` (a library user, a test or benchmark
    switching stores) still registered models into the first store, and one that changed
    folders kept the first folder's ``mlflow.db``. The fluent API keeps the URIs it is
    given whatever the environment says, and every call here sets them again."""
    before = {v: os.environ.get(v) for v in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        mlflow.set_tracking_uri(t_uri)
        mlflow.set_registry_uri(r_uri)
    finally:
        for var, value in before.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


#: SQLite store URIs this process has made ready (once each).
_READY: set[str] = set()

#: How long a process waits for another to finish creating a store (MLflow's migrations of
#: a new file took about 1.5 s here).
CREATE_WAIT_S = 120.0


def _db_path(uri: str) -> Path:
    """The database file of SQLite store ``uri``, resolved (one name for one file)."""
    return Path(uri[len("sqlite:///") :]).resolve()


def _create_store(db: Path) -> None:
    """Make the new SQLite store ``db`` whole or not at all: MLflow creates its tables and
    runs its schema migrations in a file beside it, renamed to ``db`` once they are done.
    The migrations are not one transaction on SQLite: a process killed part way through
    them (SIGKILL, in the first seconds of the first training in a folder) left a store
    stamped with one schema version and holding tables of the next, and every later
    command failed on it (``table datasets already exists``). Killed now, it leaves only
    the temporary file, which the next command removes before it makes the store again."""
    db.parent.mkdir(parents=True, exist_ok=True)
    # a killed creation's files: under the creation claim no other process is making one
    for left in db.parent.glob(f".{db.name}.*.tmp*"):
        left.unlink(missing_ok=True)
    with replacing(db) as tmp:
        uri = f"sqlite:///{tmp.as_posix()}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)  # the tracking store: created, migrated
        client.search_registered_models(max_results=1)  # the registry's: the same file
        # no connection of this process left open on the file renamed
        for store in (client._tracking_client.store, client._get_registry_client().store):
            if (engine := getattr(store, "engine", None)) is not None:
                engine.dispose()


def _claim_creation(claims: contextlib.ExitStack, db: Path) -> None:
    """Hold the claim ``<file>.create.lock`` beside SQLite store file ``db`` in ``claims``;
    a folder where no lock can be made (MLflow's own error follows) goes on unclaimed. A
    claim still held by another process after :data:`CREATE_WAIT_S` raises
    :class:`~vitalgru.claims.ClaimBusy` naming it."""
    try:
        claims.enter_context(
            hold(
                db.with_name(f"{db.name}.create.lock"),
                f"the MLflow store {db.name}",
                wait_s=CREATE_WAIT_S,
                busy="another process creating it",
            )
        )
    except ClaimBusy:
        raise
    except OSError as e:
        logger.debug("MLflow store %s opened without a claim (%s)", db, e)

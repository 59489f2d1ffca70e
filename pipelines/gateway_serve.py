"""``vitalgru serve``: the registered models loaded into a ward, the state file taken up,
and the gateway (:func:`pipelines.gateway.create_app`) served by uvicorn until it is stopped,
with its HL7 interfaces, access log and rate limit as the command line asks."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import sqlite3
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.access import RateLimit, TokenFile
from pipelines.audit import AuditLog
from pipelines.cds_tokens import CdsClients
from pipelines.gateway import DEFAULT_TICK_S, create_app
from pipelines.gateway_access_log import routes_only
from pipelines.gateway_http import TOKEN_ENV, TOKENS_ENV, token_access
from pipelines.gateway_models import fallback_name, restart_notes, shadows_going_on
from pipelines.hl7_forward import AlarmForwarder, client_tls
from pipelines.hl7_inbox import parse_adt_units
from pipelines.mllp_server import server_tls
from pipelines.serve_claims import bind_port, claim_file
from vitalgru import tracking
from vitalgru.errors import ModelLoadError, ModelNotRegistered
from vitalgru.models.tasks import ARRHYTHMIA_KINDS, EARLY_WARNING_KINDS
from vitalgru.scoring import ArrhythmiaMonitor, EarlyWarningMonitor
from vitalgru.scoring.ward import ESCALATE_AFTER_S, FEED_RATE_TOLERANCE, Ward
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.scoring.ward_sepsis import HOUR_CLOSE_AFTER_S
from vitalgru.scoring.ward_state import StateDamage

__all__ = [
    "EXIT_NO_MODEL", "SHUTDOWN_GRACE_S", "ModelUnavailable", "build_ward", "http_tls_options",
    "serve",
]  # fmt: skip

logger = logging.getLogger("pipelines.gateway")

#: Seconds ``vitalgru serve`` gives open requests (event streams never end by themselves)
#: to finish when it is stopped.
SHUTDOWN_GRACE_S = 5.0


def http_tls_options(
    cert: str | None, key: str | None, client_ca: str | None = None
) -> dict[str, Any]:
    """uvicorn's settings for HTTPS with this certificate chain and key (PEM), and with
    ``client_ca``, for mutual TLS (only clients with a certificate that CA signed get a
    connection); {} without a certificate. The files are loaded once here, so a wrong one
    fails at once, before the models load (ValueError, OSError or ssl.SSLError)."""
    if bool(cert) != bool(key):
        raise ValueError("--tls-cert and --tls-key go together")
    if not cert:
        if client_ca:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return {}
    server_tls(
        cert, str(key), client_ca, ("--tls-cert", "--tls-key", "--tls-client-ca")
    )  # loads (and checks) them
    opts: dict[str, Any] = {"ssl_certfile": cert, "ssl_keyfile": key}
    if client_ca:
        opts |= {"ssl_ca_certs": client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return opts


class ModelUnavailable(ModelLoadError):
    """No model a monitor was asked for could be served: the registry holds none under the
    name, alias or version the URI names (no champion promoted yet), or the version it
    names cannot be loaded, nor (for a champion) an earlier one. ``vitalgru serve`` ends
    with :data:`EXIT_NO_MODEL`."""


#: ``vitalgru serve``'s exit status when the registry holds no model it can serve for a
#: URI it was asked for: none registered under it (no champion yet), or none that loads.
#: Most often the registry must change (a training, a promotion, a rollback), and a
#: restart serves once it has; the message says what it holds (a misspelt name: the names
#: registered). 2 stays a refusal the command line, a file or a store that is not there
#: gave, as elsewhere.
EXIT_NO_MODEL = 4


def _zone(option: str, name: str | None) -> ZoneInfo | None:
    """The time zone ``option`` names (None for none), or ValueError saying it is none."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{option} {name!r} is not a time zone (e.g. Europe/Berlin)") from None


def _loaded(task: str, uri: str) -> tuple[Any, Any]:
    """(the loaded model, its live monitor); ValueError (a ModelLoadError among them) for
    a model that cannot be loaded or that the monitor refuses (its preprocessing)."""
    if task.endswith("arrhythmia"):
        m = tracking.load_model(uri, kinds=ARRHYTHMIA_KINDS)
        return m, ArrhythmiaMonitor(m.module, m.preprocessing)
    m = tracking.load_model(uri, kinds=EARLY_WARNING_KINDS)
    return m, EarlyWarningMonitor(m.module, m.preprocessing)


def _said(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _monitor(
    task: str, uri: str | None, names: dict[str, str], fallbacks: dict[str, dict] | None = None
) -> Any:
    """The live monitor of the model at ``uri`` (None: none), its name put in ``names``.

    A champion (``models:/NAME@ALIAS``, not a shadow) whose version cannot be loaded, or
    whose preprocessing the monitor refuses, is logged with the version and the error, and
    the newest earlier holder of the alias that loads and passes the same checks is served
    instead (:func:`vitalgru.tracking.earlier_holders`), said in its name and in
    ``fallbacks[task]`` (``{"wanted", "serving", "error"}``). None that loads, or nothing
    registered under the URI: :class:`ModelUnavailable`, one line."""
    if not uri:
        return None
    try:
        pinned = tracking.resolve_model_uri(uri)
    except ModelNotRegistered as e:  # nothing to serve yet, as when nothing loads
        raise ModelUnavailable(f"no {task} model to serve: {e}") from e
    try:
        m, monitor = _loaded(task, pinned)
    except (ValueError, KeyError, TypeError) as e:
        name, _, wanted = pinned.removeprefix("models:/").rpartition("/")
        alias = uri.removeprefix("models:/").rpartition("@")
        if task.startswith("shadow") or not alias[1] or not wanted.isdigit():
            raise ModelUnavailable(f"the {task} model {uri} cannot be loaded: {_said(e)}") from e
        logger.error("gateway: the %s model %s (version %s) cannot be loaded: %s",
                     task, uri, wanted, _said(e))  # fmt: skip
        tried = [f"version {wanted}: {_said(e)}"]
        for version in tracking.earlier_holders(name, wanted, alias[2]):
            try:
                m, monitor = _loaded(task, f"models:/{name}/{version}")
            except (ValueError, KeyError, TypeError) as e2:
                logger.error("gateway: the earlier %s version %s of %s cannot be loaded "
                             "either: %s", alias[2], version, name, _said(e2))  # fmt: skip
                tried.append(f"version {version}: {_said(e2)}")
                continue
            logger.warning(
                "gateway: FALL-BACK: the %s monitor serves version %s of %s, the newest "
                "earlier %s that loads, instead of version %s (/health and /metrics say "
                "so); fix or roll back the %s and restart the gateway",
                task, version, name, alias[2], wanted, alias[2],
            )  # fmt: skip
            if fallbacks is not None:
                fallbacks[task] = {"wanted": wanted, "serving": version, "error": tried[0]}
            names[task] = fallback_name(uri, version, wanted)
            return monitor
        raise ModelUnavailable(
            f"the {task} model {uri} cannot be loaded, nor any earlier {alias[2]} of {name} "
            f"({'; '.join(tried)})"
        ) from e
    names[task] = m.described(uri)
    return monitor


def _set_aside(journal: WardJournal, damaged: list[StateDamage]) -> None:
    """Keep a copy of a damaged state file and take the rows left out from it (logged)."""
    try:
        copy = journal.set_aside(damaged)
        logger.warning("gateway: %d row(s) of %s could not be taken up and are left out; "
                       "the file with them is kept as %s", len(damaged), journal.path, copy)  # fmt: skip
    except (OSError, sqlite3.Error) as e:  # the rows stay, and are found again next time
        logger.error("gateway: %d row(s) of %s could not be taken up and are left out; no "
                     "copy of the file could be written (%s)", len(damaged), journal.path, e)  # fmt: skip


def build_ward(
    arrhythmia_model: str | None,
    early_warning_model: str | None,
    state: str | os.PathLike | None = None,
    shadow_arrhythmia_model: str | None = None,
    shadow_early_warning_model: str | None = None,
    escalate_after_s: float | Sequence[float] | None = ESCALATE_AFTER_S,
    hour_close_after_s: float = HOUR_CLOSE_AFTER_S,
    sepsis_lockout_h: float = 0.0,
    feed_rate_tolerance: float | None = FEED_RATE_TOLERANCE,
    fallbacks: dict[str, dict] | None = None,
) -> tuple[Ward, dict]:
    """Load the registered models (None: that monitor is off) and build the ward, taking up
    the patients and events of the ``state`` file when it has some (None: in memory only);
    returns it and ``{task: "URI (version N)"}``. A shadow model is compared with the
    champion of its task (:mod:`vitalgru.scoring.shadow`). ``feed_rate_tolerance``: the
    share off its admitted rate at which an ECG feed raises ``feed_rate`` (None: not
    checked). A champion that cannot be loaded is replaced by the newest earlier one that
    can, put in ``fallbacks`` (see :func:`_monitor`); none: :class:`ModelUnavailable`."""
    if (shadow_arrhythmia_model and not arrhythmia_model) or (
        shadow_early_warning_model and not early_warning_model
    ):
        raise ValueError("a shadow model needs the champion of its task to be served too")
    journal = None if state is None else WardJournal(state)  # a bad file fails before loading
    kept = None if journal is None else journal.load()  # a damaged row is left out, and said
    names: dict[str, str] = {}
    ward = Ward(
        _monitor("arrhythmia", arrhythmia_model, names, fallbacks),
        _monitor("early-warning", early_warning_model, names, fallbacks),
        journal=journal,
        shadow_ecg=_monitor("shadow arrhythmia", shadow_arrhythmia_model, names),
        shadow_sepsis=_monitor("shadow early-warning", shadow_early_warning_model, names),
        escalate_after_s=escalate_after_s,
        hour_close_after_s=hour_close_after_s,
        sepsis_lockout_h=sepsis_lockout_h,
        feed_rate_tolerance=feed_rate_tolerance,
    )
    if journal is not None and kept is not None:
        if not kept.empty or kept.damaged:
            for note in restart_notes(kept.models, names, len(kept.sepsis), len(kept.ecg)):
                logger.warning("gateway: %s (%s)", note, journal.path)
            took = ward.restore(kept)
            logger.info(
                "gateway: took up %d ECG (%d with their memory) and %d sepsis patient(s) "
                "(%d hours scored again) and %d events from %s (%d row(s) left out)",
                took["ecg"], took["ecg_memory"], took["sepsis"], took["hours"], took["events"],
                journal.path, took["damaged"],
            )  # fmt: skip
            if ward.state_damage:
                _set_aside(journal, ward.state_damage)
        same = shadows_going_on(kept.models, names)
        if same:  # the same challenger goes on with its comparison
            carried = ward.restore_shadow(journal.value("shadow"), same)
            if carried:
                logger.info("gateway: the shadow comparison of %s goes on from %s",
                            ", ".join(carried), journal.path)  # fmt: skip
        journal.set_models(names)
    return ward, names


def serve(
    arrhythmia_model: str | None,
    early_warning_model: str | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    tick_s: float = DEFAULT_TICK_S,
    state: str | os.PathLike | None = None,
    shadow_arrhythmia_model: str | None = None,
    shadow_early_warning_model: str | None = None,
    tokens: str | os.PathLike | None = None,
    escalate_after_s: float | Sequence[float] | None = ESCALATE_AFTER_S,
    patient_system: str | None = None,
    hl7_timezone: str | None = None,
    display_timezone: str | None = None,
    mllp_port: int | None = None,
    mllp_host: str = "127.0.0.1",
    mllp_allow: list[str] | None = None,
    adt_units: list[str] | None = None,
    hour_close_after_s: float = HOUR_CLOSE_AFTER_S,
    audit: str | os.PathLike | None = None,
    forward_alarms: str | None = None,
    mllp_tls_cert: str | None = None,
    mllp_tls_key: str | None = None,
    mllp_tls_client_ca: str | None = None,
    forward_alarms_ca: str | None = None,
    rate_limit: float | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_client_ca: str | None = None,
    sepsis_lockout_h: float = 0.0,
    cds_clients: str | os.PathLike | None = None,
    public_url: str | None = None,
    feed_rate_tolerance: float | None = FEED_RATE_TOLERANCE,
) -> None:
    """Load the models, take up the ``state`` file's patients, and serve the gateway until
    interrupted; with ``mllp_port``, HL7 v2 over MLLP beside HTTP; with ``audit``, every
    access to patient data written to that file (:mod:`pipelines.audit`); with
    ``forward_alarms`` (``HOST:PORT``), every alarm sent there as HL7 v2
    (:mod:`pipelines.hl7_forward`). TLS: the MLLP listener with ``mllp_tls_cert`` and
    ``mllp_tls_key`` (and client certificates from ``mllp_tls_client_ca``); the forwarder
    with ``forward_alarms_ca`` (a CA file, or ``system``), presenting the same
    certificate; HTTP itself with ``tls_cert`` and ``tls_key`` (:func:`http_tls_options`).
    ``cds_clients``: a file naming the EHRs that may call the CDS Hooks services
    (:mod:`pipelines.cds_hooks`); ``public_url``: the gateway's address as they call it.
    ``display_timezone``: the zone of the clinicians' pages' times (default: ``hl7_timezone``,
    else UTC)."""
    import uvicorn

    https = http_tls_options(tls_cert, tls_key, tls_client_ca)

    zone = _zone("--hl7-timezone", hl7_timezone)
    shown_zone = _zone("--display-timezone", display_timezone)
    if bool(mllp_tls_cert) != bool(mllp_tls_key):
        raise ValueError("--mllp-tls-cert and --mllp-tls-key go together")
    listener_tls = (
        server_tls(mllp_tls_cert, mllp_tls_key, mllp_tls_client_ca) if mllp_tls_cert else None
    )  # a bad certificate fails here, before the models load
    sender_tls = None
    if forward_alarms_ca:
        ca = None if forward_alarms_ca == "system" else forward_alarms_ca
        sender_tls = client_tls(ca, mllp_tls_cert, mllp_tls_key)
    target = None
    if forward_alarms:
        host_, _, port_ = forward_alarms.rpartition(":")
        if not host_ or not port_.isdigit() or not 1 <= int(port_) <= 65535:
            raise ValueError(f"--forward-alarms wants HOST:PORT, got {forward_alarms!r}")
        target = (host_.strip("[]"), int(port_))
    parse_adt_units(adt_units)  # ValueError: a unit's ICU type is not one
    if cds_clients is not None and not public_url:
        raise ValueError("--cds-clients needs --public-url: the gateway's address as the EHR "
                         "calls it, which each token's audience must name")  # fmt: skip
    if mllp_allow:
        for a in mllp_allow:
            ipaddress.ip_network(a.strip(), strict=False)  # ValueError: not an address
    if (
        mllp_port is not None
        and mllp_host not in ("127.0.0.1", "localhost", "::1")
        and (not mllp_allow)
    ):
        logger.warning(
            "gateway: MLLP on %s:%d takes messages from anyone who reaches it (MLLP has no "
            "credentials): give --mllp-allow with the interface engine's address",
            mllp_host, mllp_port,
        )  # fmt: skip
    token = os.environ.get(TOKEN_ENV) or None
    tokens = tokens or os.environ.get(TOKENS_ENV) or None
    table = None if tokens is None else TokenFile(tokens)  # before the models load
    access = token_access(token, table)
    if table is not None and not table.table.credentials and token is None:
        raise ValueError(f"{tokens} holds no token: no one could use the gateway "
                         "(add one with vitalgru serve-token)")  # fmt: skip
    if access is None and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "gateway: listening on %s without a token: anyone who reaches this port can read "
            "and send patient data; set %s or give --tokens", host, TOKEN_ENV,
        )  # fmt: skip
    elif not https and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "gateway: listening on %s over plain HTTP: its tokens and patient data cross the "
            "network unencrypted; give --tls-cert and --tls-key, or serve it behind a TLS "
            "proxy", host,
        )  # fmt: skip
    if table is not None:
        logger.info("gateway: %d named token(s) from %s, read again when it changes (%s)",
                    len(table.table.credentials), tokens,
                    ", ".join(f"{c.name}: {c.role}" for c in table.table.credentials))  # fmt: skip
    if state is not None and audit is not None and Path(state).resolve() == Path(audit).resolve():
        raise ValueError(f"--state and --audit both name {state}: the ward state and the "
                         "access log are two files")  # fmt: skip
    uris = [u for u in (arrhythmia_model, early_warning_model, shadow_arrhythmia_model,
                        shadow_early_warning_model) if u and u.startswith(("models:/", "runs:/"))]  # fmt: skip
    if uris and (why := tracking.missing_store()) is not None:  # before files are made here
        raise ValueError(why)
    # ports and single-writer files are claimed before anything loads or is written; the
    # bound sockets are handed to the servers, so nothing can take a port in between
    with contextlib.ExitStack() as claims:
        http_sock = claims.enter_context(bind_port(host, port, "--port"))
        mllp_sock = None
        if mllp_port is not None:
            mllp_sock = claims.enter_context(bind_port(mllp_host, mllp_port, "--mllp-port"))
        if state is not None:
            claims.enter_context(claim_file(state, "the ward state"))
        if audit is not None:
            claims.enter_context(claim_file(audit, "the access log"))
        # a bad access log or clients file fails before the models load
        audit_log = None if audit is None else AuditLog(audit)
        cds = None if cds_clients is None else CdsClients.from_file(cds_clients)
        if cds is not None:
            logger.info("gateway: CDS Hooks for %s", ", ".join(c.name for c in cds.by_iss.values()))
        fallbacks: dict[str, dict] = {}
        ward, names = build_ward(
            arrhythmia_model, early_warning_model, state,
            shadow_arrhythmia_model, shadow_early_warning_model, escalate_after_s,
            hour_close_after_s, sepsis_lockout_h, feed_rate_tolerance, fallbacks,
        )  # fmt: skip
        forwarder = None if target is None else AlarmForwarder(ward, *target, tls=sender_tls)
        logger.info("gateway: %s; listening on %s://%s:%d%s", names, "https" if https else "http",
                    host, port, " (client certificates required)" if tls_client_ca else "")  # fmt: skip
        try:
            app = create_app(ward, tick_s, names, token, stopping=lambda: server.should_exit,
                             tokens=table, patient_system=patient_system, hl7_timezone=zone,
                             display_timezone=shown_zone,
                             mllp=mllp_sock,
                             mllp_allow=mllp_allow or None, adt_units=adt_units or None,
                             audit=audit_log, forwarder=forwarder, mllp_tls=listener_tls,
                             rate_limit=None if rate_limit is None else RateLimit(rate_limit),
                             cds_clients=cds, public_url=public_url, hosts=[host],
                             model_fallbacks=fallbacks)  # fmt: skip
            config = uvicorn.Config(
                app, host=host, port=port, log_level="info",
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S, **https,
            )  # fmt: skip
            server = uvicorn.Server(config)
            with routes_only(app):  # no patient's id in the access lines on stderr
                server.run(sockets=[http_sock])
        finally:  # the queued ECG is scored and each patient's memory kept for the next start
            ward.close()

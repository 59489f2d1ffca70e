"""The ``vitalgru`` command line.

It lives in ``pipelines`` rather than ``vitalgru`` because its commands run Prefect flows:
the library (``vitalgru``) never imports prefect or the flows, and this module sits on top
of both. Flow modules are imported inside each command so ``vitalgru --help`` answers at
once instead of paying Prefect's and torch's import time.

Every command works from any working directory: default configs ship inside the package,
relative output paths resolve against the current directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vitalgru import __version__
from vitalgru.config import (
    ArrhythmiaTrainConfig,
    EarlyWarningConfig,
    IngestConfig,
    load_config,
)
from vitalgru.errors import ServerUnavailableError, VitalgruError
from vitalgru.io.download import server_unreachable

EPILOG = (
    "Environment: VITALGRU_PHYSIONET_MIRROR (local PhysioNet mirror), MLFLOW_TRACKING_URI "
    "(default: sqlite:///./mlflow.db), PREFECT_API_URL (default: Prefect's temporary local "
    "server)."
)


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key.sub=value`` strings to a dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, default=str))


def _quiet_env() -> None:
    # Offline by default: no analytics from the embedded Prefect server or MLflow.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not sys.stderr.isatty():
        # MLflow draws a bar per model download; written to a log file (a scheduled
        # flow, CI) it is one long line of carriage returns.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


#: Each config name: the model that validates it and its packaged YAML.
CONFIGS: dict[str, tuple[type[Any], str]] = {
    "ingest": (IngestConfig, "ingest.yaml"),
    "arrhythmia": (ArrhythmiaTrainConfig, "arrhythmia.yaml"),
    "early-warning": (EarlyWarningConfig, "early_warning.yaml"),
}


def _resolved_config(name: str, path: str | None, overrides: dict[str, Any]) -> Any:
    """The validated config (packaged defaults, file, overrides); ConfigError if bad."""
    model, default_name = CONFIGS[name]
    return load_config(model, path, overrides, default_name=default_name)


def _results_path(out: str) -> str:
    """``--out`` of evaluate: a ``.json`` file, or a folder (existing, ending in ``/``, or a
    name without a suffix). Checked when the command line is read, not after the scoring,
    which can take minutes."""
    if out.endswith(("/", os.sep)) or Path(out).is_dir() or Path(out).suffix in ("", ".json"):
        return out
    raise argparse.ArgumentTypeError(
        f"{out!r} is neither a .json file nor a folder (end a folder's name with / when it "
        "has a dot)"
    )


def _check_mlflow() -> None:
    """A tracking server that does not answer fails in seconds, not after MLflow's four
    minutes of retries (:func:`vitalgru.tracking.check_stores`)."""
    from vitalgru.tracking import check_stores

    check_stores()


def _check_prefect(attempts: int = 3, wait_s: float = 2.0) -> None:
    """A Prefect API server (``PREFECT_API_URL``, from the environment or the Prefect
    profile) that does not answer is a clear error before a flow starts, not Prefect's
    traceback from inside it. Without one, each flow starts a temporary local server."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return
    reason = server_unreachable(url.rstrip("/") + "/health", attempts, wait_s)
    if reason is not None:
        raise ServerUnavailableError.after_tries(
            "Prefect API", url, "PREFECT_API_URL", reason, attempts, wait_s,
            "unset it (environment or Prefect profile) to let each flow start a temporary "
            "local server",
        )  # fmt: skip


def cmd_ingest(args: argparse.Namespace) -> int:
    overrides = _parse_overrides(args.set)
    _resolved_config("ingest", args.config, overrides)  # fail before any flow starts
    _check_prefect()
    from pipelines.ingest import ingest_flow

    res = ingest_flow(
        config_path=args.config,
        overrides=overrides,
        out_dir=str(Path(args.out).resolve()) if args.out else None,
    )
    _print(res)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    overrides = _parse_overrides(args.set)
    # A bad config fails here, in a second, not after a Prefect server has started.
    cfg = _resolved_config(args.task, args.config, overrides)
    _check_mlflow()
    _check_prefect()
    if args.task == "arrhythmia":
        from pipelines.arrhythmia import check_validation_records, train_arrhythmia_flow

        check_validation_records(cfg)
        res = train_arrhythmia_flow(config_path=args.config, overrides=overrides)
    else:
        from pipelines.early_warning import train_early_warning_flow

        res = train_early_warning_flow(config_path=args.config, overrides=overrides)
    _print(res)
    return 0


#: Each task's input option, which ``evaluate`` and ``replay`` require: (attribute, usage).
_TASK_INPUT = {
    "arrhythmia": ("db", "--db NAME_OR_FOLDER"),
    "early-warning": ("data", "--data FOLDER"),
}


def _require_input(args: argparse.Namespace) -> None:
    """Exit with a usage message when the task's input option is missing (argparse cannot
    say that one option is required for one choice of the positional argument)."""
    attr, usage = _TASK_INPUT[args.task]
    if not getattr(args, attr):
        raise SystemExit(f"{args.command} {args.task} needs {usage}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    _require_input(args)
    _check_mlflow()
    if args.task == "arrhythmia":
        from pipelines.arrhythmia import evaluate_arrhythmia

        res = evaluate_arrhythmia(
            model_uri=args.model,
            db=args.db,
            records=args.records,
            out=str(Path(args.out).resolve()),
            config_path=args.config,
        )
    else:
        from pipelines.early_warning import evaluate_early_warning

        res = evaluate_early_warning(
            model_uri=args.model, data=args.data, out=str(Path(args.out).resolve())
        )
    _print(res)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    _require_input(args)
    _check_mlflow()
    if args.task == "early-warning":
        if args.annotations is not None:
            raise SystemExit("--annotations is an arrhythmia option")
        from pipelines.replay import replay_early_warning

        ew = replay_early_warning(
            model_uri=args.model,
            data=args.data,
            out=str(Path(args.out).resolve()),
            patients=args.patients,
        )
        m = ew["metrics"]
        _print(
            {
                "patients": m["n_patients"],
                "utility": m["utility"],
                "auroc": m["auroc"],
                "alarms": ew["alarms"],
                "patient_hours_per_s": ew["compute"]["patient_hours_per_s"],
                "paths": ew["paths"],
            }
        )
        return 0
    from pipelines.replay import replay_arrhythmia

    res = replay_arrhythmia(
        model_uri=args.model,
        db=args.db,
        records=args.records,
        out=str(Path(args.out).resolve()),
        chunk_s=args.chunk_s,
        margin_s=args.margin_s,
        config_path=args.config,
        annotations=_annotations(args.annotations or "atr"),
    )
    if res["annotated"]:
        d, b = res["detection"], res["beats"]
        scores = {
            "beats_found": f"{d['matched']} of {d['reference']}",
            "accuracy": b["accuracy"],
            "f1": {c: v["f1"] for c, v in b["classes"].items()},
        }
    else:
        scores = {"beats_called": res["calls"]["calls"]}
    _print(
        {
            **scores,
            "alerts": res["alerts"]["counts"],
            "latency_s": res["latency_s"],
            "paths": res["paths"],
        }
    )
    return 0


#: ``--fail-on`` levels: the monitor's statuses from ``watch`` up (see pipelines.monitor).
_FAIL_LEVELS = ("watch", "drift", "degraded")


def cmd_monitor(args: argparse.Namespace) -> int:
    given: dict[str, Any] = {
        "model_uri": args.model,
        "out": str(Path(args.out).resolve()) if args.out else None,
    }
    if args.task == "arrhythmia":
        if args.data or args.max_utility_drop is not None or args.max_auroc_drop is not None:
            raise SystemExit("monitor arrhythmia reads --db/--records; --data and the "
                             "utility/AUROC drops are early-warning options")  # fmt: skip
        given |= {
            "db": args.db,
            "records": args.records,
            "max_f1_drop": args.max_f1_drop,
            "config_path": args.config,
        }
    else:
        if (
            args.db or args.records or args.max_f1_drop is not None or args.config
            or args.annotations is not None
        ):  # fmt: skip
            raise SystemExit("monitor early-warning reads --data; --db, --records, --config, "
                             "--annotations and --max-f1-drop are arrhythmia options")  # fmt: skip
        given |= {
            "data": args.data,
            "max_utility_drop": args.max_utility_drop,
            "max_auroc_drop": args.max_auroc_drop,
        }
    _check_mlflow()
    _check_prefect()
    from pipelines.monitor import STATUSES, monitor_arrhythmia_flow, monitor_early_warning_flow

    flow_fn = monitor_arrhythmia_flow if args.task == "arrhythmia" else monitor_early_warning_flow
    given = {k: v for k, v in given.items() if v is not None}
    if args.task == "arrhythmia" and args.annotations is not None:
        given["annotations"] = _annotations(args.annotations)  # None: unannotated records
    res = flow_fn(**given)
    _print(res)
    if args.fail_on and STATUSES.index(res["status"]) >= STATUSES.index(args.fail_on):
        print(f"vitalgru: monitor status {res['status']!r} (--fail-on {args.fail_on})",
              file=sys.stderr)  # fmt: skip
        return 3
    return 0


#: ``--annotations`` value for records nobody annotated.
NO_ANNOTATIONS = "none"


def _annotation_ext(text: str) -> str:
    """An annotation file extension (``atr``, ``qrs``, ...) or ``none``."""
    if text.lower() == NO_ANNOTATIONS:
        return NO_ANNOTATIONS
    if not (text.isascii() and text.isalnum() and len(text) <= 16):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an annotation file extension (letters and digits, such as "
            f"atr) or {NO_ANNOTATIONS!r}"
        )
    return text


def _annotations(ext: str) -> str | None:
    """What the pipelines take: the extension, or None for unannotated records."""
    return None if ext == NO_ANNOTATIONS else ext


def _parsed(text: str, cast: type, noun: str) -> Any:
    """``cast(text)``, or the argparse error saying ``text`` is not ``noun``."""
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None


def _drop(text: str) -> float:
    v = _parsed(text, float, "a number")
    if not (0 <= v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return v


def _count(text: str) -> int:
    v = _parsed(text, int, "a whole number")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return v


def _seconds(text: str, allow_zero: bool = False) -> float:
    v = _parsed(text, float, "a number of seconds")
    if not ((v > 0 or (allow_zero and v == 0)) and v < float("inf")):
        least = "0 or more" if allow_zero else "positive"
        raise argparse.ArgumentTypeError(f"must be a {least} number of seconds, got {text}")
    return v


def _positive_seconds(text: str) -> float:
    return _seconds(text)


def _margin_seconds(text: str) -> float:
    return _seconds(text, allow_zero=True)


#: Short names ``vitalgru models`` accepts for the registered models.
_MODEL_NAMES = {"arrhythmia": "vitalgru-arrhythmia", "early-warning": "vitalgru-early-warning"}


def _versions_text(name: str, rows: list[dict[str, Any]], history: list[dict[str, str]]) -> str:
    """The versions of one registered model as a plain-text table, and its recent holders
    of the champion alias."""
    if not rows:
        return f"{name}: not registered\n"

    def gate(g: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in g.items()) or "-"

    def monitor(m: dict[str, str | None]) -> str:
        return f"{m['status']} ({m['checked_at']})" if m.get("status") else "-"

    table = [("version", "created", "aliases", "gate values", "last check")]
    table += [
        (r["version"], r["created"], ",".join(r["aliases"]) or "-", gate(r["gate"]),
         monitor(r["monitor"]))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [name] + ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                      for row in table]  # fmt: skip
    if history:
        lines.append("  champion, most recent first:")
        lines += [
            f"    version {h['version']} {h.get('at', '')} {h.get('how', '')}: {h.get('reason', '')}"
            for h in reversed(history[-5:])
        ]
    return "\n".join(lines) + "\n"


def cmd_models(args: argparse.Namespace) -> int:
    from vitalgru import tracking

    _check_mlflow()
    if args.action == "list":
        names = [_MODEL_NAMES.get(n, n) for n in (args.name or list(_MODEL_NAMES))]
        found = {n: (tracking.registry_versions(n), tracking.alias_history(n)) for n in names}
        if args.json:
            _print({n: {"versions": v, "champion_history": h} for n, (v, h) in found.items()})
        else:
            print("\n".join(_versions_text(n, v, h) for n, (v, h) in found.items()), end="")
        return 0
    name = _MODEL_NAMES.get(args.name, args.name)
    try:
        if args.action == "promote":
            d = tracking.promote(name, args.version, args.reason, args.alias)
        else:
            d = tracking.rollback(name, args.reason, args.alias)
    except ValueError as e:
        raise SystemExit(f"vitalgru: error: {e}") from None
    _print({"promoted": d.promoted, "reason": d.reason, "previous_version": d.previous_version,
            "now": tracking.get_alias_version(name, args.alias)})  # fmt: skip
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    ecg = None if args.arrhythmia_model.lower() == "none" else args.arrhythmia_model
    ew = None if args.early_warning_model.lower() == "none" else args.early_warning_model
    if ecg is None and ew is None:
        raise SystemExit("serve needs at least one model (both were given as none)")
    _check_mlflow()
    from pipelines.gateway_serve import serve

    state = None if args.state.lower() == "none" else args.state
    try:
        serve(ecg, ew, host=args.host, port=args.port, tick_s=args.tick_s, state=state,
              shadow_arrhythmia_model=args.shadow_arrhythmia_model,
              shadow_early_warning_model=args.shadow_early_warning_model,
              tokens=args.tokens,
              escalate_after_s=60 * args.escalate_after_min or None,
              patient_system=args.patient_system, hl7_timezone=args.hl7_timezone,
              mllp_port=args.mllp_port, mllp_host=args.mllp_host,
              mllp_allow=_listed(args.mllp_allow), adt_units=_listed(args.adt_units),
              hour_close_after_s=60 * args.hour_close_after_min,
              audit=None if args.audit.lower() == "none" else args.audit,
              forward_alarms=args.forward_alarms, mllp_tls_cert=args.mllp_tls_cert,
              mllp_tls_key=args.mllp_tls_key, mllp_tls_client_ca=args.mllp_tls_client_ca,
              forward_alarms_ca=args.forward_alarms_ca, rate_limit=args.rate_limit)  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C: the server has shut down and the ward was closed
        logging.getLogger("pipelines.gateway").info("gateway: stopped")
        return 0
    except (ValueError, OSError) as e:  # a bad state, token or certificate file, ...
        raise SystemExit(f"vitalgru: error: {e}") from None
    return 0


def cmd_serve_audit(args: argparse.Namespace) -> int:
    from pipelines.audit import AuditLog, read_rows

    if args.verify:
        if not Path(args.file).is_file():
            raise SystemExit(f"vitalgru: error: no audit log at {args.file}")
        try:
            n, broken, last = AuditLog(args.file).verify()
        except ValueError as e:
            raise SystemExit(f"vitalgru: error: {e}") from None
        if broken is not None:
            raise SystemExit(f"vitalgru: {args.file}: the hash chain breaks at row {broken} "
                             "(that row, or one before it, was changed or deleted)")  # fmt: skip
        print(f"{args.file}: {n} row(s), the hash chain is intact; the last link is {last}")
        return 0
    try:
        rows = read_rows(args.file, patient_id=args.patient, caller=args.caller,
                         refused=args.refused)  # fmt: skip
        n = 0
        for r in rows:
            n += 1
            if args.json:
                print(json.dumps(r))
            else:
                times = f" (x{r['count']})" if r["count"] > 1 else ""
                print(f"{r['seq']}\t{r['at']}\t{r['caller']}\t{r['action']}\t"
                      f"{r['patient_id'] or '-'}\t{r['status']}\t{r['client'] or '-'}{times}")  # fmt: skip
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"vitalgru: error: {e}") from None
    print(f"{n} row(s)", file=sys.stderr)
    return 0


def cmd_serve_token(args: argparse.Namespace) -> int:
    from pipelines.access import TokenTable, new_token, revoke_token

    try:
        if args.list:
            for c in TokenTable.from_file(args.file).credentials:
                limits = [f"expires {c.expires}"] if c.expires else []
                limits += [f"patients {', '.join(c.patients)}"] if c.patients else []
                print(f"{c.name} ({c.role}{'; ' if limits else ''}{'; '.join(limits)})")
            return 0
        if args.name is None:
            raise ValueError("name the token (or give --list)")
        if args.revoke:
            gone = revoke_token(args.file, args.name)
            print(f"{gone.name} ({gone.role}) removed from {args.file}; a gateway serving it "
                  "refuses the token from its next look at the file (about a second)",
                  file=sys.stderr)  # fmt: skip
            return 0
        if args.role is None:
            raise ValueError("a new token needs --role")
        patients = None if args.patients is None else [
            x.strip() for x in args.patients.split(",") if x.strip()]  # fmt: skip
        token = new_token(args.file, args.name, args.role, expires_days=args.expires_days,
                          patients=patients)  # fmt: skip
    except ValueError as e:
        raise SystemExit(f"vitalgru: error: {e}") from None
    print(f"{args.name} ({args.role}): {token}")
    print(f"Added to {args.file}, which keeps only its hash: give it to {args.name} now, it "
          "is not shown again. A gateway serving the file (vitalgru serve --tokens "
          f"{args.file}) takes it from its next look at the file.", file=sys.stderr)  # fmt: skip
    return 0


def _days(text: str) -> float:
    v = _parsed(text, float, "a number of days")
    if not 0 < v < 36_500:
        raise argparse.ArgumentTypeError(f"days must be > 0, got {text}")
    return v


def _non_negative_minutes(text: str) -> float:
    v = _parsed(text, float, "a number of minutes")
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"minutes must be >= 0, got {text}")
    return v


def _positive_rate(text: str) -> float:
    v = _parsed(text, float, "a number of requests per second")
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"a rate must be > 0 requests per second, got {text}")
    return v


def _listed(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when not given)."""
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def _port(text: str) -> int:
    v = _parsed(text, int, "a port number")
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {text}")
    return v


def cmd_run(args: argparse.Namespace) -> int:
    if set(args.tasks) - {"ingest"}:
        _check_mlflow()
    _check_prefect()
    from pipelines.run import run_all

    res = run_all(tasks=list(args.tasks))
    _print(res)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _resolved_config(args.name, args.config, _parse_overrides(args.set))
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vitalgru",
        description="GRU patient monitoring on PhysioNet data: ingest, train, evaluate, run.",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"vitalgru {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="YAML config file (default: the packaged one)")
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set arrhythmia.seed=3 (repeatable)",
        )

    sp = sub.add_parser(
        "ingest",
        help="download or mirror, verify, filter, detect and window a database",
        description="Build a beat dataset (default: MIT-BIH, de Chazal DS1/DS2 split).",
        epilog=EPILOG,
    )
    common(sp)
    sp.add_argument("--out", help="dataset folder (default: the config's out_dir)")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser(
        "train",
        help="train, evaluate, register and promote a model (a Prefect flow)",
        epilog=EPILOG,
    )
    sp.add_argument("task", choices=["arrhythmia", "early-warning"])
    common(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser(
        "evaluate",
        help="score a database with a registered model and write metrics JSON + markdown",
        epilog=EPILOG,
    )
    sp.add_argument("task", choices=["arrhythmia", "early-warning"])
    sp.add_argument("--model", required=True, help="model URI, e.g. models:/NAME@champion")
    sp.add_argument("--db", help="arrhythmia: PhysioNet database name or a WFDB folder")
    sp.add_argument("--records", help="arrhythmia: DS1, DS2 or a comma-separated list")
    sp.add_argument("--data", help="early-warning: a folder of Challenge-2019 .psv files")
    sp.add_argument(
        "--out", required=True, type=_results_path,
        help="metrics JSON to write, or a folder for the results",
    )  # fmt: skip
    sp.add_argument("--config", help="arrhythmia: config for lead/filters (default: packaged)")
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser(
        "replay",
        help="replay recordings as live feeds through a streaming monitor; score it (EC57 "
        "beat by beat, or the sepsis utility hour by hour), list the alarms and write a "
        "clinician's page",
        epilog=EPILOG,
    )
    sp.add_argument("task", choices=["arrhythmia", "early-warning"])
    sp.add_argument("--model", required=True, help="model URI, e.g. models:/NAME@champion")
    sp.add_argument("--db", help="arrhythmia: PhysioNet database name or a WFDB folder")
    sp.add_argument(
        "--records", help="arrhythmia: DS1, DS2 or a comma-separated list (default: all)"
    )
    sp.add_argument("--data", help="early-warning: a folder of Challenge-2019 .psv files")
    sp.add_argument(
        "--patients", type=_count, default=None,
        help="early-warning: replay only the first N files (default: all)",
    )  # fmt: skip
    sp.add_argument(
        "--chunk-s", type=_positive_seconds, default=1.0,
        help="arrhythmia: seconds of signal per patient per tick (default 1)",
    )  # fmt: skip
    sp.add_argument(
        "--margin-s", type=_margin_seconds, default=None,
        help="arrhythmia: signal kept around each beat for filtering; adds this much latency "
        "(default 2)",
    )  # fmt: skip
    sp.add_argument(
        "--out", required=True, type=_results_path,
        help="report JSON to write, or a folder for it",
    )  # fmt: skip
    sp.add_argument(
        "--config", help="arrhythmia: config for the mirror and the lead (default: packaged)"
    )
    sp.add_argument(
        "--annotations", type=_annotation_ext,
        help="arrhythmia: extension of the reference beat annotations (default: atr), or "
        "none for unannotated recordings: replayed and reported without scores",
    )  # fmt: skip
    sp.set_defaults(func=cmd_replay)

    sp = sub.add_parser(
        "monitor",
        help="check a registered model on new data: input and output drift against its "
        "training reference, performance where labels exist; recorded in MLflow (a "
        "Prefect flow)",
        epilog=EPILOG,
    )
    sp.add_argument("task", choices=["arrhythmia", "early-warning"])
    sp.add_argument("--model", help="model URI (default: models:/vitalgru-<task>@champion)")
    sp.add_argument(
        "--data",
        help="early-warning: a folder of Challenge-2019 .psv files, or a path under the "
        "PhysioNet mirror (default: challenge-2019/training_setA)",
    )
    sp.add_argument(
        "--db", help="arrhythmia: PhysioNet database name or a WFDB folder (default: mitdb)"
    )
    sp.add_argument(
        "--records", help="arrhythmia: DS1, DS2, all or a comma-separated list (default: DS2)"
    )
    sp.add_argument("--config", help="arrhythmia: config for the mirror and the lead")
    sp.add_argument(
        "--annotations", type=_annotation_ext,
        help="arrhythmia: extension of the reference beat annotations (default: atr), or "
        "none for unannotated recordings: the detector's beats are classified and drift is "
        "checked, performance is not",
    )  # fmt: skip
    sp.add_argument(
        "--out",
        help="folder for monitoring.json/.md and the evaluation "
        "(default: vitalgru-out/monitoring/<task>)",
    )
    sp.add_argument(
        "--max-utility-drop", type=_drop,
        help="early-warning: utility drop below the gated value still tolerated (0.05)",
    )  # fmt: skip
    sp.add_argument(
        "--max-auroc-drop", type=_drop,
        help="early-warning: AUROC drop below the gated value still tolerated (0.03)",
    )  # fmt: skip
    sp.add_argument(
        "--max-f1-drop", type=_drop,
        help="arrhythmia: S or V F1 drop below the gated DS2 value still tolerated (0.05)",
    )  # fmt: skip
    sp.add_argument(
        "--fail-on", choices=_FAIL_LEVELS,
        help="exit with status 3 when the check ends at this level or worse "
        "(ok < watch < drift < degraded); default: always exit 0 after a check",
    )  # fmt: skip
    sp.set_defaults(func=cmd_monitor)

    sp = sub.add_parser(
        "models",
        help="the registered models: each version's aliases, gate values and last "
        "monitoring check; promote a version by hand or roll the champion back (recorded "
        "in the registry)",
        epilog=EPILOG,
    )
    msub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="versions of each registered model, newest first")
    ls.add_argument("name", nargs="*",
                    help="arrhythmia, early-warning or a registered name (default: both)")  # fmt: skip
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_models)
    pr = msub.add_parser(
        "promote", help="make a version the champion by hand (a reviewed challenger)"
    )
    pr.add_argument("name", help="arrhythmia, early-warning or a registered name")
    pr.add_argument("version")
    rb = msub.add_parser(
        "rollback", help="give the champion alias back to the version that held it before"
    )
    rb.add_argument("name", help="arrhythmia, early-warning or a registered name")
    for p_ in (pr, rb):
        p_.add_argument("--reason", required=True,
                        help="why (kept on the version and in the alias history)")  # fmt: skip
        p_.add_argument("--alias", default="champion", help="alias to move (default: champion)")
        p_.set_defaults(func=cmd_models)

    sp = sub.add_parser(
        "serve",
        help="the bedside gateway: an HTTP service that takes live ECG and hourly vital "
        "signs, labels beats, raises alarms and scores sepsis risk (OpenAPI at /docs)",
        epilog=EPILOG,
    )
    sp.add_argument(
        "--arrhythmia-model", default="models:/vitalgru-arrhythmia@champion",
        help="model URI for the ECG feeds, or none (default: the champion)",
    )  # fmt: skip
    sp.add_argument(
        "--early-warning-model", default="models:/vitalgru-early-warning@champion",
        help="model URI for the hourly vital signs, or none (default: the champion)",
    )  # fmt: skip
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sp.add_argument("--port", type=_port, default=8000, help="port (8000)")
    sp.add_argument(
        "--tick-s", type=_positive_seconds, default=1.0,
        help="seconds between batched pushes of the queued ECG (default 1)",
    )  # fmt: skip
    sp.add_argument(
        "--state", default="ward-state.sqlite",
        help="SQLite file that keeps admissions, sepsis hours and alarms across restarts, or "
        "none to keep them in memory only (default: ward-state.sqlite here)",
    )  # fmt: skip
    sp.add_argument(
        "--shadow-arrhythmia-model", default=None, metavar="URI",
        help="a challenger fed every ECG feed beside the champion and compared with it "
        "(GET /shadow); it raises no alarm",
    )  # fmt: skip
    sp.add_argument(
        "--shadow-early-warning-model", default=None, metavar="URI",
        help="the same for the hourly vital signs",
    )  # fmt: skip
    sp.add_argument(
        "--tokens", default=None, metavar="FILE",
        help="named access tokens with roles (feed, reader, clinician, admin), made with "
        "vitalgru serve-token (default: $VITALGRU_GATEWAY_TOKENS; with neither it nor "
        "$VITALGRU_GATEWAY_TOKEN the gateway is open)",
    )  # fmt: skip
    sp.add_argument(
        "--patient-system", default=None, metavar="URI",
        help="the identifier system the patient ids belong to (e.g. the hospital's medical "
        "record number URI), put in the FHIR resources' patient references",
    )  # fmt: skip
    sp.add_argument(
        "--escalate-after-min", type=_non_negative_minutes, default=15.0,
        help="minutes after which an alarm no one has acknowledged gets an escalated event "
        "(default 15; 0: never)",
    )  # fmt: skip
    sp.add_argument(
        "--hour-close-after-min", type=_non_negative_minutes, default=10.0,
        help="minutes after an ICU hour ends that its observations (FHIR or HL7 v2, sent "
        "with their times) may still arrive before the hour is scored (default 10)",
    )  # fmt: skip
    sp.add_argument(
        "--hl7-timezone", default=None, metavar="ZONE",
        help="the site's time zone (e.g. Europe/Berlin) for HL7 v2 times sent without a "
        "UTC offset (default: such times are not placed)",
    )  # fmt: skip
    sp.add_argument(
        "--mllp-port", type=_port, default=None,
        help="also take HL7 v2 messages (ADT admissions and discharges, ORU results) over "
        "MLLP on this port, as interface engines send them (default: off; 2575 is usual)",
    )  # fmt: skip
    sp.add_argument("--mllp-host", default="127.0.0.1",
                    help="address the MLLP listener binds (127.0.0.1)")  # fmt: skip
    sp.add_argument(
        "--mllp-allow", default=None, metavar="ADDRESSES",
        help="comma-separated addresses or networks (10.1.2.3,10.1.0.0/16) that may connect "
        "to the MLLP port, which has no credentials (default: any that can reach it)",
    )  # fmt: skip
    sp.add_argument(
        "--adt-units", default=None, metavar="UNITS",
        help="comma-separated points of care (PV1-3) whose patients are scored: admissions "
        "elsewhere are not acted on, transfers in and out admit and discharge (default: "
        "every ADT^A01 admits)",
    )  # fmt: skip
    sp.add_argument(
        "--audit", default="ward-audit.sqlite", metavar="FILE",
        help="SQLite file that keeps who read which patient's data, acknowledged, admitted "
        "or discharged, and who was refused (GET /audit, vitalgru serve-audit), or none "
        "(default: ward-audit.sqlite here)",
    )  # fmt: skip
    sp.add_argument(
        "--forward-alarms", default=None, metavar="HOST:PORT",
        help="send every alarm and escalation to this MLLP receiver (the interface engine) "
        "as an HL7 v2 ORU^R40 message, in order, until acknowledged (default: off)",
    )  # fmt: skip
    sp.add_argument(
        "--mllp-tls-cert",
        default=None,
        metavar="PEM",
        help="MLLP over TLS: this gateway's certificate chain (with --mllp-tls-key)",
    )
    sp.add_argument(
        "--mllp-tls-key", default=None, metavar="PEM", help="the private key of --mllp-tls-cert"
    )
    sp.add_argument(
        "--mllp-tls-client-ca",
        default=None,
        metavar="PEM",
        help="only senders with a certificate this CA signed may connect (mutual TLS)",
    )
    sp.add_argument(
        "--rate-limit", type=_positive_rate, default=None, metavar="PER_S",
        help="requests per second each token (or client address, without tokens) may make "
        "on average, bursts of twice that (at least 10); over it: 429 (default: no limit)",
    )  # fmt: skip
    sp.add_argument(
        "--forward-alarms-ca", default=None, metavar="PEM|system",
        help="send the alarms over TLS, the receiver's certificate checked against this CA "
        "(or the system's); the gateway presents --mllp-tls-cert when given",
    )  # fmt: skip
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser(
        "serve-audit",
        help="print a gateway's access log: who read which patient's data, and who was refused",
        epilog=EPILOG,
    )
    sp.add_argument("file", nargs="?", default="ward-audit.sqlite",
                    help="the gateway's --audit file (default: ward-audit.sqlite here)")  # fmt: skip
    sp.add_argument("--patient", default=None, help="one patient's rows")
    sp.add_argument("--caller", default=None, help="one token's rows")
    sp.add_argument("--refused", action="store_true", help="only the 401 and 403 answers")
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.add_argument("--verify", action="store_true",
                    help="check the rows' hash chain instead (exit 1 where it breaks)")  # fmt: skip
    sp.set_defaults(func=cmd_serve_audit)

    sp = sub.add_parser(
        "serve-token",
        help="make, list or revoke the gateway's access tokens: a new token is printed "
        "once and its hash added to the token file",
        epilog=EPILOG,
    )
    sp.add_argument("name", nargs="?", help="who or what holds it (a feed, a screen, a "
                    "clinician)")  # fmt: skip
    sp.add_argument(
        "--role", choices=("feed", "reader", "clinician", "admin"),
        help="feed: send patient data; reader: read it; clinician: read and acknowledge "
        "events; admin: all",
    )  # fmt: skip
    sp.add_argument(
        "--expires-days", type=_days, default=None, metavar="DAYS",
        help="the token is refused this many days from now (default: never)",
    )  # fmt: skip
    sp.add_argument(
        "--patients", default=None, metavar="IDS",
        help="comma-separated patient ids or patterns (bed-4, icu-2-*) the token may act on "
        "(default: every patient)",
    )  # fmt: skip
    sp.add_argument("--revoke", action="store_true",
                    help="remove the token named from the file")  # fmt: skip
    sp.add_argument("--list", action="store_true",
                    help="list the tokens in the file: names, roles, limits")  # fmt: skip
    sp.add_argument(
        "--file", default="gateway-tokens.json",
        help="the token file (default: gateway-tokens.json here)",
    )  # fmt: skip
    sp.set_defaults(func=cmd_serve_token)

    sp = sub.add_parser(
        "run",
        help="the whole pipeline on embedded defaults (SQLite MLflow, local Prefect)",
        epilog=EPILOG,
    )
    sp.add_argument(
        "--tasks",
        nargs="+",
        default=["arrhythmia", "early-warning"],
        choices=["ingest", "arrhythmia", "early-warning"],
        help="what to run (default: both models; each flow ingests what it needs)",
    )
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "config",
        help="validate and print a resolved config (defaults + file + --set)",
        epilog=EPILOG,
    )
    sp.add_argument("name", choices=["ingest", "arrhythmia", "early-warning"])
    common(sp)
    sp.set_defaults(func=cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Prefect's client logs every API call through httpx at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _quiet_env()
    try:
        return int(args.func(args))
    except (VitalgruError, FileNotFoundError) as e:
        print(f"vitalgru: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

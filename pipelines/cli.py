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

from pipelines.cli_args import (
    EPILOG,
    annotation_ext,
    annotation_ext_or_none,
    check_mlflow,
    check_prefect,
    count,
    drop,
    margin_seconds,
    positive_seconds,
    results_path,
    written_annotation_ext,
)
from pipelines.cli_serve import add_serve_commands
from vitalgru import __version__
from vitalgru.config import (
    ArrhythmiaTrainConfig,
    EarlyWarningConfig,
    IngestConfig,
    load_config,
)
from vitalgru.errors import VitalgruError


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


def cmd_ingest(args: argparse.Namespace) -> int:
    overrides = _parse_overrides(args.set)
    _resolved_config("ingest", args.config, overrides)  # fail before any flow starts
    check_prefect()
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
    check_mlflow()
    check_prefect()
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
    say that one option is required for one choice of the positional argument), or an
    arrhythmia option is given to early-warning."""
    attr, usage = _TASK_INPUT[args.task]
    if not getattr(args, attr):
        raise SystemExit(f"{args.command} {args.task} needs {usage}")
    if args.task == "arrhythmia" and getattr(args, "write_predictions", False):
        raise SystemExit("--write-predictions is an early-warning option")
    if args.write_annotations is None:
        return
    if args.task == "early-warning":
        raise SystemExit("--write-annotations is an arrhythmia option")
    from vitalgru.io.wfdb_writer import check_annotation_extension

    try:  # not the reference annotations' own extension
        check_annotation_extension(
            args.write_annotations, getattr(args, "annotations", None) or "atr"
        )
    except ValueError as e:
        raise SystemExit(f"vitalgru: error: {e}") from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    _require_input(args)
    check_mlflow()
    if args.task == "arrhythmia":
        from pipelines.arrhythmia import evaluate_arrhythmia

        res = evaluate_arrhythmia(
            model_uri=args.model,
            db=args.db,
            records=args.records,
            out=str(Path(args.out).resolve()),
            config_path=args.config,
            write_annotations=args.write_annotations,
        )
    else:
        from pipelines.early_warning import evaluate_early_warning

        res = evaluate_early_warning(
            model_uri=args.model, data=args.data, out=str(Path(args.out).resolve()),
            write_predictions=args.write_predictions,
        )  # fmt: skip
    _print(res)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    _require_input(args)
    check_mlflow()
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
        annotations=annotation_ext_or_none(args.annotations or "atr"),
        write_annotations=args.write_annotations,
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
    check_mlflow()
    check_prefect()
    from pipelines.monitor import STATUSES, monitor_arrhythmia_flow, monitor_early_warning_flow

    flow_fn = monitor_arrhythmia_flow if args.task == "arrhythmia" else monitor_early_warning_flow
    given = {k: v for k, v in given.items() if v is not None}
    if args.task == "arrhythmia" and args.annotations is not None:
        given["annotations"] = annotation_ext_or_none(args.annotations)  # None: unannotated records
    res = flow_fn(**given)
    _print(res)
    if args.fail_on and STATUSES.index(res["status"]) >= STATUSES.index(args.fail_on):
        print(f"vitalgru: monitor status {res['status']!r} (--fail-on {args.fail_on})",
              file=sys.stderr)  # fmt: skip
        return 3
    return 0


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

    check_mlflow()
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


def cmd_run(args: argparse.Namespace) -> int:
    if set(args.tasks) - {"ingest"}:
        check_mlflow()
    check_prefect()
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
        "--out", required=True, type=results_path,
        help="metrics JSON to write, or a folder for the results",
    )  # fmt: skip
    sp.add_argument("--config", help="arrhythmia: config for lead/filters (default: packaged)")
    sp.add_argument(
        "--write-annotations", type=written_annotation_ext, metavar="EXT",
        help="arrhythmia: also write the model's label of each beat as a WFDB annotation "
        "file, annotations/<record>.<EXT> beside the report (for bxb, WAVE, wfdb.rdann)",
    )  # fmt: skip
    sp.add_argument(
        "--write-predictions", action="store_true",
        help="early-warning: also write the hourly risks as the Challenge 2019 wanted "
        "predictions, challenge/predictions/<patient>.psv (and challenge/labels/ linking "
        "the files scored) beside the report, for the Challenge's own scorer",
    )  # fmt: skip
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
        "--patients", type=count, default=None,
        help="early-warning: replay only the first N files (default: all)",
    )  # fmt: skip
    sp.add_argument(
        "--chunk-s", type=positive_seconds, default=1.0,
        help="arrhythmia: seconds of signal per patient per tick (default 1)",
    )  # fmt: skip
    sp.add_argument(
        "--margin-s", type=margin_seconds, default=None,
        help="arrhythmia: signal kept around each beat for filtering; adds this much latency "
        "(default 2)",
    )  # fmt: skip
    sp.add_argument(
        "--out", required=True, type=results_path,
        help="report JSON to write, or a folder for it",
    )  # fmt: skip
    sp.add_argument(
        "--config", help="arrhythmia: config for the mirror and the lead (default: packaged)"
    )
    sp.add_argument(
        "--annotations", type=annotation_ext,
        help="arrhythmia: extension of the reference beat annotations (default: atr), or "
        "none for unannotated recordings: replayed and reported without scores",
    )  # fmt: skip
    sp.add_argument(
        "--write-annotations", type=written_annotation_ext, metavar="EXT",
        help="arrhythmia: also write the model's label of each beat as a WFDB annotation "
        "file, annotations/<record>.<EXT> beside the report (for bxb, WAVE, wfdb.rdann)",
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
        "--annotations", type=annotation_ext,
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
        "--max-utility-drop", type=drop,
        help="early-warning: utility drop below the gated value still tolerated (0.05)",
    )  # fmt: skip
    sp.add_argument(
        "--max-auroc-drop", type=drop,
        help="early-warning: AUROC drop below the gated value still tolerated (0.03)",
    )  # fmt: skip
    sp.add_argument(
        "--max-f1-drop", type=drop,
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

    add_serve_commands(sub)

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

"""The ``vitalgru`` commands that work with models already registered: ``replay`` them on
recordings as live feeds, ``monitor`` them on new data (Prefect flows), and ``models``:
list the versions, show where one came from, promote one by hand or roll the champion back.

Flow modules are imported inside each command, as in :mod:`pipelines.cli`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
    print_json,
    require_input,
    results_path,
    written_annotation_ext,
)
from pipelines.registry_text import provenance_text, versions_text

__all__ = ["add_model_commands", "cmd_models", "cmd_monitor", "cmd_replay"]


def cmd_replay(args: argparse.Namespace) -> int:
    require_input(args)
    check_mlflow()
    if args.task == "early-warning":
        from pipelines.replay import replay_early_warning

        ew = replay_early_warning(
            model_uri=args.model,
            data=args.data,
            out=str(Path(args.out).resolve()),
            patients=args.patients,
        )
        m = ew["metrics"]
        print_json(
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
        chunk_s=1.0 if args.chunk_s is None else args.chunk_s,
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
    print_json(
        {
            **scores,
            "alerts": res["alerts"]["counts"],
            "latency_s": res["latency_s"],
            "paths": res["paths"],
        }
    )
    return 0


#: ``--fail-on`` levels: the monitor's statuses from ``watch`` up (see pipelines.monitor_verdict).
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
    from vitalgru import tracking  # (imports mlflow: only for the commands that use it)

    check_mlflow()
    if (why := tracking.missing_store()) is not None:  # before a Prefect server starts
        raise SystemExit(f"vitalgru: error: {why}")
    if (why := tracking.unwritable_store()) is not None:  # the check's run is logged there
        raise SystemExit(f"vitalgru: error: {why}")
    from pipelines.monitor import monitor_arrhythmia_flow, monitor_early_warning_flow
    from pipelines.monitor_checks import DEFAULT_ARRHYTHMIA_MODEL, DEFAULT_MODEL
    from pipelines.monitor_verdict import STATUSES
    from vitalgru.tracking.relocation import missing_model_files
    from vitalgru.tracking.stores import mlflow_client

    # the usual first mistakes (no champion yet, a config path mistyped), said in one line
    # before a Prefect server starts and the flow fails in its logs
    if args.task == "arrhythmia" and args.config:
        from pipelines.arrhythmia import load_arrhythmia_config

        load_arrhythmia_config(args.config)
    default = DEFAULT_ARRHYTHMIA_MODEL if args.task == "arrhythmia" else DEFAULT_MODEL
    pinned = tracking.resolve_model_uri(args.model or default)
    if (gone := missing_model_files(mlflow_client(), pinned)) is not None:
        raise SystemExit(f"vitalgru: error: cannot load {args.model or default}: {gone}")
    check_prefect()

    flow_fn = monitor_arrhythmia_flow if args.task == "arrhythmia" else monitor_early_warning_flow
    given = {k: v for k, v in given.items() if v is not None}
    if args.task == "arrhythmia" and args.annotations is not None:
        given["annotations"] = annotation_ext_or_none(args.annotations)  # None: unannotated records
    res = flow_fn(**given)
    print_json(res)
    if args.fail_on and STATUSES.index(res["status"]) >= STATUSES.index(args.fail_on):
        print(f"vitalgru: monitor status {res['status']!r} (--fail-on {args.fail_on})",
              file=sys.stderr)  # fmt: skip
        return 3
    return 0


#: Short names ``vitalgru models`` accepts for the registered models.
_MODEL_NAMES = {"arrhythmia": "vitalgru-arrhythmia", "early-warning": "vitalgru-early-warning"}


def cmd_models(args: argparse.Namespace) -> int:
    from vitalgru import tracking

    check_mlflow()
    if (why := tracking.missing_store()) is not None:  # nothing registered to list or move
        raise SystemExit(f"vitalgru: error: {why}")
    if args.action == "list":
        names = [_MODEL_NAMES.get(n, n) for n in (args.name or list(_MODEL_NAMES))]
        found = {n: (tracking.registry_versions(n), tracking.alias_history(n)) for n in names}
        if args.json:
            print_json({n: {"versions": v, "champion_history": h} for n, (v, h) in found.items()})
        else:
            print("\n".join(versions_text(n, v, h) for n, (v, h) in found.items()), end="")
        return 0
    name = _MODEL_NAMES.get(args.name, args.name)
    if args.action == "show":
        try:
            found = tracking.version_provenance(name, args.version)
        except ValueError as e:
            raise SystemExit(f"vitalgru: error: {e}") from None
        if args.json:
            print_json(found)
        else:
            print(provenance_text(found), end="")
        return 0
    try:
        if args.action == "promote":
            d = tracking.promote(name, args.version, args.reason, args.alias)
        else:
            d = tracking.rollback(name, args.reason, args.alias)
    except ValueError as e:
        raise SystemExit(f"vitalgru: error: {e}") from None
    now = tracking.get_alias_version(name, args.alias)
    out = {"promoted": d.promoted, "reason": d.reason, "previous_version": d.previous_version,
           "now": now}  # fmt: skip
    # what the gate measured the version now holding the alias on, beside its noise
    paired = next((r["gate_paired"] for r in tracking.registry_versions(name)
                   if r["version"] == now and r.get("gate_paired")), None)  # fmt: skip
    if paired:
        out["gate_paired"] = tracking.paired_text(paired)
    print_json(out)
    return 0


def add_model_commands(sub: Any) -> None:
    """Add ``replay``, ``monitor`` and ``models`` to the command line's subparsers."""
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
        "--chunk-s", type=positive_seconds, default=None,
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
        "--records",
        help="arrhythmia: DS1, DS2, all or a comma-separated list (default: DS2 on MIT-BIH, "
        "every record of any other database or folder)",
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
        "monitoring check, or where one version came from; promote a version by hand or "
        "roll the champion back (recorded in the registry)",
        epilog=EPILOG,
    )
    msub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="versions of each registered model, newest first")
    ls.add_argument("name", nargs="*",
                    help="arrhythmia, early-warning or a registered name (default: both)")  # fmt: skip
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_models)
    sh = msub.add_parser(
        "show",
        help="one version for a review: its run, code (git commit), training and evaluation "
        "data (digests), figures, gate verdict, promotions, last check and model card",
    )
    sh.add_argument("name", help="arrhythmia, early-warning or a registered name")
    sh.add_argument("version")
    sh.add_argument("--json", action="store_true", help="print JSON instead of text")
    sh.set_defaults(func=cmd_models)
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

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
import contextlib
import logging
import os
import select
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipelines.cli_args import (
    EPILOG,
    annotation_ext,
    annotation_ext_or_none,
    check_mirror,
    check_mlflow,
    check_prefect,
    print_json,
    require_input,
    results_path,
    system_refusal,
    written_annotation_ext,
)
from pipelines.cli_memory import out_of_memory
from pipelines.cli_models import add_model_commands
from pipelines.cli_serve import add_serve_commands
from vitalgru import __version__
from vitalgru.claims import ClaimBusy
from vitalgru.config import (
    ArrhythmiaTrainConfig,
    EarlyWarningConfig,
    IngestConfig,
    load_config,
)
from vitalgru.config_files import leading_zero_number
from vitalgru.errors import VitalgruError


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key.sub=value`` strings to a dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        if leading_zero_number(value):  # YAML 1.1: 0123 is octal 83, 08 the text "08"
            raise SystemExit(
                f"--set {item!r}: {value.strip()} has a leading zero, which YAML reads as "
                "octal or as text; write the number without it, or quote it as text"
            )
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:  # an unclosed [ or a leading @ or *: one line, not PyYAML's
            reason = str(e).splitlines()[0]
            raise SystemExit(
                f"--set {item!r}: the value is not YAML ({reason}); quote it as text"
            ) from None
    return out


#: Seconds MLflow's client waits for each answer of a server unless
#: ``MLFLOW_HTTP_REQUEST_TIMEOUT`` says otherwise. MLflow's own 120 s, tried 8 times with
#: its waits between, held ``vitalgru models list`` on a server that takes connections and
#: never answers (stopped, stuck on a lock) for 20 min 25 s; 30 s: 8 min 19 s, of which
#: about 4 min are MLflow's waits between tries (as for a refused connection).
MLFLOW_HTTP_TIMEOUT_S = 30


def _quiet_env() -> None:
    # Offline by default: no analytics from the embedded Prefect server or MLflow.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(MLFLOW_HTTP_TIMEOUT_S))
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
    return load_config(model, path, overrides, default_name=default_name, command_line=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    overrides = _parse_overrides(args.set)
    cfg = _resolved_config("ingest", args.config, overrides)  # fail before any flow starts
    check_mirror(cfg.physionet)
    check_prefect()
    from pipelines.ingest import ingest_flow

    res = ingest_flow(
        config_path=args.config,
        overrides=overrides,
        out_dir=str(Path(args.out).resolve()) if args.out else None,
    )
    print_json(res)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    overrides = _parse_overrides(args.set)
    # A bad config fails here, in a second, not after a Prefect server has started.
    cfg = _resolved_config(args.task, args.config, overrides)
    check_mirror(cfg.ingest.physionet if args.task == "arrhythmia" else cfg.physionet)
    check_mlflow(writes=True)
    check_prefect()
    if args.task == "arrhythmia":
        from pipelines.arrhythmia import check_validation_records, train_arrhythmia_flow

        check_validation_records(cfg)
        res = train_arrhythmia_flow(config_path=args.config, overrides=overrides)
    else:
        from pipelines.early_warning import train_early_warning_flow

        res = train_early_warning_flow(config_path=args.config, overrides=overrides)
    print_json(res)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    require_input(args)
    check_mlflow()
    if args.task == "arrhythmia":
        from pipelines.evaluate import evaluate_arrhythmia

        res = evaluate_arrhythmia(
            model_uri=args.model,
            db=args.db,
            records=args.records,
            out=str(Path(args.out).resolve()),
            config_path=args.config,
            annotations=annotation_ext_or_none(args.annotations or "atr"),
            write_annotations=args.write_annotations,
        )
    else:
        from pipelines.evaluate import evaluate_early_warning

        res = evaluate_early_warning(
            model_uri=args.model, data=args.data, out=str(Path(args.out).resolve()),
            write_predictions=args.write_predictions,
        )  # fmt: skip
    print_json(res)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    check_mirror()
    if set(args.tasks) - {"ingest"}:
        check_mlflow(writes=True)
    check_prefect()
    from pipelines.run import run_all

    res = run_all(tasks=list(args.tasks))
    print_json(res)
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
            help="override a config key, e.g. --set arrhythmia.filters.notch_hz=50 (repeatable)",
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
    sp.add_argument(
        "--data",
        help="early-warning: a folder of Challenge-2019 .psv files "
        "(or .psv.gz; its sub-folders are not read)",
    )
    sp.add_argument(
        "--out", required=True, type=results_path,
        help="metrics JSON to write, or a folder for the results",
    )  # fmt: skip
    sp.add_argument("--config", help="arrhythmia: config for lead/filters (default: packaged)")
    sp.add_argument(
        "--annotations", type=annotation_ext,
        help="arrhythmia: extension of the reference beat annotations (default: atr), or "
        "none for unannotated recordings: the detector's beats are classified and the "
        "calls counted, without scores",
    )  # fmt: skip
    sp.add_argument(
        "--write-annotations", type=written_annotation_ext, metavar="EXT",
        help="arrhythmia: also write the model's label of each beat as a WFDB annotation "
        "file, annotations/<record>.<EXT> beside the report (for bxb, WAVE, wfdb.rdann)",
    )  # fmt: skip
    sp.add_argument(
        "--write-predictions", action="store_true",
        help="early-warning: also write the hourly risks as the Challenge 2019 wanted "
        "predictions, challenge/predictions/<patient>.psv (and challenge/labels/, the "
        "SepsisLabel of each row scored, for a labelled folder) beside the report, for the "
        "Challenge's own scorer",
    )  # fmt: skip
    sp.set_defaults(func=cmd_evaluate)

    add_model_commands(sub)
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


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # a second SIGTERM while cleaning up ends the process at once, as it did before
    signal.signal(signum, signal.SIG_DFL)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """SIGTERM (``kill``, a container stop, a Prefect worker cancelling the run) raises
    :class:`SystemExit` for the block, so ``finally`` blocks and ``atexit`` run: MLflow's
    run ends marked as failed, and the temporary Prefect server a flow started (a uvicorn
    process of about 200 MB) is stopped. Python's default ended the process at once and
    left that server running, orphaned. Outside the main thread, or for ``serve`` (uvicorn
    handles the signal itself), nothing is changed."""
    try:
        before = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:  # a handler not set from Python reads as None
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _main(args)
    with sigterm_exits():
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Prefect's client logs every API call through httpx at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _quiet_env()
    try:
        return int(args.func(args))
    except (VitalgruError, FileNotFoundError, ClaimBusy) as e:
        print(f"vitalgru: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a full disk, a read-only folder, memory: one line, not a traceback
        line = system_refusal(e) or out_of_memory(e) or _mlflow_server_lost(e)
        if line is None:
            raise
        print(f"vitalgru: error: {line}", file=sys.stderr)
        return 2


def _mlflow_server_lost(error: BaseException) -> str | None:
    """One line for an MLflow server lost part way through a command (after its start
    check passed), in place of the traceback MLflow ends in after its retries (130 lines
    for ``models list``): :func:`vitalgru.tracking.stores.server_lost`."""
    if "mlflow" not in sys.modules:  # no MLflow error without it (and no import for it)
        return None
    from vitalgru.tracking.stores import server_lost

    return server_lost(error)


def run(argv: Sequence[str] | None = None) -> int:
    """The ``vitalgru`` command: :func:`main`, with every refusal it gives as a message
    (``SystemExit("...")``, which Python would end with status 1) printed on one line and
    ended with status 2, as errors a user can act on are everywhere else (argparse's
    usage errors included); 3 stays a monitor check's ``--fail-on``.

    Output piped to a reader that stops early (``vitalgru models list | head -1``) ends
    the command quietly with status 141, as a tool that the shell's SIGPIPE ends; it was a
    ``BrokenPipeError`` traceback, or Python's "Exception ignored" at exit."""
    try:
        try:
            code = main(argv)
        except SystemExit as e:
            if not isinstance(e.code, str):
                raise
            text = e.code if e.code.startswith("vitalgru") else f"vitalgru: error: {e.code}"
            print(text, file=sys.stderr)
            return 2
        sys.stdout.flush()  # here, where a reader gone is told below, not at exit
        return code
    except BrokenPipeError:
        if not _stdout_gone():  # a socket of the command's own (a receiver gone)
            raise
        # Python flushes standard output again at exit: into nothing now
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE


def _stdout_gone() -> bool:
    """Whether standard output is a pipe that no process reads any more (its write end
    polls as an error)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False


if __name__ == "__main__":
    raise SystemExit(run())

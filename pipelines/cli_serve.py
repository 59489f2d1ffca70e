"""The gateway's commands: ``vitalgru serve`` (the bedside gateway), ``serve-audit`` (its
access log) and ``serve-token`` (its access tokens)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pipelines.cli_args import (
    EPILOG,
    check_mlflow,
    count,
    days,
    error_line,
    escalation_minutes,
    listed,
    non_negative_hours,
    non_negative_minutes,
    percent_below_100,
    port,
    positive_rate,
    positive_seconds,
    utc_time,
)

#: The environment variable ``--public-url`` defaults to (the compose stack sets it).
PUBLIC_URL_ENV = "VITALGRU_PUBLIC_URL"


def cmd_serve(args: argparse.Namespace) -> int:
    ecg = None if args.arrhythmia_model.lower() == "none" else args.arrhythmia_model
    ew = None if args.early_warning_model.lower() == "none" else args.early_warning_model
    if ecg is None and ew is None:
        raise SystemExit("serve needs at least one model (both were given as none)")
    check_mlflow()
    from pipelines.gateway_serve import EXIT_NO_MODEL, ModelUnavailable, serve

    scoring_threads(args.torch_threads)

    state = None if args.state.lower() == "none" else args.state
    try:
        serve(ecg, ew, host=args.host, port=args.port, tick_s=args.tick_s, state=state,
              shadow_arrhythmia_model=args.shadow_arrhythmia_model,
              shadow_early_warning_model=args.shadow_early_warning_model,
              tokens=args.tokens,
              escalate_after_s=tuple(60 * m for m in args.escalate_after_min) or None,
              patient_system=args.patient_system, hl7_timezone=args.hl7_timezone,
              display_timezone=args.display_timezone,
              mllp_port=args.mllp_port, mllp_host=args.mllp_host,
              mllp_allow=args.mllp_allow, adt_units=args.adt_units,
              hour_close_after_s=60 * args.hour_close_after_min,
              audit=None if args.audit.lower() == "none" else args.audit,
              forward_alarms=args.forward_alarms, mllp_tls_cert=args.mllp_tls_cert,
              mllp_tls_key=args.mllp_tls_key, mllp_tls_client_ca=args.mllp_tls_client_ca,
              forward_alarms_ca=args.forward_alarms_ca, rate_limit=args.rate_limit,
              tls_cert=args.tls_cert, tls_key=args.tls_key,
              tls_client_ca=args.tls_client_ca,
              sepsis_lockout_h=args.sepsis_lockout_h, cds_clients=args.cds_clients,
              public_url=args.public_url,
              feed_rate_tolerance=args.feed_rate_pct / 100 or None)  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C: the server has shut down and the ward was closed
        logging.getLogger("pipelines.gateway").info("gateway: stopped")
        return 0
    except ModelUnavailable as e:  # its own status: nothing to serve as asked, most often
        # until the registry changes (a supervisor may tell it from a bad flag or file)
        print(f"vitalgru: error: {e}", file=sys.stderr)
        return EXIT_NO_MODEL
    except (ValueError, OSError) as e:  # a bad state, token or certificate file, ...
        raise SystemExit(f"vitalgru: error: {error_line(e)}") from None
    return 0


def scoring_threads(asked: int) -> int:
    """Score with ``asked`` torch threads, at most the CPUs this process may use; returns
    the number set.

    The gateway scores small batches (a tick's beats, an hour's stays) many times a second,
    from the request threads and the tick: on a loaded 2-core machine one per-tick forward
    pass took 33-175 ms with torch's default of a thread per CPU and 0.9-1.4 ms with one
    (the README's "Hot paths" profile), and every gateway and streaming benchmark
    is measured with one. More threads may pay on an idle machine with wide batches.
    """
    import torch

    from vitalgru.training.loop import usable_cpus

    threads = min(int(asked), usable_cpus())
    if threads < asked:
        logging.getLogger("pipelines.gateway").info(
            "gateway: scoring with %d torch threads, not %d (CPUs usable: %d)",
            threads, asked, threads)  # fmt: skip
    torch.set_num_threads(threads)
    return threads


def cmd_serve_audit(args: argparse.Namespace) -> int:
    from pipelines.audit import AuditLog, read_rows, verify_files

    files = args.file or ["ward-audit.sqlite"]
    if args.archive_before is not None or args.archive_to is not None:
        return _archive_audit(args, files)
    if args.verify:
        try:
            checked = verify_files(files)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"vitalgru: error: {error_line(e)}") from None
        for i, c in enumerate(checked):
            if c["broken"] is not None:
                raise SystemExit(f"vitalgru: {c['path']}: the hash chain breaks at row "
                                 f"{c['broken']} (that row, or one before it, was changed or "
                                 "deleted)")  # fmt: skip
            if not c["follows"]:
                raise SystemExit(f"vitalgru: {c['path']} does not follow "
                                 f"{checked[i - 1]['path']}: its chain starts from another "
                                 "link (an archive between them is missing, or the files are "
                                 "out of order)")  # fmt: skip
        last = checked[-1]
        at = None
        if args.expect is not None:  # in any of the files: the chain they verify as one
            for c in checked:
                log = AuditLog(c["path"], read_only=True)
                try:
                    row = log.row_of_link(args.expect)
                finally:
                    log.close()
                if row is not None:
                    at = f"{row} of {c['path']}" if len(checked) > 1 else str(row)
            if at is None and args.expect.strip() != checked[0]["anchor"]:
                raise SystemExit(f"vitalgru: {last['path']}: the link {args.expect.strip()} is "
                                 "not in its chain: rows were cut off its end since that link "
                                 "was kept (or the link is another file's)")  # fmt: skip
        for i, c in enumerate(checked):
            since = f", from the archive before it ({c['anchor'][:12]}...)" if c["anchor"] else ""
            print(f"{c['path']}: {c['rows']} row(s), the hash chain is intact{since}")
            if i == 0 and c["anchor"]:
                # the anchor is in the same file: rows cut off its beginning, with the anchor
                # set to the last cut row's link, would verify too
                print(f"  its chain starts from an archive not given here: rows before "
                      f"{c['anchor'][:12]}... are checked only with that archive listed "
                      "first (or against a first link kept elsewhere)")  # fmt: skip
        print(("the files follow one another; " if len(checked) > 1 else "")
              + ("" if at is None else f"the link kept earlier is row {at}; ")
              + f"the last link is {last['last']}")  # fmt: skip
        return 0
    n = 0
    try:
        for path in files:
            for r in read_rows(path, patient_id=args.patient, caller=args.caller,
                               refused=args.refused):  # fmt: skip
                n += 1
                if args.json:
                    print(json.dumps(r))
                else:
                    times = f" (x{r['count']})" if r["count"] > 1 else ""
                    print(f"{r['seq']}\t{r['at']}\t{r['caller']}\t{r['action']}\t"
                          f"{r['patient_id'] or '-'}\t{r['status']}\t{r['client'] or '-'}{times}")  # fmt: skip
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"vitalgru: error: {error_line(e)}") from None
    print(f"{n} row(s)", file=sys.stderr)
    return 0


def _archive_audit(args: argparse.Namespace, files: list[str]) -> int:
    from pipelines.audit import AuditLog

    if args.archive_before is None or args.archive_to is None:
        raise SystemExit("vitalgru: error: --archive-before and --archive-to go together")
    if len(files) != 1:
        raise SystemExit("vitalgru: error: archive one audit file at a time")
    if not Path(files[0]).is_file():
        raise SystemExit(f"vitalgru: error: no audit log at {files[0]}")
    if not Path(args.archive_to).parent.is_dir():  # sqlite says "unable to open database file"
        raise SystemExit(f"vitalgru: error: --archive-to {args.archive_to}: the folder "
                         f"{Path(args.archive_to).parent} does not exist")  # fmt: skip
    try:
        log = AuditLog(files[0])
        try:
            got = log.archive(args.archive_before, args.archive_to)
        finally:
            log.close()
    except (ValueError, OSError) as e:
        raise SystemExit(f"vitalgru: error: {error_line(e)}") from None
    if not got["rows"]:
        print(f"{files[0]}: no row before {args.archive_before.isoformat()}; nothing archived",
              file=sys.stderr)  # fmt: skip
        return 0
    print(f"{got['rows']} row(s) ({got['first_seq']} to {got['last_seq']}) moved to "
          f"{args.archive_to}; {files[0]} goes on from its last link {got['last_link']}. "
          f"Keep the archive: `vitalgru serve-audit {args.archive_to} {files[0]} --verify` "
          "checks both as one chain.")  # fmt: skip
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
        token = new_token(args.file, args.name, args.role, expires_days=args.expires_days,
                          patients=args.patients)  # fmt: skip
    except (ValueError, OSError) as e:  # OSError: a file or its lock that cannot be written
        raise SystemExit(f"vitalgru: error: {error_line(e)}") from None
    print(f"{args.name} ({args.role}): {token}")
    print(f"Added to {args.file}, which keeps only its hash: give it to {args.name} now, it "
          "is not shown again. A gateway serving the file (vitalgru serve --tokens "
          f"{args.file}) takes it from its next look at the file.", file=sys.stderr)  # fmt: skip
    return 0


def add_serve_commands(sub: Any) -> None:
    """Add ``serve``, ``serve-audit`` and ``serve-token`` to the ``vitalgru`` subparsers."""
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
    sp.add_argument("--port", type=port, default=8000, help="port (8000)")
    sp.add_argument(
        "--tick-s", type=positive_seconds, default=1.0,
        help="seconds between batched pushes of the queued ECG (default 1)",
    )  # fmt: skip
    sp.add_argument(
        "--torch-threads", type=count, default=1,
        help="torch threads for scoring, at most the CPUs usable (default 1, as the gateway "
        "benchmarks measure: small batches scored many times a second wait on each "
        "other's threads when the machine is busy)",
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
        "--escalate-after-min", type=escalation_minutes, default=(15.0,), metavar="MIN[,MIN...]",
        help="minutes after which an alarm no one has acknowledged gets an escalated event "
        "(default 15; 0: never); several, increasing, for an escalation chain (5,15,30: "
        "levels 1, 2 and 3, each counted from the alarm, until someone acknowledges it)",
    )  # fmt: skip
    sp.add_argument(
        "--cds-clients", default=None, metavar="FILE",
        help="serve CDS Hooks (/cds-services: cards for the alarms going on when a clinician "
        "opens a patient's chart) to the EHRs this JSON file names, each by its issuer and "
        "public keys; their signed tokens are checked on every call (default: none)",
    )  # fmt: skip
    sp.add_argument(
        "--public-url", default=os.environ.get(PUBLIC_URL_ENV) or None, metavar="URL",
        help="this gateway's address as the EHR and browsers reach it (through any proxy): "
        "the CDS tokens' audience, the cards' links to patient pages (needed with "
        "--cds-clients), and a name a gateway without tokens answers in the Host header "
        f"besides localhost, this machine's names and IP addresses (default: ${PUBLIC_URL_ENV})",
    )  # fmt: skip
    sp.add_argument(
        "--feed-rate-pct", type=percent_below_100, default=15.0, metavar="PCT",
        help="raise feed_rate, a technical alarm, for an ECG feed that sends more than this "
        "many percent off the rate it was admitted at, measured over its last 2 minutes (a "
        "device set to 500 Hz admitted at 250 doubles every heart rate; default 15; 0: not "
        "checked)",
    )  # fmt: skip
    sp.add_argument(
        "--sepsis-lockout-h", type=non_negative_hours, default=0.0, metavar="HOURS",
        help="ICU hours after an acknowledged sepsis alarm during which a new alarm episode "
        "of the same patient pages no one: it is logged as sepsis_risk_repeated, shown on "
        "the ward page, never escalated or forwarded (default 0: every episode alarms)",
    )  # fmt: skip
    sp.add_argument(
        "--hour-close-after-min", type=non_negative_minutes, default=10.0,
        help="minutes after an ICU hour ends that its observations (FHIR or HL7 v2, sent "
        "with their times) may still arrive before the hour is scored (default 10)",
    )  # fmt: skip
    sp.add_argument(
        "--hl7-timezone", default=None, metavar="ZONE",
        help="the site's time zone (e.g. Europe/Berlin) for HL7 v2 times sent without a "
        "UTC offset; in the hour the clock goes back, the occurrence before the message "
        "arrived (default: such times are not placed)",
    )  # fmt: skip
    sp.add_argument(
        "--display-timezone", default=None, metavar="ZONE",
        help="the time zone of the times on the clinicians' pages (the ward page, the ECG "
        "and sepsis patient pages and strips), each labelled with it (default: "
        "--hl7-timezone when given, the site's zone, else UTC); JSON, HL7 v2 and FHIR keep "
        "their own times",
    )  # fmt: skip
    sp.add_argument(
        "--mllp-port", type=port, default=None,
        help="also take HL7 v2 messages (ADT admissions and discharges, ORU results) over "
        "MLLP on this port, as interface engines send them (default: off; 2575 is usual)",
    )  # fmt: skip
    sp.add_argument("--mllp-host", default="127.0.0.1",
                    help="address the MLLP listener binds (127.0.0.1)")  # fmt: skip
    sp.add_argument(
        "--mllp-allow", type=listed, default=None, metavar="ADDRESSES",
        help="comma-separated addresses or networks (10.1.2.3,10.1.0.0/16) that may connect "
        "to the MLLP port, which has no credentials (default: any that can reach it)",
    )  # fmt: skip
    sp.add_argument(
        "--adt-units", type=listed, default=None, metavar="UNITS",
        help="comma-separated points of care (PV1-3) whose patients are scored: admissions "
        "elsewhere are not acted on, transfers in and out admit and discharge; MICU=medical "
        "or SICU=surgical also gives the unit's ICU type to the model (default: every "
        "ADT^A01 admits)",
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
        "--rate-limit", type=positive_rate, default=None, metavar="PER_S",
        help="requests per second each token (or client address, without tokens) may make "
        "on average, bursts of twice that (at least 10); over it: 429 (default: no limit)",
    )  # fmt: skip
    sp.add_argument(
        "--forward-alarms-ca", default=None, metavar="PEM|system",
        help="send the alarms over TLS, the receiver's certificate checked against this CA "
        "(or the system's); the gateway presents --mllp-tls-cert when given",
    )  # fmt: skip
    sp.add_argument(
        "--tls-cert", default=None, metavar="PEM",
        help="serve HTTPS: this gateway's certificate chain (with --tls-key; default: plain "
        "HTTP, for a TLS proxy in front)",
    )  # fmt: skip
    sp.add_argument("--tls-key", default=None, metavar="PEM", help="the private key of --tls-cert")
    sp.add_argument(
        "--tls-client-ca", default=None, metavar="PEM",
        help="HTTPS only for clients with a certificate this CA signed (mutual TLS)",
    )  # fmt: skip
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser(
        "serve-audit",
        help="print a gateway's access log: who read which patient's data, and who was refused",
        epilog=EPILOG,
    )
    sp.add_argument("file", nargs="*",
                    help="the gateway's --audit file (default: ward-audit.sqlite here); "
                    "archives first, oldest first, then the live file, to read or verify "
                    "them as one log")  # fmt: skip
    sp.add_argument("--patient", default=None, help="one patient's rows")
    sp.add_argument("--caller", default=None, help="one token's rows")
    sp.add_argument("--refused", action="store_true", help="only the 401 and 403 answers")
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.add_argument("--expect", default=None, metavar="LINK",
                    help="with --verify: a last link printed earlier and kept elsewhere; "
                    "the check fails when it is no longer in the chain (rows cut off the "
                    "end)")  # fmt: skip
    sp.add_argument("--verify", action="store_true",
                    help="check the rows' hash chain instead (exit 2 where it breaks, or "
                    "where a file does not follow the one before it)")  # fmt: skip
    sp.add_argument("--archive-before", type=utc_time, default=None, metavar="DATE",
                    help="move the rows written before this date (YYYY-MM-DD, midnight "
                    "UTC, or an ISO time with its offset) to --archive-to; the file keeps "
                    "the last moved link, so the two verify as one chain")  # fmt: skip
    sp.add_argument("--archive-to", default=None, metavar="FILE",
                    help="the new archive file (never an existing one)")  # fmt: skip
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
        "--expires-days", type=days, default=None, metavar="DAYS",
        help="the token is refused this many days from now (default: never)",
    )  # fmt: skip
    sp.add_argument(
        "--patients", type=listed, default=None, metavar="IDS",
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

"""Model monitoring (``vitalgru monitor``) on data as recorded and on copies altered the
way another hospital's data might differ, for both registered models.

One command::

    python benchmarks/monitoring.py [--task both|early-warning|arrhythmia]
                                    [--ew-model models:/vitalgru-early-warning@champion]
                                    [--arrhythmia-model models:/vitalgru-arrhythmia@champion]
                                    [--patients 2000]

Writes ``benchmarks/results/monitoring.json`` and ``.md``.

**Sepsis** (``pipelines.monitor_checks.check_early_warning``, what the flow's first task runs): each
scenario is a folder of ``--patients`` set-A files checked against the model's stored
reference:

* ``as recorded``: the last files of set A, unchanged;
* ``surgical ICU only``: stays whose ``Unit2`` is 1 (a case-mix change, not an edit);
* ``temperature in Fahrenheit``: the first scenario's files with ``Temp`` converted;
* ``no lactate``: the same files with every ``Lactate`` value removed;
* ``vitals every 4 hours``: the same files with the eight vital signs kept only at
  ``ICULOS`` divisible by 4 (a ward's charting rhythm rather than an ICU's).

Set A is the champion's training data (the reference profiles all of it), so the
unaltered scenarios measure the monitor's false alarms, and the utility figures are not
a test of the model on new patients; the altered ones show what each change does to the
inputs, the risks and the utility, and whether the check names it.

**Arrhythmia** (``pipelines.monitor_checks.check_arrhythmia``): MIT-BIH DS2 as recorded (patients
the model never saw, against a reference of its DS1 training beats and its DS2 calls);
DS2 with every sample at 2.5 times its value (a header gain 2.5 times too small); DS2
scored on the second lead instead of MLII (V1, V2, V4 or V5 by record); and the noise
stress test's record 118 at 0 dB signal-to-noise (118 is a DS1 record: its F1 is not a
test). DS2 and 118 at 0 dB are checked once more as unannotated recordings
(``annotations=None``): the detector's beats are classified, as for a hospital's own
recordings, so drift is checked and performance is not.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from pipelines.monitor_checks import check_arrhythmia, check_early_warning
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.io.psv import PSV_HEADER
from vitalgru.io.psv_folder import list_psv

VITALS = PSV_HEADER[:8]


def _rewrite(src: Path, dst: Path, edit: Callable[[dict[str, str]], None]) -> None:
    lines = src.read_text().splitlines()
    header = lines[0].split("|")
    out = [lines[0]]
    for line in lines[1:]:
        row = dict(zip(header, line.split("|"), strict=True))
        edit(row)
        out.append("|".join(row[h] for h in header))
    dst.write_text("\n".join(out) + "\n")


def _fahrenheit(row: dict[str, str]) -> None:
    if row["Temp"] not in ("NaN", ""):
        row["Temp"] = f"{float(row['Temp']) * 9 / 5 + 32:.2f}"


def _no_lactate(row: dict[str, str]) -> None:
    row["Lactate"] = "NaN"


def _four_hourly(row: dict[str, str]) -> None:
    if int(float(row["ICULOS"])) % 4:
        for v in VITALS:
            row[v] = "NaN"


def _is_sicu(path: Path) -> bool:
    lines = path.read_text().splitlines()
    col = lines[0].split("|").index("Unit2")
    return lines[1].split("|")[col] == "1"


def early_warning_part(model: str, n_patients: int, tmp: Path) -> tuple[list[dict], str]:
    files = list_psv(default_mirror() / "challenge-2019" / "training_setA")
    control = files[-n_patients:]
    sicu = [f for f in files if _is_sicu(f)][-n_patients:]
    scenarios: list[tuple[str, list[Path], Callable[[dict[str, str]], None] | None]] = [
        ("as recorded", control, None),
        ("surgical ICU only", sicu, None),
        ("temperature in Fahrenheit", control, _fahrenheit),
        ("no lactate", control, _no_lactate),
        ("vitals every 4 hours", control, _four_hourly),
    ]
    rows = []
    version = ""
    for k, (name, chosen, edit) in enumerate(scenarios):
        folder = tmp / f"ew{k}"
        folder.mkdir()
        for f in chosen:
            if edit is None:
                shutil.copy(f, folder / f.name)
            else:
                _rewrite(f, folder / f.name, edit)
        t0 = time.perf_counter()
        rep = check_early_warning(model, str(folder), str(tmp / f"ew_out{k}"))
        secs = time.perf_counter() - t0
        version = rep["model_version"]
        drift, ev = rep["drift"], rep["evaluation"]
        rows.append(
            {
                "scenario": name,
                "n_patients": rep["n_patients"],
                "n_patient_hours": drift["n_patient_hours"],
                "status": rep["status"],
                "major": drift["major"],
                "moderate": drift["moderate"],
                "shifted_inputs": _shifted(drift),
                "risk_psi": drift["risk"]["psi"],
                "alarms_per_patient_day_ref": drift["risk"]["alarms_per_patient_day_ref"],
                "alarms_per_patient_day_now": drift["risk"]["alarms_per_patient_day_now"],
                "utility": ev["utility"],
                "auroc": ev["auroc"],
                "performance": rep["performance"],
                "seconds": secs,
            }
        )
        print(f"{name}: {rep['status']} {drift['major']} {drift['moderate']} "
              f"utility {ev['utility']:.3f} ({secs:.1f} s)", flush=True)  # fmt: skip
    md = [
        f"## Sepsis early warning: model {model} (version {version})",
        "",
        "Set A is the model's training data: the unaltered rows measure false alarms of the "
        "check, and the utilities are not a test on new patients.",
        "",
        "| scenario | patients | status | major drift | moderate drift | risk PSI | alarms / "
        "patient-day ref / now | utility | AUROC | check s |",
        "|---|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['scenario']} | {r['n_patients']} | {r['status']} | {_names(r['major'])} | "
            f"{_names(r['moderate'])} | {r['risk_psi']:.3f} | "
            f"{r['alarms_per_patient_day_ref']:.2f} / {r['alarms_per_patient_day_now']:.2f} | "
            f"{r['utility']:.3f} | {r['auroc']:.3f} | {r['seconds']:.1f} |"
        )
    return rows, "\n".join([*md, "", *_shifted_md(rows)])


def _scaled_copy(src: Path, records: list[str], out: Path, factor: float) -> Path:
    """``records`` of ``src`` with every sample ``factor`` times its value."""
    out.mkdir()
    for r in records:
        rec = wfdb.rdrecord(str(src / r))
        ann = wfdb.rdann(str(src / r), "atr")
        wfdb.wrsamp(
            r, fs=rec.fs, units=list(rec.units), sig_name=list(rec.sig_name),
            p_signal=rec.p_signal * factor, fmt=["16"] * rec.n_sig,
            adc_gain=[200.0] * rec.n_sig, baseline=[0] * rec.n_sig, write_dir=str(out),
        )  # fmt: skip
        wfdb.wrann(r, "atr", np.asarray(ann.sample), symbol=ann.symbol, write_dir=str(out))
    return out


def arrhythmia_part(model: str, tmp: Path) -> tuple[list[dict], str]:
    mirror = default_mirror()
    ds2 = [str(r) for r in DECHAZAL_DS2]
    loud = _scaled_copy(mirror / "mitdb", ds2, tmp / "loud", 2.5)
    second_lead = tmp / "second_lead.yaml"
    second_lead.write_text(f"ingest:\n  physionet:\n    mirror: {mirror}\n  arrhythmia:\n"
                           "    windows:\n      lead: 1\n")  # fmt: skip
    mitdb, nstdb = str(mirror / "mitdb"), str(mirror / "nstdb")
    scenarios = [  # name, database, records, config, annotation files (None: unannotated)
        ("DS2 as recorded", mitdb, "DS2", None, "atr"),
        ("DS2, samples 2.5 times too large", str(loud), "all", None, "atr"),
        ("DS2, second lead instead of MLII", mitdb, "DS2", str(second_lead), "atr"),
        ("nstdb 118 at 0 dB", nstdb, "118e00", None, "atr"),
        ("DS2 as recorded, unannotated (detected beats)", mitdb, "DS2", None, None),
        ("nstdb 118 at 0 dB, unannotated (detected beats)", nstdb, "118e00", None, None),
    ]
    rows = []
    version = ""
    for k, (name, db, records, config, ann) in enumerate(scenarios):
        t0 = time.perf_counter()
        rep = check_arrhythmia(model, db, records, str(tmp / f"ar_out{k}"), config_path=config,
                               annotations=ann)  # fmt: skip
        secs = time.perf_counter() - t0
        version = rep["model_version"]
        drift, ev = rep["drift"], rep["evaluation"]
        cls = drift["predicted"]["classes"]
        rows.append(
            {
                "scenario": name,
                "n_records": rep["n_records"],
                "n_beats": ev["n_beats"],
                "status": rep["status"],
                "major": drift["major"],
                "moderate": drift["moderate"],
                "shifted_inputs": _shifted(drift),
                "predicted_class_psi": drift["predicted"]["psi"],
                "class_mix": cls,
                "inputs": {
                    r["column"]: {k2: r[k2] for k2 in ("median_ref", "median_now", "psi")}
                    for r in drift["inputs"]
                },  # fmt: skip
                "annotated": ev["annotated"],
                "accuracy": ev["accuracy"],
                "s_f1": ev.get("s_f1"),
                "v_f1": ev.get("v_f1"),
                "performance": rep["performance"],
                "seconds": secs,
            }
        )
        print(f"{name}: {rep['status']} {drift['major']} {drift['moderate']} "
              f"({secs:.1f} s)", flush=True)  # fmt: skip
    md = [
        f"## Arrhythmia: model {model} (version {version})",
        "",
        "| scenario | records | beats | status | major drift | moderate drift | median "
        "amplitude mV ref / now | calls V % ref / now | S F1 | V F1 | check s |",
        "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        a = r["inputs"]["amplitude_mv"]
        v = r["class_mix"]["V"]
        md.append(
            f"| {r['scenario']} | {r['n_records']} | {r['n_beats']} | {r['status']} | "
            f"{_names(r['major'])} | {_names(r['moderate'])} | "
            f"{a['median_ref']:.2f} / {a['median_now']:.2f} | "
            f"{100 * v['ref']:.1f} / {100 * v['now']:.1f} | {_fmt(r['s_f1'])} | "
            f"{_fmt(r['v_f1'])} | {r['seconds']:.1f} |"
        )
    return rows, "\n".join([*md, "", *_shifted_md(rows)])


def _shifted(drift: dict) -> list[dict]:
    return [
        {k: r[k] for k in ("column", "level", "psi", "psi_values", "measured_ratio")}
        for r in drift["inputs"]
        if r["level"] in ("major", "moderate")
    ]


def _shifted_md(rows: list[dict]) -> list[str]:
    out = ["Shifted inputs (PSI of the column / of its values present; share measured now "
           "over the reference's):", ""]  # fmt: skip
    for r in rows:
        if r["shifted_inputs"]:
            parts = [
                f"{x['column']} {x['level']} ({_fmt(x['psi'])} / {_fmt(x['psi_values'])}; "
                f"x{_fmt(x['measured_ratio'], '.2f')})"
                for x in r["shifted_inputs"]
            ]
            out.append(f"- {r['scenario']}: " + "; ".join(parts))
    return out


def _names(xs: list[str]) -> str:
    return ", ".join(xs) if xs else "none"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["both", "early-warning", "arrhythmia"], default="both")
    ap.add_argument("--ew-model", default="models:/vitalgru-early-warning@champion")
    ap.add_argument("--arrhythmia-model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--patients", type=int, default=2000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    payload: dict = {
        "command": "python benchmarks/monitoring.py " + " ".join(argv or sys.argv[1:]),
        "environment": env,
        "threads": 1,
    }
    parts = []
    with tempfile.TemporaryDirectory(prefix="vitalgru-monitor-bench-") as tmp:
        if args.task in ("both", "early-warning"):
            payload["early_warning"], text = early_warning_part(
                args.ew_model, args.patients, Path(tmp)
            )
            parts.append(text)
        if args.task in ("both", "arrhythmia"):
            payload["arrhythmia"], text = arrhythmia_part(args.arrhythmia_model, Path(tmp))
            parts.append(text)
    md = [
        "# Model monitoring: registered models against their training references",
        "",
        f"Command: `{payload['command'].strip()}`  ",
        f"Date {env['date_utc']}; 1 thread; 1-min load average "
        f"{env['load_avg_1min_at_start']:.1f} at start.",
        "",
        *parts,
    ]
    js, mdp = write_results("monitoring", payload, "\n".join(md))
    print(f"wrote {js} and {mdp}")
    return 0


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


if __name__ == "__main__":
    raise SystemExit(main())

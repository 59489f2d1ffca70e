"""A registered model's monitoring check (``vitalgru monitor``, :mod:`pipelines.monitor`) as
markdown for the data team: the status and why, performance against the values the version
was gated on, the model's outputs and the inputs that moved against its training reference.

Plain data in, text out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["monitoring_markdown"]


def _num(v: Any, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _pct(v: Any, digits: int = 1) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f}"


def _output_lines(report: Mapping[str, Any]) -> list[str]:
    """The model's outputs now against the reference: risks, or the class mix of calls."""
    drift = report["drift"]
    if report["task"] == "arrhythmia":
        p = drift["predicted"]
        lines = [
            f"Class mix of the model's calls (reference: its calls on the DS2 records, which it "
            f"never saw): PSI {_num(p['psi'])} ({p['level']}).",
            "",
            "| class | share of calls, reference | now |",
            "|---|---:|---:|",
        ]
        for c, v in p["classes"].items():
            lines.append(f"| {c} | {_pct(v['ref'], 2)} % | {_pct(v['now'], 2)} % |")
        return lines
    r = drift["risk"]
    return [
        "| | reference | now |",
        "|---|---:|---:|",
        f"| risk PSI | | {_num(r['psi'])} ({r['level']}) |",
        f"| median risk | {_num(r['median_ref'])} | {_num(r['median_now'])} |",
        f"| hours in alarm | {_pct(r['alarm_hour_fraction_ref'])} % | "
        f"{_pct(r['alarm_hour_fraction_now'])} % |",
        f"| alarms per patient-day | {_num(r['alarms_per_patient_day_ref'], '.2f')} | "
        f"{_num(r['alarms_per_patient_day_now'], '.2f')} |",
    ]


def monitoring_markdown(report: dict[str, Any]) -> str:
    """The check as markdown: status and reasons, performance, outputs, the inputs that
    moved."""
    lines = [
        f"# Monitoring: {report['model_uri']}"
        + ("" if report["model_version"] is None else f" (version {report['model_version']})"),
        "",
        f"Data: {report['data_summary']}; checked {report['checked_at']}.",
        "",
        f"**Status: {report['status']}**",
        "",
    ]
    lines += [f"- {r}" for r in report["reasons"]] or ["- nothing outside the limits"]
    for note in report["notes"]:
        lines.append(f"- note: {note}")
    perf = report["performance"]
    lines += ["", "## Performance", ""]
    if perf["checked"]:
        lines += [
            "| measure | gated | now | now, 95 % interval | drop | tolerated |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for k, r in perf["measures"].items():
            ends = r.get("now_interval")
            within = "-" if not ends else f"{_num(ends[0])}-{_num(ends[1])}"
            lines.append(
                f"| {k} | {_num(r['reference'])} | {_num(r['now'])} | {within} | "
                f"{_num(r['drop'])} | {r['max_drop']} |"
            )
    elif perf["why"].startswith("not judged: "):  # unlabelled data: nothing to measure it on
        lines.append(f"Not judged: {perf['why'].removeprefix('not judged: ')}.")
    else:
        lines.append(f"Not checked: {perf['why']}.")
    drift = report["drift"]
    lines += ["", "## Drift (population stability index against the model's reference)", ""]
    if drift is None:
        lines.append(f"Not checked: {report['drift_why']}.")
        return "\n".join(lines) + "\n"
    share = "beats" if report["task"] == "arrhythmia" else "patient-hours"
    lines += [
        *_output_lines(report),
        "",
        "Inputs, most shifted first. PSI: of the whole column, missing and refused values "
        "as buckets of their own; of values: of the values present only. Shares are of "
        f"{share}; refused: outside the plausibility limits. The level is the worst of "
        "the two PSIs and of the change in the share measured (halved or doubled: major).",
        "",
        "| input | level | PSI | PSI of values | measured ref / now | refused ref / now "
        "| median ref / now |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    shown = [x for x in drift["inputs"] if x["level"] != "stable"] or drift["inputs"][:5]
    for x in shown:
        lines.append(
            f"| {x['column']} | {x['level']} | {_num(x['psi'])} | {_num(x['psi_values'])} | "
            f"{_pct(x['measured_ref'])} / {_pct(x['measured_now'])} % | "
            f"{_pct(x['refused_ref'], 2)} / {_pct(x['refused_now'], 2)} % | "
            f"{_num(x['median_ref'], '.4g')} / {_num(x['median_now'], '.4g')} |"
        )
    rest = len(drift["inputs"]) - len(shown)
    if rest > 0:
        lines += ["", f"{rest} more inputs, none shifted: see the JSON."]
    return "\n".join(lines) + "\n"

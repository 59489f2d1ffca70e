"""The registry as ``vitalgru models`` prints it: each registered model's versions as a table
with its recent champions, and one version as a reviewer reads it (run, code, data, figures,
gate, card). Plain data in (:func:`vitalgru.tracking.registry_versions`,
:func:`vitalgru.tracking.alias_history`, :func:`vitalgru.tracking.version_provenance`),
text out.
"""

from __future__ import annotations

import textwrap
from typing import Any

__all__ = ["provenance_text", "versions_text"]


def versions_text(name: str, rows: list[dict[str, Any]], history: list[dict[str, str]]) -> str:
    """The versions of one registered model as a plain-text table, its recent holders of
    the champion alias, and the gate's paired interval of each version gated against one."""
    from vitalgru.tracking import paired_text

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
            + (f" ({h['paired']})" if h.get("paired") else "")
            for h in reversed(history[-5:])
        ]
    paired = [f"    version {r['version']} {paired_text(r['gate_paired'])}"
              for r in rows if r.get("gate_paired")]  # fmt: skip
    if paired:
        lines += ["  gate's difference from the champion it faced:", *paired]
    return "\n".join(lines) + "\n"


def provenance_text(p: dict[str, Any]) -> str:
    """One version as a reviewer reads it: run, code, data, figures, gate, card."""
    run, lines = p["run"], []
    held = f" ({', '.join(p['aliases'])})" if p["aliases"] else ""
    lines.append(f"{p['name']} version {p['version']}{held}, registered {p['created']}")

    def row(key: str, text: str) -> None:
        lines.extend(textwrap.wrap(text, 100, initial_indent=f"  {key:<11}",
                                   subsequent_indent=" " * 13, break_on_hyphens=False))  # fmt: skip

    row("run", f"{run['id']} ({run.get('status')}; experiment {run.get('experiment')}; "
               f"started {run.get('started')})")  # fmt: skip
    commit = run.get("git_commit")
    code = f"git {commit}" if commit else "no git commit recorded"
    if commit and run.get("git_dirty") == "true":
        code += " with uncommitted changes"
    row("code", f"{code}; source digest {run.get('source_digest')}; "
                f"vitalgru {run.get('vitalgru_version')}")  # fmt: skip
    row("model", f"models:/{p['model_id']}" if p["model_id"] else "-")
    for d in p["datasets"]:
        t = d["tags"]
        who = (f"records {t['records']}" if "records" in t else
               f"{t['patients']} patients" if "patients" in t else "")  # fmt: skip
        row(d["context"] or "data", f"{d['name']}: digest {d['digest']}, {d['rows']} rows"
                                    + (f", {who}" if who else ""))  # fmt: skip
    if not p["datasets"]:
        row("data", "no datasets logged with the run (trained before they were); its "
                    "dataset/ artifacts name the data")  # fmt: skip
    by_data: dict[str, list[str]] = {}
    for k, f in p["figures"].items():
        by_data.setdefault(f"{f['dataset']} ({f['digest']})", []).append(f"{k} {f['value']:.4g}")
    for data, figs in by_data.items():
        row("figures", f"on {data}: {', '.join(figs)}")
    gate = ", ".join(f"{k} {v:.4g}" for k, v in p["gate"].items()) or "-"
    row("gate", gate + (f"; judged on {p['gate_evaluated_on']}" if p["gate_evaluated_on"] else ""))
    row("decision", p["gate_decision"] or "-")
    if p.get("gate_paired"):
        from vitalgru.tracking import paired_text

        row("paired", paired_text(p["gate_paired"]))
    row("promotion", p["promotion"] or "-")
    m = p["monitor"]
    row("last check", f"{m['status']} ({m['checked_at']}): {m['reasons']}" if m["status"] else "-")
    row("artifacts", f"runs:/{run['id']}/ " + " ".join(run.get("artifacts", [])))
    card = p["description"].strip()
    lines += ["", *("  " + c if c else "" for c in card.splitlines())] if card else []
    return "\n".join(lines) + "\n"

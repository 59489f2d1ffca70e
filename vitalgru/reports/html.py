"""The frame of vitalgru's clinician pages: one self-contained HTML file each, with no
script, style sheet or image from elsewhere (it opens offline, from a file or an e-mail)."""

from __future__ import annotations

import html
from datetime import UTC, datetime

__all__ = ["DISCLAIMER", "page"]

#: Said on every page: what the numbers are, and what they are not.
DISCLAIMER = (
    "What this page shows comes from an automated model: it supports, and does not "
    "replace, a clinician's review of the patient. vitalgru is not a medical device."
)

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60em;margin:1em auto;color:#111}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left} td.n{text-align:right}
.head{font-weight:bold} .note{color:#555;font-size:.9em} .hi{color:#a00;font-weight:bold}
section{border-top:2px solid #333;margin-top:1.5em}
svg{display:block;margin:.5em 0} svg text{font-size:11px;fill:#333}
"""


def page(
    title: str,
    intro: str,
    body: str,
    *,
    model: str | None = None,
    generated: datetime | None = None,
) -> str:
    """A whole page: ``title``, a note (when it was generated, with which model, then
    ``intro``, which is HTML, then :data:`DISCLAIMER`) and ``body`` (HTML)."""
    e = html.escape
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    model_line = f" Model: {e(model)}." if model else ""
    return f"""<!DOCTYPE html>
<html lang=en><head><meta charset=utf-8><title>{e(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{e(title)}</h1>
<p class=note>Generated {when}.{model_line} {intro} {DISCLAIMER}</p>
{body}
</body></html>
"""

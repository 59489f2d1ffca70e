"""What the accessibility tests of the clinician pages read: WCAG 2.1 contrast ratios of
hex colours, a page's elements as :mod:`html.parser` sees them, and one page of each kind."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

from vitalgru.reports.early_warning import early_warning_report_html, stay_summary
from vitalgru.reports.monitoring import monitoring_report_html, patient_summary
from vitalgru.reports.ward import ecg_patient_page_html, ward_page_html

#: WCAG 2.1 AA: normal text (1.4.3), and large text and meaningful graphics (1.4.11).
AA_TEXT = 4.5
AA_GRAPHIC = 3.0


def luminance(colour: str) -> float:
    """The relative luminance (WCAG 2.1) of ``#rgb`` or ``#rrggbb``."""
    h = colour.lstrip("#")
    if not re.fullmatch(r"[0-9a-fA-F]{3}|[0-9a-fA-F]{6}", h):
        raise ValueError(f"not a hex colour: {colour!r}")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = []
    for i in (0, 2, 4):
        c = int(h[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The contrast ratio of two colours, 1 to 21."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


class Elements(HTMLParser):
    """Every start tag of a page in order (``tags``: (name, attributes)), the text inside
    each ``<a>`` (``links``: (attributes, text)) and inside each heading, table caption and
    header cell (``texts``: (name, text))."""

    _TEXTS = ("h1", "h2", "h3", "h4", "caption", "th", "title", "a")

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.links: list[tuple[dict[str, str | None], str]] = []
        self.texts: list[tuple[str, str]] = []
        self._open: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in self._TEXTS:
            self._open.append((tag, dict(attrs), []))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            name, attrs, parts = self._open.pop()
            text = " ".join("".join(parts).split())
            if name == "a":
                self.links.append((attrs, text))
            self.texts.append((name, text))

    def handle_data(self, data: str) -> None:
        for _, _, parts in self._open:
            parts.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        """The attributes of every ``tag``."""
        return [a for t, a in self.tags if t == tag]


def strip_fixture(seq: int) -> dict:
    """10 s of a 1 Hz sine at 250 Hz, a V beat and a Q beat in rejected signal."""
    return {"seq": seq, "kind": "ventricular_run", "message": "3 V beats at 150 bpm",
            "samples": [math.sin(2 * math.pi * k / 250) for k in range(2500)], "fs": 250.0,
            "start_s": 595.0, "onset_s": 600.0, "start_at": f"2026-12-07T12:4{seq}:54.610+00:00",
            "beats": [{"time_s": 596.0, "label": "N"}, {"time_s": 600.0, "label": "V"},
                      {"time_s": 601.0, "label": "Q", "signal_ok": False}]}  # fmt: skip


def _alarm(seq: int, state: str = "going_on") -> dict:
    return {"seq": seq, "kind": "ventricular_run", "message": "3 V beats at 150 bpm",
            "onset_at": f"2026-12-07T12:4{seq}:59.610+00:00", "state": state, "strip_s": 10.0,
            "onset_s": 300.0 * seq,
            "raised_at_s": 606.0}  # fmt: skip


def _ecg(pid: str, alarms: list[dict]) -> dict:
    return {"patient_id": pid, "received_s": 3725.0, "hr_bpm": 72.4, "beats": 200,
            "counts": {"N": 190, "S": 4, "V": 6, "F": 0, "Q": 0}, "rejected_pct": 2.5,
            "alarms": alarms, "admitted_at": "2026-12-07T11:40:00+00:00"}  # fmt: skip


def _stays() -> list[dict]:
    hours = list(range(1, 31))
    risks = [0.6 if 10 <= h <= 14 else 0.1 for h in hours]
    values = {"hr_bpm": [95.0] * 30, "temp_c": [37.0] * 30, "lactate_mmol_l": [4.2] * 30}
    loud = stay_summary("p1", hours, risks, 0.5, values, sepsis_label=[int(h >= 12) for h in hours])
    return [loud, stay_summary("p2", hours, [0.1] * 30, 0.5, values)]


def clinician_pages() -> dict[str, str]:
    """Each kind of clinician page (``ward``, ``ecg``, ``stay``, ``early_warning``, ``replay``)
    as its function writes it, with tables, links, charts and strips."""
    beds = [_ecg("bed-1", [_alarm(1)]), _ecg("bed-2", [_alarm(2)]), _ecg("bed-3", [])]
    sepsis = [{"patient_id": "icu-1", "in_alarm": True, "alarm_episodes": 1,
               "last_hour": {"hour": 30, "risk": 0.41, "probability": 0.12}}]  # fmt: skip
    trend = {"patient_id": "bed-1", "stream_started_at": "2026-12-07T11:40:00+00:00",
             "monitored_s": 3725.0, "hr_trend_bpm": [70.0 + k % 7 for k in range(62)],
             "earlier": [{"stream_started_at": "2026-12-06T11:40:00+00:00",
                          "hr_trend_bpm": [80.0] * 30, "first_minute": 0}]}  # fmt: skip
    alarms = [
        _alarm(1, "ended") | {"ended": {"at": "2026-12-07T12:50:00+00:00", "message": "over"}},
        _alarm(2),
    ]
    times = [0.8 * k for k in range(1, 75)]
    labels = ["V" if k % 10 == 0 else "N" for k in range(1, 75)]
    replayed = patient_summary("119", 60.0, times, labels, [True] * 74,
                               [{"kind": "ventricular_run", "onset_s": 8.0, "message": "3 V"}])  # fmt: skip
    return {
        "ward": ward_page_html(beds, sepsis, refresh_s=10, threshold=0.3),
        "ecg": ecg_patient_page_html(
            {**_ecg("bed-1", alarms)}, [strip_fixture(2), strip_fixture(1)], trend
        ),
        "stay": early_warning_report_html(_stays()[:1], title="Sepsis: patient p1 (live)"),
        "early_warning": early_warning_report_html(_stays()),
        "replay": monitoring_report_html([replayed], strips={"119": [strip_fixture(1)]}),
    }

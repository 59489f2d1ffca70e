"""The gateway's clinician pages in the site's time zone: the ward page, an ECG patient's
page and an alarm's strip show their times in ``display_timezone`` (by default the HL7 zone,
else UTC), each labelled with it; what machines read (JSON, FHIR) keeps UTC."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from monitor_kit import untrained_monitor

from pipelines.gateway import create_app
from vitalgru.scoring.ward import Ward


def _flat_feed(**zones: ZoneInfo) -> tuple[dict, str, str, str, str]:
    """12 s of a flat lead (a pause, a poor signal) on a gateway with ``zones``: ``(the ECG
    summary, its page, the ward page, the first alarm's strip drawn, that alarm's onset)``."""
    ward = Ward(untrained_monitor())
    with TestClient(create_app(ward, tick_s=0, **zones)) as c:
        c.post("/ecg/bed-4/admit", json={"fs": 250})
        for _ in range(12):
            c.post("/ecg/bed-4", json={"samples": [0.0] * 250})
            ward.tick()
        summary = c.get("/ecg/bed-4").json()
        alarm = next(a for a in summary["alarms"] if a.get("strip_s"))
        svg = c.get(f"/events/{alarm['seq']}/strip.svg").text
        return summary, c.get("/ecg/bed-4/page").text, c.get("/ward").text, svg, alarm["onset_at"]


def _in(zone: str, iso: str, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(zone)).strftime(fmt)


def test_the_pages_show_times_in_the_sites_zone_and_say_which() -> None:
    la = ZoneInfo("America/Los_Angeles")
    summary, page, ward, svg, onset = _flat_feed(hl7_timezone=la)  # the site's zone: its default
    assert summary["admitted_at"].endswith("+00:00")  # the JSON keeps UTC
    assert "Times are in America/Los_Angeles." in page and "UTC" not in page
    assert f"since {_in('America/Los_Angeles', summary['admitted_at'])};" in page
    assert _in("America/Los_Angeles", onset) in page and _in("America/Los_Angeles", onset) in ward
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d P[SD]T\.", ward)
    start = re.search(r"strip from ([^<]*)</text>", svg).group(1)
    assert start.endswith((" PST", " PDT")) and "+00:00" not in svg
    # a zone for the pages alone wins over the HL7 one; none at all: UTC, as before
    _, page, ward, svg, onset = _flat_feed(hl7_timezone=la, display_timezone=ZoneInfo("Asia/Tokyo"))
    assert "Times are in Asia/Tokyo." in page and _in("Asia/Tokyo", onset) in ward
    assert " JST</text>" in svg
    _, page, ward, svg, onset = _flat_feed()
    assert "Times are in UTC." in page and _in("UTC", onset) in ward and " UTC</text>" in svg

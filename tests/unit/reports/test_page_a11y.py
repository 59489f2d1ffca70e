"""WCAG 2.1 AA on the clinician pages (the ward, an ECG patient, a sepsis stay, the replay's
pages and the ECG strip), read as a browser or a screen reader reads them: parsed with
:mod:`html.parser`, colours measured with the WCAG contrast formula (``a11y_kit``)."""

from __future__ import annotations

import re

from a11y_kit import Elements

from vitalgru.reports.html import page


def test_a_page_has_its_language_title_one_h1_and_a_main_landmark() -> None:
    # 1.3.1, 2.4.1: no landmark; a screen reader could not jump to the content
    els = Elements(page("Ward overview (live)", "intro", "<section><h2>ECG</h2></section>"))
    assert els.named("html")[0]["lang"] == "en"
    assert [t for n, t in els.texts if n in ("title", "h1")] == ["Ward overview (live)"] * 2
    names = [t for t, _ in els.tags]
    assert names.count("main") == 1 and names.index("main") < names.index("h1")


def test_a_page_that_reloads_itself_offers_to_stop_first() -> None:
    # 2.2.1, 2.2.2 (F41): a meta refresh no one could turn off; every 10 s a screen reader
    # went back to the top of the ward page
    live = page("Ward overview (live)", "", "", refresh_s=10)
    els = Elements(live)
    assert els.named("meta")[1] == {"http-equiv": "refresh", "content": "10"}
    (stop, text), *_ = els.links
    assert stop["href"] == "?refresh=0" and text == "stop reloading"
    assert "reloads itself every 10 s" in live
    names = [t for t, _ in els.tags]
    assert names.index("h1") < names.index("a")  # found right under the heading
    # on paper the link says nothing: hidden in print
    assert re.search(r"@media print\{[^@]*\.screen\{display:none\}", live)
    assert "<p class=screen>" in live
    quiet = page("Ward overview (live)", "", "")
    assert "refresh" not in quiet and not Elements(quiet).links

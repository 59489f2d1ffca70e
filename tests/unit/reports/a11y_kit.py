"""What the accessibility tests of the clinician pages read: WCAG 2.1 contrast ratios of
hex colours, and a page's elements as :mod:`html.parser` sees them."""

from __future__ import annotations

import re
from html.parser import HTMLParser

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

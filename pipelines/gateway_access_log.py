"""uvicorn's access log, without the patients in it.

uvicorn logs every request at INFO on stderr (``"GET /vitals/MRN0012345/page HTTP/1.1"
200``): each patient's identifier, every time a screen or an engine reads it, in a log that
goes where the service manager sends it (the journal, ``docker logs``, a log collector),
kept as long as they keep it and readable by whoever reads those. Who read which patient is
the access log's to keep (:mod:`pipelines.audit`: owner-only, hash-chained, archived). The
line keeps what running the gateway needs, the client, method, status and the route; the
path is replaced by its route's template (``/vitals/{patient_id}/page``), a path no route
takes by its first segment (``/vitals/...``), and a query by its names (``?patient=&since=``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["ACCESS_LOGGER", "RouteAccessLog", "routes_only"]

#: The logger uvicorn writes its access lines to.
ACCESS_LOGGER = "uvicorn.access"


def _template_regex(template: str) -> re.Pattern[str]:
    """``/vitals/{patient_id}/page`` as a pattern of the paths it takes (``{x:path}``: any)."""
    out = ""
    for literal, param in re.findall(r"([^{]*)(\{[^}]*\})?", template):
        out += re.escape(literal)
        if param:
            out += ".+" if param.endswith(":path}") else "[^/]+"
    return re.compile(f"^{out}$")


class RouteAccessLog(logging.Filter):
    """Rewrite uvicorn's access lines (``client - "METHOD PATH HTTP/V" STATUS``, five
    arguments) to name ``app``'s route instead of the path; other records pass as they are."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        # the templates of the app's OpenAPI description (FastAPI's routers included in the
        # app are not listed in ``app.routes`` as routes of their own); a template without
        # parameters first, so that /events/stream is not read as /events/{seq}
        paths = sorted(app.openapi().get("paths", {}), key=lambda t: (t.count("{"), t))
        self._routes = [(_template_regex(t), t) for t in paths]

    def route(self, path_with_query: str) -> str:
        """``/vitals/p-1/page?refresh=0`` as ``/vitals/{patient_id}/page?refresh=``."""
        path, _, query = path_with_query.partition("?")
        for regex, template in self._routes:
            if regex.match(path):
                shown = template
                break
        else:  # no route: its first segment only (the rest may be an identifier)
            head, _, rest = path.lstrip("/").partition("/")
            shown = f"/{head}" + ("/..." if rest else "")
        if query:
            names = dict.fromkeys(k for k, _ in parse_qsl(query, keep_blank_values=True))
            shown += "?" + "&".join(f"{k}=" for k in names)
        return shown

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], self.route(args[2]), args[3], args[4])
        return True


@contextlib.contextmanager
def routes_only(app: Any) -> Iterator[None]:
    """While the block runs (the server serving ``app``), uvicorn's access lines name the
    routes of ``app``, not the paths asked for (:class:`RouteAccessLog`)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    kept = RouteAccessLog(app)
    logger.addFilter(kept)
    try:
        yield
    finally:
        logger.removeFilter(kept)

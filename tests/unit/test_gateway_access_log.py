"""uvicorn's access lines on the gateway's stderr name routes, not the patients in paths."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import uvicorn
from monitor_kit import untrained_monitor

from pipelines.gateway import create_app
from pipelines.gateway_access_log import ACCESS_LOGGER, routes_only
from vitalgru.scoring.ward import Ward


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_access_lines_name_the_route_not_the_patient() -> None:
    # each request's path went to stderr at INFO: every patient's record number, each time
    # a screen or an engine read it, in logs kept and read outside the access log's control
    app = create_app(Ward(untrained_monitor()), tick_s=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    lines = _Lines()
    logging.getLogger(ACCESS_LOGGER).addHandler(lines)  # after Config set uvicorn's logging up
    try:
        with routes_only(app):  # as vitalgru serve runs it
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            deadline = time.monotonic() + 20
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port}"
            assert httpx.post(f"{url}/ecg/MRN0012345/admit", json={"fs": 360}).status_code == 201
            assert httpx.get(f"{url}/ecg/MRN0012345").status_code == 200
            assert httpx.get(f"{url}/events", params={"patient": "MRN0012345",
                                                      "since": 0}).status_code == 200  # fmt: skip
            assert httpx.get(f"{url}/vitals/MRN0012345/nothing-here").status_code == 404
            server.should_exit = True
            thread.join(10)
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(lines)
    assert len(lines.lines) == 4 and not any("MRN0012345" in x for x in lines.lines)
    # what running the gateway needs stays: the method, the route, the status
    assert '"POST /ecg/{patient_id}/admit HTTP/1.1" 201' in lines.lines[0]
    assert '"GET /ecg/{patient_id} HTTP/1.1" 200' in lines.lines[1]
    assert '"GET /events?patient=&since= HTTP/1.1" 200' in lines.lines[2]
    assert '"GET /vitals/... HTTP/1.1" 404' in lines.lines[3]

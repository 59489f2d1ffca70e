"""The run-log handler of :mod:`pipelines.run_logs` outside any flow run: installed once,
and a line logged outside a run is neither sent nor warned about (a flow's run is
tests/integration/test_run_logs.py)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest
from prefect.logging.handlers import APILogHandler

from pipelines.run_logs import OWN_LOGGERS, RunLogHandler, send_to_run_logs


@pytest.fixture()
def own_loggers_restored() -> Iterator[None]:
    """The project's loggers as they were before the test (levels and handlers)."""
    loggers = [logging.getLogger(n) for n in OWN_LOGGERS]
    before = [(lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, (level, handlers) in zip(loggers, before, strict=True):
        lg.setLevel(level)
        lg.handlers[:] = handlers


@pytest.mark.usefixtures("own_loggers_restored")
def test_outside_a_run_nothing_is_sent_nor_warned_about() -> None:
    send_to_run_logs()
    send_to_run_logs()  # once per logger however often it is called
    for name in OWN_LOGGERS:
        handlers = logging.getLogger(name).handlers
        assert sum(isinstance(h, APILogHandler) for h in handlers) == 1, handlers
        assert logging.getLogger(name).isEnabledFor(logging.INFO)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Prefect's own handler warns here
        logging.getLogger("vitalgru.io.physionet").warning("a line outside any flow")
    assert isinstance(logging.getLogger("vitalgru").handlers[-1], RunLogHandler)


@pytest.mark.usefixtures("own_loggers_restored")
def test_a_level_set_on_the_loggers_is_kept() -> None:
    logging.getLogger("vitalgru").setLevel(logging.WARNING)  # a site's own logging config
    logging.getLogger("pipelines").setLevel(logging.NOTSET)
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)  # Prefect's logging, as on a worker
    try:
        send_to_run_logs()
    finally:
        root.setLevel(before)
    assert logging.getLogger("vitalgru").level == logging.WARNING
    assert logging.getLogger("pipelines").level == logging.INFO

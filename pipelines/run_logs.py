"""The project's own log lines in the flow run's logs that Prefect keeps and shows.

Prefect sends to its API (the run's page in the UI, ``POST /api/logs/filter``) the lines of
its run loggers (``get_run_logger()``) only. The library's lines (``vitalgru.*``: a
skipped ``.psv`` file, a fold's result, an excluded record) and the flows' helpers'
(``pipelines.*``: a monitoring check's verdict) went to the process's console alone: a
worker's output, not the run an operator opens in the UI.

:func:`send_to_run_logs`, called at the start of each flow, gives the ``vitalgru`` and
``pipelines`` loggers a handler that sends their INFO-and-above lines to the run's logs,
through Prefect's own API log handler (its batching, size limit and
``PREFECT_LOGGING_TO_API_ENABLED`` switch). It is Prefect's ``PREFECT_LOGGING_EXTRA_LOGGERS``
done in code, so that a run started by the command line, a deployment's worker or a
direct call of the flow function gets it without a setting, with two differences: a line
logged outside any flow or task run (the gateway, a command that runs no flow) is left to
the console quietly, where Prefect's handler warns on each; and where those loggers take
their level from the root logger and it is above INFO (a worker's or a plain script's
logging is Prefect's: WARNING and above), they are set to INFO, so their INFO lines are
written, on the console too; a level a site set on them is kept. What the console shows
is otherwise unchanged: the handler writes nowhere else, and the records still reach the
root logger's handlers once. A logger that already carries a
Prefect API handler (``PREFECT_LOGGING_EXTRA_LOGGERS=vitalgru``) gets no second one.

What the lines hold goes into Prefect's database (the README's "What Prefect's database
keeps"): record ids and file names, as on the console.
"""

from __future__ import annotations

import logging
import threading

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

__all__ = ["OWN_LOGGERS", "RunLogHandler", "send_to_run_logs"]

#: The loggers whose lines go to the run's logs (and their children).
OWN_LOGGERS = ("vitalgru", "pipelines")


class RunLogHandler(APILogHandler):
    """Prefect's API log handler for lines logged inside a flow or task run; a line from
    outside any run is dropped here (the console has it) instead of warned about."""

    def emit(self, record: logging.LogRecord) -> None:
        outside = FlowRunContext.get() is None and TaskRunContext.get() is None
        if outside and getattr(record, "flow_run_id", None) is None:
            return
        super().emit(record)


#: Held while the handlers are looked at and added: flows started at once in threads of
#: one process (a subflow beside another) add one handler, not one each.
_installing = threading.Lock()


def send_to_run_logs() -> None:
    """Have the lines of :data:`OWN_LOGGERS`, INFO and above, sent to the flow run's logs
    in Prefect (see the module's description). Idempotent; call it in each flow."""
    with _installing:
        for name in OWN_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(h, APILogHandler) for h in logger.handlers):
                logger.addHandler(RunLogHandler(level=logging.INFO))
            # a level set on the logger itself (a site's logging config) is left as it is
            if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)

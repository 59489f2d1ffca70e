"""Prefect's temporary server ends with the process whose flows it serves.

With no ``PREFECT_API_URL``, Prefect 3 starts a temporary API server for a process's first
flow: a uvicorn child process (``prefect.server.api.server.SubprocessASGIServer``, about
200 MB) that it stops at interpreter exit (``atexit``). A process ended without its exit
handlers, by SIGKILL (the OOM killer, a drained node) or by a SIGTERM where Python's
default ends it at once (a flow called from one's own script), left the server running,
reparented to PID 1, for good.

:func:`stop_with_this_process`, called at the start of each flow, hands the server to a
small watcher process that holds the only other end of a pipe from this one: when this
process ends, however it ends, the kernel closes the pipe, and the watcher stops the
server (SIGTERM, then SIGKILL after 5 s) if it is still running. A process that ends
normally has stopped it already, and the watcher does nothing. The watcher holds a pidfd
of the server, opened here while the server runs, so it can signal no other process that
was later given the same id; where there is none (Linux before 5.3, macOS) nothing is
watched. Prefect's own code is left as it is: the server is the one Prefect started and
tracks, found the way Prefect finds it.

Limits: a child forked from this process without ``exec`` (``multiprocessing``'s fork
start method) holds the pipe too, so the server is stopped when the last of them ends; a
kill between the server's start and the flow's first step leaves it running, as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

__all__ = ["WATCHER", "stop_with_this_process"]

logger = logging.getLogger(__name__)

#: The watcher, run as ``python -I -S -c WATCHER FD``: no import beyond the standard
#: library's core (it starts in milliseconds), ``FD`` the server's pidfd, inherited.
WATCHER = """\
import select, signal, sys
fd = int(sys.argv[1])
sys.stdin.buffer.read()  # the flow's process ended (or closed its end)
for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
    if select.select([fd], [], [], 0)[0]:  # the server has ended
        break
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        break
    select.select([fd], [], [], wait_s)
"""

#: The server watched, and its watcher, whose pipe's write end is kept open while this
#: process lives: closing it, the process ending included, is what the watcher waits for.
_watched: dict[int, subprocess.Popen[bytes]] = {}


def stop_with_this_process() -> None:
    """Have Prefect's temporary server, when this process runs one, stopped when this
    process ends, however it ends (see the module's description). Does nothing when flows
    report to a server of their own (``PREFECT_API_URL``), when no temporary server runs,
    when its watcher is already started, or where the system has no pidfd."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or "prefect.server.api.server" not in sys.modules:
        return  # a server that is not this process's to stop, or none started here
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the temporary one: Prefect keeps one per process
    proc = server.server_process
    if proc is None or proc.poll() is not None or proc.pid in _watched:
        return
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError) as e:  # no pidfd here: nothing is watched
        logger.debug("prefect: the temporary server is not watched (%s)", e)
        return
    try:
        watcher = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", WATCHER, str(pidfd)],
            stdin=subprocess.PIPE, pass_fds=(pidfd,),
            start_new_session=True,  # not stopped with a terminal's Ctrl-C before its time
        )  # fmt: skip
    except OSError as e:
        logger.warning("prefect: could not watch the temporary server: %s", e)
        return
    finally:
        os.close(pidfd)  # the watcher has its own copy
    _watched[proc.pid] = watcher
    logger.debug("prefect: temporary server %d watched by %d", proc.pid, watcher.pid)

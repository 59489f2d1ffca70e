"""Runs whose process is gone: the process that opens a run is named on it, and a run still
``RUNNING`` whose process no longer exists is ended as ``KILLED`` when the next run of its
experiment starts.

A run ends ``FINISHED`` or ``FAILED`` from Python (:func:`vitalgru.tracking.runs.start_run`);
a process stopped by SIGKILL (the OOM killer, a drained node, a power cut) ends nothing, and
MLflow shows its run as running for good, beside a newer run of the same command that did
finish. Each run is tagged :data:`OWNER_TAG` (``host:pid:start``: the host name, the process
id and the process's start time as the kernel counts it, so a process id used again by
another process is not taken for the run's); a later run on the same host ends the runs its
experiment still shows running whose process is not that one. Runs of another host are
left as they are: nothing here can tell whether their process is alive. Nor can it for a
process in another process-id namespace (a container, whose name may be the host's: with
the host's network it is), where the same id names another process or none: the host part
of the tag is the host name and the namespace (``name/ns``) where ``/proc`` tells it, and
runs of another namespace are left as another host's are; so is a run of a container since
restarted (a new namespace), which cannot be told from a sibling's.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus

logger = logging.getLogger(__name__)

__all__ = ["OWNER_TAG", "end_orphaned_runs", "owner_tag"]

#: Run tag naming the process that opened the run: ``host:pid:start``.
OWNER_TAG = "vitalgru.process"
#: Run tag set on a run ended here, saying why.
ENDED_TAG = "vitalgru.ended"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (clock ticks since boot, field 22 of
    ``/proc/<pid>/stat``); ``""`` where ``/proc`` does not tell it (then only the id is
    compared), None when there is no such process.

    A ``/proc`` mounted with ``hidepid`` (a hardened host) shows no process of another
    user: one missing there is asked of the kernel (signal 0) before it is taken for gone,
    else another user's live run on a shared store was ended ``KILLED``."""
    if Path("/proc/self/stat").exists():
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            pass  # gone, or hidden from this user: the kernel tells which
        else:
            # the command name (field 2) may hold spaces and parentheses: count after its end
            return text[text.rindex(")") + 2 :].split()[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # another user's process: it exists
    return ""


def _host() -> str:
    """This process's host as :data:`OWNER_TAG` names it: the host name, and the inode of
    its process-id namespace where ``/proc`` gives it (``name/4026531836``). Containers
    sharing the host's name (host networking) each see their own process ids."""
    try:
        ns = os.readlink("/proc/self/ns/pid")  # 'pid:[4026531836]'
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{ns.removeprefix('pid:[').removesuffix(']')}"


def owner_tag(pid: int | None = None) -> str:
    """:data:`OWNER_TAG`'s value for process ``pid`` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return f"{_host()}:{pid}:{_start_time(pid) or ''}"


def _gone(owner: str) -> bool:
    """Whether the process an :data:`OWNER_TAG` value names is known to be gone (False for
    another host's or process-id namespace's, or a value this module did not write)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid, start = parts
    if host != _host():
        return False
    now = _start_time(int(pid))
    return now is None or (bool(start) and bool(now) and now != start)


def end_orphaned_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """End as ``KILLED`` the runs of ``experiment_id`` still ``RUNNING`` whose process
    (:data:`OWNER_TAG`, this host's) is gone, each tagged :data:`ENDED_TAG` with why.
    Returns their ids."""
    ended = []
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    for run in running:
        owner = run.data.tags.get(OWNER_TAG)
        if owner is None or not _gone(owner):
            continue
        client.set_tag(
            run.info.run_id, ENDED_TAG,
            f"killed: its process ({owner}) was gone when a later run of the experiment "
            "started; what it logged may be incomplete",
        )  # fmt: skip
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
        logger.warning(
            "MLflow run %s was left running by a process that is gone (%s); marked KILLED",
            run.info.run_id, owner,
        )  # fmt: skip
        ended.append(run.info.run_id)
    return ended

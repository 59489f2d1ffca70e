"""How a command that runs out of memory ends: one line saying what could not be had, the
memory limit the process runs under and what to do, exit status 2, as for a full disk.

Under a limit on the address space (``ulimit -v``, ``prlimit --as``) numpy, pyarrow and
Python raise ``MemoryError``, torch a ``RuntimeError`` from its allocator, and starting a
thread or process an ``OSError`` (``ENOMEM``) or "can't start new thread": each ended the
command in a traceback of 60 to 200 lines (status 1) that named neither the limit nor what
to set. A kill by the kernel's out-of-memory killer (a container's memory limit) ends a
process with SIGKILL, which no process can report on its own; a training worker killed so
is reported by the parent (:class:`vitalgru.training.parallel.WorkerDied`).
"""

from __future__ import annotations

import errno
import os
import resource

from vitalgru.errors import error_chain

#: What torch's CPU allocator and Python's threads say where memory ran out.
_RUNTIME_WORDS = ("DefaultCPUAllocator: can't allocate memory", "can't start new thread")

_REMEDY = (
    "give the command more memory (raise the container's memory limit or ulimit -v); the "
    "README's 'Memory and CPU limits' lists each command's measured peak"
)


def out_of_memory(error: BaseException) -> str | None:
    """One line for an error that says memory ran out, searched along its causes (Prefect
    and MLflow re-raise or wrap); None for any other error."""
    for e in error_chain(error):
        what = _what_ran_out(e)
        if what is not None:
            return f"out of memory ({what}){_limit()}: {_REMEDY}"
    return None


def _what_ran_out(e: BaseException) -> str | None:
    if isinstance(e, MemoryError):  # numpy's _ArrayMemoryError and pyarrow's are ones
        return _first_line(str(e)) or "MemoryError"
    if isinstance(e, OSError) and e.errno == errno.ENOMEM:  # a thread, a process, a map
        return e.strerror or os.strerror(e.errno)
    if isinstance(e, RuntimeError):
        text = str(e)
        for words in _RUNTIME_WORDS:
            if words in text:
                return _first_line(text[text.index(words) :])
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _limit() -> str:
    """The address-space limit this process runs under, if there is one."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return ""
    return (
        f" under an address-space limit of {soft / 2**30:.2f} GiB (ulimit -v, prlimit --as: "
        "virtual memory, far more than the resident memory a command peaks at)"
    )

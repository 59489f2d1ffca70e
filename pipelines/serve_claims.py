"""What one gateway process must hold alone, claimed before it loads anything: its ports,
and the files only one writer may keep (the ward's state, the access log).

A second ``vitalgru serve`` started by mistake beside a running one (the same command run
twice, a service manager starting a new process before the old one has let go) used to load
its models, take up the running gateway's state file, append its own restart events to it,
fail to bind the port, and on the way out write its patients' memory back over the running
gateway's. Two writers of one access log would also break its hash chain. Claimed first,
either is one line saying what is in use, and nothing is touched.

A port is bound here and the bound socket handed to the server (uvicorn, the MLLP listener),
so the port is this gateway's from the check on. A file's claim is an exclusive
:func:`vitalgru.claims.hold` on ``<file>.lock`` (its holder's process id written in it),
held as long as the process lives: the kernel releases it when the process ends, however it
ends, so a crash leaves nothing stale to clean up.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator

from vitalgru.claims import ClaimBusy, hold

__all__ = ["bind_port", "claim_file"]


#: Connections queued before the server accepts (uvicorn's default).
BACKLOG = 2048


def bind_port(host: str, port: int, what: str = "--port") -> socket.socket:
    """``host:port`` bound and listening for this gateway now, as uvicorn binds
    (``SO_REUSEADDR``), and handed to the server that accepts on it: no other process can
    take the port between this check and the server's start. OSError naming the option that
    set it when the port is in use (another gateway, another service) or the host cannot be
    listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"{what}: cannot listen on {host!r}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
        s.listen(BACKLOG)  # bound alone is not held: another SO_REUSEADDR bind would succeed
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            raise OSError(
                f"{host}:{port} is in use: another gateway (or another service) listens "
                f"there; stop it, or give another {what}"
            ) from None
        raise OSError(f"{what}: cannot listen on {host}:{port}: {e.strerror}") from None
    return s


@contextlib.contextmanager
def claim_file(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``path`` for this process alone while the block runs (an exclusive claim on
    ``<path>.lock``); OSError naming the process that holds it when another does. ``what``
    says which file it is (``"the ward state"``)."""
    name = f"{what} {os.fspath(path)}"
    # the lock beside the file itself: another name for it (a symbolic link, a relative
    # path) must not get a lock of its own
    real = os.path.realpath(path)
    try:
        with hold(f"{real}.lock", name, busy="another gateway"):
            yield
    except ClaimBusy as e:
        raise OSError(f"{e}: one file, one gateway; stop that one first") from None

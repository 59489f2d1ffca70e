"""A folder claimed by another process, as a running ingest or training holds it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def folder_held_by_another_process(folder: Path, seconds: float) -> Iterator[int]:
    """Another process holds :func:`vitalgru.claims.writing` on ``folder`` for ``seconds``
    (or until the block ends); yields its pid."""
    code = ("import time; from vitalgru.claims import writing\n"
            f"with writing({str(folder)!r}, 'x'):\n"
            f"    print('held', flush=True); time.sleep({seconds})")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(30)

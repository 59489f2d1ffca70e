"""Code run in several threads at once, switching between them as often as Python can:
where shared state is not thread-safe, this is what shows it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def run_in_threads(fn: Callable[[], object], n: int = 4) -> None:
    """Run ``fn`` in ``n`` threads together, the interpreter switching threads every
    microsecond, and wait for them all."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=fn) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)

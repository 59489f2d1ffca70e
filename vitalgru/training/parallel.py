"""Independent fits side by side in worker processes, their progress replayed in order.

An ensemble's members (cross-validation folds, seeds) train independently, and a small
recurrent network on one CPU core leaves the other cores idle: the only way to use them
without losing reproducibility is one process per fit (threads would share torch's
global random generator, which dropout and initialisation draw from).

:func:`run_fits` runs ``fn(shared, task, callbacks)`` for every task, in worker processes
started with ``spawn`` (forking a process that holds torch's thread pools, Prefect's
or MLflow's background threads is unsafe). ``shared`` is sent to each worker once, not
with every task. Each worker forwards its fit's callback events through a queue; the
parent hands them to the caller's callbacks **in task order** (a later task's events are
held until every earlier task has finished), so progress bars and per-epoch tracking see
the same sequence of fits as a sequential run. Results come back in task order.

Because workers are spawned, a script that calls this with ``workers > 1`` must guard
its entry point with ``if __name__ == "__main__":`` (as for any ``spawn`` start method).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from vitalgru.errors import VitalgruError
from vitalgru.training.loop import Callback, FitResult

T = TypeVar("T")
R = TypeVar("R")

_DONE = "__done__"


class WorkerDied(VitalgruError, BrokenProcessPool):
    """A worker process ended without a result or an error: killed by a signal (SIGKILL
    from the kernel's out-of-memory killer, under a container's memory limit, most often)
    or ended by a C library. Names the process, how it ended and what to do; Python's own
    error said only that "a process in the process pool was terminated abruptly"."""


# Per-worker state, set once by _init_worker.
_worker_shared: Any = None
_worker_queue: Any = None


class _Forward(Callback):
    """In a worker: every callback event goes to the parent, tagged with the task."""

    def __init__(self, events: Any, index: int) -> None:
        self.events = events
        self.index = index

    def _put(self, name: str, *args: Any) -> None:
        self.events.put((self.index, name, args))

    def on_fit_start(self, max_epochs: int, steps_per_epoch: int) -> None:
        self._put("on_fit_start", max_epochs, steps_per_epoch)

    def on_epoch_start(self, epoch: int) -> None:
        self._put("on_epoch_start", epoch)

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        self._put("on_batch_end", epoch, step, loss)

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._put("on_epoch_end", epoch, dict(metrics))

    def on_fit_end(self, result: FitResult) -> None:
        self._put("on_fit_end", result)


def _init_worker(events: Any, shared: Any) -> None:
    global _worker_shared, _worker_queue
    _worker_shared, _worker_queue = shared, events


def _run_task(fn: Callable[[Any, Any, Sequence[Callback]], Any], index: int, task: Any) -> Any:
    try:
        return fn(_worker_shared, task, [_Forward(_worker_queue, index)])
    finally:
        _worker_queue.put((index, _DONE, ()))


def run_fits(
    fn: Callable[[Any, T, Sequence[Callback]], R],
    shared: Any,
    tasks: Sequence[T],
    workers: int = 1,
    callbacks: Sequence[Callback] = (),
) -> list[R]:
    """``[fn(shared, task, callbacks) for task in tasks]``, ``workers`` at a time.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it by name); it must seed itself from
        its task, so that the result does not depend on which process runs it.
    shared : object
        Data every task reads (picklable; sent once to each worker).
    tasks : sequence
        Picklable task descriptions.
    workers : int
        Processes; 1 runs the tasks here, one after the other, with no pickling.
    callbacks : sequence of Callback
        Receive every task's events, task after task.

    Returns
    -------
    list
        ``fn``'s results in task order. The first task to raise stops the rest and its
        exception is raised here.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or len(tasks) <= 1:
        return [fn(shared, t, callbacks) for t in tasks]
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    held: dict[int, list[tuple[str, tuple[Any, ...]]]] = {i: [] for i in range(len(tasks))}
    finished: set[int] = set()
    nxt = 0  # the task whose events go straight to the callbacks

    def deliver(index: int, name: str, args: tuple[Any, ...]) -> None:
        if name == _DONE:
            finished.add(index)
            return
        for cb in callbacks:
            getattr(cb, name)(*args)

    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(events, shared),
    ) as pool:
        futures: list[Future[Any]] = [pool.submit(_run_task, fn, i, t) for i, t in enumerate(tasks)]
        procs = list(getattr(pool, "_processes", {}).values())  # all started by the submits
        try:
            while nxt < len(tasks):
                # A worker that ended stops everything at once. Python 3.11's pool may not
                # see it: it wakes its watcher before it starts the process a submit adds,
                # so a worker started by the last submit and then killed went unnoticed
                # until another worker finished its fit (a minute to an hour of training
                # on one process, then the error).
                if any(p.exitcode is not None for p in procs):
                    raise _died(procs, workers)
                for f in futures:  # a failed or killed worker stops everything at once
                    if f.done() and (error := f.exception()) is not None:
                        if isinstance(error, BrokenProcessPool):
                            raise _died(procs, workers) from error
                        raise error
                try:
                    index, name, args = events.get(timeout=0.2)
                except queue_mod.Empty:
                    continue
                if index == nxt:
                    deliver(index, name, args)
                else:
                    held[index].append((name, args))
                while nxt in finished:  # hand over to the next task, replaying its events
                    nxt += 1
                    if nxt < len(tasks):
                        for name, args in held.pop(nxt):
                            deliver(nxt, name, args)
            return [f.result() for f in futures]
        except BaseException:
            _stop(pool)
            raise


def _died(procs: Sequence[Any], workers: int) -> WorkerDied:
    """The error for a pool broken by a worker that ended: which one and how (the pool
    ends the others with SIGTERM once it is broken, so that one is the one reported)."""
    ended = [p for p in procs if p.exitcode is not None]
    first = next((p for p in ended if p.exitcode != -signal.SIGTERM), ended[0] if ended else None)
    if first is None:
        how = "ended"
    elif first.exitcode < 0:
        how = f"was killed by {signal.Signals(-first.exitcode).name}"
    else:
        how = f"ended with exit status {first.exitcode}"
    pid = f" (pid {first.pid})" if first is not None else ""
    oom = (" (on Linux most often the kernel's out-of-memory killer, under a container's "
           "or the machine's memory limit)") if first is not None and first.exitcode == -9 else ""  # fmt: skip
    return WorkerDied(
        f"a worker process training the fits side by side{pid} {how}{oom}: each of the "
        f"{workers} workers holds its own copy of the training data; set workers: 1 (the "
        "fits one at a time, in the command's own process) or give the command more memory"
    )


def _stop(pool: ProcessPoolExecutor) -> None:
    """Drop the queued tasks and end the running ones now: a failed or interrupted fit
    must not leave the caller waiting for the others to finish."""
    running = list(getattr(pool, "_processes", {}).values())  # no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in running:
        proc.terminate()

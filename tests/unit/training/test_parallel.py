"""run_fits: tasks in worker processes, results and callback events in task order."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from vitalgru.training import Callback, FitResult
from vitalgru.training.parallel import run_fits


class _Record(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_fit_start(self, max_epochs: int, steps_per_epoch: int) -> None:
        self.seen.append(("start", max_epochs))

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.seen.append(("epoch", dict(metrics)))

    def on_fit_end(self, result: FitResult) -> None:
        self.seen.append(("end", result.best_epoch))


def _toy_fit(shared: int, task: dict[str, Any], callbacks: Sequence[Callback]) -> int:
    for cb in callbacks:
        cb.on_fit_start(task["i"], 1)
    time.sleep(task["sleep"])
    if task.get("fail"):
        raise RuntimeError(f"task {task['i']} failed")
    for epoch in range(2):
        for cb in callbacks:
            cb.on_epoch_end(epoch, {"task": float(task["i"]), "epoch": float(epoch)})
    for cb in callbacks:
        cb.on_fit_end(FitResult(best_epoch=task["i"], best_metrics={}))
    return shared + task["i"]


def _expected_events(n: int) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for i in range(n):
        out.append(("start", i))
        out += [("epoch", {"task": float(i), "epoch": float(e)}) for e in range(2)]
        out.append(("end", i))
    return out


class TestRunFits:
    def test_workers_return_results_and_events_in_task_order(self) -> None:
        # the first task is the slowest: later tasks finish first and must wait their turn
        tasks = [{"i": i, "sleep": s} for i, s in enumerate((1.5, 0.0, 0.2, 0.0))]
        rec = _Record()
        assert run_fits(_toy_fit, 100, tasks, workers=2, callbacks=[rec]) == [100, 101, 102, 103]
        assert rec.seen == _expected_events(4)

    def test_one_worker_runs_here_in_order(self) -> None:
        rec = _Record()
        tasks = [{"i": i, "sleep": 0.0} for i in range(3)]
        assert run_fits(_toy_fit, 1, tasks, workers=1, callbacks=[rec]) == [1, 2, 3]
        assert rec.seen == _expected_events(3)

    def test_a_failing_task_raises_in_the_caller_without_waiting(self) -> None:
        # task 0 would run for a minute; the failure of task 1 must not wait for it
        tasks = [{"i": 0, "sleep": 60.0}, {"i": 1, "sleep": 0.0, "fail": True}]
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="task 1 failed"):
            run_fits(_toy_fit, 0, tasks, workers=2)
        assert time.monotonic() - t0 < 30.0

    def test_rejects_no_workers(self) -> None:
        with pytest.raises(ValueError, match="workers"):
            run_fits(_toy_fit, 0, [{"i": 0, "sleep": 0.0}], workers=0)

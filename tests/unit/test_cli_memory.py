"""A command that runs out of memory ends in one line (what could not be had, the limit,
what to do) and exit status 2, as for a full disk; it ended in a traceback (status 1)."""

from __future__ import annotations

import errno
import resource
from typing import Any

import numpy as np
import pytest
import torch

import pipelines.cli
from pipelines.cli import run
from pipelines.cli_memory import out_of_memory


def _numpy_error() -> MemoryError:
    try:
        np.empty(2**62, dtype=np.uint8)  # numpy's own error, as under a memory limit
    except MemoryError as e:
        return e
    raise AssertionError("an allocation of 4 EiB succeeded")


def _torch_error() -> RuntimeError:
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as e:
        return e
    raise AssertionError("an allocation of 4 EiB succeeded")


class TestOutOfMemory:
    def test_each_kind_of_out_of_memory_is_one_line_with_status_2(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def fails(error: BaseException) -> str:
            def command(args: object) -> int:
                raise error

            monkeypatch.setattr(pipelines.cli, "cmd_config", command)
            assert run(["config", "ingest"]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err
            assert err.startswith("vitalgru: error: out of memory (")
            assert "give the command more memory" in err
            return err

        assert "(Unable to allocate 4.00 EiB for an array" in fails(_numpy_error())
        assert "(DefaultCPUAllocator: can't allocate memory: you tried to allocate" in fails(
            _torch_error()
        )
        assert "(can't start new thread)" in fails(RuntimeError("can't start new thread"))
        assert "(Cannot allocate memory)" in fails(OSError(errno.ENOMEM, "Cannot allocate memory"))
        assert "(MemoryError)" in fails(MemoryError())  # Python's own carries no message
        # wrapped, as a flow or a library re-raises it
        try:
            try:
                raise _numpy_error()
            except MemoryError as e:
                raise RuntimeError("task failed") from e
        except RuntimeError as e:
            wrapped = e
        assert "(Unable to allocate 4.00 EiB" in fails(wrapped)

    def test_the_address_space_limit_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = resource.getrlimit

        def limited(which: int) -> Any:
            if which == resource.RLIMIT_AS:
                return (3 * 2**30, resource.RLIM_INFINITY)
            return real(which)

        monkeypatch.setattr(resource, "getrlimit", limited)
        line = out_of_memory(MemoryError("x"))
        assert line is not None and "under an address-space limit of 3.00 GiB" in line

    def test_other_errors_are_not_taken_for_it(self) -> None:
        for other in (RuntimeError("boom"), OSError(errno.EIO, "I/O error"), KeyError("x")):
            assert out_of_memory(other) is None

"""A second gateway started beside a running one stops at once, with one line saying what
is in use, before it loads a model or touches the running one's files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import build_parser
from pipelines.cli_serve import cmd_serve
from pipelines.serve_claims import bind_port, claim_file


def _listening() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_a_port_another_process_listens_on_is_named() -> None:
    with _listening() as s:
        port = s.getsockname()[1]
        with pytest.raises(OSError, match=rf"127.0.0.1:{port} is in use.*another --mllp-port"):
            bind_port("127.0.0.1", port, "--mllp-port")
    with bind_port("127.0.0.1", port):  # free again once it is closed
        # ... and held from the check on: nobody else binds it before the server listens
        with pytest.raises(OSError, match=rf"127.0.0.1:{port} is in use"):
            bind_port("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    with pytest.raises(OSError, match="--port: cannot listen on 'no-such-host.invalid'"):
        bind_port("no-such-host.invalid", port)


def test_a_file_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "ward.sqlite"
    with claim_file(state, "the ward state"):
        lock = tmp_path / "ward.sqlite.lock"
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(OSError) as e, claim_file(state, "the ward state"):
            pass
        assert str(e.value).startswith(f"the ward state {state} is in use by another gateway "
                                       f"(process {os.getpid()}, holding {lock})")  # fmt: skip
        # another process is refused too (flock, not a lock of this process's own)
        code = ("import sys; from pipelines.serve_claims import claim_file\n"
                f"try:\n    claim_file({str(state)!r}, 'the ward state').__enter__()\n"
                "except OSError as e:\n    print(e); sys.exit(3)")  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert out.returncode == 3 and f"process {os.getpid()}" in out.stdout
        # another name for the same file is the same file (a lock of its own before)
        (tmp_path / "current.sqlite").symlink_to(state.name)
        with pytest.raises(OSError, match="another gateway"):
            with claim_file(tmp_path / "current.sqlite", "the ward state"):
                pass
    with claim_file(state, "the ward state"):  # let go at the end of the block
        pass
    assert not state.exists()  # the claim never creates the file itself
    with pytest.raises(OSError, match=r"ward.sqlite cannot be held: No such file or directory"):
        with claim_file(tmp_path / "gone" / "ward.sqlite", "the ward state"):
            pass


def test_serve_stops_before_loading_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "mlflow.db"  # a store to read the models from (checked first)
    store.write_bytes(b"")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    p = build_parser()
    state = tmp_path / "ward.sqlite"
    with _listening() as s:
        port = s.getsockname()[1]
        with pytest.raises(SystemExit, match=rf"127.0.0.1:{port} is in use"):
            cmd_serve(p.parse_args(["serve", "--port", str(port), "--state", str(state)]))
    free = _listening()
    port = free.getsockname()[1]
    free.close()
    state.write_bytes(b"the running gateway's")
    with claim_file(state, "the ward state"):  # a running gateway holds its state
        with pytest.raises(SystemExit, match="the ward state .* is in use by another gateway"):
            cmd_serve(p.parse_args(["serve", "--port", str(port), "--state", str(state)]))
        audit = tmp_path / "audit.sqlite"
        with claim_file(audit, "the access log"), pytest.raises(SystemExit, match="the access log"):
            cmd_serve(p.parse_args(["serve", "--port", str(port), "--state", "none",
                                    "--audit", str(audit)]))  # fmt: skip
    assert state.read_bytes() == b"the running gateway's"


def test_a_state_file_whose_lock_is_refused_is_one_plain_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the lock's error gained its errno (for the one-line refusals) and was printed as
    # "[Errno 13] the ward state ... cannot be held: Permission denied: '....lock'"
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    state = tmp_path / "ward.sqlite"
    real_open = os.open

    def refused(path: object, *a: object, **k: object) -> int:
        if str(path).endswith("ward.sqlite.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refused)
    free = _listening()
    port = free.getsockname()[1]
    free.close()
    p = build_parser()
    with pytest.raises(SystemExit) as ei:
        cmd_serve(p.parse_args(["serve", "--port", str(port), "--state", str(state)]))
    said = str(ei.value)
    assert said == (
        f"vitalgru: error: the ward state {state} cannot be held: Permission denied "
        f"({state}.lock): let the user running vitalgru write there (or read it), or give "
        "another path"
    )
    assert "[Errno" not in said

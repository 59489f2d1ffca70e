"""A run whose process was killed (SIGKILL: nothing in Python runs) is not shown running
for good: the next run of its experiment on the same host ends it KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from vitalgru.tracking import start_run, tracking_uri
from vitalgru.tracking.run_owner import ENDED_TAG, OWNER_TAG, owner_tag

ROOT = Path(__file__).resolve().parents[2]

# opens a run, logs a param and is killed inside the block, as the OOM killer would
_KILLED_IN_A_RUN = textwrap.dedent(
    """
    import os, signal
    from vitalgru.tracking import start_run
    with start_run("exp", run_name="killed") as run:
        run.log_params({"a": 1})
        print(run.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri())


def _killed_run(store: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", _KILLED_IN_A_RUN], cwd=store, env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == -signal.SIGKILL, p.stderr
    return p.stdout.split()[-1]


class TestKilledRuns:
    def test_the_next_run_ends_a_killed_process_run(self, store: Path) -> None:
        run_id = _killed_run(store)
        client = _client()
        assert client.get_run(run_id).info.status == "RUNNING"  # what SIGKILL leaves
        with start_run("exp", run_name="again") as run:
            pass
        old = client.get_run(run_id)
        assert old.info.status == "KILLED" and old.info.end_time is not None
        assert "its process" in old.data.tags[ENDED_TAG]
        new = client.get_run(run.run_id)
        assert new.info.status == "FINISHED"
        assert new.data.tags[OWNER_TAG] == owner_tag()

    def test_a_live_process_run_and_another_hosts_stay_running(self, store: Path) -> None:
        client = _client()
        with start_run("exp", run_name="outer") as outer:
            # a run of another host: whether its process lives cannot be told from here
            exp_id = outer.experiment_id
            far = client.create_run(exp_id, tags={OWNER_TAG: "elsewhere.example:1:1"})
            untagged = client.create_run(exp_id)  # opened by something else
            with start_run("exp", run_name="inner", nested=True):
                pass
            assert client.get_run(outer.run_id).info.status == "RUNNING"
        assert client.get_run(outer.run_id).info.status == "FINISHED"
        assert client.get_run(far.info.run_id).info.status == "RUNNING"
        assert client.get_run(untagged.info.run_id).info.status == "RUNNING"

    def test_a_process_id_used_again_is_not_the_runs(self, store: Path) -> None:
        # the run's process id now names another process (this one): its start time differs
        me = owner_tag().rsplit(":", 2)
        client = _client()
        with start_run("exp") as first:
            pass
        exp_id = first.experiment_id
        stale = client.create_run(exp_id, tags={OWNER_TAG: f"{me[0]}:{me[1]}:1"})
        with start_run("exp"):
            pass
        assert client.get_run(stale.info.run_id).info.status == "KILLED"


# opens a run and stays in it until told to stop, printing its id
_ALIVE_IN_A_RUN = textwrap.dedent(
    """
    import sys
    from vitalgru.tracking import start_run
    with start_run("exp", run_name="alive") as run:
        print(run.run_id, flush=True)
        sys.stdin.readline()
    """
)


def _unshare_pid() -> list[str] | None:
    """A command prefix running its command in a new process-id namespace (as a container
    sharing the host's name does), or None where this machine allows none."""
    cmd = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]
    try:
        ok = subprocess.run([*cmd, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cmd if ok else None


def test_a_live_run_of_another_process_namespace_stays_running(store: Path) -> None:
    # a container with the host's network has the host's name, but its process ids are its
    # own: its run's process id names another process here (or none), and the run was
    # ended KILLED while it was still going
    prefix = _unshare_pid()
    if prefix is None:
        pytest.skip("no process-id namespaces on this machine")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([*prefix, sys.executable, "-c", _ALIVE_IN_A_RUN], cwd=store, env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert p.stdout is not None and p.stdin is not None
        run_id = p.stdout.readline().strip()
        assert run_id, "the run in the namespace did not start"
        with start_run("exp", run_name="here"):
            pass
        assert _client().get_run(run_id).info.status == "RUNNING"
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.wait(timeout=120) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert _client().get_run(run_id).info.status == "FINISHED"


def test_a_run_of_a_process_proc_hides_stays_running(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /proc mounted with hidepid (a hardened host) shows no process of another user: a
    # live run of another user on a shared store was taken for a killed one's
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        client = _client()
        with start_run("exp") as first:
            pass
        live = client.create_run(first.experiment_id, tags={OWNER_TAG: owner_tag(other.pid)})
        hidden = f"/proc/{other.pid}/stat"
        read_text = Path.read_text

        def hiding(self: Path, *a: Any, **k: Any) -> str:
            if str(self) == hidden:
                raise FileNotFoundError(2, "No such file or directory", hidden)
            return read_text(self, *a, **k)

        monkeypatch.setattr(Path, "read_text", hiding)
        with start_run("exp"):
            pass
        assert client.get_run(live.info.run_id).info.status == "RUNNING"
    finally:
        other.kill()
        other.wait()

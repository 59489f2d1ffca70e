"""A new SQLite MLflow store whose creation a kill cut short: the next command opens the
folder's store as if the first had never started (it failed on it for good before)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# MLflow's migrations run to the schema version that adds model aliases, the next one's
# first table is made, and the process is killed before that version is stamped: what a
# SIGKILL in the middle of the migrations leaves (they are not one transaction on SQLite)
_KILLED_WHILE_MIGRATING = textwrap.dedent(
    """
    import os, signal
    import mlflow.store.db.utils as db_utils
    from alembic import command

    def part_way(engine):
        config = db_utils._get_alembic_config(str(engine.url))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "3500859a5d39")
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE datasets (dataset_uuid VARCHAR(36))")
        os.kill(os.getpid(), signal.SIGKILL)

    db_utils._upgrade_db = part_way
    from vitalgru.tracking import start_run
    with start_run("exp"):
        pass
    """
)

_A_RUN = textwrap.dedent(
    """
    from vitalgru.tracking import start_run
    with start_run("exp") as run:
        run.log_params({"a": 1})
    print("logged", run.run_id)
    """
)


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


class TestStoreCreationKilled:
    def test_the_next_command_makes_the_store_again(self, tmp_path: Path) -> None:
        killed = _python(_KILLED_WHILE_MIGRATING, tmp_path)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert not (tmp_path / "mlflow.db").exists()  # only the creation's temporary file
        again = _python(_A_RUN, tmp_path)
        assert again.returncode == 0, again.stderr[-2000:]  # "table datasets already exists"
        assert "logged" in again.stdout and (tmp_path / "mlflow.db").is_file()
        assert not list(tmp_path.glob(".mlflow.db.*"))  # the killed creation's files removed
        # and the store made is the folder's: a third command finds the run
        third = _python(_A_RUN, tmp_path)
        assert third.returncode == 0, third.stderr[-2000:]

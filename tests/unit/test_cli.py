"""The command line: every command answers --help from any working directory, configs
ship with the package, and bad configs fail with a clear message."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.cli import _parse_overrides, build_parser
from vitalgru.config import IngestConfig, load_config
from vitalgru.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [[], ["ingest"], ["train"], ["evaluate"], ["run"], ["config"]]


class TestCLI:
    @pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "top")
    def test_help_from_any_directory(self, cmd: list[str], tmp_path: Path) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *cmd, "--help"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "usage: vitalgru" in out.stdout

    def test_config_show_from_other_directory(self, tmp_path: Path) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "config", "ingest",
             "--set", "arrhythmia.seed=7"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert yaml.safe_load(out.stdout)["arrhythmia"]["seed"] == 7

    def test_malformed_config_is_a_clear_error(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("arrhythmia:\n  windws: {fs: 360}\n")
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "config", "ingest", "--config", str(bad)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        # config show prints the raw mapping; validation happens in load_config:
        with pytest.raises(ConfigError, match="windws"):
            load_config(IngestConfig, bad)
        assert out.returncode == 0
        broken = tmp_path / "broken.yaml"
        broken.write_text("arrhythmia: [unclosed\n")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_config(IngestConfig, broken)
        with pytest.raises(ConfigError, match="does not exist"):
            load_config(IngestConfig, tmp_path / "missing.yaml")
        wrong_type = tmp_path / "wrong.yaml"
        wrong_type.write_text("workers: many\n")
        with pytest.raises(ConfigError, match="workers"):
            load_config(IngestConfig, wrong_type)

    def test_overrides_parse_yaml_scalars(self) -> None:
        assert _parse_overrides(["a.b=3", "c=[\"1\", \"2\"]", "d=x"]) == {
            "a.b": 3, "c": ["1", "2"], "d": "x"}  # fmt: skip
        with pytest.raises(SystemExit):
            _parse_overrides(["novalue"])

    def test_parser_knows_every_command(self) -> None:
        p = build_parser()
        args = p.parse_args(
            ["evaluate", "arrhythmia", "--model", "m", "--db", "mitdb", "--out", "x.json"]
        )
        assert args.task == "arrhythmia" and args.db == "mitdb"


class TestShippedConfigs:
    def test_editable_copies_match_packaged_defaults(self) -> None:
        packaged = ROOT / "vitalgru" / "configs"
        for f in sorted(packaged.glob("*.yaml")):
            copy = ROOT / "configs" / f.name
            assert copy.exists(), f"configs/{f.name} missing (editable copy of {f})"
            assert filecmp.cmp(f, copy, shallow=False), f"configs/{f.name} differs from {f}"

    def test_prefect_yaml_entrypoints_exist(self) -> None:
        spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        for dep in spec["deployments"]:
            path, func = dep["entrypoint"].split(":")
            src = (ROOT / path).read_text()
            assert f"def {func}(" in src, dep["entrypoint"]
            assert dep["schedules"], dep["name"]

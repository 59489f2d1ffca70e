"""The command line: every command answers --help from any working directory, configs
ship with the package, and bad configs fail with a clear message."""

from __future__ import annotations

import contextlib
import errno
import filecmp
import importlib
import inspect
import io
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

# imported here, not in a test: Prefect sets up logging on import, which would drop the
# log capture of the test that first imports it
from http_testkit import closed_port
from prefect import Flow
from pydantic import BaseModel

from pipelines.access import TokenTable
from pipelines.cli import _parse_overrides, _quiet_env, build_parser, cmd_evaluate, main, run
from pipelines.cli_models import cmd_monitor, cmd_replay
from pipelines.cli_serve import cmd_serve
from pipelines.early_warning import cv_settings
from pipelines.evaluate import parse_records
from vitalgru.config import ArrhythmiaTrainConfig, EarlyWarningConfig, IngestConfig, load_config
from vitalgru.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [[], ["ingest"], ["train"], ["evaluate"], ["replay"], ["monitor"], ["models"],
            ["serve"], ["run"], ["config"]]  # fmt: skip


CONFIG_MODELS = [(IngestConfig, "ingest.yaml"), (ArrhythmiaTrainConfig, "arrhythmia.yaml"),
                 (EarlyWarningConfig, "early_warning.yaml")]  # fmt: skip


def _path_keys(model: type[BaseModel], at: str = "") -> list[str]:
    """The dotted keys of every path field of a config model."""
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _path_keys(ann, f"{at}{name}.")
        elif "Path" in str(ann):
            out.append(at + name)
    return out


class TestCLI:
    @pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "top")
    def test_help_from_any_directory(self, cmd: list[str], tmp_path: Path) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *cmd, "--help"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "usage: vitalgru" in out.stdout

    @pytest.mark.parametrize("cmd", [["config", "arrhythmia"], ["config", "ingest"]])
    def test_a_reader_that_stops_early_ends_the_command_quietly(
        self, cmd: list[str], tmp_path: Path
    ) -> None:
        # `vitalgru config arrhythmia | head -1`: a BrokenPipeError traceback and status 1
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader has gone before the command writes
        try:
            out = subprocess.run(
                [sys.executable, "-m", "pipelines.cli", *cmd], stdout=write_end,
                stderr=subprocess.PIPE, cwd=tmp_path, text=True, timeout=60,
            )  # fmt: skip
        finally:
            os.close(write_end)
        assert (out.returncode, out.stderr) == (128 + signal.SIGPIPE, "")

    def test_config_show_from_other_directory(self, tmp_path: Path) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "config", "ingest",
             "--set", "arrhythmia.filters.notch_hz=50"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert yaml.safe_load(out.stdout)["arrhythmia"]["filters"]["notch_hz"] == 50

    def test_malformed_config_is_a_clear_error(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("arrhythmia:\n  windws: {fs: 360}\n")
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "config", "ingest", "--config", str(bad)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        # `vitalgru config` validates: a misspelt key is an error naming it, not a print
        assert out.returncode == 2
        assert "windws" in out.stderr and "Traceback" not in out.stderr
        with pytest.raises(ConfigError, match="windws"):
            load_config(IngestConfig, bad)
        broken = tmp_path / "broken.yaml"
        broken.write_text("arrhythmia: [unclosed\n")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_config(IngestConfig, broken)
        with pytest.raises(ConfigError, match="does not exist"):
            load_config(IngestConfig, tmp_path / "missing.yaml")
        latin1 = tmp_path / "latin1.yaml"  # saved by an editor in Latin-1: a clear error
        latin1.write_bytes("# r\u00e9glages\nworkers: 2\n".encode("latin-1"))
        with pytest.raises(ConfigError, match="not UTF-8 text \\(byte 0xe9 at offset 3\\)"):
            load_config(IngestConfig, latin1)
        wrong_type = tmp_path / "wrong.yaml"
        wrong_type.write_text("workers: many\n")
        with pytest.raises(ConfigError, match="workers"):
            load_config(IngestConfig, wrong_type)

    def test_a_misspelt_key_names_the_key_meant(self, tmp_path: Path) -> None:
        # The message points at the fix: the closest known key, and the section's keys.
        bad = tmp_path / "typo.yaml"
        bad.write_text("arrhythmia:\n  windows: {lede: II}\n")
        with pytest.raises(ConfigError) as e:
            load_config(IngestConfig, bad)
        msg = str(e.value)
        assert "arrhythmia.windows.lede: unknown key" in msg
        assert "did you mean 'arrhythmia.windows.lead'?" in msg
        assert "fallback_lead" in msg  # the section's keys are listed
        # An override is named as the source, not blamed on the packaged file (in the
        # command line's words: the command's config check asks for them).
        with pytest.raises(ConfigError) as e:
            load_config(
                ArrhythmiaTrainConfig, None, {"max_epoch": 3}, "arrhythmia.yaml", command_line=True
            )
        msg = str(e.value)
        assert "with --set max_epoch=3" in msg and "did you mean 'max_epochs'?" in msg
        # Nothing close: no guess, only the count of keys at a task's top level.
        with pytest.raises(ConfigError) as e:
            load_config(ArrhythmiaTrainConfig, None, {"zzz": 1}, "arrhythmia.yaml")
        assert "did you mean" not in str(e.value) and "keys here" in str(e.value)

    def test_values_that_would_train_nonsense_are_refused(self, tmp_path: Path) -> None:
        # a negative grad_clip turns clipping into gradient ascent; an infinite or NaN
        # number is a typo; an empty out_dir was the working folder; numbers for record
        # names are read from YAML as numbers (0100 as octal 64); a key given twice kept
        # the last, silently
        for key, value, match in [
            ("grad_clip", -1.0, "grad_clip: Input should be greater than 0"),
            ("grad_clip", 0.0, "grad_clip: Input should be greater than 0"),
            ("grad_clip", float("nan"), "grad_clip: Input should be a finite number"),
            ("lr", float("inf"), "lr: Input should be a finite number"),
            ("weight_decay", float("inf"), "weight_decay: Input should be a finite number"),
            ("ingest.out_dir", "", "out_dir must not be empty"),
            ("ingest.arrhythmia.records", [100, 101], r"record names are text: quote them"),
            ("val_records", [118], r"record names are text: quote them"),
            # numpy refused these only after the ingest and the run had started
            ("seed", -1, "seed: Input should be greater than or equal to 0"),
            ("seed", 2**32, "seed: Input should be less than or equal to 2147483647"),
        ]:
            with pytest.raises(ConfigError, match=match):
                load_config(ArrhythmiaTrainConfig, None, {key: value}, "arrhythmia.yaml")
        assert load_config(ArrhythmiaTrainConfig, None, {"grad_clip": None},
                           "arrhythmia.yaml").grad_clip is None  # fmt: skip
        for name in ("pos_weight", "gbm_learning_rate"):
            with pytest.raises(ConfigError, match="finite number"):
                load_config(EarlyWarningConfig, None, {name: float("inf")}, "early_warning.yaml")
        with pytest.raises(ConfigError, match="out_dir must not be empty"):
            load_config(EarlyWarningConfig, None, {"out_dir": ""}, "early_warning.yaml")
        # no wall-clock cap on the GRU-D fits (null was refused); 0 still is
        no_cap = tmp_path / "no_cap.yaml"
        no_cap.write_text("max_minutes_per_fit: null\n")
        ew = load_config(EarlyWarningConfig, no_cap, default_name="early_warning.yaml")
        assert ew.max_minutes_per_fit is None and cv_settings(ew).gru.max_minutes is None
        with pytest.raises(ConfigError, match="max_minutes_per_fit: Input should be greater"):
            load_config(EarlyWarningConfig, None, {"max_minutes_per_fit": 0}, "early_warning.yaml")
        # and none on the arrhythmia training either (null was refused there alone)
        no_cap.write_text("max_minutes: null\n")
        assert load_config(ArrhythmiaTrainConfig, no_cap,
                           default_name="arrhythmia.yaml").max_minutes is None  # fmt: skip
        with pytest.raises(ConfigError, match="max_minutes: Input should be greater"):
            load_config(ArrhythmiaTrainConfig, None, {"max_minutes": 0}, "arrhythmia.yaml")
        twice = tmp_path / "twice.yaml"
        twice.write_text("workers: 3\nworkers: 4\n")
        with pytest.raises(ConfigError, match="key 'workers' is given twice"):
            load_config(IngestConfig, twice)
        listed = tmp_path / "listed.yaml"  # a list as a key: a TypeError, not a ConfigError
        listed.write_text("[a]: 1\n")
        with pytest.raises(ConfigError, match=r"listed.yaml: not valid YAML: .*key must be a name"):
            load_config(IngestConfig, listed)

    def test_gate_keys_are_metrics_the_evaluation_logs(self, tmp_path: Path) -> None:
        # A misspelt or empty gate_keys validated and failed at promotion, after the whole
        # training and the registration had run.
        from pipelines.arrhythmia import _flat_metrics
        from pipelines.early_warning import _gate_metrics
        from vitalgru.config import ARRHYTHMIA_GATE_KEYS, EARLY_WARNING_GATE_KEYS
        from vitalgru.metrics import aami_report

        for model, name, keys, match in [
            (ArrhythmiaTrainConfig, "arrhythmia.yaml", ["test_s_fl", "test_v_f1"],
             r"gate_keys \['test_s_fl'\] are not metrics the evaluation logs"),
            (ArrhythmiaTrainConfig, "arrhythmia.yaml", ["val_sv_f1"], "test_v_f1"),
            (ArrhythmiaTrainConfig, "arrhythmia.yaml", [], "at least one of test_accuracy"),
            (EarlyWarningConfig, "early_warning.yaml", ["utilty", "auroc"],
             "choose from utility, auroc, auprc"),
            (EarlyWarningConfig, "early_warning.yaml", [], "at least one of utility"),
        ]:  # fmt: skip
            f = tmp_path / "gate.yaml"
            f.write_text(yaml.safe_dump({"gate_keys": keys}))
            with pytest.raises(ConfigError, match=match) as e:
                load_config(model, f, default_name=name)
            assert str(f) in str(e.value) and "gate_keys:" in str(e.value)
        cfg = load_config(EarlyWarningConfig, None, {"gate_keys": ["auprc"]}, "early_warning.yaml")
        assert cfg.gate_keys == ("auprc",)
        # the names checked are the names logged: DS2's flat metrics (less the beat counts)
        # and the early-warning gate metrics
        y = np.array([0, 1, 2, 3, 4, 0, 1, 2])
        flat = _flat_metrics(aami_report(y, y[::-1]), "test")
        assert set(ARRHYTHMIA_GATE_KEYS) == {k for k in flat if not k.endswith("_n")}
        assert {"test_s_f1", "test_v_f1", "test_jk_index"} <= set(ARRHYTHMIA_GATE_KEYS)
        summary = {"gru_d": {f"{k}_{s}": 0.5 for k in EARLY_WARNING_GATE_KEYS for s in
                             ("mean", "std")}}  # fmt: skip
        assert tuple(_gate_metrics(summary, "gru_d")) == EARLY_WARNING_GATE_KEYS

    def test_yaml_words_and_leading_zeros_are_not_read_as_numbers(self, tmp_path: Path) -> None:
        # YAML 1.1 reads yes/no/on/off as booleans, which pydantic took for 1 and 0, and
        # 0123 as octal: each loaded as a number nobody wrote
        f = tmp_path / "y.yaml"
        for model, name, text, key in [
            (IngestConfig, "ingest.yaml", "physionet:\n  retries: no\n", "physionet.retries"),
            (IngestConfig, "ingest.yaml", "workers: yes\n", "workers"),
            (IngestConfig, "ingest.yaml", "arrhythmia:\n  filters:\n    notch_hz: off\n",
             "arrhythmia.filters.notch_hz"),
            (IngestConfig, "ingest.yaml", "arrhythmia:\n  windows:\n    lead: no\n",
             "arrhythmia.windows.lead"),
            (ArrhythmiaTrainConfig, "arrhythmia.yaml", "noise_snr_db: [0, on]\n", "noise_snr_db"),
            (ArrhythmiaTrainConfig, "arrhythmia.yaml", "rhythm_gate: off\n", "rhythm_gate"),
        ]:  # fmt: skip
            f.write_text(text)
            with pytest.raises(ConfigError, match=rf"  {key}: .*not a true/false setting") as e:
                load_config(model, f, default_name=name)
            assert str(f) in str(e.value)
        for text, key in [("seed: 0123\n", "seed"), ("max_epochs: 010\n", "max_epochs"),
                          ("workers: 08\n", "workers"), ("conv_widths: [08, 16]\n", "conv_widths")]:  # fmt: skip
            f.write_text(text)
            with pytest.raises(ConfigError, match=rf"{f}: .*{key}: 0\d+ has a leading zero"):
                load_config(ArrhythmiaTrainConfig, f, default_name="arrhythmia.yaml")
        with pytest.raises(SystemExit, match="0123 has a leading zero"):
            _parse_overrides(["seed=0123"])
        # what was right stays so: booleans for true/false keys, 1e-3, 0, null, quoted words
        f.write_text("refit_full: yes\ncv_folds: null\nseeds_per_fold: 1\nlr: 1e-3\nseed: 0\n"
                     "rhythm_gate: 'off'\nval_records: ['0118']\n")  # fmt: skip
        cfg = load_config(ArrhythmiaTrainConfig, f, default_name="arrhythmia.yaml")
        assert (cfg.refit_full, cfg.lr, cfg.seed, cfg.rhythm_gate) == (True, 1e-3, 0, "off")
        f.write_text("physionet:\n  verify_checksums: off\narrhythmia:\n  filters:\n"
                     "    notch_hz: null\n")  # fmt: skip
        cfg = load_config(IngestConfig, f)
        assert cfg.physionet.verify_checksums is False and cfg.arrhythmia.filters.notch_hz is None
        assert _parse_overrides(["seed=0", "lr=0.5"]) == {"seed": 0, "lr": 0.5}

    def test_no_path_of_any_config_may_be_empty(self) -> None:
        # "" became "." (the working folder): a mirror of '' read PhysioNet from there, a
        # dataset_dir of '' ingested into it; only out_dir was guarded
        seen = []
        for model, name in CONFIG_MODELS:
            for key in _path_keys(model):
                seen.append(key)
                for empty in ("", "  "):
                    with pytest.raises(ConfigError, match=rf"{key}: .* must not be empty"):
                        load_config(model, None, {key: empty}, name)
        assert {"physionet.mirror", "physionet.cache_dir", "dataset_dir", "report_dir",
                "cache_dir", "ingest.physionet.mirror"} <= set(seen)  # fmt: skip
        # where null has a meaning the error says so: a mirror of '' meant "no mirror"
        with pytest.raises(ConfigError, match=r"mirror must not be empty \(null: no mirror"):
            load_config(IngestConfig, None, {"physionet.mirror": ""})
        with pytest.raises(ConfigError, match=r"dataset_dir must not be empty \(null: ingest"):
            load_config(ArrhythmiaTrainConfig, None, {"dataset_dir": ""}, "arrhythmia.yaml")
        assert load_config(IngestConfig, None, {"physionet.mirror": None}).physionet.mirror is None

    def test_a_home_folder_in_a_path_is_expanded(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # no shell reads a YAML file: `out_dir: ~/runs` made a folder named "~" in the
        # working folder, and pandas (which expands ~ itself) then wrote its parquet into
        # the home folder's runs/, which nothing had made: the training failed
        monkeypatch.setenv("HOME", str(tmp_path / "home ü"))
        seen = []
        for model, name in CONFIG_MODELS:
            for key in _path_keys(model):
                cfg = load_config(model, None, {key: "~/données x"}, name)
                value = cfg
                for part in key.split("."):
                    value = getattr(value, part)
                assert value == tmp_path / "home ü" / "données x", key
                seen.append(key)
                with pytest.raises(ConfigError, match=rf"{key}: .*'~no-such-user-x/a' starts "
                                   "with ~ but that home folder is not known here"):  # fmt: skip
                    load_config(model, None, {key: "~no-such-user-x/a"}, name)
        assert {"out_dir", "ingest.out_dir", "report_dir", "cache_dir"} <= set(seen)
        # a ~ inside a path is a name like any other
        cfg = load_config(EarlyWarningConfig, None, {"out_dir": "runs/~x"}, "early_warning.yaml")
        assert cfg.out_dir == Path("runs/~x")

    def test_models_that_cannot_be_built_or_registered_are_refused(self) -> None:
        # models without what register_model needs passed `vitalgru config` and failed in
        # the flow; a conv width of 0 or below failed when the network was built
        ew = "early_warning.yaml"
        with pytest.raises(ConfigError, match=r"register_model 'gru_d_gbm_blend' needs models "
                           r"\['gru_d', 'gbm'\] .* lacks \['gru_d'\]"):  # fmt: skip
            load_config(EarlyWarningConfig, None, {"models": ["gbm", "news2"]}, ew)
        with pytest.raises(ConfigError, match="add gbm to models or register_model: gru_d"):
            load_config(EarlyWarningConfig, None, {"models": ["gru_d"]}, ew)
        with pytest.raises(ConfigError, match=r"register_model 'gru_d' needs models \['gru_d'\]"):
            load_config(
                EarlyWarningConfig, None, {"models": ["gbm"], "register_model": "gru_d"}, ew
            )
        over = {"models": ["gru_d"], "register_model": "gru_d"}
        assert load_config(EarlyWarningConfig, None, over, ew).models == ("gru_d",)
        for widths in ([0, 16], [-8], [8, 0]):
            with pytest.raises(ConfigError, match=r"conv_widths\.\d: .*greater than or equal to 1"):
                load_config(ArrhythmiaTrainConfig, None, {"conv_widths": widths}, "arrhythmia.yaml")

    def test_the_ingest_offers_only_the_split_the_training_reads(self) -> None:
        # split: patient put every record in a "test" split the training never reads (it
        # trains on DS1 and evaluates on DS2), and arrhythmia.seed was read by nothing
        with pytest.raises(ConfigError, match=r"arrhythmia.split: Input should be 'dechazal2004'"):
            load_config(IngestConfig, None, {"arrhythmia.split": "patient"})
        with pytest.raises(ConfigError, match=r"arrhythmia.seed: unknown key"):
            load_config(IngestConfig, None, {"arrhythmia.seed": 3})
        assert load_config(IngestConfig).arrhythmia.split == "dechazal2004"

    def test_monitor_is_a_metric_of_the_validation_records(self) -> None:
        # a misspelt monitor (or train_loss, which the evaluation does not return) failed
        # at the end of the first epoch, after the ingest
        for name in ("val_sv_fl", "train_loss", "val_n_n"):
            with pytest.raises(ConfigError, match=rf"monitor: .*monitor '{name}' is not a "
                               "metric of the validation records; choose from val_sv_f1, "
                               "val_loss, val_accuracy"):  # fmt: skip
                load_config(ArrhythmiaTrainConfig, None, {"monitor": name}, "arrhythmia.yaml")
        for name in ("val_loss", "val_v_f1", "val_jk_index"):
            cfg = load_config(ArrhythmiaTrainConfig, None, {"monitor": name}, "arrhythmia.yaml")
            assert cfg.monitor == name

    def test_filters_and_windows_that_cannot_be_made_are_refused(self) -> None:
        # Each validated, then every record went to the ingest's attrition ("notch_hz: 0"
        # was also what `notch_hz: no` read as).
        from vitalgru.data.ingest import dataset_filter

        a = "arrhythmia."
        for over, match in [
            ({a + "filters.notch_hz": 0}, r"filters.notch_hz: .*above 0 Hz.*\(null: no notch\)"),
            ({a + "filters.notch_hz": -60}, r"filters.notch_hz: .*above 0 Hz"),
            ({a + "filters.baseline_hz": 50, a + "filters.lowpass_hz": 40},
             r"arrhythmia.filters: .*baseline_hz \(50.0\) must be below lowpass_hz \(40.0\)"),
            ({a + "filters.lowpass_hz": 500},
             "filters.lowpass_hz 500.0 Hz must lie below the Nyquist frequency 180 Hz"),
            ({a + "windows.fs": 100}, "filters.notch_hz 60.0 Hz must lie below the Nyquist"),
            ({a + "windows.fs": 1, a + "filters.lowpass_hz": 0.4, a + "filters.baseline_hz": 0.1,
              a + "filters.notch_hz": None}, "before_s 0.25 s is under one sample at fs 1.0 Hz"),
            ({a + "windows.before_s": 0.001}, "before_s 0.001 s is under one sample"),
            ({a + "windows.after_s": 0.001}, "after_s 0.001 s is under one sample"),
        ]:  # fmt: skip
            with pytest.raises(ConfigError, match=match):
                load_config(IngestConfig, None, over)
        # what is accepted designs a filter
        for over in [{}, {a + "filters.notch_hz": None}, {a + "windows.fs": 100,
                     a + "filters.notch_hz": 50.0 - 1e-3}, {a + "windows.before_s": 1 / 360}]:  # fmt: skip
            cfg = load_config(IngestConfig, None, over).arrhythmia
            x = np.random.default_rng(0).standard_normal(2000)
            assert np.isfinite(dataset_filter(x, cfg.windows.fs, cfg.filters)).all()

    def test_a_key_set_by_a_profile_is_named_with_its_file(self, tmp_path: Path) -> None:
        (tmp_path / "base.yaml").write_text("arrhythmia:\n  sedd: 3\n")
        exp = tmp_path / "exp.yaml"
        exp.write_text("defaults: [base.yaml]\nworkers: 0\n")
        with pytest.raises(ConfigError) as e:
            load_config(IngestConfig, exp)
        lines = str(e.value).splitlines()
        assert lines[0] == f"invalid config {exp}:"
        assert any("arrhythmia.sedd: unknown key" in x and f"(set in {tmp_path / 'base.yaml'})"
                   in x for x in lines)  # fmt: skip
        assert any(x.startswith("  workers:") and "set in" not in x for x in lines)

    def test_single_split_training_needs_validation_records(self) -> None:
        # cv_folds: null early-stops on val_records; an empty list has nothing to stop on.
        over = {"cv_folds": None, "seeds_per_fold": 1, "val_records": []}
        with pytest.raises(ConfigError, match="val_records, which is empty"):
            load_config(ArrhythmiaTrainConfig, None, over, "arrhythmia.yaml")
        over["val_records"] = ["118"]
        cfg = load_config(ArrhythmiaTrainConfig, None, over, "arrhythmia.yaml")
        assert cfg.val_records == ("118",)
        # the refit on all of DS1 is made for the single split only: under the default
        # cv_folds it was skipped without a word
        assert load_config(ArrhythmiaTrainConfig, None, {**over, "refit_full": True},
                           "arrhythmia.yaml").refit_full  # fmt: skip
        with pytest.raises(ConfigError, match=r"refit_full retrains .*with cv_folds 4 .*no refit is "
                           r"made. Set refit_full: false, or cv_folds: null"):  # fmt: skip
            load_config(ArrhythmiaTrainConfig, None, {"refit_full": True}, "arrhythmia.yaml")

    def test_config_prints_the_resolved_values(self, tmp_path: Path) -> None:
        # A file that sets one key: the printout is the whole config the flows would run,
        # the model's defaults filled in, so a user sees every setting in effect.
        partial = tmp_path / "partial.yaml"
        partial.write_text("seed: 5\n")
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "config", "arrhythmia",
             "--config", str(partial), "--set", "cv_folds=3"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        shown = yaml.safe_load(out.stdout)
        assert shown["seed"] == 5 and shown["cv_folds"] == 3
        assert shown["ingest"]["arrhythmia"]["windows"]["fs"] == 360.0  # a default

    @pytest.mark.parametrize(
        "cmd", [["train", "early-warning"], ["train", "arrhythmia"], ["ingest"]]
    )
    def test_a_bad_config_fails_before_any_flow(self, cmd: list[str], tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("max_minuts: 3\n")
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *cmd, "--config", str(bad)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 2
        assert "max_minuts" in out.stderr and "Traceback" not in out.stderr
        assert "prefect" not in out.stderr.lower()  # no server was started
        assert not (tmp_path / "mlflow.db").exists()

    @pytest.mark.parametrize(
        ("cmd", "origin"),
        [
            (["ingest"], "$VITALGRU_PHYSIONET_MIRROR"),
            (["train", "arrhythmia", "--set", "ingest.physionet.mirror=MISSING"],
             "PhysioNetConfig.mirror"),
            (["train", "early-warning"], "$VITALGRU_PHYSIONET_MIRROR"),
            (["run"], "$VITALGRU_PHYSIONET_MIRROR"),
        ],
        ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else None,
    )  # fmt: skip
    def test_a_mirror_that_is_not_there_fails_before_any_flow(
        self, cmd: list[str], origin: str, tmp_path: Path
    ) -> None:
        missing = tmp_path / "no-mirror"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
        env["VITALGRU_PHYSIONET_MIRROR"] = str(missing)
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *(a.replace("MISSING", str(missing))
                                                      for a in cmd)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        # Before, a Prefect server started, the fetch task was retried twice (12 s) and the
        # error came with two tracebacks in about 75 lines.
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip() == (
            f"vitalgru: error: PhysioNet mirror {missing} (from {origin}) is not a folder"
        )
        assert not (tmp_path / "mlflow.db").exists()

    def test_validation_records_outside_ds1_fail_before_any_flow(self, tmp_path: Path) -> None:
        single = ["--set", "cv_folds=null", "--set", "seeds_per_fold=1"]
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "train", "arrhythmia", *single,
             "--set", 'val_records=["118", "100", "102"]'],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        # 100 is a DS2 record, 102 a paced one the ingest leaves out
        assert out.returncode == 2, out.stderr
        assert "val_records ['100', '102'] are not DS1 records" in out.stderr
        assert "Traceback" not in out.stderr and "prefect" not in out.stderr.lower()
        from pipelines.arrhythmia import check_validation_records

        def cfg(**over: Any) -> ArrhythmiaTrainConfig:
            base = {"cv_folds": None, "seeds_per_fold": 1, **over}
            return load_config(ArrhythmiaTrainConfig, None, base, "arrhythmia.yaml")

        check_validation_records(cfg(val_records=["118", "119"]))  # DS1: fine
        with pytest.raises(ConfigError, match=r"\['119'\] are not DS1 .* \(here: 101, 118\)"):
            # the ingest reads only 100, 101 and 118 here
            check_validation_records(
                cfg(
                    val_records=["118", "119"],
                    **{"ingest.arrhythmia.records": ["100", "101", "118"]},
                )
            )
        # with cross-validation the list is not used, so it is not checked
        check_validation_records(load_config(
            ArrhythmiaTrainConfig, None, {"val_records": ["100"]}, "arrhythmia.yaml"))  # fmt: skip
        # no DS2 record to evaluate on: refused now (it trained to the end, then failed)
        with pytest.raises(ConfigError, match="holds no DS2 record"):
            check_validation_records(load_config(
                ArrhythmiaTrainConfig, None, {"ingest.arrhythmia.records": ["106", "119"]},
                "arrhythmia.yaml"))  # fmt: skip

    def test_unknown_model_is_a_clear_error(self, tmp_path: Path) -> None:
        from mlflow import MlflowClient

        db = tmp_path / "m.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"

        def evaluate() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "pipelines.cli", "evaluate", "early-warning", "--model",
                 "models:/vitalgru-early-warning@champion", "--data", str(tmp_path),
                 "--out", str(tmp_path / "o.json")],
                cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip

        out = evaluate()  # no store at all: said so, and none is created
        assert out.returncode == 2, out.stderr
        assert "MLFLOW_TRACKING_URI=sqlite:///" in out.stderr
        assert "names no existing store" in out.stderr and not db.exists()
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # an empty registry
        out = evaluate()
        assert out.returncode == 2, out.stderr
        assert "cannot resolve models:/vitalgru-early-warning@champion" in out.stderr
        assert "Traceback" not in out.stderr

    @pytest.mark.parametrize(
        ("var", "server", "cmd"),
        [
            ("MLFLOW_TRACKING_URI", "MLflow server", ["evaluate", "early-warning", "--model",
             "models:/m@champion", "--data", ".", "--out", "o.json"]),
            ("MLFLOW_TRACKING_URI", "MLflow server", ["train", "early-warning"]),
            ("PREFECT_API_URL", "Prefect API", ["ingest"]),
            ("PREFECT_API_URL", "Prefect API", ["run"]),
        ],
        ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else c,
    )  # fmt: skip
    def test_a_server_that_does_not_answer_fails_at_once(
        self, var: str, server: str, cmd: list[str], tmp_path: Path
    ) -> None:
        port = closed_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
        env[var] = f"http://127.0.0.1:{port}" + ("/api" if var == "PREFECT_API_URL" else "")
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *cmd],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        # Before, MLflow's retries ran about four minutes before the same kind of error,
        # and Prefect raised a RuntimeError traceback from inside the flow.
        assert out.returncode == 2, out.stderr
        assert f"{server} {env[var]} (${var}) does not answer" in out.stderr
        assert "Traceback" not in out.stderr and "flow run" not in out.stderr

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_a_prefect_api_answering_a_server_error_fails_the_check(self, status: int) -> None:
        # as for MLflow's: a proxy whose Prefect server is down answers 502/503 on every
        # path; taken for an answer, `vitalgru ingest` started its flow and Prefect's client
        # retried for 143 s before a 69-line RuntimeError traceback (measured, 503)
        from http_testkit import serving, status_server
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from pipelines.cli_args import check_prefect
        from vitalgru.errors import ServerUnavailableError

        with serving(status_server(status)) as server:
            url = f"http://127.0.0.1:{server.server_port}/api"
            with temporary_settings({PREFECT_API_URL: url}):
                with pytest.raises(ServerUnavailableError) as ei:
                    check_prefect(attempts=2, wait_s=0.1)
        assert f"Prefect API {url} ($PREFECT_API_URL) does not answer (HTTP {status}" in str(
            ei.value
        )

    def test_overrides_parse_yaml_scalars(self) -> None:
        assert _parse_overrides(["a.b=3", "c=[\"1\", \"2\"]", "d=x"]) == {
            "a.b": 3, "c": ["1", "2"], "d": "x"}  # fmt: skip
        with pytest.raises(SystemExit):
            _parse_overrides(["novalue"])

    def test_no_download_bars_in_a_log(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # MLflow's per-download progress bar is for a terminal; written to a log it is
        # one line of carriage returns. A user's own setting always wins.
        class Stream(io.StringIO):
            def __init__(self, tty: bool) -> None:
                super().__init__()
                self.tty = tty

            def isatty(self) -> bool:
                return self.tty

        monkeypatch.setattr(os, "environ", dict(os.environ))  # nothing leaks to other tests
        key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
        for tty, user, expected in ((False, None, "false"), (True, None, None),
                                    (False, "true", "true")):  # fmt: skip
            monkeypatch.setattr(sys, "stderr", Stream(tty))
            os.environ.pop(key, None)
            if user is not None:
                os.environ[key] = user
            _quiet_env()
            assert os.environ.get(key) == expected, (tty, user)

    def test_mlflow_waits_a_sane_time_for_each_answer(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # MLflow's own 120 s a try, tried 8 times: a server that took connections and never
        # answered held a command for about 20 minutes. A user's own setting always wins.
        from pipelines.cli import MLFLOW_HTTP_TIMEOUT_S

        monkeypatch.setattr(os, "environ", dict(os.environ))  # nothing leaks to other tests
        os.environ.pop("MLFLOW_HTTP_REQUEST_TIMEOUT", None)
        _quiet_env()
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == str(MLFLOW_HTTP_TIMEOUT_S) == "30"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "300"
        _quiet_env()
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"

    def test_evaluate_out_is_a_json_file_or_a_folder(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = build_parser()
        base = ["evaluate", "early-warning", "--model", "m", "--data", "d", "--out"]
        (tmp_path / "run.v1").mkdir()
        for out in ("x.json", "results", "res.v2/", str(tmp_path / "run.v1")):
            assert p.parse_args([*base, out]).out == out
        # "res.txt" used to become a folder named res.txt, after the scoring
        with pytest.raises(SystemExit) as e:
            p.parse_args([*base, "res.txt"])
        assert e.value.code == 2
        assert "'res.txt' is neither a .json file nor a folder" in capsys.readouterr().err

    def test_replay_checks_its_seconds_when_the_command_is_read(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = build_parser()
        base = ["replay", "arrhythmia", "--model", "m", "--db", "mitdb", "--out", "r.json"]
        args = p.parse_args([*base, "--chunk-s", "0.25", "--margin-s", "0"])
        assert (args.chunk_s, args.margin_s, args.records) == (0.25, 0.0, None)
        assert p.parse_args(base).margin_s is None  # the monitor's default
        for bad in (["--chunk-s", "0"], ["--chunk-s", "abc"], ["--margin-s", "-1"],
                    ["--chunk-s", "inf"]):  # fmt: skip
            with pytest.raises(SystemExit) as e:
                p.parse_args([*base, *bad])
            assert e.value.code == 2
        assert "number of seconds" in capsys.readouterr().err

    def test_replay_early_warning_reads_its_own_options(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = build_parser()
        base = ["replay", "early-warning", "--model", "m", "--out", "r.json"]
        args = p.parse_args([*base, "--data", "setA", "--patients", "20"])
        assert (args.task, args.data, args.patients) == ("early-warning", "setA", 20)
        for bad in ("0", "-3", "2.5", "all"):
            with pytest.raises(SystemExit) as e:
                p.parse_args([*base, "--data", "setA", "--patients", bad])
            assert e.value.code == 2
        # each task's required input is named before anything is loaded
        for task, want in (("early-warning", "--data FOLDER"), ("arrhythmia", "--db")):
            with pytest.raises(SystemExit, match=f"replay {task} needs {want}"):
                cmd_replay(p.parse_args(["replay", task, "--model", "m", "--out", "r.json"]))

    def test_monitor_reads_each_tasks_own_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        p = build_parser()
        args = p.parse_args(["monitor", "early-warning", "--max-utility-drop", "0.1",
                             "--fail-on", "drift"])  # fmt: skip
        assert (args.max_utility_drop, args.fail_on, args.data) == (0.1, "drift", None)
        args = p.parse_args(["monitor", "arrhythmia", "--db", "incartdb", "--max-f1-drop", "0"])
        assert (args.db, args.max_f1_drop, args.records) == ("incartdb", 0.0, None)
        for bad in (["--max-f1-drop", "-0.1"], ["--max-auroc-drop", "x"], ["--fail-on", "ok"]):
            with pytest.raises(SystemExit) as e:
                p.parse_args(["monitor", "arrhythmia", *bad])
            assert e.value.code == 2
        assert "must be a number >= 0" in capsys.readouterr().err
        # another task's option is refused before anything is loaded
        with pytest.raises(SystemExit, match="--data and the utility/AUROC drops are"):
            cmd_monitor(p.parse_args(["monitor", "arrhythmia", "--data", "setA"]))
        with pytest.raises(SystemExit, match="and --max-f1-drop are arrhythmia options"):
            cmd_monitor(p.parse_args(["monitor", "early-warning", "--max-f1-drop", "0.1"]))

    def test_annotations_are_an_extension_or_none(self, capsys: pytest.CaptureFixture[str]) -> None:
        p = build_parser()
        for cmd in (["replay", "arrhythmia", "--model", "m", "--out", "r.json"],
                    ["monitor", "arrhythmia"],
                    ["evaluate", "arrhythmia", "--model", "m", "--out", "e.json"]):  # fmt: skip
            assert p.parse_args([*cmd, "--db", "d"]).annotations is None  # default: atr
            assert p.parse_args([*cmd, "--annotations", "NONE"]).annotations == "none"
            assert p.parse_args([*cmd, "--annotations", "qrs"]).annotations == "qrs"
            for bad in ("a.b", "../x", ""):
                with pytest.raises(SystemExit) as e:
                    p.parse_args([*cmd, "--annotations", bad])
                assert e.value.code == 2
        assert "is not an annotation file extension" in capsys.readouterr().err
        # a sepsis check has no beat annotations
        with pytest.raises(SystemExit, match="--annotations and --max-f1-drop are arrhythmia"):
            cmd_monitor(p.parse_args(["monitor", "early-warning", "--annotations", "none"]))
        with pytest.raises(SystemExit, match="does not read --annotations: it is an arrhythmia"):
            cmd_replay(p.parse_args(["replay", "early-warning", "--model", "m", "--out", "r.json",
                                     "--data", "setA", "--annotations", "none"]))  # fmt: skip

    def test_evaluate_and_replay_refuse_the_other_tasks_options(self) -> None:
        # they were ignored: `evaluate early-warning --db mitdb` scored --data, unsaid
        p = build_parser()
        for cmd, func in (("evaluate", cmd_evaluate), ("replay", cmd_replay)):
            base = [cmd, "--model", "m", "--out", "r.json"]
            ew = [base[0], "early-warning", *base[1:], "--data", "setA"]
            with pytest.raises(SystemExit, match=f"{cmd} early-warning does not read --db, "
                               "--records, --config: they are arrhythmia options"):  # fmt: skip
                func(p.parse_args([*ew, "--db", "mitdb", "--records", "DS2", "--config", "c"]))
            ar = [base[0], "arrhythmia", *base[1:], "--db", "mitdb"]
            with pytest.raises(SystemExit, match="does not read --data: it is an early-warning"):
                func(p.parse_args([*ar, "--data", "setA"]))
        with pytest.raises(SystemExit, match="does not read --chunk-s: it is an arrhythmia"):
            cmd_replay(p.parse_args(["replay", "early-warning", "--model", "m", "--out", "r.json",
                                     "--data", "setA", "--chunk-s", "2"]))  # fmt: skip
        with pytest.raises(SystemExit, match="does not read --patients: it is an early-warning"):
            cmd_replay(p.parse_args(["replay", "arrhythmia", "--model", "m", "--out", "r.json",
                                     "--db", "mitdb", "--patients", "3"]))  # fmt: skip
        with pytest.raises(SystemExit, match="--write-predictions: it is an early-warning"):
            cmd_evaluate(p.parse_args(["evaluate", "arrhythmia", "--model", "m", "--out", "r.json",
                                       "--db", "mitdb", "--write-predictions"]))  # fmt: skip

    def test_a_file_the_system_refuses_is_one_line_naming_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # a full disk, a read-only output folder, a folder of another user: a traceback
        # ending in "[Errno 28] No space left on device" (and Python's status 1) before
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import OperationalError

        import pipelines.cli

        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        report = tmp_path / "eval" / "metrics.json"

        def raising(error: BaseException) -> Any:
            def command(args: object) -> int:
                raise error

            return command

        def fails(error: BaseException) -> str:
            monkeypatch.setattr(pipelines.cli, "cmd_config", raising(error))
            assert run(["config", "ingest"]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err
            return err

        assert fails(OSError(errno.ENOSPC, "No space left on device", str(report))) == (
            f"vitalgru: error: {report}: No space left on device: free space on that disk, or "
            "give a path on another\n"
        )
        assert fails(OSError(errno.EROFS, "Read-only file system", str(report))) == (
            f"vitalgru: error: {report}: Read-only file system: give a path on a writable "
            "file system\n"
        )
        assert fails(PermissionError(errno.EACCES, "Permission denied", str(report))) == (
            f"vitalgru: error: {report}: Permission denied: let the user running vitalgru "
            "write there (or read it), or give another path\n"
        )
        # SQLite's refusal as MLflow raises it: wrapped twice, naming no file
        try:
            try:
                try:
                    raise sqlite3.OperationalError("database or disk is full")
                except sqlite3.OperationalError as e:
                    raise OperationalError("INSERT", {}, e) from e
            except OperationalError as e:
                raise MlflowException(str(e)) from e
        except MlflowException as e:
            wrapped = e
        assert fails(wrapped).startswith(
            "vitalgru: error: a database cannot be written (database or disk is full): check "
            f"the space on the disk and the permissions of the MLflow store {tmp_path / 'mlflow.db'}"
        )
        # any other error is not dressed up as one: its traceback is what finds the bug
        for other in (OSError(errno.ECONNRESET, "reset"), KeyError("x")):
            monkeypatch.setattr(pipelines.cli, "cmd_config", raising(other))
            with pytest.raises(type(other)):
                run(["config", "ingest"])

    def test_a_prefect_home_that_cannot_be_written_fails_before_any_flow(
        self, tmp_path: Path, physionet_mirror: Path
    ) -> None:
        # HOME read-only, not there or another user's: every start of the temporary Prefect
        # server failed on "unable to open database file"; the flow waited out the start-up
        # timeout through thousands of lines of tracebacks and ended in one more
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")  # a file where the home folder should be: refused as root too
        env = {**os.environ, "PREFECT_HOME": str(blocker / ".prefect"),
               "VITALGRU_PHYSIONET_MIRROR": str(physionet_mirror),
               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "10"}  # fmt: skip
        env.pop("PREFECT_API_URL", None)
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "ingest", "--out", str(tmp_path / "ds")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr[-2000:]
        assert "Traceback" not in out.stderr
        assert out.stderr.splitlines()[-1] == (
            "vitalgru: error: the temporary Prefect server cannot keep its database "
            f"{blocker / '.prefect' / 'prefect.db'}: Not a directory ({blocker / '.prefect'}); "
            "set PREFECT_HOME to a folder this user may write (or HOME; or PREFECT_API_URL to "
            "a Prefect server)"
        )
        assert not (tmp_path / "ds").exists()  # nothing started

    def test_a_store_that_cannot_be_written_fails_before_any_training(
        self,
        tmp_path: Path,
        physionet_mirror: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # a read-only working folder (or one of another user): the training ran to the end,
        # then failed to log its run after MLflow's retries of "unable to open database file"
        import pipelines.cli

        monkeypatch.chdir(tmp_path)
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("VITALGRU_PHYSIONET_MIRROR", str(physionet_mirror))

        def read_only(*a: object, **k: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "tmpk2x9q"))

        def no_flow() -> None:
            raise AssertionError("a flow would start")

        monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
        monkeypatch.setattr(pipelines.cli, "check_prefect", no_flow)
        for cmd in (["train", "early-warning"], ["train", "arrhythmia"], ["run"]):
            assert run(cmd) == 2
            assert capsys.readouterr().err == (
                f"vitalgru: error: the MLflow store {tmp_path / 'mlflow.db'} cannot be written: "
                f"Read-only file system ({tmp_path}): without MLFLOW_TRACKING_URI the store is "
                "mlflow.db in the working folder: run the command from a folder this user may "
                "write, or set MLFLOW_TRACKING_URI to a store it may (e.g. "
                "sqlite:////path/to/mlflow.db)\n"
            )
        assert not list(tmp_path.iterdir())
        # a store named by the environment, its file another user's
        from vitalgru.tracking import unwritable_store

        monkeypatch.undo()
        db = tmp_path / "store" / "mlflow.db"
        db.parent.mkdir()
        db.write_bytes(b"")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        assert unwritable_store() is None
        monkeypatch.setattr("vitalgru.claims.os.access", lambda *a: False)
        assert unwritable_store() == (
            f"the MLflow store {db} cannot be written: Permission denied ({db}): set "
            f"MLFLOW_TRACKING_URI (now sqlite:///{db}) to a store this user may write"
        )

    def test_the_prefect_database_check(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from pipelines.cli_args import check_prefect_database

        db = tmp_path / "home" / ".prefect" / "prefect.db"
        check_prefect_database(f"sqlite+aiosqlite:///{db}")  # made, and writable
        assert db.parent.is_dir() and not list(db.parent.iterdir())
        for url in ("postgresql+asyncpg://u@db/prefect", "sqlite+aiosqlite:///:memory:"):
            check_prefect_database(url)  # nothing on disk here to check

        def read_only(*a: object, **k: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system", str(db.parent))

        monkeypatch.setattr("vitalgru.claims.tempfile.TemporaryFile", read_only)
        with pytest.raises(SystemExit, match=rf"its database {db}: Read-only file system"):
            check_prefect_database(f"sqlite+aiosqlite:///{db}")
        monkeypatch.undo()
        db.write_bytes(b"")
        monkeypatch.setattr("vitalgru.claims.os.access", lambda *a: False)  # not root's
        with pytest.raises(SystemExit, match=rf"its database {db}: Permission denied \({db}\)"):
            check_prefect_database(f"sqlite+aiosqlite:///{db}")

    def test_the_command_ends_a_refusal_with_status_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # `vitalgru` (run) prints a refusal on one line and exits 2, as its other errors; a
        # refusal raised as SystemExit("...") ended with Python's status 1 before
        monkeypatch.chdir(tmp_path)
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # MLflow sets them itself
            monkeypatch.delenv(var, raising=False)  # in tests run before this one
        assert run(["config", "ingest", "--set", "noequals"]) == 2
        assert (
            capsys.readouterr().err == "vitalgru: error: --set expects key=value, got 'noequals'\n"
        )
        # a value YAML cannot read ended in PyYAML's traceback
        assert run(["config", "ingest", "--set", "arrhythmia.records=[100,101"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vitalgru: error: --set 'arrhythmia.records=[100,101': the value "
                              "is not YAML") and err.count("\n") == 1  # fmt: skip
        assert run(["models", "list"]) == 2  # no MLflow store here
        assert capsys.readouterr().err.startswith("vitalgru: error: there is no MLflow store")
        assert run(["monitor", "arrhythmia", "--db", "mitdb"]) == 2  # before Prefect starts
        assert "there is no MLflow store" in capsys.readouterr().err
        assert run(["serve"]) == 2  # it left its state and access-log files here first
        assert "there is no MLflow store" in capsys.readouterr().err
        assert not list(tmp_path.iterdir())  # nothing made in the folder
        with pytest.raises(SystemExit) as e:  # argparse's own usage errors: 2 as well
            run(["evaluate"])
        assert e.value.code == 2

    def test_serve_scores_with_the_torch_threads_asked_at_most_the_cpus_usable(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        # torch's default (a thread per CPU) was what served, while every gateway benchmark
        # measured one thread; under load a small per-tick batch waited on its threads
        import torch

        import pipelines.cli_serve as cs
        import pipelines.gateway_serve as gs

        seen: list[int] = []
        monkeypatch.setattr(cs, "check_mlflow", lambda: None)
        monkeypatch.setattr(gs, "serve", lambda *a, **k: seen.append(torch.get_num_threads()))
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            args = ["serve", "--arrhythmia-model", "none", "--state", "none", "--audit", "none"]
            assert cmd_serve(build_parser().parse_args(args)) == 0
            assert build_parser().parse_args(args).torch_threads == 1 and seen == [1]
            monkeypatch.setattr("vitalgru.training.loop.usable_cpus", lambda: 1)
            with caplog.at_level("INFO", logger="pipelines.gateway"):
                assert cmd_serve(build_parser().parse_args([*args, "--torch-threads", "4"])) == 0
            assert seen == [1, 1]
            assert "scoring with 1 torch threads, not 4 (CPUs usable: 1)" in caplog.text
        finally:
            torch.set_num_threads(before)

    def test_serve_reads_its_options_before_loading_anything(self) -> None:
        p = build_parser()
        args = p.parse_args(["serve", "--early-warning-model", "none", "--port", "9000"])
        assert (args.port, args.tick_s, args.host) == (9000, 1.0, "127.0.0.1")
        assert args.escalate_after_min == (15.0,)
        assert p.parse_args(["serve", "--escalate-after-min", "0"]).escalate_after_min == ()
        chain = p.parse_args(["serve", "--escalate-after-min", "5, 15,30"]).escalate_after_min
        assert chain == (5.0, 15.0, 30.0)
        assert args.sepsis_lockout_h == 0.0  # off unless a ward asks for it
        assert p.parse_args(["serve", "--sepsis-lockout-h", "12"]).sepsis_lockout_h == 12.0
        assert args.feed_rate_pct == 15.0  # a feed off its rate is checked unless told not to
        assert p.parse_args(["serve", "--feed-rate-pct", "0"]).feed_rate_pct == 0.0
        assert args.arrhythmia_model == "models:/vitalgru-arrhythmia@champion"
        for bad in (["--port", "0"], ["--port", "x"], ["--tick-s", "0"],
                    ["--escalate-after-min", "-1"], ["--escalate-after-min", "soon"],
                    ["--escalate-after-min", "30,15"], ["--escalate-after-min", "15,15"],
                    ["--escalate-after-min", "0,15"], ["--escalate-after-min", "15,"],
                    ["--sepsis-lockout-h", "-1"], ["--sepsis-lockout-h", "inf"],
                    ["--rate-limit", "0"], ["--rate-limit", "fast"],
                    ["--feed-rate-pct", "-5"], ["--feed-rate-pct", "100"],
                    ["--feed-rate-pct", "nan"], ["--torch-threads", "0"],
                    ["--torch-threads", "two"]):  # fmt: skip
            with pytest.raises(SystemExit) as e:
                p.parse_args(["serve", *bad])
            assert e.value.code == 2
        with pytest.raises(SystemExit, match="at least one model"):
            cmd_serve(p.parse_args(["serve", "--arrhythmia-model", "none",
                                    "--early-warning-model", "NONE"]))  # fmt: skip
        args = p.parse_args(["serve", "--mllp-port", "2575", "--mllp-allow", "10.1.0.0/16, 10.2.3.4",
                             "--adt-units", "ICU,MICU", "--hl7-timezone", "Europe/Berlin"])  # fmt: skip
        assert (args.mllp_port, args.mllp_host, args.hour_close_after_min) == (
            2575,
            "127.0.0.1",
            10.0,
        )
        for bad, says in ((["--hl7-timezone", "Mars/Olympus"], "not a time zone"),
                          (["--display-timezone", "Mars/Olympus"],
                           "--display-timezone 'Mars/Olympus' is not a time zone"),
                          (["--mllp-port", "2575", "--mllp-allow", "ward-4"], "does not appear"),
                          (["--forward-alarms", "engine"], "wants HOST:PORT"),
                          (["--mllp-tls-cert", "gw.pem"], "go together"),
                          (["--mllp-tls-cert", "no.pem", "--mllp-tls-key", "no.key"],
                           "--mllp-tls-cert/--mllp-tls-key no.pem / no.key: No such file"),
                          (["--forward-alarms", "engine:6661", "--forward-alarms-ca", "no-ca.pem"],
                           "--forward-alarms-ca no-ca.pem: No such file")):  # fmt: skip
            with pytest.raises(SystemExit, match=says):  # before any model loads
                cmd_serve(p.parse_args(["serve", "--state", "none", *bad]))
        assert (args.mllp_allow, args.adt_units) == (["10.1.0.0/16", "10.2.3.4"], ["ICU", "MICU"])
        # given with no entry (an unset "$ENGINE_IP"): it parsed to [], which the gateway
        # read as not given, so any sender could connect and every unit was admitted
        for opt in (["serve", "--mllp-allow"], ["serve", "--adt-units"],
                    ["serve-token", "x", "--role", "feed", "--patients"]):  # fmt: skip
            for empty in ("", " , "):
                err = io.StringIO()
                with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(err):
                    p.parse_args([*opt, empty])
                assert e.value.code == 2
                assert f"argument {opt[-1]}: no entry in" in err.getvalue()
        # one file for both: it was refused as "in use by another gateway" (this one)
        with pytest.raises(SystemExit, match="--state and --audit both name w.sqlite"):
            cmd_serve(p.parse_args(["serve", "--state", "w.sqlite", "--audit", "w.sqlite"]))

    def test_serve_token_prints_a_token_once_and_serve_refuses_a_bad_token_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        f = tmp_path / "tokens.json"
        p = build_parser()
        assert main(["serve-token", "RN Diaz", "--role", "clinician", "--file", str(f)]) == 0
        out = capsys.readouterr()
        token = out.out.strip().rsplit(": ", 1)[1]
        assert out.out.startswith("RN Diaz (clinician): ") and "not shown again" in out.err
        assert token not in f.read_text() and TokenTable.from_file(f).who(token).name == "RN Diaz"
        with pytest.raises(SystemExit, match="already a token named"):
            main(["serve-token", "RN Diaz", "--role", "reader", "--file", str(f)])
        with pytest.raises(SystemExit) as e:
            p.parse_args(["serve-token", "x", "--role", "nurse"])
        assert e.value.code == 2
        f.write_text('{"tokens": "all"}')
        with pytest.raises(SystemExit, match="expected"):  # before any model loads
            cmd_serve(p.parse_args(["serve", "--tokens", str(f), "--state", "none"]))

    def test_serve_token_lists_limits_and_revokes(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        f = str(tmp_path / "tokens.json")
        assert main(["serve-token", "bed-4 monitor", "--role", "feed", "--patients",
                     "bed-4, icu-2-*", "--expires-days", "30", "--file", f]) == 0  # fmt: skip
        assert main(["serve-token", "ops", "--role", "admin", "--file", f]) == 0
        capsys.readouterr()
        assert main(["serve-token", "--list", "--file", f]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert listed[0].startswith("bed-4 monitor (feed; expires 20") and listed[0].endswith(
            "; patients bed-4, icu-2-*)")  # fmt: skip
        assert listed[1] == "ops (admin)"
        assert main(["serve-token", "ops", "--revoke", "--file", f]) == 0
        assert "removed" in capsys.readouterr().err
        assert [c.name for c in TokenTable.from_file(f).credentials] == ["bed-4 monitor"]
        for args, says in ((["ops", "--revoke"], "no token named 'ops'"),
                           (["x"], "needs --role"), ([], "name the token")):  # fmt: skip
            with pytest.raises(SystemExit, match=says):
                main(["serve-token", *args, "--file", f])
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(["serve-token", "x", "--role", "feed", "--expires-days", "0"])
        assert e.value.code == 2
        main(["serve-token", "bed-4 monitor", "--revoke", "--file", f])
        with pytest.raises(SystemExit, match="holds no token"):  # no one could use it
            cmd_serve(build_parser().parse_args(["serve", "--tokens", f, "--state", "none"]))

    def test_parser_knows_every_command(self) -> None:
        p = build_parser()
        args = p.parse_args(
            ["evaluate", "arrhythmia", "--model", "m", "--db", "mitdb", "--out", "x.json"]
        )
        assert args.task == "arrhythmia" and args.db == "mitdb"

    @pytest.mark.parametrize("tasks", [["early_warning"], ["arrhythmia", "ews"], []])
    def test_the_run_flow_refuses_tasks_it_does_not_know(
        self, tasks: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # a deployment's or the UI's parameters do not pass the command line's choices: a
        # misspelt name ran nothing and the flow completed
        import pipelines.run as run_mod

        ran: list[str] = []
        for name in ("ingest_flow", "train_arrhythmia_flow", "train_early_warning_flow"):
            monkeypatch.setattr(run_mod, name, lambda n=name: ran.append(n))
        with pytest.raises(ValueError, match="ingest, arrhythmia, early-warning"):
            run_mod.run_all.fn(tasks=tasks)
        assert ran == []
        run_mod.run_all.fn(tasks=["arrhythmia", "early-warning"])
        assert ran == ["train_arrhythmia_flow", "train_early_warning_flow"]
        choices = next(a.choices for a in build_parser()._subparsers._group_actions[0]
                       .choices["run"]._actions if a.dest == "tasks")  # fmt: skip
        assert tuple(choices) == run_mod.TASKS

    @pytest.mark.slow
    @pytest.mark.server
    def test_sigterm_stops_the_temporary_prefect_server(self, tmp_path: Path) -> None:
        # killed with SIGTERM (kill, a container stop, a worker cancelling), the command
        # ended without atexit and left Prefect's temporary server (uvicorn, ~200 MB)
        # running, reparented to PID 1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
        env.update(PREFECT_HOME=str(tmp_path / "prefect"), XDG_CACHE_HOME=str(tmp_path),
                   MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true")  # fmt: skip
        log = (tmp_path / "log.txt").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "train", "early-warning",
             "--set", f"out_dir={tmp_path / 'out'}"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        seen: set[int] = set()
        try:
            # the command's imports and checks come first: over a minute on a loaded machine
            deadline = time.monotonic() + 180
            while not any("uvicorn" in _cmdline(p) for p in seen):
                assert proc.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
                assert time.monotonic() < deadline, "no temporary Prefect server in 180 s"
                time.sleep(0.2)
                seen |= _descendants(proc.pid)
            time.sleep(1.0)
            seen |= _descendants(proc.pid)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            deadline = time.monotonic() + 10
            while (left := {p for p in seen if _alive(p)}) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not left, [_cmdline(p) for p in left]
            assert code == 128 + signal.SIGTERM  # ended by SystemExit, cleaned up
        finally:
            for p in [proc.pid, *seen]:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            proc.wait(timeout=10)
            log.close()

    @pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, None])
    def test_the_temporary_server_ends_with_the_process_however_it_ends(
        self, sig: signal.Signals | None, tmp_path: Path
    ) -> None:
        # SIGKILL (the OOM killer) or a SIGTERM of a flow called from a script runs no exit
        # handler: Prefect's temporary server ran on, reparented to PID 1. A `sleep` stands
        # in for the server here (Prefect tracks its process in the same place)
        code = (
            "import subprocess, sys, time\n"
            "from prefect.server.api.server import SubprocessASGIServer\n"
            "from pipelines.prefect_server import stop_with_this_process\n"
            "server = SubprocessASGIServer()\n"
            "server.server_process = subprocess.Popen(['sleep', '300'])\n"
            "stop_with_this_process()\n"
            "stop_with_this_process()  # once per server\n"
            "print(server.server_process.pid, flush=True)\n"
            "if sys.argv[1] == 'end':  # as Prefect's exit handler stops it\n"
            "    server.server_process.terminate(); server.server_process.wait()\n"
            "else:\n"
            "    time.sleep(300)\n"
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
        proc = subprocess.Popen([sys.executable, "-c", code, "wait" if sig else "end"],
                                env={**env, "PREFECT_HOME": str(tmp_path)},
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        seen: set[int] = set()
        try:
            server = int(proc.stdout.readline())
            seen = _descendants(proc.pid)
            watchers = [p for p in seen if "pidfd_send_signal" in _cmdline(p)]
            assert len(watchers) == 1, [_cmdline(p) for p in seen]
            if sig is not None:
                assert _alive(server)
                proc.send_signal(sig)
            assert proc.wait(timeout=30) == (-sig if sig else 0)
            deadline = time.monotonic() + 10
            while (left := {p for p in seen if _alive(p)}) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not left, [_cmdline(p) for p in left]  # the server and its watcher
        finally:
            for p in [proc.pid, *seen]:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            proc.wait(timeout=10)


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` now (read from /proc)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    out, todo = set(), [pid]
    while todo:
        top = todo.pop()
        kids = [c for c, p in parent.items() if p == top]
        out.update(kids)
        todo += kids
    return out


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _alive(pid: int) -> bool:  # a zombie has ended
    with contextlib.suppress(OSError, IndexError):
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


class TestShippedConfigs:
    def test_editable_copies_match_packaged_defaults(self) -> None:
        # the loop ran over the packaged files alone: a copy without a packaged default,
        # or no packaged file found at all, passed
        packaged = ROOT / "vitalgru" / "configs"
        names = sorted(f.name for f in packaged.glob("*.yaml"))
        assert "arrhythmia.yaml" in names and "early_warning.yaml" in names, names
        assert sorted(f.name for f in (ROOT / "configs").glob("*.yaml")) == names
        for name in names:
            copy = ROOT / "configs" / name
            assert filecmp.cmp(packaged / name, copy, shallow=False), f"configs/{name} differs"

    def test_prefect_yaml_entrypoints_exist(self) -> None:
        spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        # `prefect deploy -n NAME` picks one by its own name (the FLOW/NAME form cannot
        # match module-path entrypoints), so no two may share one
        names = [dep["name"] for dep in spec["deployments"]]
        assert len(set(names)) == len(names), names
        for dep in spec["deployments"]:
            # a module path, imported from the installed package: a file path
            # (pipelines/x.py:flow) would need a checkout in the worker's folder
            assert ":" not in dep["entrypoint"], dep["entrypoint"]
            path, func = dep["entrypoint"].rsplit(".", 1)
            flow = getattr(importlib.import_module(path), func)
            assert isinstance(flow, Flow), dep["entrypoint"]
            assert dep["schedules"], dep["name"]
            # every parameter a deployment sets is one its flow takes
            takes = inspect.signature(flow.fn).parameters
            assert set(dep.get("parameters") or {}) <= set(takes), dep["name"]


def test_record_selection_names_what_is_missing(caplog: pytest.LogCaptureFixture) -> None:
    from vitalgru.errors import UnknownRecordError

    have = ["100", "101", "118"]
    with caplog.at_level("WARNING", logger="pipelines.arrhythmia"):
        assert parse_records("DS2", have, "db") == ["100"]
    # a partial DS2 is scored, but its figures are not a whole DS2's: said so
    assert "db: only 1 of the 22 DS2 records are here; missing 103, 105" in caplog.text
    assert parse_records(" all ", have, "db") == have
    assert parse_records("118, 101", have, "db") == ["118", "101"]
    assert parse_records("118,101,118", have, "db") == ["118", "101"]  # scored twice before
    assert "db: 118 named more than once; scored once" in caplog.text
    with pytest.raises(UnknownRecordError, match="no record '999, 998'"):
        parse_records("100,999,998", have, "db")
    with pytest.raises(UnknownRecordError, match="DS2"):
        parse_records("ds2", ["a01", "a02"], "apnea")

"""Parameters of the deployments' flow runs as an operator sends them from Prefect's UI or
API: JSON, with overrides written as nested objects as readily as dotted keys."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prefect.utilities.callables import parameter_schema

from pipelines.arrhythmia import load_arrhythmia_config
from pipelines.ingest import load_ingest_config
from pipelines.monitor_checks import check_early_warning, default_records
from vitalgru.data.early_warning import resolve_data_dir
from vitalgru.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _deployment_schemas() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each deployment of prefect.yaml: the parameter schema Prefect builds from its flow's
    signature (what `prefect deploy` registers), and the parameters prefect.yaml sets."""
    out = {}
    for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]:
        module, name = d["entrypoint"].rsplit(".", 1)
        fn = getattr(importlib.import_module(module), name).fn
        out[d["name"]] = (parameter_schema(fn).model_dump_for_openapi(), d["parameters"])
    return out


class TestDeploymentSchemas:
    def test_prefect_refuses_wrong_types_before_a_run_starts(self) -> None:
        # The server checks a run's parameters against the schema when the run is asked
        # for (HTTP 409 naming the field); the flows' type hints are what make it refuse.
        schemas = _deployment_schemas()
        assert "enforce_parameter_schema" not in (ROOT / "prefect.yaml").read_text()
        bad = {
            "ingest-mitdb-nightly": [{"overrides": '{"arrhythmia.records": ["100"]}'},
                                     {"out_dir": 5}, {"config_path": ["a.yaml"]}],
            "train-arrhythmia-weekly": [{"overrides": ["max_epochs=2"]}],
            "train-early-warning-weekly": [{"overrides": "limit_patients=20"}],
            "monitor-arrhythmia-weekly": [{"records": ["100", "101"]}, {"records": 100},
                                          {"max_f1_drop": "0.1"}, {"db": None}],
            "monitor-early-warning-daily": [{"max_auroc_drop": None}, {"data": 1}],
        }  # fmt: skip
        assert set(bad) == set(schemas)
        for name, (schema, declared) in schemas.items():
            jsonschema.validate(declared, schema)  # prefect.yaml's own parameters pass
            jsonschema.validate({}, schema)  # and so does an empty form
            for params in bad[name]:
                with pytest.raises(jsonschema.ValidationError) as e:
                    jsonschema.validate({**declared, **params}, schema)
                assert e.value.json_path == f"$.{next(iter(params))}", (name, params)


class TestOverridesAsJson:
    def test_an_object_for_a_section_changes_only_the_keys_it_names(self, tmp_path: Path) -> None:
        # a site's config file sets a 50 Hz notch and its own exclusions; a run started
        # with {"arrhythmia": {"records": [...]}} keeps them (it reset both to the
        # packaged defaults: the section was replaced, not merged)
        cfg = yaml.safe_load((ROOT / "configs" / "ingest.yaml").read_text())
        cfg["arrhythmia"]["filters"]["notch_hz"] = 50.0
        cfg["arrhythmia"]["exclude_records"] = ["102"]
        path = tmp_path / "site.yaml"
        path.write_text(yaml.safe_dump(cfg))
        nested = load_ingest_config(str(path), {"arrhythmia": {"records": ["100", "101"]}})
        dotted = load_ingest_config(str(path), {"arrhythmia.records": ["100", "101"]})
        assert nested == dotted
        assert nested.arrhythmia.records == ("100", "101")
        assert nested.arrhythmia.filters.notch_hz == 50.0
        assert nested.arrhythmia.exclude_records == ("102",)
        # deeper still, and beside dotted keys of the same section
        deep = load_ingest_config(
            str(path),
            {"arrhythmia": {"filters": {"lowpass_hz": 35.0}}, "arrhythmia.records": ["100"]},
        )
        assert (deep.arrhythmia.filters.lowpass_hz, deep.arrhythmia.filters.notch_hz) == (
            35.0,
            50.0,
        )
        assert deep.arrhythmia.records == ("100",)

    def test_the_training_keeps_its_ingest_settings_under_a_nested_object(
        self, tmp_path: Path
    ) -> None:
        cfg = yaml.safe_load((ROOT / "configs" / "arrhythmia.yaml").read_text())
        cfg["ingest"]["out_dir"] = "site/datasets/mitdb"
        cfg["ingest"]["arrhythmia"]["windows"]["before_s"] = 0.3
        path = tmp_path / "site.yaml"
        path.write_text(yaml.safe_dump(cfg))
        ov = {"ingest": {"arrhythmia": {"records": ["100", "119"]}}}
        run = load_arrhythmia_config(str(path), ov)
        assert run.ingest.arrhythmia.records == ("100", "119")
        assert run.ingest.out_dir == Path("site/datasets/mitdb")
        assert run.ingest.arrhythmia.windows.before_s == 0.3


class TestRefusals:
    def test_text_for_a_list_is_refused_naming_the_key_and_the_text(self) -> None:
        # {"arrhythmia.records": "100"} from a run form: refused before any record is
        # read, in words an operator can act on (it said "Input should be a valid tuple",
        # and showed the text "100" as the number 100)
        with pytest.raises(ConfigError) as e:
            load_ingest_config(None, {"arrhythmia.records": "100", "workers": 2})
        msg = str(e.value)
        # named as the run's parameter was written, not as the command's --set options
        assert 'with overrides {"arrhythmia.records": "100", "workers": 2}' in msg
        assert "--set" not in msg
        assert "arrhythmia.records: a list is expected" in msg and "not the text '100'" in msg
        with pytest.raises(ConfigError, match=r"val_records: a list is expected"):
            load_arrhythmia_config(None, {"val_records": "118"})

    def test_an_unknown_key_in_a_runs_overrides_says_it_in_the_runs_words(self) -> None:
        # a deployment's run was told "with --set max_epoch=3" and "`vitalgru config`
        # prints them all": a command an operator at Prefect's UI does not run
        with pytest.raises(ConfigError) as e:
            load_arrhythmia_config(None, {"max_epoch": 3})
        msg = str(e.value)
        assert 'with overrides {"max_epoch": 3}' in msg and "did you mean 'max_epochs'?" in msg
        assert "--set" not in msg and "vitalgru config" not in msg
        assert "keys here: " in msg and "focal_gamma" in msg  # the section's keys, all

    def test_the_command_line_keeps_its_words(self) -> None:
        from pipelines.cli import _resolved_config

        with pytest.raises(ConfigError) as e:
            _resolved_config("arrhythmia", None, {"max_epoch": 3})
        msg = str(e.value)
        assert "with --set max_epoch=3" in msg and "`vitalgru config` prints them all" in msg

    def test_an_empty_record_list_is_refused_not_read_as_every_record(self) -> None:
        # {"arrhythmia.records": []} ingested all 48 MIT-BIH records, as null does
        with pytest.raises(ConfigError, match=r"arrhythmia.records: .*names no record"):
            load_ingest_config(None, {"arrhythmia.records": []})
        with pytest.raises(ConfigError, match=r"ingest.arrhythmia.records: .*names no record"):
            load_arrhythmia_config(None, {"ingest.arrhythmia.records": []})
        assert load_ingest_config(None, {"arrhythmia.records": None}).arrhythmia.records is None

    def test_a_config_file_not_found_names_where_it_was_looked_for(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # a relative config_path is the worker's working folder's: the message says which
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ConfigError) as e:
            load_ingest_config("site/ingest.yaml")
        assert f"looked for {tmp_path / 'site' / 'ingest.yaml'}" in str(e.value)


class TestMonitorRecords:
    def test_a_blank_records_field_checks_ds2_as_one_left_out(self) -> None:
        # "" from a cleared form field scored all 48 MIT-BIH records, the training's DS1
        # and the paced ones among them, against figures gated on DS2
        assert default_records("mitdb", "") == default_records("mitdb", None) == "DS2"
        assert default_records("mitdb", "  ") == "DS2"
        assert default_records("incartdb", "") is None  # every record, as left out
        assert default_records("mitdb", "all") == "all"  # every record, when asked for


class TestMonitorData:
    def test_a_blank_data_folder_is_refused_before_the_model_is_loaded(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # "" was the working folder (Path("") is "."): the run went on to load the
        # champion and evaluate the .psv files lying there, if any
        monkeypatch.chdir(tmp_path)
        (tmp_path / "p000001.psv").write_text("HR|SepsisLabel\n80|0\n")
        for data in ("", "  "):
            with pytest.raises(ValueError, match="folder is empty text"):
                resolve_data_dir(data, None)
            with pytest.raises(ValueError, match="folder is empty text"):
                check_early_warning(model_uri="models:/not-there@champion", data=data)
        assert resolve_data_dir(".", None) == Path(".")  # the working folder, when named

"""The arrhythmia config and report files, without Prefect: read by the training flow
(:mod:`pipelines.arrhythmia`) and by the commands that score with a logged model
(:mod:`pipelines.evaluate`, :mod:`pipelines.replay`), which run no flow. Taken from the flow
module, importing them imported Prefect too, and Prefect's console handler was put on the
root logger of a process that never ran a flow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vitalgru.claims import replace_file
from vitalgru.config import ArrhythmiaTrainConfig, load_config
from vitalgru.metrics.aami import report_markdown


def load_arrhythmia_config(
    config_path: str | None = None, overrides: dict[str, Any] | None = None
) -> ArrhythmiaTrainConfig:
    """The resolved training config (packaged ``arrhythmia.yaml``, file, overrides)."""
    return load_config(
        ArrhythmiaTrainConfig, config_path, overrides, default_name="arrhythmia.yaml"
    )


def write_report(report: Mapping[str, Any], json_path: Path, title: str) -> dict[str, str]:
    """Write the JSON report and a markdown table beside it."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(json_path, json.dumps(report, indent=2))
    md = json_path.with_suffix(".md")
    replace_file(md, report_markdown(report, title))
    return {"json": str(json_path), "markdown": str(md)}

"""The dependency rule of the architecture, checked rather than hoped for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "vitalgru"

# layer -> packages it must never import (directly).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "vitalgru": ("prefect", "pipelines"),
    "vitalgru.io": (
        "torch",
        "vitalgru.data",
        "vitalgru.models",
        "vitalgru.training",
        "vitalgru.scoring",
        "vitalgru.tracking",
        "vitalgru.cli",
    ),
    "vitalgru.dsp": (
        "torch",
        "wfdb",
        "pandas",
        "vitalgru.io",
        "vitalgru.data",
        "vitalgru.models",
        "vitalgru.training",
        "vitalgru.scoring",
        "vitalgru.tracking",
        "vitalgru.cli",
    ),
    "vitalgru.metrics": (
        "torch",
        "vitalgru.io",
        "vitalgru.data",
        "vitalgru.models",
        "vitalgru.training",
        "vitalgru.tracking",
        "vitalgru.cli",
    ),
    "vitalgru.models": (
        "wfdb",
        "pandas",
        "vitalgru.io",
        "vitalgru.data",
        "vitalgru.dsp",
        "vitalgru.training",
        "vitalgru.scoring",
        "vitalgru.tracking",
        "vitalgru.cli",
    ),
    "vitalgru.baselines": (
        "torch",
        "vitalgru.models",
        "vitalgru.training",
        "vitalgru.scoring",
        "vitalgru.tracking",
        "vitalgru.cli",
    ),
    "vitalgru.data": (
        "vitalgru.models",
        "vitalgru.training",
        "vitalgru.scoring",
        "vitalgru.tracking",
        "vitalgru.cli",
    ),
    "vitalgru.training": ("vitalgru.tracking", "vitalgru.cli", "vitalgru.scoring"),
    "vitalgru.scoring": ("vitalgru.tracking", "vitalgru.cli", "vitalgru.training"),
    "vitalgru.config": ("vitalgru.io", "vitalgru.dsp", "vitalgru.data", "vitalgru.models"),
    "vitalgru.config_checks": ("vitalgru.io", "vitalgru.dsp", "vitalgru.data", "vitalgru.models"),
    "vitalgru.config_ingest": ("vitalgru.io", "vitalgru.dsp", "vitalgru.data", "vitalgru.models"),
    "vitalgru.config_files": ("vitalgru.io", "vitalgru.dsp", "vitalgru.data", "vitalgru.models"),
    "vitalgru.types": ("vitalgru.io", "vitalgru.dsp", "vitalgru.data", "vitalgru.models"),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, text: str | None = None) -> set[str]:
    """Every module ``path`` imports, by its absolute name. A relative import is resolved
    against the file's own package, and ``from package import name`` counts as importing
    ``package.name`` too: ``from vitalgru import tracking`` or ``from ..tracking import x``
    in ``vitalgru/dsp`` imports the tracking layer as surely as ``import vitalgru.tracking``.
    ``text``: source read as if it were the file's (default: the file's own)."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    package = _module_name(path).split(".") if path.is_relative_to(ROOT) else []
    if path.name != "__init__.py":
        package = package[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module:
                out.add(module)
                out.update(f"{module}.{a.name}" for a in node.names if a.name != "*")
    return out


def _hits(imported: str, banned: str) -> bool:
    return imported == banned or imported.startswith(banned + ".")


class TestLayering:
    def test_no_forbidden_imports(self) -> None:
        problems = []
        for path in PKG.rglob("*.py"):
            mod = _module_name(path)
            imports = _imports(path)
            for layer, banned in FORBIDDEN.items():
                if mod != layer and not mod.startswith(layer + "."):
                    continue
                for imp in imports:
                    if any(_hits(imp, b) for b in banned):
                        problems.append(f"{mod} imports {imp} (forbidden for {layer})")
            if not _hits(mod, "vitalgru.tracking"):
                problems += [f"{mod} imports {i}" for i in imports if _hits(i, "mlflow")]
        assert problems == []

    def test_rule_detects_a_violation(self, tmp_path: Path) -> None:
        bad = tmp_path / "x.py"
        bad.write_text("import mlflow\nfrom prefect import flow\n")
        assert {"mlflow", "prefect"} <= _imports(bad)

    def test_a_layer_reached_by_name_or_relatively_is_a_violation(self) -> None:
        # only ``from vitalgru.tracking import x`` was seen: ``from vitalgru import
        # tracking`` and ``from ..tracking import x`` in vitalgru/dsp passed the rule
        dsp = PKG / "dsp" / "filters.py"
        imports = _imports(dsp, "from vitalgru import tracking\nfrom ..data import x\n")
        assert {"vitalgru.tracking", "vitalgru.data.x"} <= imports
        package_init = _imports(PKG / "dsp" / "__init__.py", "from .filters import y\n")
        assert "vitalgru.dsp.filters.y" in package_init

    def test_import_vitalgru_pulls_no_orchestration(self) -> None:
        code = (
            "import sys, vitalgru, vitalgru.config, vitalgru.types;"
            "bad=[m for m in ('prefect','mlflow') if m in sys.modules];"
            "print(','.join(bad))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == ""

    def test_the_readme_layout_names_every_subpackage(self) -> None:
        # the Layout is where a reader looks for the layers this file checks
        text = (ROOT / "README.md").read_text()
        layout = text[text.index("## Layout") : text.index("## Data and citations")]
        packages = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))
        assert "baselines" in packages
        assert [p for p in packages if f"\n  {p}/ " not in layout] == []

    def test_scoring_with_a_logged_model_imports_no_prefect(self) -> None:
        # pipelines.evaluate took two file helpers from the training flow's module, and
        # with them Prefect, whose console handler it put on the root logger of a
        # process (`vitalgru evaluate`, `replay`, `monitor`'s checks) that runs no flow
        code = (
            "import logging, sys, pipelines.evaluate, pipelines.replay, pipelines.monitor_checks;"
            "print('prefect' in sys.modules, logging.getLogger().handlers)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        assert out.stdout.strip() == "False []"

    def test_the_command_lines_help_imports_no_data_or_model_stack(self) -> None:
        # `vitalgru --help` (and any command's argument checks) took vitalgru.io's package
        # with cli_args' server check, and with it wfdb and pandas: half a second of every
        # command's start, before it did anything
        code = (
            "import contextlib, io, sys, pipelines.cli as cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    cli.build_parser().parse_args(['--help'])\n"
            "heavy = ('wfdb', 'pandas', 'scipy', 'torch', 'mlflow', 'prefect', 'fastapi')\n"
            "print(','.join(m for m in heavy if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        assert out.stdout.strip() == ""

"""constraints.txt: the whole dependency tree at the versions the tests pass with.

pyproject.toml pins only the project's own dependencies; without the constraints a machine
set up later resolves their dependencies to whatever is newest that day (prefect alone brings
about 80), which is how a green main turns red with no commit."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;+]+)$")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for n, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = PIN.match(line.strip())
        assert m, f"constraints.txt:{n}: not name==version (no local label, no marker): {line!r}"
        name = _name(m[1])
        assert name not in pins, f"constraints.txt:{n}: {m[1]} twice"
        pins[name] = m[2]
    return pins


def _project_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    pins = {}
    for req in reqs:
        m = PIN.match(req.strip())
        assert m, f"pyproject.toml: {req!r} is not pinned exactly"
        pins[_name(m[1])] = m[2]
    return pins


def test_the_constraints_agree_with_the_project_pins() -> None:
    constraints = _constraints()
    for name, version in _project_pins().items():
        assert constraints.get(name) == version, (
            f"pyproject.toml pins {name}=={version}, constraints.txt has {constraints.get(name)}: "
            "run `make lock`"
        )
    assert "vitalgru" not in constraints  # the project itself is never constrained


def test_the_environment_is_the_one_the_constraints_describe() -> None:
    # what `make setup` installed: a package at another version (or missing) means the
    # constraints were not used, or were changed without reinstalling
    installed = {
        _name(d.metadata["Name"]): d.version.split("+")[0] for d in metadata.distributions()
    }
    wrong = {
        name: (version, installed.get(name))
        for name, version in _constraints().items()
        if installed.get(name) != version
    }
    assert not wrong, f"constraints.txt vs installed (rerun `make setup`): {wrong}"


def test_every_install_uses_the_constraints() -> None:
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(BIN\)/vitalgru: .*constraints\.txt", make, re.M)
    assert "$(call install,$(VENV),-c constraints.txt)" in make
    docker = (ROOT / "docker" / "Dockerfile").read_text()
    project_installs = [
        line for line in docker.splitlines() if re.search(r"pip install .* \.", line)
    ]
    assert project_installs and all("-c constraints.txt" in line for line in project_installs)

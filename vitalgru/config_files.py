"""Configuration files: YAML read, composed and validated into a config model.

:func:`load_config` reads a file (or a packaged default), merges the profiles it names
under ``defaults:`` (one level), applies dotted overrides (``--set`` on the command line, a
flow's ``overrides`` parameter) and validates the result
into a pydantic model of :mod:`vitalgru.config`; every way a file can be wrong is a
:class:`~vitalgru.errors.ConfigError` naming the file (the profile that set a bad key) and
the key: not UTF-8, not YAML, a key given twice, not a mapping, an unknown key (with the
closest known one), a value of the wrong type or out of range.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Hashable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from vitalgru.errors import ConfigError

__all__ = ["leading_zero_number", "load_config", "resolve_config_dict"]

T = TypeVar("T", bound=BaseModel)


def _packaged(name: str) -> Path:
    ref = resources.files("vitalgru") / "configs" / name
    return Path(str(ref))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
        ) from e
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def leading_zero_number(text: str) -> bool:
    """Whether unquoted YAML ``text`` is a whole number with a leading zero (``0123``,
    ``010``, ``08``): YAML 1.1, which PyYAML reads, takes ``0123`` for octal (83) and ``08``
    for text, where a person meant 123 and 8."""
    return re.fullmatch(r"[-+]?0[0-9_]+", text.strip()) is not None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the
    last silently: `workers: 3` then `workers: 4` would train with 4, unsaid), a key that
    is a list or a mapping (``[a]: 1``, a TypeError before), and a whole
    number with a leading zero (:func:`leading_zero_number`)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, Hashable):  # ``[a]: 1`` or ``{a: 1}: 2``: a TypeError
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"a key must be a name, not a {'list' if isinstance(key, list) else 'mapping'}",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
            items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for item in items:
                if (
                    isinstance(item, yaml.ScalarNode)
                    and item.style is None  # unquoted
                    and leading_zero_number(item.value)
                ):
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"{key}: {item.value} has a leading zero, which YAML reads as octal or "
                        "as text; write the number without it, or quote it as text",
                        item.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` of ``d`` to ``value``; a mapping given for a section is merged
    into it, key by key, as a ``defaults:`` profile is."""
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
        cur = nxt
    # A deployment's run form sends overrides as JSON, where a nested object is the natural
    # way to write one ({"arrhythmia": {"records": ["100"]}}): put in place of the section,
    # it dropped every other key the config file set there, which then took the packaged
    # defaults without a word (a file's notch at 50 Hz became 60 Hz).
    old = cur.get(parts[-1])
    merge = isinstance(value, dict) and isinstance(old, dict)
    cur[parts[-1]] = _merge(old, value) if merge else value


def resolve_config_dict(
    path: str | Path | None, default_name: str, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Raw mapping of a config: packaged ``default_name`` when ``path`` is None, its
    ``defaults:`` profiles merged under it (one level), then dotted ``overrides``."""
    merged: dict[str, Any] = {}
    for _, data in _config_layers(path, default_name):
        merged = _merge(merged, data)
    for k, v in (overrides or {}).items():
        _set_dotted(merged, k, v)
    return merged


def _config_layers(path: str | Path | None, default_name: str) -> list[tuple[Path, dict]]:
    """The files of a config in the order they are merged (its ``defaults:`` profiles,
    then itself), each with its mapping (``defaults`` taken out)."""
    p = _packaged(default_name) if path is None else Path(path)
    if path is not None and not p.exists():
        alt = _packaged(str(path))
        if alt.exists():
            p = alt
        else:
            # a relative path is the run's working folder's (for a deployment's run, the
            # folder `prefect deploy` ran in), which an operator at Prefect's UI cannot see
            where = "" if p.is_absolute() else f" (looked for {p.absolute()})"
            raise ConfigError(
                f"config file {path} does not exist{where}, nor is it a packaged config"
            )
    data = _read_yaml(p)
    defaults = data.pop("defaults", []) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{p}: 'defaults' must be a list of file names")
    layers: list[tuple[Path, dict]] = []
    for name in defaults:
        sub = p.parent / str(name)
        if not sub.exists():
            sub = _packaged(str(name))
        if not sub.exists():
            raise ConfigError(f"{p}: defaults entry {name!r} not found")
        sub_data = _read_yaml(sub)
        if "defaults" in sub_data:
            raise ConfigError(f"{sub}: nested 'defaults' (composition is one level deep)")
        layers.append((sub, sub_data))
    return [*layers, (p, data)]


def _set_in(layers: list[tuple[Path, dict]], loc: tuple[Any, ...]) -> Path | None:
    """The last of ``layers`` whose mapping holds the key at ``loc`` (None: none does)."""
    found = None
    for file, data in layers:
        cur: Any = data
        for part in loc:
            if not isinstance(cur, dict) or part not in cur:
                break
            cur = cur[part]
        else:
            found = file
    return found


def load_config(
    model: type[T],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    default_name: str = "ingest.yaml",
    *,
    command_line: bool = False,
) -> T:
    """Load and validate a config.

    Parameters
    ----------
    model : type
        The pydantic model to validate into (``IngestConfig``, ...).
    path : str or Path, optional
        YAML file; ``None`` takes the packaged ``default_name``.
    overrides : dict, optional
        Dotted keys to values, applied last (``{"arrhythmia.filters.notch_hz": 50}``); a
        mapping given for a section is merged into it (``{"arrhythmia": {"records": ["100"]}}``
        changes the records only).
    command_line : bool
        The overrides came from the ``vitalgru`` command's ``--set`` options: an error says
        them as ``--set key=value`` and points to ``vitalgru config``. Otherwise (a flow's
        ``overrides`` parameter: a deployment's run, a call from Python) it names them as
        the JSON object they were given as, and lists a section's keys itself.

    Raises
    ------
    ConfigError
        Unreadable or malformed YAML, unknown keys, wrong types; the message names the
        file and the offending key.
    """
    raw = resolve_config_dict(path, default_name, overrides)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        where = str(path) if path is not None else f"packaged {default_name}"
        if overrides and command_line:
            # as JSON: the text "100" and the number 100 read alike
            where += " with --set " + " ".join(
                f"{k}={json.dumps(v, default=str)}" for k, v in overrides.items()
            )
        elif overrides:  # a run's parameter, as it was written in a deployment's form
            where += f" with overrides {json.dumps(overrides, default=str)}"
        layers = _config_layers(path, default_name)
        lines = []
        for err in e.errors():
            line = f"  {_explain(model, err, command_line)}"
            # a key set by one of the file's defaults: profiles is named with that file
            origin = _set_in(layers, tuple(err["loc"]))
            if origin is not None and origin != layers[-1][0] and not _overridden(err, overrides):
                line += f" (set in {origin})"
            lines.append(line)
        raise ConfigError(f"invalid config {where}:\n" + "\n".join(lines)) from e


def _overridden(err: Any, overrides: dict[str, Any] | None) -> bool:
    key = ".".join(str(x) for x in err["loc"])
    return any(key == k or key.startswith(f"{k}.") for k in overrides or {})


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) config section at ``loc``; [] where it is not one."""
    cur: Any = model
    for part in loc:
        field = cur.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        cur = ann
    return sorted(cur.model_fields)


def _explain(model: type[BaseModel], err: Any, command_line: bool = False) -> str:
    """One validation error as ``key: message``; an unknown key names the section's
    known keys and the closest one, so a typo says what was meant (on the command line,
    a section of many keys points to ``vitalgru config`` instead of listing them)."""
    loc = tuple(err["loc"])
    key = ".".join(str(x) for x in loc) or "(whole config)"
    if err["type"] in ("tuple_type", "list_type") and isinstance(err.get("input"), str):
        # pydantic's "a valid tuple" names no type a YAML file or a JSON form has
        return f'{key}: a list is expected (e.g. ["100", "101"]), not the text {err["input"]!r}'
    if err["type"] != "extra_forbidden":
        return f"{key}: {err['msg']}"
    known = _fields_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    hint = f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?" if close else ""
    if len(known) <= 12 or not command_line:  # an operator at Prefect's UI runs no command
        listing = f"keys here: {', '.join(known)}"
    else:  # a task's top level: too many to read in one line
        listing = f"{len(known)} keys here; `vitalgru config` prints them all"
    return f"{key}: unknown key{hint} ({listing})"

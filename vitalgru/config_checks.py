"""The strict base of every config section, and the value checks sections share.

:class:`StrictConfig` refuses what a typo in a YAML file turns into: an unknown key, an
infinite or NaN number, a YAML boolean (``no``, ``off``) given for a number.
:func:`not_empty` and :func:`record_names_as_text` are ``mode="before"`` field checks
for the sections of :mod:`vitalgru.config_ingest` and :mod:`vitalgru.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def not_empty(v: Any, name: str, null: str = "") -> Any:
    """Checked before the conversion to a Path, where "" becomes "." (the working folder).
    ``null``: what null means for a field that takes it, said in the error."""
    if isinstance(v, str | Path) and str(v).strip() == "":
        raise ValueError(f"{name} must not be empty" + (f" (null: {null})" if null else ""))
    return v


def record_names_as_text(v: Any) -> Any:
    """Record names are text; YAML reads `[100, 101]` as numbers (and `0100` as octal 64),
    so a number is refused with the way to write it rather than guessed at."""
    if isinstance(v, list | tuple) and any(isinstance(x, int | float) for x in v):
        raise ValueError(
            "record names are text: quote them (['100', '101']; YAML reads 100 as a number)"
        )
    return v


def _takes_bool(annotation: Any) -> bool:
    return annotation is bool or any(_takes_bool(a) for a in get_args(annotation))


class StrictConfig(BaseModel):
    """Base of every config section: frozen, and strict about what a typo makes.

    An unknown key is an error (``extra="forbid"``), so is an infinite or NaN number, and a
    boolean given for a field that is not a true/false setting.
    """

    # no infinite or NaN number anywhere: `lr: .inf` or `grad_clip: .nan` is a typo that
    # trains nonsense, not a setting
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, v: Any, info: ValidationInfo) -> Any:
        # YAML 1.1 reads unquoted yes/no/on/off as booleans and pydantic takes a boolean for
        # 1 or 0: `retries: no` retried 0 times, `notch_hz: off` notched at 0 Hz, `lead: no`
        # read column 0. A boolean is taken only where the field is one.
        field = cls.model_fields.get(info.field_name or "")
        if field is None or _takes_bool(field.annotation):
            return v
        items = v if isinstance(v, list | tuple) else [v]
        if any(isinstance(x, bool) for x in items):
            shown = ", ".join("true" if x is True else "false" if x is False else repr(x)
                              for x in items)  # fmt: skip
            raise ValueError(
                f"{info.field_name} is not a true/false setting, got {shown} (YAML reads "
                "unquoted yes, no, on, off as booleans): write the number meant, null where "
                "the key takes it, or the word in quotes ('off')"
            )
        return v

    @field_validator("*", mode="after")
    @classmethod
    def _home_folder_in_paths(cls, v: Any) -> Any:
        # No shell reads a YAML file: `out_dir: ~/runs` made a folder named "~" in the
        # working folder, while pandas and pyarrow, which expand "~" themselves, wrote into
        # the home folder's runs/, where nothing had made the sub-folders.
        if not (isinstance(v, Path) and str(v).startswith("~")):
            return v
        try:
            return v.expanduser()
        except RuntimeError:  # ~name of no user, or no home folder known
            raise ValueError(
                f"{str(v)!r} starts with ~ but that home folder is not known here (no such "
                "user, or HOME unset): write the full path"
            ) from None

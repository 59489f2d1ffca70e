"""The models a restarted gateway serves beside those its state file was written with
(``{task: "URI (version N)"}``, :func:`pipelines.gateway_serve.build_ward`): what changed
for the patients it takes up (:func:`restart_notes`), and which shadow comparisons go on
(:func:`shadows_going_on`). A champion served as a fall-back is compared by the version
that serves, not by the words its name carries."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["fallback_name", "restart_notes", "served", "shadows_going_on"]

#: What a fall-back's name adds after its version (:func:`fallback_name`).
_FALLBACK = ", a fall-back: "

#: The shadow models' names in ``build_ward``'s model list, and their task in the ward.
_SHADOW_TASKS = {"shadow arrhythmia": "arrhythmia", "shadow early-warning": "early_warning"}


def fallback_name(uri: str, version: str, wanted: str) -> str:
    """The name of ``version`` served for ``uri`` because version ``wanted`` (its
    champion) cannot be loaded."""
    return f"{uri} (version {version}{_FALLBACK}version {wanted} cannot be loaded)"


def served(name: str) -> str:
    """``URI (version N)``: the model that scores, without what a fall-back's name adds."""
    head, fell_back, _ = name.partition(_FALLBACK)
    return f"{head})" if fell_back else name


def _champions(models: Mapping[str, str]) -> dict[str, str]:
    """The models that score patients (a changed shadow changes no stored patient's risk),
    each as :func:`served` names it."""
    return {k: served(v) for k, v in models.items() if not k.startswith("shadow")}


def restart_notes(
    kept: Mapping[str, str], names: Mapping[str, str], sepsis: int, ecg: int
) -> list[str]:
    """What a restart whose champion models differ from ``kept`` (the state file's) does to
    the ``sepsis`` and ``ecg`` patients it takes up, one line per task that has some: the
    sepsis patients' stored hours are scored again by the model serving now, the ECG
    patients' memory was kept by another network. A task whose model is the same version,
    served now as a fall-back or no longer one, says nothing (the same network scores);
    a task served before and not now is said by the ward (its patients stay stored)."""
    was, now = _champions(kept), _champions(names)
    changed = {k for k in was.keys() & now.keys() if was[k] != now[k]}
    notes = []
    if "early-warning" in changed and sepsis:
        notes.append(
            f"the early-warning model is not the one the state was written with "
            f"({kept['early-warning']}; now {names['early-warning']}): the {sepsis} sepsis "
            "patient(s)' stored hours are scored again by the one serving now, so their "
            "risk and alarms may differ from those shown before the restart"
        )
    if "arrhythmia" in changed and ecg:
        notes.append(
            f"the arrhythmia model is not the one the state was written with "
            f"({kept['arrhythmia']}; now {names['arrhythmia']}): the {ecg} ECG patient(s) "
            "whose memory the other network kept start their beat labelling afresh"
        )
    return notes


def shadows_going_on(kept: Mapping[str, str], names: Mapping[str, str]) -> set[str]:
    """The ward tasks whose shadow comparison a restarted gateway takes up (``kept``: the
    models the state file was written with; ``names``: this gateway's): the same challenger
    against the same champion (the same version, a fall-back or not). One with another
    champion (promoted or rolled back since, or another fall-back) compared something
    else: it starts afresh."""
    was, now = _champions(kept), _champions(names)
    return {task for key, task in _SHADOW_TASKS.items()
            if key in names and kept.get(key) == names[key]
            and was.get(key.removeprefix("shadow ")) == now.get(key.removeprefix("shadow "))}  # fmt: skip

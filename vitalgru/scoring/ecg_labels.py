"""The network's side of :mod:`vitalgru.scoring.arrhythmia`, step 5: what a labelled beat
is (:class:`BeatCall`), a network's fingerprint and the shape of the state it carries, and
:func:`label_ready`, which labels the beats ready in a batch of patients' streams with one
network call per run length, carrying each patient's hidden state from call to call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from vitalgru.types import AAMI_CLASSES

if TYPE_CHECKING:
    from vitalgru.scoring.ecg_stream import PatientStream

__all__ = ["BeatCall", "label_ready", "model_fingerprint", "state_shape"]


@dataclass(frozen=True)
class BeatCall:
    """One labelled heartbeat.

    Attributes
    ----------
    patient_id : str
    beat_idx : int
        The beat's number in the patient's stream (0-based).
    sample_idx : int
        R peak, in samples of the patient's input stream (counted from admission).
    time_s : float
        R peak time in s from admission.
    label : str
        AAMI EC57 class (N, S, V, F or Q).
    probs : tuple of float
        Class probabilities in :data:`vitalgru.types.AAMI_CLASSES` order.
    signal_ok : bool
        The live signal-quality verdict for the beat (see ``signal_ok`` in
        :mod:`vitalgru.data.ingest`).
    labelled_at_s : float
        Stream time (s from admission) of the push that labelled the beat.
    """

    patient_id: str
    beat_idx: int
    sample_idx: int
    time_s: float
    label: str
    probs: tuple[float, ...]
    signal_ok: bool
    labelled_at_s: float

    @property
    def latency_s(self) -> float:
        """Seconds between the R peak and its label."""
        return self.labelled_at_s - self.time_s


def model_fingerprint(model: nn.Module, preprocessing: Mapping[str, Any]) -> str:
    """A short hash of a network's weights and its preprocessing: two monitors with the
    same fingerprint turn the same samples into the same labels."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(dict(preprocessing), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def state_shape(model: nn.Module) -> tuple[int, int]:
    """(layers, hidden) of the state ``model`` carries (an ensemble stacks its members')."""
    members = getattr(model, "members", None)
    if members is not None:
        return sum(int(m.num_layers) for m in members), int(members[0].hidden)
    return int(model.num_layers), int(model.hidden)


@torch.no_grad()
def label_ready(
    model: nn.Module, pats: list[PatientStream], ctx: int, max_batch: int
) -> list[BeatCall]:
    """Label the beats waiting in each stream of ``pats`` but the last ``ctx`` (the
    network's output delay; 0 at a stream's end), ``max_batch`` patients per network call:
    the beats labelled, each patient's in time order, in patient order of ``pats``."""
    ready = [st for st in pats if len(st.rows) > ctx]
    # one network call per run length (most ticks bring each patient the same few beats)
    groups: dict[int, list[PatientStream]] = {}
    for st in ready:
        groups.setdefault(len(st.rows), []).append(st)
    calls: dict[str, list[BeatCall]] = {}
    for t_len, group in groups.items():
        for s in range(0, len(group), max_batch):
            part = group[s : s + max_batch]
            x = torch.from_numpy(np.stack([np.stack([r[0] for r in st.rows]) for st in part]))
            ok = torch.tensor([[r[1] for r in st.rows] for st in part])
            h0 = torch.cat([st.h for st in part], dim=1)
            logits, h_n = model(x, h0, ok, context_beats=ctx)
            probs = torch.softmax(logits[:, : t_len - ctx], dim=-1).numpy()
            for b, st in enumerate(part):
                st.h = h_n[:, b : b + 1].clone()
                calls[st.pid] = _calls(st, probs[b], st.rows[: t_len - ctx])
                st.rows = st.rows[t_len - ctx :]
    return [c for st in pats for c in calls.get(st.pid, [])]


def _calls(
    st: PatientStream, probs: np.ndarray, rows: list[tuple[np.ndarray, bool, int]]
) -> list[BeatCall]:
    out = []
    now = st.n / st.fs
    for p, (_, ok, peak) in zip(probs, rows, strict=True):
        out.append(
            BeatCall(
                patient_id=st.pid,
                beat_idx=st.n_labelled,
                sample_idx=peak,
                time_s=peak / st.fs,
                label=str(AAMI_CLASSES[int(np.argmax(p))]),
                probs=tuple(float(v) for v in p),
                signal_ok=ok,
                labelled_at_s=now,
            )
        )
        st.n_labelled += 1
    return out

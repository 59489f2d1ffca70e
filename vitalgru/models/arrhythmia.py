"""Beat-sequence GRU for AAMI EC57 heartbeat classification (torch only).

Each beat is encoded by a small 1-D CNN over its (template-relative) morphology and a
linear map of its RR features; a unidirectional GRU runs over the sequence of beats, so
its hidden state carries the patient's own rhythm and morphology across beats. With
``output_delay`` 0 the model is causal in beats: the logits of beat k depend on input rows
``<= k``. With ``output_delay`` d the head reads the GRU state after beat ``k + d`` (and beat
k's own embedding), so beat k is labelled once d more beats have arrived. The input
features have their own look-ahead of one beat (``rr_next``); the model's total look-ahead
is the sum, at most two beats.

Streaming with a delay d: each call gets the beats not yet labelled followed by the new
ones, with ``context_beats=d``. The logits of all but the last d rows are final; the last d
rows only give them context, and ``h_n`` is the state *before* those rows, so the next call
starts with them again. At the end of a record the last beats are scored with
``context_beats=0``. :func:`vitalgru.training.arrhythmia_fit.predict_records` scores in chunks
this way, and a test checks that it equals scoring the whole record at once.

Input layout: one feature vector per beat, ``x[..., : C * L]`` the flattened morphology
channels (channel-major) and ``x[..., C * L :]`` the RR features, so the model meets the
``(batch, time, n_features)`` contract of ``vitalgru.models.base.SequenceModel``.

Shapes: ``B`` batch, ``T`` beats, ``C`` morphology channels, ``L`` window samples,
``F`` RR features, ``H`` GRU hidden size, ``K`` classes.
"""

from __future__ import annotations

from typing import Any, Self

import torch
from torch import nn

from vitalgru.models.base import require_finite
from vitalgru.models.beat_gates import (
    apply_quality_gate,
    apply_rhythm_gate,
    check_quality_gate,
    check_rhythm_gate,
)

__all__ = [
    "MAX_LOOKAHEAD",
    "ArrhythmiaEnsemble",
    "ArrhythmiaGRU",
    "BeatEncoder",
    "apply_quality_gate",  # the gates live in beat_gates; named here as they always were
    "apply_rhythm_gate",
    "check_quality_gate",
    "check_rhythm_gate",
]

#: Most beats of look-ahead a model may need (features plus output delay): a streaming
#: scorer labels a beat at most this many beats after it.
MAX_LOOKAHEAD = 2


class BeatEncoder(nn.Module):
    """1-D CNN over one beat window: ``(N, C, L) -> (N, d_out)``.

    Strided convolutions with GELU and group normalisation, then global average and
    max pooling (shift-tolerant summary of where the QRS energy lies).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], d_out: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            k = 7 if i == 0 else 5
            layers += [
                nn.Conv1d(c, w, kernel_size=k, stride=2, padding=k // 2),
                nn.GroupNorm(1, w),
                nn.GELU(),
            ]
            c = w
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (N, c, L')
        h = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1)  # (N, 2c)
        return self.proj(h)


class ArrhythmiaGRU(nn.Module):
    """CNN beat encoder + RR features -> GRU over beats -> per-beat AAMI logits.

    Parameters
    ----------
    n_samples : int
        Samples per beat window ``L`` (252 at 360 Hz for 0.25 s + 0.45 s).
    in_channels : int
        Morphology channels ``C`` (2: scaled window, window minus running template).
    n_rr : int
        RR features ``F``.
    n_classes : int
        Output classes ``K`` (5: N, S, V, F, Q).
    conv_widths : tuple of int
        Channels of the strided convolutions.
    d_beat : int
        Size of the per-beat embedding fed to the GRU.
    hidden : int
        GRU hidden size ``H``.
    num_layers : int
        GRU layers.
    dropout : float
        Dropout on embeddings and between GRU layers.
    lookahead_beats : int
        Beats of look-ahead the *input features* need (recorded for scorers).
    output_delay : int
        Beats after beat k whose GRU state the head reads to label beat k (0: causal).
        ``lookahead_beats + output_delay`` is the model's total look-ahead, at most
        :data:`MAX_LOOKAHEAD`.
    rhythm_gate : dict, optional
        :func:`apply_rhythm_gate` setting applied to the output (None: no gate).
    quality_gate : float or None
        ``keep_v_above`` of :func:`apply_quality_gate`, applied when :meth:`forward` is
        given ``signal_ok`` (None: no gate; ``True``/``False`` are read as 1.0/None).
    """

    def __init__(
        self,
        n_samples: int = 252,
        in_channels: int = 2,
        n_rr: int = 10,
        n_classes: int = 5,
        conv_widths: tuple[int, ...] | list[int] = (16, 32, 48),
        d_beat: int = 64,
        hidden: int = 64,
        num_layers: int = 1,
        dropout: float = 0.2,
        lookahead_beats: int = 1,
        rhythm_gate: dict[str, Any] | None = None,
        quality_gate: float | bool | None = None,
        output_delay: int = 0,
    ) -> None:
        super().__init__()
        for name, v in (
            ("n_samples", n_samples),
            ("in_channels", in_channels),
            ("n_rr", n_rr),
            ("n_classes", n_classes),
            ("d_beat", d_beat),
            ("hidden", hidden),
            ("num_layers", num_layers),
        ):
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_samples = int(n_samples)
        self.in_channels = int(in_channels)
        self.n_rr = int(n_rr)
        self.n_classes = int(n_classes)
        self.conv_widths = tuple(int(w) for w in conv_widths)
        self.d_beat = int(d_beat)
        self.hidden = int(hidden)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.lookahead_beats = int(lookahead_beats)
        if (
            self.lookahead_beats < 0
            or int(output_delay) < 0
            or int(output_delay) + self.lookahead_beats > MAX_LOOKAHEAD
        ):  # each on its own: a negative one would let the other past the limit
            raise ValueError(
                f"output_delay {output_delay} and the features' look-ahead "
                f"{self.lookahead_beats} must be >= 0 and their sum within {MAX_LOOKAHEAD} beats"
            )
        self.output_delay = int(output_delay)
        self.rhythm_gate = check_rhythm_gate(rhythm_gate, self.n_rr)
        self.quality_gate = check_quality_gate(quality_gate)

        self.encoder = BeatEncoder(in_channels, self.conv_widths, d_beat, dropout)
        self.rr_proj = nn.Linear(n_rr, d_beat)
        self.norm = nn.LayerNorm(d_beat)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(
            d_beat,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        # The head sees the GRU state (patient context) and the beat's own embedding
        # (a skip path, so a clear-cut beat need not be squeezed through the recurrence).
        self.head = nn.Sequential(
            nn.LayerNorm(hidden + d_beat),
            nn.Linear(hidden + d_beat, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    @property
    def n_features(self) -> int:
        """Length of one beat's feature vector, ``C * L + F``."""
        return self.in_channels * self.n_samples + self.n_rr

    def forward(
        self,
        x: torch.Tensor,
        h0: torch.Tensor | None = None,
        signal_ok: torch.Tensor | None = None,
        context_beats: int = 0,
        **extra: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-beat logits.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, T, C * L + F)`` features of T consecutive beats (see module docstring).
        h0 : torch.Tensor, optional
            ``(num_layers, B, H)`` hidden state carried from the previous chunk.
        signal_ok : torch.Tensor, optional
            ``(B, T)`` bool live signal-quality verdict of each beat, for the quality gate
            (:func:`apply_quality_gate`); None: every beat trusted.
        context_beats : int
            The last ``context_beats`` rows of ``x`` are look-ahead only: they give the
            beats before them their ``output_delay`` beats of context, their own logits are
            provisional (scored as if the record ended there), and ``h_n`` is the state
            before them. 0: every row is final.

        Returns
        -------
        logits : torch.Tensor
            ``(B, T, K)`` unnormalised class scores.
        h_n : torch.Tensor
            ``(num_layers, B, H)`` hidden state after the last final beat.
        """
        if x.dim() != 3 or x.shape[-1] != self.n_features:
            raise ValueError(
                f"x must be (B, T, {self.n_features}) = {self.in_channels} x {self.n_samples} "
                f"morphology + {self.n_rr} RR features, got shape {tuple(x.shape)}"
            )
        if extra:
            raise TypeError(f"unexpected inputs {sorted(extra)}")
        b, t = x.shape[:2]
        if not 0 <= int(context_beats) < max(t, 1):
            raise ValueError(f"context_beats must be in [0, {t}), got {context_beats}")
        require_finite(x, "beat features")
        if t == 0:  # nothing to score: the state goes on unchanged
            h_n = h0 if h0 is not None else x.new_zeros(self.num_layers, b, self.hidden)
            return x.new_zeros(b, 0, self.n_classes), h_n
        m = self.in_channels * self.n_samples
        morph = x[..., :m].reshape(b * t, self.in_channels, self.n_samples)
        rr = x[..., m:]
        e = self.encoder(morph).reshape(b, t, -1)  # (B, T, D)
        e = self.drop(self.norm(e + self.rr_proj(rr)))
        n_final = t - int(context_beats)
        y, h_n = self.gru(e[:, :n_final], h0)  # (B, n_final, H)
        if n_final < t:  # look-ahead rows: continue from the last final state, keep it
            y_ctx, _ = self.gru(e[:, n_final:], h_n)
            y = torch.cat([y, y_ctx], dim=1)
        if self.output_delay:  # beat k reads the state after beat k + d (record end: last)
            idx = (torch.arange(t, device=y.device) + self.output_delay).clamp(max=t - 1)
            y = y[:, idx]
        logits = self.head(torch.cat([y, e], dim=-1))
        logits = apply_rhythm_gate(logits, rr, self.rhythm_gate)
        return apply_quality_gate(logits, signal_ok, self.quality_gate), h_n

    def config_dict(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""
        return {
            "n_samples": self.n_samples,
            "in_channels": self.in_channels,
            "n_rr": self.n_rr,
            "n_classes": self.n_classes,
            "conv_widths": list(self.conv_widths),
            "d_beat": self.d_beat,
            "hidden": self.hidden,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "lookahead_beats": self.lookahead_beats,
            "rhythm_gate": self.rhythm_gate,
            "quality_gate": self.quality_gate,
            "output_delay": self.output_delay,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Self:
        """Rebuild from :meth:`config_dict` output."""
        return cls(**cfg)


class ArrhythmiaEnsemble(nn.Module):
    """Several :class:`ArrhythmiaGRU` members scoring the same beats; their class
    probabilities are averaged.

    Used for the models of a record-grouped cross-validation (each member trained on
    the other folds and early-stopped on its own, several seeds per fold): the members
    have seen different shares of the training patients from different starting
    points, and averaging them reduces the variance a single early-stopped network
    carries. The members run side by side; the carried state is
    their states stacked, so streaming works exactly as for one member.

    Parameters
    ----------
    members : list of dict
        :meth:`ArrhythmiaGRU.config_dict` of every member (same input layout and classes).
    rhythm_gate : dict, optional
        :func:`apply_rhythm_gate` setting applied to the averaged output.
    quality_gate : float or None
        :func:`apply_quality_gate` setting for the averaged output (when given
        ``signal_ok``).
    """

    def __init__(
        self,
        members: list[dict[str, Any]],
        rhythm_gate: dict[str, Any] | None = None,
        quality_gate: float | bool | None = None,
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        nets = [ArrhythmiaGRU.from_config(dict(m)) for m in members]
        first = nets[0]
        for n in nets[1:]:
            if (n.n_features, n.n_classes, n.lookahead_beats, n.hidden, n.output_delay) != (
                first.n_features,
                first.n_classes,
                first.lookahead_beats,
                first.hidden,
                first.output_delay,
            ):
                raise ValueError(
                    "ensemble members must share input layout, classes, look-ahead, output "
                    "delay and hidden size"
                )
        self.members = nn.ModuleList(nets)
        self.n_samples = first.n_samples
        self.in_channels = first.in_channels
        self.n_rr = first.n_rr
        self.n_classes = first.n_classes
        self.lookahead_beats = first.lookahead_beats
        self.output_delay = first.output_delay
        self.rhythm_gate = check_rhythm_gate(rhythm_gate, self.n_rr)
        self.quality_gate = check_quality_gate(quality_gate)

    @classmethod
    def of(
        cls,
        nets: list[ArrhythmiaGRU],
        rhythm_gate: dict[str, Any] | None = None,
        quality_gate: float | bool | None = None,
    ) -> Self:
        """An ensemble holding copies of trained ``nets``' weights."""
        ens = cls([n.config_dict() for n in nets], rhythm_gate, quality_gate)
        for dst, src in zip(ens.members, nets, strict=True):
            dst.load_state_dict(src.state_dict())
        return ens

    @property
    def n_features(self) -> int:
        """Length of one beat's feature vector, its members' (they share one layout)."""
        return self.members[0].n_features

    def forward(
        self,
        x: torch.Tensor,
        h0: torch.Tensor | None = None,
        signal_ok: torch.Tensor | None = None,
        context_beats: int = 0,
        **extra: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-beat log mean probability (a valid logit: its softmax is the mean).

        ``h0``/``h_n`` are ``(sum of members' num_layers, B, H)``, members in order;
        ``signal_ok`` and ``context_beats`` as in :meth:`ArrhythmiaGRU.forward`.
        """
        if extra:
            raise TypeError(f"unexpected inputs {sorted(extra)}")
        if x.shape[1] == 0:  # nothing to score (the members' rows would be empty)
            layers = sum(m.num_layers for m in self.members)
            h_n = x.new_zeros(layers, x.shape[0], self.members[0].hidden) if h0 is None else h0
            return x.new_zeros(x.shape[0], 0, self.n_classes), h_n
        states = (
            [None] * len(self.members)
            if h0 is None
            else list(torch.split(h0, [m.num_layers for m in self.members], dim=0))
        )
        probs = []
        h_out = []
        for m, h in zip(self.members, states, strict=True):
            logits, h_n = m(x, h, context_beats=context_beats)
            probs.append(torch.softmax(logits, dim=-1))
            h_out.append(h_n)
        mean = torch.stack(probs).mean(dim=0)
        logits = torch.log(mean.clamp_min(1e-12))
        rr = x[..., self.in_channels * self.n_samples :]
        logits = apply_rhythm_gate(logits, rr, self.rhythm_gate)
        return apply_quality_gate(logits, signal_ok, self.quality_gate), torch.cat(h_out, dim=0)

    def config_dict(self) -> dict[str, Any]:
        return {
            "members": [m.config_dict() for m in self.members],
            "rhythm_gate": self.rhythm_gate,
            "quality_gate": self.quality_gate,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Self:
        return cls(list(cfg["members"]), cfg.get("rhythm_gate"), cfg.get("quality_gate"))

"""GRU-D sepsis early-warning network (torch only).

A unidirectional GRU over hourly observations that handles missing measurements the way
GRU-D does (Che et al., "Recurrent Neural Networks for Multivariate Time Series with
Missing Values", Sci Rep 8:6085, 2018):

* input decay: a missing value is replaced by its last observation decayed toward the
  training mean (0 after z-scoring), ``x_hat = m x + (1 - m) gamma_x x_last`` with
  ``gamma_x = exp(-relu(w_x * delta + b_x))`` (diagonal, one rate per feature);
* hidden decay: before each step ``h <- gamma_h * h`` with
  ``gamma_h = exp(-relu(W_h delta + b_h))``, so a long gap fades the patient's memory;
* the mask is an input too (informative missingness: a lactate is drawn because a
  clinician worries), and so are static demographics.

Input layout per hour (built by :func:`vitalgru.data.gru_d_inputs.gru_d_arrays`):
``[value (F) | mask (F) | delta (F) | last value (F) | static (S)]``, values z-scored with
training statistics; a value slot whose mask is 0 is not read (it may hold NaN), every
other column must be finite. The network is causal: the output at hour ``t`` depends only on
hours ``<= t``, and ``forward(x, h0)`` continued from a returned ``h_n`` equals one
forward over the concatenated sequence (streaming).
"""

from __future__ import annotations

from typing import Any, Self

import torch
from torch import nn

from vitalgru.models.base import require_finite
from vitalgru.models.trees import BoostedTrees


class GRUDEarlyWarning(nn.Module):
    """GRU-D network giving a sepsis logit for every hour.

    Parameters
    ----------
    n_features : int
        Time-varying measurements ``F``.
    n_static : int
        Static inputs ``S`` appended after the four ``F``-blocks.
    hidden_size : int
        GRU state size ``H``.
    dropout : float
        Dropout on the hidden state before the output layer (training only).
    """

    def __init__(
        self, n_features: int, n_static: int, hidden_size: int = 64, dropout: float = 0.1
    ) -> None:
        super().__init__()
        if n_features < 1 or n_static < 0 or hidden_size < 1:
            raise ValueError(
                f"need n_features >= 1, n_static >= 0, hidden_size >= 1; got "
                f"{n_features}, {n_static}, {hidden_size}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_features = n_features
        self.n_static = n_static
        self.hidden_size = hidden_size
        self.dropout_p = dropout
        f, h = n_features, hidden_size
        self.input_size = 4 * f + n_static
        # Input decay: diagonal (one rate per feature), as in GRU-D.
        self.decay_x_w = nn.Parameter(torch.full((f,), 0.1))
        self.decay_x_b = nn.Parameter(torch.zeros(f))
        # Hidden decay from all features' time gaps.
        self.decay_h = nn.Linear(f, h)
        gru_in = 2 * f + n_static  # imputed values, mask, statics
        self.w_ih = nn.Linear(gru_in, 3 * h)
        self.w_hh = nn.Linear(h, 3 * h)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(h, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.w_ih.weight)
        for k in range(3):
            nn.init.orthogonal_(self.w_hh.weight[k * self.hidden_size : (k + 1) * self.hidden_size])
        nn.init.zeros_(self.w_ih.bias)
        nn.init.zeros_(self.w_hh.bias)
        nn.init.normal_(self.decay_h.weight, std=0.05)
        nn.init.zeros_(self.decay_h.bias)

    def config_dict(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""
        return {
            "n_features": self.n_features,
            "n_static": self.n_static,
            "hidden_size": self.hidden_size,
            "dropout": self.dropout_p,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Self:
        return cls(**cfg)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hourly sepsis logits.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, time, 4 * n_features + n_static)`` float, hours ascending.
        h0 : torch.Tensor, optional
            ``(1, batch, hidden_size)`` state from a previous chunk; zeros when None.
        last_only : bool
            Return the last hour's logit only (``time`` 1), as a blend does cheaply.

        Returns
        -------
        logits : torch.Tensor
            ``(batch, time, 1)`` log-odds that the hour is labelled septic (the per-step
            layout of :class:`vitalgru.models.base.SequenceModel`).
        h_n : torch.Tensor
            ``(1, batch, hidden_size)`` state after the last hour.
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be (batch, time, {self.input_size}), got {tuple(x.shape)}")
        b, t_len, _ = x.shape
        f = self.n_features
        val, mask, delta, last = (x[..., k * f : (k + 1) * f] for k in range(4))
        static = x[..., 4 * f :]
        # A value not measured is not read (``0 * NaN`` would still be NaN); the rest must
        # be numbers, or the state would carry the NaN through the stay.
        val = torch.where(mask > 0, val, torch.zeros_like(val))
        require_finite(val, "GRU-D measured values")
        require_finite(x[..., f:], "GRU-D masks, time gaps, last values and statics")
        gamma_x = torch.exp(-torch.relu(self.decay_x_w * delta + self.decay_x_b))
        x_hat = mask * val + (1.0 - mask) * gamma_x * last
        gamma_h = torch.exp(-torch.relu(self.decay_h(delta)))  # (B, T, H)
        gi = self.w_ih(torch.cat([x_hat, mask, static], dim=-1))  # (B, T, 3H), all hours at once
        if h0 is None:
            h = x.new_zeros(b, self.hidden_size)
        else:
            if h0.shape != (1, b, self.hidden_size):
                raise ValueError(f"h0 must be (1, {b}, {self.hidden_size}), got {tuple(h0.shape)}")
            h = h0[0]
        hs = []
        hh = self.hidden_size
        for t in range(t_len):
            h = gamma_h[:, t] * h
            gh = self.w_hh(h)
            g = gi[:, t]
            r = torch.sigmoid(g[:, :hh] + gh[:, :hh])
            z = torch.sigmoid(g[:, hh : 2 * hh] + gh[:, hh : 2 * hh])
            n = torch.tanh(g[:, 2 * hh :] + r * gh[:, 2 * hh :])
            h = (1.0 - z) * n + z * h
            hs.append(h)
        out = torch.stack(hs, dim=1) if hs else x.new_zeros(b, 0, self.hidden_size)
        if last_only:
            out = out[:, -1:]
        logits = self.head(self.drop(out))
        return logits, h.unsqueeze(0)


class SepsisBlend(nn.Module):
    """A GRU-D network and gradient-boosted trees scoring the same hours; the risk is a
    weighted mean of their probabilities.

    In cross-validation on set A the blend beat either model alone, with most of the
    weight on the trees (``benchmarks/results/early_warning.md``): the trees read the
    engineered summaries directly, the GRU carries each patient's course. Both parts are
    stored as tensors, so the blend logs, loads and streams like any vitalgru network.

    Input layout per hour: the GRU-D's ``4 * n_features + n_static`` columns followed by
    the trees' ``n_inputs`` raw engineered features (NaN where undefined). The state is the
    GRU's; the trees need none (the engineered summaries already carry the history).

    Parameters
    ----------
    gru : dict
        :meth:`GRUDEarlyWarning.config_dict`.
    trees : dict
        :meth:`vitalgru.models.trees.BoostedTrees.config_dict`.
    gru_weight : float
        Weight of the GRU's probability (the trees get ``1 - gru_weight``); no default,
        so a blend is always built with the weight it was validated with (the config's
        ``blend_gru_weight``).
    """

    def __init__(self, gru: dict[str, Any], trees: dict[str, Any], gru_weight: float) -> None:
        super().__init__()
        if not 0.0 <= gru_weight <= 1.0:
            raise ValueError(f"gru_weight must be in [0, 1], got {gru_weight}")
        self.gru = GRUDEarlyWarning.from_config(dict(gru))
        self.trees = BoostedTrees.from_config(dict(trees))
        self.gru_weight = float(gru_weight)
        self.gru_inputs = self.gru.input_size
        self.input_size = self.gru_inputs + self.trees.n_inputs
        self.hidden_size = self.gru.hidden_size

    @classmethod
    def of(cls, gru: GRUDEarlyWarning, trees: BoostedTrees, gru_weight: float) -> Self:
        """A blend holding copies of a trained network's and exported trees' tensors."""
        out = cls(gru.config_dict(), trees.config_dict(), gru_weight)
        out.gru.load_state_dict(gru.state_dict())
        out.trees.load_state_dict(trees.state_dict())
        return out

    def config_dict(self) -> dict[str, Any]:
        return {
            "gru": self.gru.config_dict(),
            "trees": self.trees.config_dict(),
            "gru_weight": self.gru_weight,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Self:
        return cls(**cfg)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hourly log-odds of the blended risk ``(batch, time, 1)`` and the GRU state;
        with ``last_only``, the last hour's (``time`` 1: the trees score that hour only)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be (batch, time, {self.input_size}), got {tuple(x.shape)}")
        g_logit, h_n = self.gru(x[..., : self.gru_inputs], h0, last_only)
        tree_x = x[:, -1:, self.gru_inputs :] if last_only else x[..., self.gru_inputs :]
        t_logit, _ = self.trees(tree_x)
        w = self.gru_weight
        p = w * torch.sigmoid(g_logit.double()) + (1.0 - w) * torch.sigmoid(t_logit.double())
        p = p.clamp(1e-12, 1.0 - 1e-12)
        return (torch.log(p) - torch.log1p(-p)).to(g_logit.dtype), h_n

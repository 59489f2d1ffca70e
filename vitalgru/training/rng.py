"""The caller's random generators, left as they were by a seeded training.

A fit seeds torch's and numpy's global generators (``torch.manual_seed``: weight
initialisation and dropout draw from torch's) so that one seed gives one set of weights.
Left seeded, they made every later draw of the caller's process the same after each fit:
a notebook that trained a model and then drew a random sample drew the same one whatever
its own seed. :func:`kept_rng` puts back the states it found when the outermost such block
exits; the blocks inside leave them to it, so a training whose steps seed again (one fit
per fold) draws exactly what it drew before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["kept_rng"]

# Open kept_rng blocks (a training calls fits that hold their own): the outermost puts back.
_depth = [0]


@contextmanager
def kept_rng() -> Iterator[None]:
    """Put back torch's and numpy's global random states (CPU) when the outermost block
    exits, however it exits; what the block draws or seeds inside is unchanged."""
    outermost = _depth[0] == 0
    if outermost:
        torch_state = torch.random.get_rng_state()
        np_state = np.random.get_state()
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if outermost:
            torch.random.set_rng_state(torch_state)
            np.random.set_state(np_state)

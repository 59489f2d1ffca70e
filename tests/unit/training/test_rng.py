"""A training's seeding stays inside it: the caller's generators are put back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitalgru.training.rng import kept_rng


class TestKeptRng:
    def test_puts_back_the_states_it_found_even_on_an_error(self) -> None:
        torch.manual_seed(7)
        np.random.seed(7)
        expected = (torch.rand(3), np.random.rand(3))
        torch.manual_seed(7)
        np.random.seed(7)
        with pytest.raises(RuntimeError), kept_rng():
            torch.manual_seed(0)
            np.random.seed(0)
            raise RuntimeError("a fit failed")
        torch.testing.assert_close(torch.rand(3), expected[0], rtol=0, atol=0)
        np.testing.assert_array_equal(np.random.rand(3), expected[1])

    def test_an_inner_block_leaves_the_states_to_the_outermost(self) -> None:
        # a training seeds, fits (a block of its own) and draws on: what it draws after
        # the fit is what it drew before the fits kept the generators
        with kept_rng():
            torch.manual_seed(3)
            with kept_rng():
                torch.manual_seed(5)
                torch.rand(2)
            after_inner = torch.rand(2)
        torch.manual_seed(5)
        torch.rand(2)
        torch.testing.assert_close(after_inner, torch.rand(2), rtol=0, atol=0)

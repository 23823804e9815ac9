"""aggregate: consensus / variability against numpy (population std)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from uqxai_lib import aggregate


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_consensus_and_variability_match_numpy_population_statistics(dtype):
    m = torch.relu(torch.randn(6, 3, 5, 4, generator=torch.Generator().manual_seed(0))).to(dtype)
    c, v = aggregate.consensus(m), aggregate.variability(m)
    assert c.shape == v.shape == (3, 5, 4) and c.dtype == v.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    np.testing.assert_allclose(c.double().numpy(), m.double().numpy().mean(0), atol=tol)
    np.testing.assert_allclose(v.double().numpy(), m.double().numpy().std(0, ddof=0), atol=tol)


def test_summarize_equals_the_two_functions_and_single_map_has_zero_variability():
    m = torch.rand(4, 2, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = aggregate.summarize(m)
    torch.testing.assert_close(s.consensus, aggregate.consensus(m))
    torch.testing.assert_close(s.variability, aggregate.variability(m))
    assert (aggregate.variability(m[:1]) == 0).all()


def test_integer_stacks_become_float32_and_bad_shapes_are_rejected():
    assert aggregate.consensus(torch.ones(2, 3, 4, dtype=torch.long)).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[S, B, \*spatial\]"):
        aggregate.variability(torch.rand(5))

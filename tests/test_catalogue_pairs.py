"""The catalogue's overlapping-window pairs: found by one sort, equal to checking every pair."""

from __future__ import annotations

import numpy as np
import pytest

from evstudy.catalogue import _overlapping_pairs


@pytest.mark.parametrize("seed", range(20))
def test_overlapping_pairs_equal_the_every_pair_check(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    starts = rng.integers(0, 60, n)  # many ties and touching ends
    ends = starts + rng.integers(0, 8, n)
    expected = {
        (i, j) for i in range(n) for j in range(i + 1, n)
        if starts[i] <= ends[j] and starts[j] <= ends[i]
    }
    first, second = _overlapping_pairs(starts, ends)
    found = list(zip(first.tolist(), second.tolist()))
    assert len(found) == len(set(found)) and set(found) == expected

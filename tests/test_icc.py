"""ICC(2,1) in numpy against pingouin and against Shrout & Fleiss (1979)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfosstats.stats.counts import count_agreement, icc_absolute_agreement

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their ICC(2,1) is 0.29.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
)


def test_shrout_fleiss_published_value():
    assert round(icc_absolute_agreement(SHROUT_FLEISS), 2) == 0.29


@pytest.mark.parametrize("seed", range(5))
def test_equals_pingouin_through_count_agreement(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 80)), int(rng.integers(2, 15))
    matrix = rng.integers(0, 60, (n, k)) + rng.integers(0, 150, (n, 1))
    counts = pd.DataFrame({
        "image_id": np.repeat([f"{i:03d}" for i in range(n)], k),
        "rater": np.tile([f"r{j:02d}" for j in range(k)], n),
        "count": matrix.ravel(),
    })  # fmt: skip
    reference = count_agreement(counts).set_index("shrout_fleiss").loc["ICC(2,1)", "value"]
    assert icc_absolute_agreement(matrix) == pytest.approx(reference, abs=1e-13)


def test_undefined_and_too_small():
    assert np.isnan(icc_absolute_agreement(np.full((4, 3), 7)))
    with pytest.raises(ValueError, match="at least 2 images and 2 raters"):
        icc_absolute_agreement(np.ones((1, 3)))

"""Fleiss' kappa (against statsmodels and hand-worked cases) and the rated items it is computed on
(objects matched across raters plus random background proposals)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from cfosstats.objects.label import index_mask_objects
from cfosstats.objects.overlaps import index_objects
from cfosstats.objects.rating_items import object_groups, rating_items
from cfosstats.stats.fleiss import fleiss_kappa, kappa_by_strategy, landis_koch

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa", worked example): 10 items, 14 raters,
# 5 categories; P_bar = 0.378, P_e = 0.213, kappa = 0.210.
WORKED = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def test_the_worked_example():
    assert fleiss_kappa(WORKED) == pytest.approx(0.2099, abs=1e-4)
    assert landis_koch(fleiss_kappa(WORKED)) == "fair"


@pytest.mark.parametrize("seed", range(6))
def test_equals_statsmodels_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    n_raters, n_categories = int(rng.integers(2, 9)), int(rng.integers(2, 5))
    table = np.stack([rng.multinomial(n_raters, rng.dirichlet(np.ones(n_categories))) for _ in range(40)])
    assert fleiss_kappa(table) == pytest.approx(statsmodels_fleiss_kappa(table, method="fleiss"), rel=1e-12)


def test_undefined_and_bad_tables():
    assert np.isnan(fleiss_kappa([[3, 0], [3, 0]]))  # one category only: chance agreement is 1
    assert np.isnan(fleiss_kappa(np.zeros((0, 2))))
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([[2, 0], [1, 0]])
    with pytest.raises(ValueError, match="at least 2 raters"):
        fleiss_kappa([[1, 0], [0, 1]])


def test_landis_koch_band_edges():
    assert [landis_koch(k) for k in (0.0, 0.2, 0.21, 0.4, 0.6, 0.8, 1.0)] == [
        "slight", "slight", "fair", "fair", "moderate", "substantial", "almost perfect",
    ]  # fmt: skip
    assert landis_koch(float("nan")) == ""


def _square(mask, top, left, side=4):
    mask[top : top + side, left : left + side] = True


def _hand_worked_raters():
    """Three raters on a 40 x 40 image: object X found by all, Y by a and c, Z by c alone."""
    masks = {name: np.zeros((40, 40), bool) for name in "abc"}
    for name in "abc":
        _square(masks[name], 2, 2)  # X
    _square(masks["a"], 20, 20)  # Y
    _square(masks["c"], 20, 21)  # Y, shifted by one column: IoU 12/20 = 0.6 > 0.5
    _square(masks["c"], 2, 30)  # Z
    return {name: index_mask_objects(mask) for name, mask in masks.items()}


def test_a_hand_worked_object_case():
    """Items: X (3 present), Y (2), Z (1), and 3 background proposals (0 present). With 3 raters:
    P_i = 1, 1/3, 1/3, 1, 1, 1 -> P_bar = 7/9; p_present = 6/18 -> P_e = 1/9 + 4/9 = 5/9;
    kappa = (7/9 - 5/9) / (4/9) = 0.5."""
    items = rating_items(_hand_worked_raters(), seed=1)
    assert items["kind"].tolist() == ["object"] * 3 + ["background"] * 3
    assert items["n_present"].tolist() == [3, 2, 1, 0, 0, 0]
    items["image_id"], items["strategy"] = "1", "annotators"
    result = kappa_by_strategy(items).iloc[0]
    assert result["kappa"] == pytest.approx(0.5, abs=1e-15)
    present = items["n_present"].to_numpy()
    table = np.stack([present, 3 - present], axis=1)
    assert result["kappa"] == pytest.approx(statsmodels_fleiss_kappa(table), abs=1e-15)
    assert result["landis_koch"] == "moderate"


def test_a_full_background_takes_fewer_proposals():
    """A 9 x 9 image with a one-pixel object in the middle has room for at most four 4 x 4
    squares beside it: fewer proposals are made than asked for, and the count says so."""
    from cfosstats.objects.rating_items import background_proposals

    small = np.zeros((9, 9), bool)
    small[4, 4] = True
    crowded = {"a": index_mask_objects(small), "b": index_mask_objects(small)}
    square = [np.argwhere(np.ones((4, 4), bool))]
    assert 1 <= background_proposals(crowded, square, 10, np.random.default_rng(0)) <= 4
    roomy = _hand_worked_raters()
    assert background_proposals(roomy, square, 10, np.random.default_rng(0)) == 10


def test_proposals_never_overlap_foreground_and_follow_the_seed(monkeypatch):
    import cfosstats.objects.rating_items as module

    indices = _hand_worked_raters()
    ignore = np.zeros((40, 40), bool)
    ignore[30:, :] = True
    marks = []
    original = module.background_proposals

    def spying(indices, footprints, n, rng, ignore=None):
        state = rng.bit_generator.state
        count = original(indices, footprints, n, rng, ignore)
        rng.bit_generator.state = state  # replay the same draws to see where they went
        marks.append(_placed_pixels(indices, footprints, n, rng, ignore))
        return count

    monkeypatch.setattr(module, "background_proposals", spying)
    first = rating_items(indices, seed=5, ignore=ignore)
    second = rating_items(indices, seed=5, ignore=ignore)
    pd.testing.assert_frame_equal(first, second)
    occupied = ignore.copy()
    for index in indices.values():
        occupied.reshape(-1)[index.foreground] = True
    assert marks[0].sum() == 3 * 16 and not (marks[0] & occupied).any()
    assert np.array_equal(marks[0], marks[1])


def _placed_pixels(indices, footprints, n, rng, ignore):
    """Where background_proposals puts its regions (the same draws, in the same order)."""
    from cfosstats.objects.rating_items import MAX_TRIES_PER_PROPOSAL

    shape = next(iter(indices.values())).shape
    occupied = np.zeros(shape, bool) if ignore is None else ignore.copy()
    for index in indices.values():
        occupied.reshape(-1)[index.foreground] = True
    placed = np.zeros(shape, bool)
    for _ in range(n):
        footprint = footprints[int(rng.integers(len(footprints)))]
        height, width = footprint.max(axis=0) + 1
        for _ in range(MAX_TRIES_PER_PROPOSAL):
            top, left = int(rng.integers(shape[0] - height + 1)), int(rng.integers(shape[1] - width + 1))
            rows, cols = footprint[:, 0] + top, footprint[:, 1] + left
            if not occupied[rows, cols].any():
                occupied[rows, cols] = placed[rows, cols] = True
                break
    return placed


def test_a_chain_of_matches_counts_each_rater_once():
    """a1-b1 (IoU 7/13), b1-c1 (7/13) and c1-a2 (6/11) match, so a's two objects end in one
    group (one-to-one matching forbids it within a pair, not along a chain): a counts once."""
    a = np.zeros((1, 20), np.int32)
    a[0, 0:10], a[0, 10:17] = 1, 2
    b = np.zeros((1, 20), np.int32)
    b[0, 3:13] = 1
    c = np.zeros((1, 20), np.int32)
    c[0, 6:16] = 1
    indices = {"a": index_objects(a), "b": index_objects(b), "c": index_objects(c)}
    groups = object_groups(indices)
    assert groups == [[("a", 0), ("a", 1), ("b", 0), ("c", 0)]]
    items = rating_items(indices)
    assert items.loc[items["kind"] == "object", "n_present"].tolist() == [3]


def test_kappa_uses_only_images_with_all_raters():
    items = pd.DataFrame(
        {
            "image_id": ["1", "1", "2"],
            "strategy": "annotators",
            "kind": ["object", "background", "object"],
            "n_present": [3, 0, 1],
            "n_raters": [3, 3, 2],
        }
    )
    row = kappa_by_strategy(items).iloc[0]
    assert (row["n_images"], row["n_object_items"], row["kappa"]) == (1, 1, 1.0)

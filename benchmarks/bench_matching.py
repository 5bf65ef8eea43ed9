"""Benchmark: fast sparse object matching vs the per-pair full-image matching of the study.

On the real lab-wue1 masks (36 images, expert_1..expert_5 and est_GT), every label set is
labelled once (8-connected, min size 30), then every ordered pair of the 6 label sets is matched
on every image:

(a) fast: ``cfosstats.objects.matching.match_labels`` (one pass over the pixels, sparse assignment);
(b) slow: the approach of the study's code (``iou_mapping`` in github.com/matjesg/
    bioimage_analysis): for each reference object the rater labels under it are the candidate
    pairs, the IoU of each candidate pair is computed with full-image boolean operations, and a
    dense Hungarian (scipy's linear_sum_assignment) maximises summed IoU; TP = assigned pairs
    with IoU > 0.5.

Both run in the same process; the true-positive counts must be identical. The slow approach
takes minutes on all 36 images, so by default it runs on a spread-out subset and its total is
extrapolated per pair (``--slow-images 36`` times everything).

Usage::

    python benchmarks/bench_matching.py [--data ../shared/data/train_data] [--slow-images N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

from cfosstats.core.imageio import read_mask  # noqa: E402
from cfosstats.objects.label import label_objects  # noqa: E402
from cfosstats.objects.matching import index_objects, match_labels  # noqa: E402

LABEL_SETS = ("expert_1", "expert_2", "expert_3", "expert_4", "expert_5", "est_GT")
MIN_SIZE = 30
THRESHOLD = 0.5
DEFAULT_DATA = REPO.parent / "shared" / "data" / "train_data"


def match_per_pair_full_image(rater: np.ndarray, reference: np.ndarray, threshold: float) -> int:
    """TP count the study's way: full-image boolean IoU per candidate pair + dense Hungarian.

    Slightly kinder than the original (which found candidates with ``np.unique`` over all pixel
    pairs and computed each IoU with ``scipy.spatial.distance.jaccard`` on flattened images):
    each reference object's mask is computed once and reused for all its candidates.
    """
    similarity = np.zeros((int(rater.max()) + 1, int(reference.max()) + 1))  # row/col 0 unused
    for j in range(1, similarity.shape[1]):
        in_reference = reference == j
        candidates = np.unique(rater[in_reference])
        for i in candidates[candidates > 0]:
            in_rater = rater == i
            intersection = np.count_nonzero(in_rater & in_reference)
            similarity[i, j] = intersection / np.count_nonzero(in_rater | in_reference)
    rows, cols = linear_sum_assignment(-similarity)
    return int(np.count_nonzero(similarity[rows, cols] > threshold))


def load_wue1_labels(data: Path) -> dict[str, dict[str, np.ndarray]]:
    label_folder = data / "lab-wue1" / "labels"
    image_ids = sorted(p.name.split("_")[0] for p in (label_folder / "est_GT").glob("*_cFOS.png"))
    if not image_ids:
        raise SystemExit(f"no lab-wue1 masks found under {label_folder}")
    return {
        image_id: {
            label_set: label_objects(
                read_mask(label_folder / label_set / f"{image_id}_cFOS.png"), min_size=MIN_SIZE
            )
            for label_set in LABEL_SETS
        }
        for image_id in image_ids
    }


def ordered_pairs() -> list[tuple[str, str]]:
    return [(a, b) for a in LABEL_SETS for b in LABEL_SETS if a != b]


def run_fast(labels, image_ids, indexed=True, assignment="iou_sum") -> tuple[float, dict]:
    """Fast matching of every ordered pair; `indexed`: index each label image once first
    (included in the time), else hand the label images themselves to every match."""
    tps = {}
    start = time.perf_counter()
    for image_id in image_ids:
        images = labels[image_id]
        if indexed:
            images = {label_set: index_objects(images[label_set]) for label_set in LABEL_SETS}
        for rater, reference in ordered_pairs():
            result = match_labels(images[rater], images[reference], THRESHOLD, "gt", assignment)
            tps[image_id, rater, reference] = result.tp
    return time.perf_counter() - start, tps


def run_slow(labels, image_ids) -> tuple[float, dict]:
    tps = {}
    start = time.perf_counter()
    for image_id in image_ids:
        for rater, reference in ordered_pairs():
            tps[image_id, rater, reference] = match_per_pair_full_image(
                labels[image_id][rater], labels[image_id][reference], THRESHOLD
            )
    return time.perf_counter() - start, tps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_arg", nargs="?", type=Path, help="train_data folder (positional)")
    parser.add_argument("--data", type=Path, default=None, help=f"default {DEFAULT_DATA}")
    parser.add_argument(
        "--slow-images", type=int, default=6,
        help="images for the slow approach, spread over the set (36 = all; default 6)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    data = args.data or args.data_arg or DEFAULT_DATA

    start = time.perf_counter()
    labels = load_wue1_labels(data)
    load_seconds = time.perf_counter() - start
    image_ids = sorted(labels)
    n_objects = [int(labels[i][s].max()) for i in image_ids for s in LABEL_SETS]
    print(f"data: {data / 'lab-wue1'}")
    print(
        f"{len(image_ids)} images x {len(LABEL_SETS)} label sets read and labelled once "
        f"(8-connected, min size {MIN_SIZE}) in {load_seconds:.1f} s; "
        f"objects per label image: median {int(np.median(n_objects))}, max {max(n_objects)}"
    )

    # Warm-up (imports, caches) so neither side pays one-off costs inside its timing.
    run_fast(labels, image_ids[:1])
    run_fast(labels, image_ids[:1], indexed=False)

    n_slow_images = max(1, min(args.slow_images, len(image_ids)))
    subset = [image_ids[k] for k in np.linspace(0, len(image_ids) - 1, n_slow_images).astype(int)]
    subset = list(dict.fromkeys(subset))
    # Interleaved on the same machine state: fast on all images, slow and fast on the subset.
    fast_seconds, fast_tp = run_fast(labels, image_ids)
    plain_seconds, plain_tp = run_fast(labels, image_ids, indexed=False)
    slow_seconds, slow_tp = run_slow(labels, subset)
    fast_subset_seconds, _ = run_fast(labels, subset)
    plain_subset_seconds, _ = run_fast(labels, subset, indexed=False)
    n_fast, n_slow = len(fast_tp), len(slow_tp)

    assert plain_tp == fast_tp, "indexed and plain fast matching differ"
    mismatches = {key: (fast_tp[key], tp) for key, tp in slow_tp.items() if fast_tp[key] != tp}
    assert not mismatches, f"TP counts differ (fast, slow): {mismatches}"

    slow_per_pair = slow_seconds / n_slow
    slow_all_seconds = slow_per_pair * n_fast
    measured_all = n_slow == n_fast
    extrapolated = "measured" if measured_all else f"extrapolated from {len(subset)} images"
    rows = [
        ("(a) fast, each label image indexed once", n_fast, fast_seconds),
        ("(a') fast, label images passed as arrays", n_fast, plain_seconds),
        ("(a) fast, indexed, slow subset only", n_slow, fast_subset_seconds),
        ("(a') fast, arrays, slow subset only", n_slow, plain_subset_seconds),
        ("(b) per-pair full-image (study), subset", n_slow, slow_seconds),
        (f"(b) per-pair full-image, all ({extrapolated})", n_fast, slow_all_seconds),
    ]
    print()
    print(f"matching every ordered pair of label sets, IoU > {THRESHOLD} (rule 'iou_sum');")
    print("fast times include indexing; all times single-threaded, same process")
    print(f"{'approach':<58}{'pairs':>6}{'seconds':>9}{'ms/pair':>9}")
    for name, n, seconds in rows:
        print(f"{name:<58}{n:>6}{seconds:>9.2f}{1e3 * seconds / n:>9.2f}")
    print()
    print("speed-up of (a) over (b) on the same pairs (both measured): "
          f"{slow_seconds / fast_subset_seconds:.0f}x "
          f"(arrays: {slow_seconds / plain_subset_seconds:.0f}x)")  # fmt: skip
    how = "measured" if measured_all else "slow side extrapolated per pair"
    print(f"speed-up of (a) over (b) on all pairs ({how}): {slow_all_seconds / fast_seconds:.0f}x "
          f"(arrays: {slow_all_seconds / plain_seconds:.0f}x)")  # fmt: skip
    print(f"TP counts identical on all {n_slow} pairs compared "
          f"({sum(slow_tp.values())} TPs in total)")  # fmt: skip

    # How often does the study's rule differ from stardist's (max TP count) on real masks?
    _, stardist_tp = run_fast(labels, image_ids, assignment="tp_count")
    differing = {k: (fast_tp[k], stardist_tp[k]) for k in fast_tp if fast_tp[k] != stardist_tp[k]}
    print(f"pairs where the 'iou_sum' (study) and 'tp_count' (stardist) rules give other TP "
          f"counts at IoU > {THRESHOLD}: {len(differing)} of {n_fast}")  # fmt: skip
    for (image_id, rater, reference), (study, stardist) in sorted(differing.items())[:10]:
        print(f"  {image_id} {rater} vs {reference}: {study} vs {stardist}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Agreement between annotators (and with the estimated ground truth): objects, pixels, counts.

Pure functions: label images, masks and tidy DataFrames in, tidy DataFrames out. The columns of
every table are fixed and documented in each function; :mod:`cfosstats.analyses.objectivity` maps the
per-image functions over a lab and writes the tables.

Tables and where they come from
-------------------------------
``pairwise_object_agreement`` (per image)   -> the *objects* table: one row per ordered pair
``annotator_vs_reference_summary(objects)`` -> per annotator median F1 against the reference
``pairwise_f1_matrix(objects)``             -> mean and median F1 per ordered pair over images
``pixel_dice`` (per image)                   -> pixel Dice per unordered pair
``count_agreement(counts)``                  -> ICC (6 types) and Krippendorff's alpha of counts
``bland_altman(counts)``                     -> per image differences to the reference + limits
``expert_range(objects)``                    -> per image worst and best annotator F1

The count statistics (ICC, Krippendorff's alpha, Bland-Altman) live in
:mod:`~cfosstats.stats.counts` and are re-exported here.

Examples
--------
>>> import numpy as np
>>> a = np.zeros((4, 8), np.int32); a[1:3, 1:3] = 1; a[1:3, 5:7] = 2
>>> b = np.zeros((4, 8), np.int32); b[1:3, 1:3] = 1
>>> table = pairwise_object_agreement({"expert_1": a, "expert_2": b}, image_id="0001")
>>> table[["rater", "reference", "tp", "precision", "recall"]]
      rater reference  tp  precision  recall
0  expert_1  expert_2   1        0.5     1.0
1  expert_2  expert_1   1        1.0     0.5
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from itertools import combinations

import numpy as np
import pandas as pd

from cfosstats.objects.matching import MatchResult, match_pairs

# re-exported: public API of this module (the count agreement lives in counts)
from cfosstats.stats.counts import (
    ALPHA_LEVELS,
    BLAND_ALTMAN_COLUMNS,
    COUNT_AGREEMENT_COLUMNS,
    bland_altman,
    bland_altman_summary,
    count_agreement,
)

__all__ = [
    "ALPHA_LEVELS",
    "BLAND_ALTMAN_COLUMNS",
    "COUNT_AGREEMENT_COLUMNS",
    "EXPERT_RANGE_COLUMNS",
    "OBJECT_AGREEMENT_COLUMNS",
    "PIXEL_DICE_COLUMNS",
    "PLACEMENTS",
    "annotator_vs_reference_summary",
    "bland_altman",
    "bland_altman_summary",
    "count_agreement",
    "expert_range",
    "f1_matrix",
    "pairwise_f1_matrix",
    "pairwise_object_agreement",
    "pixel_dice",
    "place_in_expert_range",
]

OBJECT_AGREEMENT_COLUMNS = (
    "image_id",
    "rater",
    "reference",
    "n_rater",
    "n_reference",
    "tp",
    "precision",
    "recall",
    "f1",
    "mean_iou",
)
PIXEL_DICE_COLUMNS = (
    "image_id",
    "rater_a",
    "rater_b",
    "pixels_a",
    "pixels_b",
    "pixels_both",
    "dice",
)
EXPERT_RANGE_COLUMNS = (
    "image_id",
    "reference",
    "n_raters",
    "f1_min",
    "f1_max",
    "worst_rater",
    "best_rater",
)
PLACEMENTS = ("below", "within", "above", "undefined")


# -- objects ----------------------------------------------------------------------------------


def pairwise_object_agreement(
    labels: Mapping[str, np.ndarray],
    image_id: str,
    threshold: float = 0.5,
    criterion: str = "gt",
    matches: Mapping[tuple[str, str], MatchResult] | None = None,
) -> pd.DataFrame:
    """Object-level agreement of every ordered pair of label images of one image.

    Each unordered pair is matched once with :func:`cfosstats.objects.matching.match_labels`; the
    reverse row swaps the roles (precision <-> recall, n_rater <-> n_reference). True positives,
    F1 and mean IoU do not depend on which side is the reference.

    Parameters
    ----------
    labels : mapping of str to ndarray of int, shape (H, W), or to ObjectIndex
        Label source name (annotator, ``est_GT``, model) -> label image of its objects (already
        size-filtered and with ignored regions removed, e.g. by
        :func:`cfosstats.objects.label.label_objects`), or its index
        (:func:`cfosstats.objects.label.index_mask_objects`), which saves indexing it here.
    image_id : str
        Written into the ``image_id`` column.
    threshold : float, default 0.5
        IoU threshold of a true positive.
    criterion : {"gt", "ge"}, default "gt"
        ``gt``: IoU strictly above `threshold` (the paper's rule); ``ge``: at or above.
    matches : mapping, optional
        The pairs already matched with these options
        (:func:`cfosstats.objects.matching.match_pairs` of `labels`); else matched here.

    Returns
    -------
    DataFrame
        One row per ordered pair (rater, reference), rater != reference, sorted by rater then
        reference. Columns (:data:`OBJECT_AGREEMENT_COLUMNS`):

        - ``image_id`` (str)
        - ``rater``, ``reference`` (str): the compared label sources;
        - ``n_rater``, ``n_reference`` (int): objects of each;
        - ``tp`` (int): matched pairs with IoU passing the threshold;
        - ``precision`` = tp / n_rater, ``recall`` = tp / n_reference,
          ``f1`` = 2 tp / (n_rater + n_reference), ``mean_iou`` (mean IoU of the true
          positives), with the zero-count conventions of ``match_labels``.

    Examples
    --------
    >>> import numpy as np
    >>> one = np.zeros((3, 3), np.int32); one[1, 1] = 1
    >>> pairwise_object_agreement({"a": one, "b": one, "c": one}, "x")["f1"].tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    if matches is None:
        matches = match_pairs(labels, threshold, criterion)
    rows = []
    for rater, reference in combinations(labels, 2):
        result = matches[rater, reference]
        forward = {
            "image_id": image_id,
            "rater": rater,
            "reference": reference,
            "n_rater": int(result.n_rater),
            "n_reference": int(result.n_reference),
            "tp": int(result.tp),
            "precision": float(result.precision),
            "recall": float(result.recall),
            "f1": float(result.f1),
            "mean_iou": float(result.mean_iou),
        }
        backward = dict(
            forward,
            rater=reference,
            reference=rater,
            n_rater=forward["n_reference"],
            n_reference=forward["n_rater"],
            precision=forward["recall"],
            recall=forward["precision"],
        )
        rows += [forward, backward]
    table = pd.DataFrame(rows, columns=list(OBJECT_AGREEMENT_COLUMNS))
    table = table.astype({c: "int64" for c in ("n_rater", "n_reference", "tp")})
    return table.sort_values(["rater", "reference"], kind="stable").reset_index(drop=True)


def _against_reference(objects: pd.DataFrame, reference: str) -> pd.DataFrame:
    rows = objects[(objects["reference"] == reference) & (objects["rater"] != reference)]
    if rows.empty:
        raise ValueError(f"no rows with reference '{reference}' in the objects table")
    return rows


def annotator_vs_reference_summary(objects: pd.DataFrame, reference: str = "est_GT") -> pd.DataFrame:
    """Each rater's object F1 against one reference, summarised over images.

    Parameters
    ----------
    objects : DataFrame
        Rows of :func:`pairwise_object_agreement` for any number of images.
    reference : str, default "est_GT"
        The reference label source.

    Returns
    -------
    DataFrame
        One row per rater (sorted), columns: ``rater``, ``reference``, ``n_images``,
        ``f1_median``, ``f1_q25``, ``f1_q75``, ``f1_iqr`` (= q75 - q25; quantiles by linear
        interpolation), ``f1_mean``, ``precision_median``, ``recall_median``,
        ``mean_iou_median``. NaN F1s (no objects on either side) are left out of the statistics
        and of ``n_images``.

    Examples
    --------
    >>> import pandas as pd
    >>> objects = pd.DataFrame({"image_id": ["1", "2", "3"], "rater": "a",
    ...     "reference": "est_GT", "f1": [0.6, 0.8, 1.0], "precision": 1.0, "recall": 1.0,
    ...     "mean_iou": 0.9})
    >>> annotator_vs_reference_summary(objects)[["rater", "f1_median", "f1_iqr"]]
      rater  f1_median  f1_iqr
    0     a        0.8     0.2
    """
    rows = _against_reference(objects, reference)
    summaries = []
    for rater, group in rows.groupby("rater", sort=True):
        f1 = group["f1"].dropna()
        q25, q75 = (f1.quantile(0.25), f1.quantile(0.75)) if len(f1) else (np.nan, np.nan)
        summaries.append(
            {
                "rater": rater,
                "reference": reference,
                "n_images": int(len(f1)),
                "f1_median": f1.median(),
                "f1_q25": q25,
                "f1_q75": q75,
                "f1_iqr": q75 - q25,
                "f1_mean": f1.mean(),
                "precision_median": group["precision"].median(),
                "recall_median": group["recall"].median(),
                "mean_iou_median": group["mean_iou"].median(),
            }
        )
    return pd.DataFrame(summaries)


def pairwise_f1_matrix(objects: pd.DataFrame) -> pd.DataFrame:
    """Object F1 of every ordered pair (rater, reference), summarised over images.

    Parameters
    ----------
    objects : DataFrame
        Rows of :func:`pairwise_object_agreement`.

    Returns
    -------
    DataFrame
        Long table, one row per ordered pair, sorted: ``rater``, ``reference``, ``n_images``,
        ``f1_mean``, ``f1_median``, ``f1_sd`` (ddof 1; NaN for one image). F1 is symmetric, so
        (a, b) and (b, a) carry the same numbers; both rows are kept so that the matrix from
        :func:`f1_matrix` is complete.

    Examples
    --------
    >>> import pandas as pd
    >>> objects = pd.DataFrame({"image_id": ["1", "1", "2", "2"], "rater": ["a", "b"] * 2,
    ...     "reference": ["b", "a"] * 2, "f1": [0.5, 0.5, 0.7, 0.7]})
    >>> pairwise_f1_matrix(objects)[["rater", "reference", "n_images", "f1_mean"]]
      rater reference  n_images  f1_mean
    0     a         b         2      0.6
    1     b         a         2      0.6
    """
    grouped = objects.groupby(["rater", "reference"], sort=True)["f1"]
    table = grouped.agg(n_images="count", f1_mean="mean", f1_median="median", f1_sd="std")
    table["n_images"] = table["n_images"].astype("int64")
    return table.reset_index()


def f1_matrix(pairwise_f1: pd.DataFrame, statistic: str = "f1_mean") -> pd.DataFrame:
    """Pivot :func:`pairwise_f1_matrix` into a square matrix: rows raters, columns references.

    The diagonal (a source against itself) is NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> long = pd.DataFrame({"rater": ["a", "b"], "reference": ["b", "a"],
    ...     "f1_mean": [0.6, 0.6]})
    >>> f1_matrix(long)  # doctest: +NORMALIZE_WHITESPACE
    reference    a    b
    rater
    a          NaN  0.6
    b          0.6  NaN
    """
    names = sorted(set(pairwise_f1["rater"]) | set(pairwise_f1["reference"]))
    matrix = pairwise_f1.pivot(index="rater", columns="reference", values=statistic)
    return matrix.reindex(index=names, columns=names)


# -- pixels -----------------------------------------------------------------------------------


def pixel_dice(masks: Mapping[str, np.ndarray], image_id: str) -> pd.DataFrame:
    """Pixel Dice coefficient of every unordered pair of masks of one image.

    Parameters
    ----------
    masks : mapping of str to ndarray of bool, shape (H, W)
        Label source -> binary mask (ignored regions already removed).
    image_id : str
        Written into the ``image_id`` column.

    Returns
    -------
    DataFrame
        One row per unordered pair in the mapping's order. Columns
        (:data:`PIXEL_DICE_COLUMNS`): ``image_id``, ``rater_a``, ``rater_b``, ``pixels_a``,
        ``pixels_b``, ``pixels_both`` (foreground pixel counts), ``dice`` =
        2 both / (a + b). Two empty masks agree perfectly: Dice 1.0.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[1, 0, 0, 0]], bool)
    >>> pixel_dice({"a": a, "b": b, "c": np.zeros_like(a)}, "x")["dice"].round(3).tolist()
    [0.667, 0.0, 0.0]
    """
    arrays = {name: _as_bool(mask) for name, mask in masks.items()}
    shapes = {array.shape for array in arrays.values()}
    if len(shapes) > 1:
        raise ValueError(f"masks of image {image_id} differ in shape: {sorted(shapes)}")
    sizes = {name: int(np.count_nonzero(array)) for name, array in arrays.items()}
    rows = []
    scratch = None  # one buffer for every pair's intersection, not a new image per pair
    for name_a, name_b in combinations(arrays, 2):
        scratch = np.logical_and(arrays[name_a], arrays[name_b], out=scratch)
        both = int(np.count_nonzero(scratch))
        total = sizes[name_a] + sizes[name_b]
        rows.append(
            {
                "image_id": image_id,
                "rater_a": name_a,
                "rater_b": name_b,
                "pixels_a": sizes[name_a],
                "pixels_b": sizes[name_b],
                "pixels_both": both,
                "dice": 2 * both / total if total else 1.0,
            }
        )
    return pd.DataFrame(rows, columns=list(PIXEL_DICE_COLUMNS))


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """The mask as bool (non-zero = True), without a copy when it already is one."""
    mask = np.asarray(mask)
    return mask if mask.dtype == bool else mask > 0


# -- expert range -----------------------------------------------------------------------------


def expert_range(
    objects: pd.DataFrame,
    reference: str = "est_GT",
    raters: Collection[str] | None = None,
) -> pd.DataFrame:
    """Per image, the worst and the best rater's object F1 against the reference.

    The paper's model selection rule keeps a model only if, on every image, its F1 against
    the estimated ground truth is at least the worst annotator's.

    Parameters
    ----------
    objects : DataFrame
        Rows of :func:`pairwise_object_agreement`.
    reference : str, default "est_GT"
    raters : collection of str, optional
        Raters that span the range (default: every rater compared with `reference`).

    Returns
    -------
    DataFrame
        One row per image, columns (:data:`EXPERT_RANGE_COLUMNS`): ``image_id``,
        ``reference``, ``n_raters``, ``f1_min``, ``f1_max``, ``worst_rater``, ``best_rater``
        (ties go to the first rater in name order). NaN F1s are left out.

    Examples
    --------
    >>> import pandas as pd
    >>> objects = pd.DataFrame({"image_id": ["1", "1"], "rater": ["a", "b"],
    ...     "reference": "est_GT", "f1": [0.7, 0.9]})
    >>> expert_range(objects)[["image_id", "f1_min", "f1_max", "worst_rater"]]
      image_id  f1_min  f1_max worst_rater
    0        1     0.7     0.9           a
    """
    rows = _against_reference(objects, reference)
    if raters is not None:
        rows = rows[rows["rater"].isin(list(raters))]
    rows = rows.dropna(subset=["f1"]).sort_values(["image_id", "rater"], kind="stable")
    records = []
    for image_id, group in rows.groupby("image_id", sort=True):
        worst = group.loc[group["f1"].idxmin()]
        best = group.loc[group["f1"].idxmax()]
        records.append(
            {
                "image_id": image_id,
                "reference": reference,
                "n_raters": int(len(group)),
                "f1_min": float(worst["f1"]),
                "f1_max": float(best["f1"]),
                "worst_rater": worst["rater"],
                "best_rater": best["rater"],
            }
        )
    return pd.DataFrame(records, columns=list(EXPERT_RANGE_COLUMNS))


def place_in_expert_range(
    f1_table: pd.DataFrame, expert_range_table: pd.DataFrame, f1_column: str = "f1"
) -> pd.DataFrame:
    """Label each F1 (e.g. a model's, per image) as below, within or above the experts' range.

    ``below``: F1 < the worst annotator's; ``above``: F1 > the best annotator's; otherwise
    ``within`` (the bounds themselves are within, so a model equal to the worst annotator
    passes the paper's selection rule); ``undefined`` where the F1 is NaN (no objects in
    either mask).

    Parameters
    ----------
    f1_table : DataFrame
        Columns ``image_id`` and `f1_column`; other columns (model name, ...) are kept.
    expert_range_table : DataFrame
        From :func:`expert_range`.
    f1_column : str, default "f1"

    Returns
    -------
    DataFrame
        `f1_table` with ``f1_min``, ``f1_max`` and ``placement`` added, rows in input order.

    Raises
    ------
    ValueError
        When an image of `f1_table` has no expert range (never a silent NaN).

    Examples
    --------
    >>> import pandas as pd
    >>> ranges = pd.DataFrame({"image_id": ["1", "2", "3"], "f1_min": 0.6, "f1_max": 0.8})
    >>> model = pd.DataFrame({"image_id": ["1", "2", "3"], "f1": [0.5, 0.6, 0.9]})
    >>> place_in_expert_range(model, ranges)["placement"].tolist()
    ['below', 'within', 'above']
    """
    bounds = expert_range_table[["image_id", "f1_min", "f1_max"]]
    placed = f1_table.merge(bounds, on="image_id", how="left", validate="many_to_one")
    unknown = placed.loc[placed["f1_min"].isna(), "image_id"].unique().tolist()
    if unknown:
        raise ValueError(f"no expert range for image(s) {unknown}")
    f1 = placed[f1_column]
    placed["placement"] = np.select(
        [f1.isna(), f1 < placed["f1_min"], f1 > placed["f1_max"]],
        ["undefined", "below", "above"],
        default="within",
    )
    return placed

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

import warnings
from collections.abc import Collection, Mapping
from itertools import combinations

import numpy as np
import pandas as pd

from cfosstats.objects.matching import index_objects, match_labels

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
COUNT_AGREEMENT_COLUMNS = (
    "statistic",
    "type",
    "shrout_fleiss",
    "description",
    "value",
    "ci95_low",
    "ci95_high",
    "f",
    "df1",
    "df2",
    "p_value",
    "n_images",
    "n_raters",
)
BLAND_ALTMAN_COLUMNS = (
    "rater",
    "reference",
    "image_id",
    "count_rater",
    "count_reference",
    "mean",
    "diff",
    "n_images",
    "bias",
    "sd",
    "loa_low",
    "loa_high",
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

# Pingouin 0.7 names its ICCs after McGraw & Wong; these are Shrout & Fleiss's names (1979).
_ICC_TYPES = {
    "ICC(1,1)": ("ICC(1,1)", "one-way random effects, single rater"),
    "ICC(A,1)": ("ICC(2,1)", "two-way random effects, absolute agreement, single rater"),
    "ICC(C,1)": ("ICC(3,1)", "two-way mixed effects, consistency, single rater"),
    "ICC(1,k)": ("ICC(1,k)", "one-way random effects, mean of k raters"),
    "ICC(A,k)": ("ICC(2,k)", "two-way random effects, absolute agreement, mean of k raters"),
    "ICC(C,k)": ("ICC(3,k)", "two-way mixed effects, consistency, mean of k raters"),
}
ALPHA_LEVELS = ("interval", "ratio")


def _pandas4_warning() -> type[Warning]:
    """The warning pingouin 0.7 raises under pandas 3 (absent from older pandas)."""
    from pandas import errors

    return getattr(errors, "Pandas4Warning", FutureWarning)


# -- objects ----------------------------------------------------------------------------------


def pairwise_object_agreement(
    labels: Mapping[str, np.ndarray],
    image_id: str,
    threshold: float = 0.5,
    criterion: str = "gt",
) -> pd.DataFrame:
    """Object-level agreement of every ordered pair of label images of one image.

    Each unordered pair is matched once with :func:`cfosstats.objects.matching.match_labels`; the
    reverse row swaps the roles (precision <-> recall, n_rater <-> n_reference). True positives,
    F1 and mean IoU do not depend on which side is the reference.

    Parameters
    ----------
    labels : mapping of str to ndarray of int, shape (H, W)
        Label source name (annotator, ``est_GT``, model) -> label image of its objects (already
        size-filtered and with ignored regions removed, e.g. by
        :func:`cfosstats.objects.label.label_objects`).
    image_id : str
        Written into the ``image_id`` column.
    threshold : float, default 0.5
        IoU threshold of a true positive.
    criterion : {"gt", "ge"}, default "gt"
        ``gt``: IoU strictly above `threshold` (the paper's rule); ``ge``: at or above.

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
    names = list(labels)
    # Index each label image once: every pair then reads only foreground pixels.
    indexed = {name: index_objects(labels[name], name) for name in names}
    rows = []
    for rater, reference in combinations(names, 2):
        result = match_labels(indexed[rater], indexed[reference], threshold, criterion=criterion)
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
    arrays = {name: np.asarray(mask) > 0 for name, mask in masks.items()}
    shapes = {array.shape for array in arrays.values()}
    if len(shapes) > 1:
        raise ValueError(f"masks of image {image_id} differ in shape: {sorted(shapes)}")
    sizes = {name: int(np.count_nonzero(array)) for name, array in arrays.items()}
    rows = []
    for name_a, name_b in combinations(arrays, 2):
        both = int(np.count_nonzero(arrays[name_a] & arrays[name_b]))
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


# -- counts -----------------------------------------------------------------------------------


def _count_matrix(counts: pd.DataFrame, exclude: Collection[str] = ()) -> pd.DataFrame:
    """images x raters matrix of counts (NaN where a rater did not count an image)."""
    missing = {"image_id", "rater", "count"} - set(counts.columns)
    if missing:
        raise ValueError(f"counts table lacks column(s) {sorted(missing)}")
    counts = counts[~counts["rater"].isin(list(exclude))]
    duplicated = counts.duplicated(["image_id", "rater"])
    if duplicated.any():
        first = counts[duplicated].iloc[0]
        raise ValueError(f"more than one count for image {first['image_id']}, {first['rater']}")
    return counts.pivot(index="image_id", columns="rater", values="count").astype(float)


def count_agreement(counts: pd.DataFrame, exclude: Collection[str] = ()) -> pd.DataFrame:
    """Agreement of the raters' object counts: six ICCs and Krippendorff's alpha.

    ICCs come from :func:`pingouin.intraclass_corr` on images with a count from every rater
    (images with a missing count are left out). Krippendorff's alpha (interval and ratio
    level, :func:`krippendorff.alpha`) uses every count, missing ones included. Undefined
    values (every count the same: 0/0) are NaN, not errors; with fewer than 2 complete images
    the ICC rows are left out.

    Parameters
    ----------
    counts : DataFrame
        Columns ``image_id``, ``rater``, ``count``; one row per (image, rater).
    exclude : collection of str, optional
        Raters to leave out (e.g. ``{"est_GT"}`` for agreement among humans only).

    Returns
    -------
    DataFrame
        Eight rows, columns (:data:`COUNT_AGREEMENT_COLUMNS`):

        - ``statistic``: ``icc`` or ``krippendorff_alpha``;
        - ``type``: pingouin's (McGraw & Wong) ICC name, e.g. ``ICC(A,1)``, or the alpha
          level ``interval`` / ``ratio``;
        - ``shrout_fleiss``: the Shrout & Fleiss (1979) name, e.g. ``ICC(2,1)`` (empty for
          alpha);
        - ``description``: the model in words;
        - ``value``; ``ci95_low``, ``ci95_high`` (ICC only, unrounded);
        - ``f``, ``df1``, ``df2``, ``p_value``: the ICC's F test (NaN / <NA> for alpha);
        - ``n_images``, ``n_raters``: what the statistic used.

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"image_id": ["1", "2", "3"] * 2, "rater": ["a"] * 3 + ["b"] * 3,
    ...     "count": [1, 5, 9, 3, 5, 7]})
    >>> table = count_agreement(counts)
    >>> table.set_index("shrout_fleiss").loc["ICC(3,1)", "value"].round(3)
    np.float64(0.8)
    """
    import krippendorff
    import pingouin

    matrix = _count_matrix(counts, exclude)
    n_raters = matrix.shape[1]
    if n_raters < 2:
        raise ValueError(f"count agreement needs at least 2 raters, got {n_raters}")
    complete = matrix.dropna()
    rows = []
    if len(complete) >= 2:
        long = complete.reset_index().melt(id_vars="image_id", var_name="rater", value_name="count")
        saved_rounding = pingouin.options.get("round.column.CI95")
        try:
            pingouin.options["round.column.CI95"] = None  # pingouin rounds CIs to 2 decimals
            # Perfect agreement makes mean squares 0: F and some ICCs are x/0 (inf or NaN,
            # which is the answer), so numpy's divide warnings are silenced here.
            with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                warnings.filterwarnings("ignore", category=_pandas4_warning())
                icc = pingouin.intraclass_corr(data=long, targets="image_id", raters="rater", ratings="count")
        finally:
            pingouin.options["round.column.CI95"] = saved_rounding
        for record in icc.to_dict("records"):
            shrout_fleiss, description = _ICC_TYPES[record["Type"]]
            low, high = (float(v) for v in record["CI95"])
            rows.append(
                {
                    "statistic": "icc",
                    "type": record["Type"],
                    "shrout_fleiss": shrout_fleiss,
                    "description": description,
                    "value": float(record["ICC"]),
                    "ci95_low": low,
                    "ci95_high": high,
                    "f": float(record["F"]),
                    "df1": int(record["df1"]),
                    "df2": int(record["df2"]),
                    "p_value": float(record["pval"]),
                    "n_images": int(len(complete)),
                    "n_raters": n_raters,
                }
            )
    # krippendorff wants raters x units; NaN marks a missing count.
    reliability = matrix.to_numpy().T
    pairable = int((np.isfinite(matrix.to_numpy()).sum(axis=1) >= 2).sum())
    n_values = np.unique(reliability[np.isfinite(reliability)]).size
    for level in ALPHA_LEVELS:
        # Alpha is undefined (0/0) without two pairable units or with a single value.
        value = (
            float(krippendorff.alpha(reliability_data=reliability, level_of_measurement=level))
            if pairable >= 2 and n_values >= 2
            else np.nan
        )
        rows.append(
            {
                "statistic": "krippendorff_alpha",
                "type": level,
                "shrout_fleiss": "",
                "description": f"Krippendorff's alpha, {level} metric",
                "value": value,
                "n_images": pairable,
                "n_raters": n_raters,
            }
        )
    table = pd.DataFrame(rows, columns=list(COUNT_AGREEMENT_COLUMNS))
    # Integer columns stay integers next to the alpha rows' missing values.
    return table.astype({"df1": "Int64", "df2": "Int64", "n_images": "int64", "n_raters": "int64"})


def bland_altman(counts: pd.DataFrame, reference: str = "est_GT") -> pd.DataFrame:
    """Bland-Altman comparison of each rater's counts with a reference's, per image.

    Parameters
    ----------
    counts : DataFrame
        Columns ``image_id``, ``rater``, ``count``; the reference is one of the raters.
    reference : str, default "est_GT"

    Returns
    -------
    DataFrame
        One row per (rater, image) with counts from both, ready to plot (x = ``mean``, y =
        ``diff``). Columns (:data:`BLAND_ALTMAN_COLUMNS`): ``rater``, ``reference``,
        ``image_id``, ``count_rater``, ``count_reference``, ``mean`` (of the two), ``diff``
        (rater - reference), and the rater's summary repeated on each of its rows:
        ``n_images``, ``bias`` (mean diff), ``sd`` (SD of diff, ddof 1), ``loa_low`` /
        ``loa_high`` (bias -/+ 1.96 sd, the 95% limits of agreement). Use
        :func:`bland_altman_summary` for one row per rater.

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"image_id": ["1", "2", "3"] * 2,
    ...     "rater": ["est_GT"] * 3 + ["a"] * 3, "count": [10, 20, 30, 12, 18, 33]})
    >>> bland_altman(counts)[["image_id", "diff", "bias"]]
      image_id  diff  bias
    0        1   2.0   1.0
    1        2  -2.0   1.0
    2        3   3.0   1.0
    """
    matrix = _count_matrix(counts)
    if reference not in matrix.columns:
        raise ValueError(f"no counts of the reference '{reference}'")
    tables = []
    for rater in sorted(c for c in matrix.columns if c != reference):
        pair = matrix[[rater, reference]].dropna()
        diff = pair[rater] - pair[reference]
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else np.nan
        bias = float(diff.mean()) if len(diff) else np.nan
        tables.append(
            pd.DataFrame(
                {
                    "rater": rater,
                    "reference": reference,
                    "image_id": pair.index.to_numpy(),
                    "count_rater": pair[rater].to_numpy(),
                    "count_reference": pair[reference].to_numpy(),
                    "mean": ((pair[rater] + pair[reference]) / 2).to_numpy(),
                    "diff": diff.to_numpy(),
                    "n_images": len(diff),
                    "bias": bias,
                    "sd": sd,
                    "loa_low": bias - 1.96 * sd,
                    "loa_high": bias + 1.96 * sd,
                },
                columns=list(BLAND_ALTMAN_COLUMNS),
            )
        )
    if not tables:
        return pd.DataFrame(columns=list(BLAND_ALTMAN_COLUMNS))
    return pd.concat(tables, ignore_index=True)


def bland_altman_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per rater of a :func:`bland_altman` table (its summary columns).

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"image_id": ["1", "2"] * 2, "rater": ["est_GT"] * 2 + ["a"] * 2,
    ...     "count": [10, 20, 11, 21]})
    >>> bland_altman_summary(bland_altman(counts))[["rater", "bias", "sd"]]
      rater  bias   sd
    0     a   1.0  0.0
    """
    columns = ["rater", "reference", "n_images", "bias", "sd", "loa_low", "loa_high"]
    return table[columns].drop_duplicates("rater").reset_index(drop=True)


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

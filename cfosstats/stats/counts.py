"""Agreement of the raters' object counts: ICCs, Krippendorff's alpha and Bland-Altman.

Pure functions on a tidy counts table (``image_id``, ``rater``, ``count``); the object-level and
pixel-level agreement are in :mod:`cfosstats.stats.agreement`, which re-exports these.
"""

from __future__ import annotations

from collections.abc import Collection

import krippendorff
import numpy as np
import pandas as pd

from cfosstats.stats.fdist import f_ppf, f_sf

__all__ = [
    "ALPHA_LEVELS",
    "BLAND_ALTMAN_COLUMNS",
    "COUNT_AGREEMENT_COLUMNS",
    "bland_altman",
    "bland_altman_summary",
    "count_agreement",
    "ICC_COLUMNS",
    "icc_absolute_agreement",
    "intraclass_correlations",
]

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

# The types are McGraw & Wong's names (as pingouin's); the values Shrout & Fleiss's (1979).
_ICC_TYPES = {
    "ICC(1,1)": ("ICC(1,1)", "one-way random effects, single rater"),
    "ICC(A,1)": ("ICC(2,1)", "two-way random effects, absolute agreement, single rater"),
    "ICC(C,1)": ("ICC(3,1)", "two-way mixed effects, consistency, single rater"),
    "ICC(1,k)": ("ICC(1,k)", "one-way random effects, mean of k raters"),
    "ICC(A,k)": ("ICC(2,k)", "two-way random effects, absolute agreement, mean of k raters"),
    "ICC(C,k)": ("ICC(3,k)", "two-way mixed effects, consistency, mean of k raters"),
}
ALPHA_LEVELS = ("interval", "ratio")


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

    ICCs come from :func:`intraclass_correlations` (pingouin's ``intraclass_corr`` formulas, in
    numpy) on images with a count from every rater (images with a missing count are left out).
    Krippendorff's alpha (interval and ratio level, :func:`krippendorff.alpha`) uses every
    count, missing ones included. Undefined values (every count the same: 0/0) are NaN, not
    errors; with fewer than 2 complete images the ICC rows are left out.

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
        - ``type``: the McGraw & Wong ICC name (as pingouin names it), e.g. ``ICC(A,1)``, or the alpha
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
    matrix = _count_matrix(counts, exclude)
    n_raters = matrix.shape[1]
    if n_raters < 2:
        raise ValueError(f"count agreement needs at least 2 raters, got {n_raters}")
    complete = matrix.dropna()
    rows = []
    if len(complete) >= 2:
        for record in intraclass_correlations(complete.to_numpy()).to_dict("records"):
            shrout_fleiss, description = _ICC_TYPES[record["type"]]
            rows.append(
                {
                    "statistic": "icc",
                    "shrout_fleiss": shrout_fleiss,
                    "description": description,
                    **record,
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


#: Columns of :func:`intraclass_correlations`.
ICC_COLUMNS = ("type", "value", "ci95_low", "ci95_high", "f", "df1", "df2", "p_value")


def _mean_squares(matrix: np.ndarray) -> tuple[int, int, float, float, float, float]:
    """n, k and the mean squares of the two-way ANOVA without replication of images x raters.

    Returns ``n, k, ms_rows (targets), ms_within (one-way), ms_cols (raters), ms_error``.
    """
    y = np.asarray(matrix, dtype=np.float64)
    n, k = y.shape
    if n < 2 or k < 2:
        raise ValueError(f"ICC needs at least 2 images and 2 raters, got {n} x {k}")
    grand = y.mean()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((y - grand) ** 2).sum() - ss_rows - ss_cols
    ms_within = (ss_cols + ss_error) / (n * (k - 1))
    return n, k, ss_rows / (n - 1), ms_within, ss_cols / (k - 1), ss_error / ((n - 1) * (k - 1))


def intraclass_correlations(matrix: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """The six ICCs of a complete images x raters matrix, with F tests and confidence intervals.

    The formulas of :func:`pingouin.intraclass_corr` (Shrout & Fleiss 1979; McGraw & Wong 1996;
    the ICC(A,·) interval with Satterthwaite's degrees of freedom), computed from the mean
    squares in closed form instead of pingouin's long-format ANOVA: the same values to 1e-11
    relative (tested against pingouin; 3e-16 on lab-wue1's counts), without importing pingouin,
    scipy.stats and matplotlib (about 1 s of a command's start-up). F quantiles and tails come
    from :mod:`cfosstats.stats.fdist` (``scipy.special``'s ``fdtri`` and ``fdtrc`` to 1e-11
    relative, without its 0.2-0.3 s import).

    Parameters
    ----------
    matrix : ndarray, shape (n_images, n_raters)
        Counts (any ratings), no missing values; at least 2 images and 2 raters.
    alpha : float, default 0.05
        ``ci95_*`` are the two-sided ``1 - alpha`` limits.

    Returns
    -------
    DataFrame
        Six rows, columns (:data:`ICC_COLUMNS`): ``type`` (``ICC(1,1)``, ``ICC(A,1)``,
        ``ICC(C,1)``, ``ICC(1,k)``, ``ICC(A,k)``, ``ICC(C,k)``), ``value``, ``ci95_low``,
        ``ci95_high``, ``f``, ``df1``, ``df2`` (int), ``p_value``. Undefined values (every
        rating equal: 0/0) are NaN.

    Examples
    --------
    >>> table = intraclass_correlations(np.array([[1, 3], [5, 5], [9, 7]]))
    >>> row = table.set_index("type").loc["ICC(C,1)"]
    >>> float(row["value"]), float(row["f"]), int(row["df1"]), int(row["df2"])
    (0.8, 9.0, 2, 2)
    """

    def fdtrc(d1, d2, f):  # scipy.special's argument order
        return f_sf(float(f), float(d1), float(d2))

    def fdtri(d1, d2, q):
        return f_ppf(float(q), float(d1), float(d2))

    n, k, msb, msw, msj, mse = _mean_squares(matrix)
    quantile = 1 - alpha / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        # Perfect agreement makes the mean squares 0: x/0 is inf or NaN, which is the answer.
        msb, msw, msj, mse = (np.float64(v) for v in (msb, msw, msj, mse))
        icc1 = (msb - msw) / (msb + (k - 1) * msw)
        icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
        icc3 = (msb - mse) / (msb + (k - 1) * mse)
        icc1k = (msb - msw) / msb
        icc2k = (msb - mse) / (msb + (msj - mse) / n)
        icc3k = (msb - mse) / msb
        df1, df1kd, df2kd = n - 1, n * (k - 1), (n - 1) * (k - 1)
        f1k, f3k = msb / msw, msb / mse
        p1k, p3k = fdtrc(df1, df1kd, f1k), fdtrc(df1, df2kd, f3k)
        # one-way and consistency: exact F limits
        f1l, f1u = f1k / fdtri(df1, df1kd, quantile), f1k * fdtri(df1kd, df1, quantile)
        f3l, f3u = f3k / fdtri(df1, df2kd, quantile), f3k * fdtri(df2kd, df1, quantile)
        l1, u1 = (f1l - 1) / (f1l + (k - 1)), (f1u - 1) / (f1u + (k - 1))
        l3, u3 = (f3l - 1) / (f3l + (k - 1)), (f3u - 1) / (f3u + (k - 1))
        # absolute agreement: Satterthwaite's approximate degrees of freedom v
        fj = msj / mse
        vn = df2kd * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = df1 * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        f2u, f2l = fdtri(n - 1, v, quantile), fdtri(v, n - 1, quantile)
        l2 = n * (msb - f2u * mse) / (f2u * (k * msj + (k * n - k - n) * mse) + n * msb)
        u2 = n * (f2l * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f2l * msb)
        limits = [
            (l1, u1),
            (l2, u2),
            (l3, u3),
            (1 - 1 / f1l, 1 - 1 / f1u),
            (l2 * k / (1 + l2 * (k - 1)), u2 * k / (1 + u2 * (k - 1))),
            (1 - 1 / f3l, 1 - 1 / f3u),
        ]
    table = pd.DataFrame(
        {
            "type": ["ICC(1,1)", "ICC(A,1)", "ICC(C,1)", "ICC(1,k)", "ICC(A,k)", "ICC(C,k)"],
            "value": [icc1, icc2, icc3, icc1k, icc2k, icc3k],
            "ci95_low": [float(low) for low, _ in limits],
            "ci95_high": [float(high) for _, high in limits],
            "f": [f1k, f3k, f3k, f1k, f3k, f3k],
            "df1": df1,
            "df2": [df1kd, df2kd, df2kd, df1kd, df2kd, df2kd],
            "p_value": [p1k, p3k, p3k, p1k, p3k, p3k],
        },
        columns=list(ICC_COLUMNS),
    )
    return table.astype({"value": float, "f": float, "p_value": float, "df1": int, "df2": int})


def icc_absolute_agreement(matrix: np.ndarray) -> float:
    """ICC(2,1) (McGraw & Wong's ICC(A,1)) of a complete images x raters matrix, in numpy.

    Two-way random effects, absolute agreement, single rater, from the mean squares of the
    two-way ANOVA without replication (Shrout & Fleiss 1979): the value
    :func:`intraclass_correlations` computes, for one ICC only (no table, no F quantiles: for
    the thousands of resamples of a bootstrap).

    Parameters
    ----------
    matrix : ndarray, shape (n_images, n_raters)
        Counts, no missing values; at least 2 images and 2 raters.

    Returns
    -------
    float
        NaN where undefined (every count equal: 0/0).

    Examples
    --------
    >>> icc_absolute_agreement(np.array([[1, 3], [5, 5], [9, 7]]))
    0.8571428571428571
    """
    n, k, ms_rows, _, ms_cols, ms_error = _mean_squares(matrix)
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(ms_rows - ms_error) / denominator) if denominator else float("nan")


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

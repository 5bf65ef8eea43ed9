"""Plain-words summaries of what a `Lab` holds (for `cfosstats inspect` and the report)."""

from __future__ import annotations

from cfosstats.datasets.lab import Lab
from cfosstats.datasets.predictions import training_flag


def _counts(series) -> str:
    counts = series.dropna().astype(str).value_counts().sort_index()
    return ", ".join(f"{k} ({v})" for k, v in counts.items()) if len(counts) else "none"


def lab_summary(lab: Lab) -> dict[str, str]:
    """Key facts of a lab as an ordered mapping of label -> text.

    Examples
    --------
    >>> from cfosstats.datasets import load_lab
    >>> lab = load_lab("mue", data="../shared/data/train_data")
    >>> lab_summary(lab)["images"]
    '5'
    """
    meta = lab.metadata
    conditions = meta["condition"]
    if conditions.notna().any():
        condition_text = _counts(conditions)
    else:
        condition_text = f"not in the data (registry: {', '.join(lab.config.conditions)})"
    return {
        "layout": lab.layout,
        "label": lab.config.label,
        "min object size": f"{lab.config.min_object_size} px",
        "images": str(len(meta)),
        "training images": str(int(training_flag(meta).sum())),
        "annotators": ", ".join(lab.annotators) or "none",
        "estimated ground truth": (
            f"published est_GT ({len(lab.label_sources['est_GT'].files)} masks)"
            if lab.has_published_gt
            else "none published (STAPLE estimate will be used)"
        ),
        "strata": (
            f"{meta['stratum'].nunique()} strata: {_counts(meta['stratum'])}"
            if meta["stratum"].notna().any()
            else "none"
        ),
        "conditions": condition_text,
        "areas": _counts(meta["area"]),
        "animals": str(meta["animal"].nunique()) if meta["animal"].notna().any() else "unknown",
        "regions": ", ".join(f"{r} ({len(f)})" for r, f in lab.region_files.items()) or "none",
        "ignored regions": f"{len(lab.ignore_files)} images" if lab.ignore_files else "none",
        "predicted label sets": str(sum(s.is_prediction for s in lab.label_sources.values())),
    }

"""The quantification table of a validity run: one row per (image, label source, region).

:func:`quantification_table` joins the measurements to the metadata and marks each row
excluded, in-sample and analysed; :func:`normalise` divides the readouts by the control group's
mean (:func:`~cfosstats.stats.quantify.normalise_to_control`); :func:`source_warnings` lists what
was degenerate. Rows of ``warnings.csv`` are made by :func:`warning_row`.
"""

from __future__ import annotations

import pandas as pd

from cfosstats.analyses.grouping import Grouping
from cfosstats.analyses.plan import SourcePlan
from cfosstats.stats.quantify import IMAGE_COLUMNS, READOUTS, WHOLE_IMAGE, normalise_to_control

__all__ = [
    "METADATA_KEEP",
    "MIN_IMAGES",
    "WARNING_COLUMNS",
    "normalise",
    "quantification_table",
    "source_warnings",
    "testable_sources",
    "warning_row",
]

MIN_IMAGES = 3  # per group, for a label source to be tested
WARNING_COLUMNS = ("source", "region", "readout", "image_id", "message")
METADATA_KEEP = ("condition", "stratum", "experiment", "animal", "training")


def warning_row(source="", region="", readout="", image_id="", message="") -> dict:
    """One row of ``warnings.csv`` (:data:`WARNING_COLUMNS`)."""
    return {"source": source, "region": region, "readout": readout, "image_id": image_id, "message": message}


def quantification_table(lab, plans, measured, grouping, excluded, include_in_sample) -> pd.DataFrame:
    """``quantification.csv`` before normalisation: measurements, metadata and row flags."""
    meta = lab.metadata.set_index("image_id")
    strategy = {p.name: p for p in plans}
    rows = []
    for (image_id, source), records in measured["quantify"].items():
        plan = strategy[source]
        in_sample = image_id in plan.in_sample
        for record in records or []:
            rows.append(
                {
                    "image_id": image_id,
                    "source": source,
                    "strategy": plan.strategy,
                    "in_sample": in_sample,
                    "in_sample_basis": plan.basis,
                    **record,
                }
            )
    columns = ["image_id", "source", "strategy", "in_sample", "in_sample_basis", *IMAGE_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    for column in METADATA_KEEP:
        table[column] = table["image_id"].map(meta[column]) if len(table) else pd.Series(dtype=object)
    table["group"] = table[grouping.column].map(lambda g: None if pd.isna(g) else str(g))
    table["excluded"] = table["image_id"].isin(list(excluded))
    usable = ~table["excluded"] & table["group"].isin(list(grouping.order))
    table["analysed"] = usable & (include_in_sample | ~table["in_sample"].astype(bool))
    order = [
        "image_id",
        "source",
        "strategy",
        "region",
        "group",
        *METADATA_KEEP,
        "in_sample",
        "in_sample_basis",
        "excluded",
        "analysed",
        *[c for c in IMAGE_COLUMNS if c != "region"],
    ]
    source_order = {p.name: i for i, p in enumerate(plans)}
    table = table[order].assign(_s=table["source"].map(source_order))
    return (
        table.sort_values(["_s", "region", "image_id"], kind="stable")
        .drop(columns="_s")
        .reset_index(drop=True)
    )


def normalise(table: pd.DataFrame, grouping: Grouping) -> tuple[pd.DataFrame, list[dict]]:
    """Readouts divided by the control mean; warnings of the sources that can be tested."""
    table, notes = normalise_to_control(table, list(READOUTS), "group", grouping.control, use="analysed")
    ordered = [c for c in table.columns if not c.endswith(("_control_mean", "_normalised"))]
    for readout in READOUTS:
        ordered += [f"{readout}_control_mean"]
    for readout in READOUTS:
        ordered += [f"{readout}_normalised"]
    # Sources skipped for too few images in a group get their own note; no normalisation noise.
    testable = testable_sources(table, grouping)
    warnings_rows = [
        warning_row(
            n["source"],
            n["region"],
            n["readout"],
            "",
            f"experiment {n['experiment'] if pd.notna(n['experiment']) else '(one)'}: {n['note']}",
        )
        for n in notes.to_dict("records")
        if (n["source"], n["region"]) in testable
    ]
    return table[ordered], warnings_rows


def testable_sources(table: pd.DataFrame, grouping: Grouping) -> set[tuple[str, str]]:
    """(source, region) with at least MIN_IMAGES analysed images in every group."""
    analysed = table[table["analysed"]]
    sizes = analysed.groupby(["source", "region", "group"]).size().unstack("group")
    sizes = sizes.reindex(columns=list(grouping.order)).fillna(0)
    return set(sizes.index[(sizes >= MIN_IMAGES).all(axis=1)])


def source_warnings(table: pd.DataFrame, plans: list[SourcePlan], lab) -> list[dict]:
    """Warnings of sources without masks or objects, images without regions or group."""
    rows = []
    counted = table.groupby("source")["n_objects"].sum() if len(table) else pd.Series(dtype=int)
    for plan in plans:
        if not plan.files:
            rows.append(warning_row(plan.name, message="label source has no masks"))
        elif counted.get(plan.name, 0) == 0:
            rows.append(
                warning_row(
                    plan.name,
                    message="label source has no objects in any image (empty masks): "
                    "density 0 everywhere, intensity undefined",
                )
            )
    if lab.region_files:
        for image_id in lab.image_ids:
            if not lab.regions_of(image_id):
                rows.append(
                    warning_row(
                        image_id=image_id,
                        message=f"no region mask: analysed whole, as region '{WHOLE_IMAGE}'",
                    )
                )
    no_group = table.loc[table["group"].isna(), "image_id"].unique() if len(table) else []
    for image_id in no_group:
        rows.append(
            warning_row(image_id=image_id, message="no group (condition / stratum): left out of the tests")
        )
    return rows

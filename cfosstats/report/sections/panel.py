"""The image panel: one field of view outlined by every annotator, est_GT and an ensemble.

The drawing is :mod:`cfosstats.report.panel`'s; this module picks the image, the outlines and the
uncertainty map, and caches the PNG by the checksums of the files it shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cfosstats.core.hashing import sha256_file
from cfosstats.core.imageio import read_image, read_mask
from cfosstats.datasets.layout import ESTIMATED_GT
from cfosstats.report.document import Figure, Note, Section
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.figures import strategy_label
from cfosstats.report.panel import (
    ENSEMBLE_COLOUR,
    GT_COLOUR,
    OUTLINE_COLOURS,
    Outline,
    choose_field,
    crop,
    draw_panel,
    entropy_of_votes,
)
from cfosstats.report.text import (
    has_columns,
    listing,
    short_source,
)
from cfosstats.study.runner import analysed_lab
from cfosstats.study.steps import reference_paths


def _panel_inputs(results):
    """What the panel shows: image id, the outlines' sources, the ensemble, the uncertainty."""
    lab = analysed_lab(results)
    counts = results.table("objectivity", "counts")
    references = reference_paths(results)
    candidates = [i for i in lab.annotated_image_ids() if i in references]
    if not candidates:
        return None
    image_id = candidates[0]
    if has_columns(counts, "image_id", "rater", "count"):
        gt = counts[(counts["rater"] == ESTIMATED_GT) & counts["image_id"].isin(candidates)]
        if len(gt):
            image_id = str(gt.sort_values(["count", "image_id"], ascending=[False, True]).iloc[0]["image_id"])
    ensembles = [
        s for s in lab.label_sources.values() if s.strategy == "consensus_ensembles" and image_id in s.files
    ]
    ensembles.sort(key=lambda s: (not s.name.startswith("library/"), s.name))
    ensemble = ensembles[0] if ensembles else None
    if ensemble is None:
        singles = [
            s for s in lab.label_sources.values() if s.strategy == "consensus_models" and image_id in s.files
        ]
        ensemble = sorted(singles, key=lambda s: s.name)[0] if singles else None
    return lab, image_id, references[image_id], ensemble


def _uncertainty_of(results, lab, image_id: str, ensemble) -> tuple[Path | list[Path] | None, str]:
    """The ensemble's uncertainty map file, or its members' masks (vote entropy), and a title."""
    if ensemble is None:
        return None, ""
    if ensemble.name.startswith("library/") and results.prediction_root is not None:
        parts = ensemble.name.removeprefix("library/").split("/")
        folder = results.prediction_root / lab.config.folder / "uncertainty" / Path(*parts)
        for kind, title in (("epistemic", "uncertainty (epistemic)"), ("total", "uncertainty (total)")):
            path = folder / f"{image_id}_{kind}.png"
            if path.is_file():
                return path, title
    if ensemble.unet == "ensemble":
        members = [
            s
            for s in lab.label_sources.values()
            if s.strategy == "ensemble_members"
            and s.initialization == ensemble.initialization
            and s.model_type == ensemble.model_type
            and s.model == ensemble.model
            and image_id in s.files
        ]
        if len(members) >= 2:
            return [
                Path(m.files[image_id]) for m in sorted(members, key=lambda m: m.name)
            ], "uncertainty (members' vote)"
    return None, ""


def panel_section(results, figures: FigureMaker) -> Section:
    """One field of view: every annotator's outline, est_GT, the ensemble and its uncertainty."""
    section = Section("image-panel", "One field of view, outlined by everyone")
    inputs = _panel_inputs(results)
    if inputs is None:
        section.add(Note("No image panel: no annotated image has an estimated ground truth."))
        return section
    lab, image_id, reference_path, ensemble = inputs
    annotators = [a for a in lab.annotators if image_id in lab.label_sources[a].files]
    uncertainty, uncertainty_title = _uncertainty_of(results, lab, image_id, ensemble)
    files = [Path(lab.image_path(image_id)), Path(reference_path)] + [
        Path(lab.mask_path(a, image_id)) for a in annotators
    ]
    if ensemble is not None:
        files.append(Path(ensemble.files[image_id]))
    if isinstance(uncertainty, Path):
        files.append(uncertainty)
    elif isinstance(uncertainty, list):
        files += uncertainty
    key_document = {
        "panel": 1,
        "image": image_id,
        "files": [sha256_file(p) for p in files],
        "annotators": annotators,
        "ensemble": None if ensemble is None else ensemble.name,
        "size": 256,
        "uncertainty": uncertainty_title,
    }
    field_info: dict = {}

    def draw(path: Path) -> None:
        reference = read_mask(reference_path)
        field = choose_field(reference, size=256)
        field_info["field"] = field
        outlines = [
            Outline(
                a,
                crop(read_mask(lab.mask_path(a, image_id)), field),
                OUTLINE_COLOURS[i % len(OUTLINE_COLOURS)],
            )
            for i, a in enumerate(annotators)
        ]
        outlines.append(Outline("est_GT", crop(reference, field), GT_COLOUR))
        if ensemble is not None:
            outlines.append(
                Outline(
                    _panel_title(ensemble), crop(read_mask(ensemble.files[image_id]), field), ENSEMBLE_COLOUR
                )
            )
        map_ = None
        if isinstance(uncertainty, Path):
            with Image.open(uncertainty) as im:
                map_ = np.asarray(im, dtype=np.float64) / 65535.0
        elif isinstance(uncertainty, list):
            map_ = entropy_of_votes([read_mask(p) for p in uncertainty])
        draw_panel(
            crop(read_image(lab.image_path(image_id)), field),
            outlines,
            path,
            uncertainty=crop(map_, field),
            uncertainty_title=uncertainty_title,
            ncols=min(4, 1 + len(outlines) + (map_ is not None)),
        )

    figures.file("panel", key_document, draw)
    shape = lab.image_shape(image_id)
    side = min(256, *shape)
    what = [
        "the image",
        *[f"{a}'s outline" for a in annotators],
        "the estimated ground truth (est_GT, white)",
    ]
    if ensemble is not None:
        what.append(f"the {strategy_label(ensemble.strategy)[:-1]} {short_source(ensemble.name)} (green)")
    if uncertainty_title:
        what.append(f"its {uncertainty_title} (dark = certain, bright = uncertain)")
    notes = []
    if ensemble is None:
        notes.append(
            Note("No model prediction of this image: the panel shows the annotators and est_GT only.")
        )
    elif not uncertainty_title:
        notes.append(
            Note("No uncertainty map: the prediction has no stored probability maps and no members.")
        )
    section.add(
        Figure(
            "panel",
            "figures/panel.png",
            f"Image {image_id} ({side}×{side} px field of view with the most est_GT objects of the annotated "
            f"image with the most objects). Panels: {listing(what, 12)}. Look where the outlines disagree "
            "— objects "
            "one annotator leaves out, boundaries drawn wider — and whether the uncertainty is bright "
            "exactly there.",
            f"Microscopy field of view of image {image_id} shown "
            f"{1 + len(annotators) + 1 + (ensemble is not None)} "
            "times with outlines of "
            f"{listing(annotators + ['est_GT'] + ([short_source(ensemble.name)] if ensemble else []), 12)}"
            + (f", and an {uncertainty_title} heat map" if uncertainty_title else "")
            + ".",
            100,
        ),
        *notes,
    )
    return section


def _panel_title(source) -> str:
    short = short_source(source.name)
    return "prediction: " + short.removeprefix("library ")

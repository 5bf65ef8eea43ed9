"""The `Lab`: one lab's images, annotations, regions, metadata and label sources, loaded lazily.

A `Lab` is built by the readers in :mod:`cfosstats.datasets.readers` from either on-disk layout
(:mod:`cfosstats.datasets.layout`). It holds paths and metadata only; pixels are read on demand,
validated against the image they belong to, and never cached in the object (so a `Lab` is cheap
to pickle and to hand to worker processes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image, UnidentifiedImageError

from cfosstats.core.errors import InputError
from cfosstats.core.imageio import read_image, read_mask
from cfosstats.datasets.layout import ESTIMATED_GT, STRATEGY_ORDER
from cfosstats.datasets.registry import LabConfig

METADATA_COLUMNS = (
    "image_id",
    "path",
    "area",
    "condition",
    "experiment",
    "animal",
    "training",
    "stratum",
)


@dataclass(frozen=True)
class LabelSource:
    """One set of binary masks: an annotator, the estimated ground truth, or a model's output.

    Attributes
    ----------
    name : str
        Unique name: the annotator (``expert_1``), ``est_GT``, or for predictions
        ``<initialization>/<model_type>/<model>/<unet>``.
    strategy : str
        ``annotators``, ``estimated_gt``, ``expert_models``, ``consensus_models``,
        ``ensemble_members`` or ``consensus_ensembles``.
    folder : Path
        The folder holding the masks.
    files : dict
        image_id -> mask file.
    initialization, model_type, model, unet : str or None
        The parts of a predicted label set's path (None for annotators).
    """

    name: str
    strategy: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)
    initialization: str | None = None
    model_type: str | None = None
    model: str | None = None
    unet: str | None = None

    @property
    def is_prediction(self) -> bool:
        """Whether a model (not a person) made these masks."""
        return self.initialization is not None


@dataclass(frozen=True)
class Problem:
    """Something wrong with the input: an ``error`` stops analysis, a ``warning`` does not."""

    severity: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class Lab:
    """One lab's data, as found on disk.

    Attributes
    ----------
    config : LabConfig
        The registry entry.
    root : Path
        The lab folder (``.../lab-wue1``).
    layout : str
        ``training`` or ``study``.
    metadata : DataFrame
        One row per image, columns :data:`METADATA_COLUMNS` (missing facts are NA).
    label_sources : dict
        name -> :class:`LabelSource`.
    region_files : dict
        region -> {image_id -> region mask file}.
    ignore_files : dict
        image_id -> ignored-region mask file.
    problems : list of Problem
        What the reader found wrong (warnings; errors are raised).

    Examples
    --------
    >>> from cfosstats.datasets import load_lab
    >>> lab = load_lab("wue1", data="../shared/data/train_data")
    >>> len(lab.image_ids), lab.annotators[:2]
    (36, ['expert_1', 'expert_2'])
    """

    config: LabConfig
    root: Path
    layout: str
    metadata: pd.DataFrame
    label_sources: dict[str, LabelSource]
    region_files: dict[str, dict[str, Path]] = field(default_factory=dict)
    ignore_files: dict[str, Path] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    # -- what is there -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def image_ids(self) -> list[str]:
        """Image ids in file-name order."""
        return list(self.metadata["image_id"])

    @property
    def annotators(self) -> list[str]:
        """Annotators that have masks, in name order."""
        return self.sources_of("annotators")

    @property
    def has_published_gt(self) -> bool:
        """Whether the data holds an estimated ground truth (``labels/est_GT``)."""
        return ESTIMATED_GT in self.label_sources

    @property
    def has_conditions(self) -> bool:
        return bool(self.metadata["condition"].notna().any())

    @property
    def has_animals(self) -> bool:
        return bool(self.metadata["animal"].notna().any())

    @property
    def regions(self) -> list[str]:
        return list(self.region_files)

    def sources_of(self, strategy: str) -> list[str]:
        """Names of the label sources of one strategy."""
        return sorted(n for n, s in self.label_sources.items() if s.strategy == strategy)

    def sources_table(self) -> pd.DataFrame:
        """One row per label source: name, strategy, initialization, model_type, model, unet, n_masks."""
        rows = [
            {
                "name": s.name,
                "strategy": s.strategy,
                "initialization": s.initialization,
                "model_type": s.model_type,
                "model": s.model,
                "unet": s.unet,
                "n_masks": len(s.files),
            }
            for s in self.label_sources.values()
        ]
        order = {name: i for i, name in enumerate(STRATEGY_ORDER)}
        table = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["name", "strategy"])
        if table.empty:
            return table
        table["_order"] = table["strategy"].map(order).fillna(len(order))
        return table.sort_values(["_order", "name"]).drop(columns="_order").reset_index(drop=True)

    def annotated_image_ids(self) -> list[str]:
        """Images that at least one annotator has masked."""
        annotated = set()
        for name in self.annotators:
            annotated.update(self.label_sources[name].files)
        return [i for i in self.image_ids if i in annotated]

    # -- pixels, read on demand -----------------------------------------------------------------
    def image_path(self, image_id: str) -> Path:
        rows = self.metadata.loc[self.metadata["image_id"] == image_id, "path"]
        if rows.empty:
            raise InputError(self.root, f"no image '{image_id}' in lab {self.name}")
        return Path(rows.iloc[0])

    def image(self, image_id: str) -> np.ndarray:
        """The microscopy image (2-D, as stored)."""
        return read_image(self.image_path(image_id))

    def image_shape(self, image_id: str) -> tuple[int, int]:
        """Shape of an image, read from its header only."""
        return image_shape(self.image_path(image_id))

    def mask_path(self, source: str, image_id: str) -> Path:
        if source not in self.label_sources:
            raise InputError(self.root / "labels", f"no label source '{source}' in lab {self.name}")
        files = self.label_sources[source].files
        if image_id not in files:
            raise InputError(self.label_sources[source].folder, f"no mask for image '{image_id}'")
        return files[image_id]

    def mask(self, source: str, image_id: str) -> np.ndarray:
        """A label source's binary mask of one image, checked against the image's shape."""
        return self._checked_mask(self.mask_path(source, image_id), image_id)

    def ignore_mask(self, image_id: str) -> np.ndarray | None:
        """Pixels to leave out of every analysis, or None when the image has none."""
        path = self.ignore_files.get(image_id)
        return None if path is None else self._checked_mask(path, image_id)

    def region_mask(self, region: str, image_id: str) -> np.ndarray | None:
        """The analysed region's mask of one image, or None when it has none."""
        path = self.region_files.get(region, {}).get(image_id)
        return None if path is None else self._checked_mask(path, image_id)

    def regions_of(self, image_id: str) -> list[str]:
        """Regions with a mask for this image."""
        return [r for r, files in self.region_files.items() if image_id in files]

    def _checked_mask(self, path: Path, image_id: str) -> np.ndarray:
        mask = read_mask(path)
        expected = self.image_shape(image_id)
        if mask.shape != expected:
            raise InputError(
                path,
                f"mask shape {mask.shape[0]}x{mask.shape[1]} differs from image "
                f"'{image_id}' ({expected[0]}x{expected[1]})",
            )
        return mask

    # -- checks -----------------------------------------------------------------------------------
    def validate(self, progress=None) -> list[Problem]:
        """Read every file once and return all problems (errors and warnings); raise nothing.

        Each image and mask is decoded fully (a truncated PNG is found here, not mid-analysis)
        and every mask's shape is compared with its image's.
        """
        problems = list(self.problems)
        if not self.annotators:
            problems.append(
                Problem(
                    "warning",
                    str(Path(self.root) / "labels"),
                    "no annotators' masks: objectivity (agreement, estimated ground truth) "
                    "cannot be assessed",
                )
            )
        shapes: dict[str, tuple[int, int]] = {}
        tasks = [("image", image_id, self.image_path(image_id)) for image_id in self.image_ids]
        for source in self.label_sources.values():
            tasks += [("mask", image_id, path) for image_id, path in source.files.items()]
        for region_files in self.region_files.values():
            tasks += [("mask", image_id, path) for image_id, path in region_files.items()]
        tasks += [("mask", image_id, path) for image_id, path in self.ignore_files.items()]
        for kind, image_id, path in tasks:
            try:
                if kind == "image":
                    shapes[image_id] = read_image(path).shape
                    continue
                mask = read_mask(path)
            except InputError as exc:
                problems.append(Problem("error", str(exc.path), exc.message))
                continue
            expected = shapes.get(image_id)
            if expected is not None and mask.shape != expected:
                problems.append(
                    Problem(
                        "error",
                        str(path),
                        f"mask shape {mask.shape[0]}x{mask.shape[1]} differs from image "
                        f"'{image_id}' ({expected[0]}x{expected[1]})",
                    )
                )
            if progress is not None:
                progress()
        return problems


@functools.lru_cache(maxsize=4096)
def _cached_shape(path: str, mtime_ns: int) -> tuple[int, int]:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    try:
        if path.lower().endswith((".tif", ".tiff")):
            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
        else:
            with Image.open(path) as im:
                shape = (im.size[1], im.size[0])
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as an image ({type(exc).__name__})") from None
    return int(shape[0]), int(shape[1])


def image_shape(path: str | Path) -> tuple[int, int]:
    """(rows, cols) of an image file, from its header alone.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from cfosstats.core.imageio import write_mask
    >>> p = write_mask(pathlib.Path(tempfile.mkdtemp()) / "m.png", np.zeros((3, 5), bool))
    >>> image_shape(p)
    (3, 5)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    return _cached_shape(str(path), path.stat().st_mtime_ns)

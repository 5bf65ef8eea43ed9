"""Writing a simulated study in the full study layout: 8-bit TIFF images, 0/255 PNG masks,
``image_mapping.xlsx`` with reproducible bytes, and the ground truth of ``simulation.json``."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile

from cfosstats.datasets.layout import MAPPING_COLUMNS, mask_name
from cfosstats.datasets.registry import LabConfig
from cfosstats.simulate.annotators import Labeller
from cfosstats.simulate.design import ImageSpec, condition_factor
from cfosstats.simulate.image import ImageResult, Plan, _background

FIXED_TIME = "2020-01-01T00:00:00Z"  # written into the xlsx so that its bytes are reproducible
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# --- writing -----------------------------------------------------------------------------------


def _write_tif(path: Path, image: np.ndarray, config: LabConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if config.pixel_size_px_per_um:
        per_cm = config.pixel_size_px_per_um * 1e4
        extra = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    # metadata=None: no JSON description; no datetime tag: same bytes on every run.
    tifffile.imwrite(path, image, photometric="minisblack", metadata=None, **extra)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as an 8-bit greyscale 0/255 PNG, the format ``imageio.write_mask`` writes.

    Encoded here (no row filters, zlib level 1) because masks are most of the files of a study
    and this is ~4x faster than Pillow's encoder; the bytes depend only on the mask.

    Examples
    --------
    >>> import io; from PIL import Image
    >>> m = np.eye(3, dtype=bool)
    >>> np.asarray(Image.open(io.BytesIO(mask_png(m)))).tolist()
    [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    """
    height, width = mask.shape
    rows = np.zeros((height, width + 1), np.uint8)  # first byte of each row: filter type 0
    np.multiply(mask, np.uint8(255), out=rows[:, 1:], casting="unsafe")  # no int64 temporary
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 1))
        + _png_chunk(b"IEND", b"")
    )


def _save_mask(path: Path, mask: np.ndarray) -> None:
    # No per-file temp name: the whole study is built in a temporary folder (atomic_dir).
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mask_png(mask))


def _write_result(lab: Path, config: LabConfig, spec: ImageSpec, result: ImageResult) -> None:
    _write_tif(lab / "images" / f"{spec.image_id}.tif", result.image, config)
    for region, mask in result.regions.items():
        _save_mask(lab / "regions" / region / f"{spec.image_id}.png", mask)
    for folder, mask in result.labels.items():
        _save_mask(lab / "labels" / folder / mask_name(spec.image_id, config.label), mask)


def _mapping_rows(config: LabConfig, specs: Iterable[ImageSpec]) -> list[list]:
    values = {
        "lab": lambda s: config.folder,
        "ID": lambda s: s.image_id,
        "area": lambda s: s.area,
        "condition": lambda s: s.condition,
        "experiment": lambda s: s.experiment,
        "animal": lambda s: s.animal,
        "training": lambda s: int(s.training),
    }
    return [[values[c](s) for c in MAPPING_COLUMNS] for s in specs]


def _write_mapping(path: Path, config: LabConfig, specs: list[ImageSpec]) -> None:
    """``image_mapping.xlsx`` with reproducible bytes (fixed document and zip-entry times)."""
    from openpyxl import Workbook  # lazy: 0.3 s, needed only when a study is written

    book = Workbook()
    sheet = book.active
    sheet.title = "image_mapping"
    sheet.append(list(MAPPING_COLUMNS))
    for row in _mapping_rows(config, specs):
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(_reproducible_zip(buffer.getvalue()))


def _reproducible_zip(data: bytes) -> bytes:
    """Re-pack an xlsx: constant entry times and constant created/modified document properties."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for entry in src.infolist():
            content = src.read(entry.filename)
            if entry.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>" + FIXED_TIME.encode() + rb"\g<3>",
                    content,
                )
            info = zipfile.ZipInfo(entry.filename, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            dst.writestr(info, content)
    return out.getvalue()


def _summary(plan: Plan, specs: list[ImageSpec], records: list[dict], params: dict) -> dict:
    config = plan.config
    labellers = {a.name: _labeller_record(a) for a in plan.annotators}
    for folder, members in plan.models.items():
        if len(members) == 1:
            labellers[folder] = _labeller_record(members[0])
        else:
            labellers[folder] = {"ensemble_of": [m.name for m in members]}
    return {
        "generator": "cfosstats.simulate.study",
        "lab": config.folder,
        "label": config.label,
        "parameters": params,
        "condition_factors": {
            c: condition_factor(i, len(config.conditions), plan.effect)
            for i, c in enumerate(config.conditions)
        },
        "experiment_backgrounds": {
            str(e): round(_background(plan.seed, e), 4) for e in sorted({s.experiment for s in specs})
        },
        "labellers": labellers,
        "images": records,
    }


def _labeller_record(labeller: Labeller) -> dict:
    record = dict(labeller.__dict__)
    for key in ("threshold", "boundary", "miss_rate", "fp_bias", "jitter", "edge_jitter"):
        record[key] = round(float(record[key]), 6)
    return record

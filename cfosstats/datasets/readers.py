"""Readers for the two on-disk layouts (see :mod:`cfosstats.datasets.layout`) into one `Lab`.

Readers look at file names and the metadata only; pixels are read later, on demand. Fatal
problems (no images, an unreadable or inconsistent metadata file) raise `InputError`; problems
analysis can go on without (a mask without an image, an annotator missing some images) are
recorded as warnings in ``Lab.problems``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from cfosstats.core.errors import InputError
from cfosstats.core.imageio import IMAGE_SUFFIXES
from cfosstats.datasets.lab import METADATA_COLUMNS, Lab, LabelSource, Problem
from cfosstats.datasets.layout import ESTIMATED_GT, MAPPING_FILE, strategy_of
from cfosstats.datasets.registry import LabConfig


def _image_files(folder: Path) -> dict[str, Path]:
    """image id -> file for the images of one folder (png/tif/tiff), sorted by id."""
    if not folder.is_dir():
        raise InputError(folder, "images folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise InputError(path, f"two image files for image '{path.stem}'")
            files[path.stem] = path
    if not files:
        raise InputError(folder, "no images (.png, .tif, .tiff) found")
    return files


def _mask_files(
    folder: Path, label: str, image_ids: set[str], problems: list[Problem], suffix: str | None = None
) -> dict[str, Path]:
    """image id -> mask file for the masks of one folder, named ``<id>_<label>.png``.

    Files naming an unknown image, or another label, are recorded as warnings and left out.
    """
    tail = f"_{suffix or label}"
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not path.stem.endswith(tail):
            problems.append(Problem("warning", str(path), f"file name does not end in '{tail}'; ignored"))
            continue
        image_id = path.stem[: -len(tail)]
        if image_id not in image_ids:
            problems.append(Problem("warning", str(path), f"mask without image '{image_id}'; ignored"))
            continue
        files[image_id] = path
    return files


def _holds_files(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def _read_label_sources(
    labels_dir: Path, config: LabConfig, image_ids: list[str], problems: list[Problem]
) -> dict[str, LabelSource]:
    """Every annotator, the estimated ground truth and every predicted label set under labels/."""
    sources: dict[str, LabelSource] = {}
    if not labels_dir.is_dir():
        return sources
    known = set(image_ids)
    for folder in sorted(p for p in labels_dir.iterdir() if p.is_dir()):
        if _holds_files(folder):
            strategy = "estimated_gt" if folder.name == ESTIMATED_GT else "annotators"
            files = _mask_files(folder, config.label, known, problems)
            sources[folder.name] = LabelSource(folder.name, strategy, folder, files)
            continue
        sources.update(read_predicted_label_sets(folder, config, known, problems))
    _check_annotator_coverage(sources, config, image_ids, labels_dir, problems)
    return sources


def read_predicted_label_sets(
    initialization_dir: Path,
    config: LabConfig,
    image_ids: set[str],
    problems: list[Problem],
    prefix: str = "",
) -> dict[str, LabelSource]:
    """The predicted label sets of one initialization folder of the full study layout.

    ``<initialization>/<model_type>/<model>/<unet>/<id>_<label>.png``; each ``<unet>`` folder is
    one label source named ``[<prefix>/]<initialization>/<model_type>/<model>/<unet>``, its
    strategy given by :func:`cfosstats.datasets.layout.strategy_of`. Masks naming unknown images
    are recorded in `problems` and left out.

    Examples
    --------
    >>> import tempfile
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> root = Path(tempfile.mkdtemp())
    >>> folder = root / "scratch" / "expert_models" / "expert_1" / "unet_1"
    >>> folder.mkdir(parents=True)
    >>> _ = (folder / "0001_cFOS.png").write_bytes(b"")
    >>> sources = read_predicted_label_sets(root / "scratch", load_lab_config("wue1"), {"0001"}, [])
    >>> [(name, s.strategy) for name, s in sources.items()]
    [('scratch/expert_models/expert_1/unet_1', 'expert_models')]
    """
    initialization_dir = Path(initialization_dir)
    sources: dict[str, LabelSource] = {}
    for unet_dir in sorted(initialization_dir.glob("*/*/*")):
        if not unet_dir.is_dir():
            continue
        model_type, model, unet = unet_dir.relative_to(initialization_dir).parts
        name = f"{initialization_dir.name}/{model_type}/{model}/{unet}"
        name = f"{prefix}/{name}" if prefix else name
        sources[name] = LabelSource(
            name,
            strategy_of(model_type, unet),
            unet_dir,
            _mask_files(unet_dir, config.label, image_ids, problems),
            initialization=initialization_dir.name,
            model_type=model_type,
            model=model,
            unet=unet,
        )
    return sources


def _check_annotator_coverage(sources, config, image_ids, labels_dir, problems) -> None:
    annotators = {n: s for n, s in sources.items() if s.strategy == "annotators"}
    for name in config.annotators:
        if name not in annotators:
            problems.append(
                Problem(
                    "warning", str(labels_dir / name), f"annotator '{name}' of the lab registry has no masks"
                )
            )
    annotated = set().union(*(s.files for s in annotators.values())) if annotators else set()
    for name, source in annotators.items():
        for image_id in sorted(annotated - set(source.files)):
            problems.append(
                Problem(
                    "warning",
                    str(source.folder / f"{image_id}_{config.label}.png"),
                    f"annotator '{name}' has no mask for image '{image_id}'",
                )
            )


def _ignore_files(lab_dir: Path, image_ids: list[str], problems: list[Problem]) -> dict[str, Path]:
    folder = lab_dir / "ignored_regions"
    if not folder.is_dir():
        return {}
    return _mask_files(folder, "ignore", set(image_ids), problems, suffix="ignore")


def _empty_metadata(image_files: dict[str, Path]) -> pd.DataFrame:
    frame = pd.DataFrame({"image_id": list(image_files), "path": [str(p) for p in image_files.values()]})
    for column in METADATA_COLUMNS[2:]:
        frame[column] = pd.NA
    frame["training"] = True
    return frame[list(METADATA_COLUMNS)]


def _read_strata(lab_dir: Path, config: LabConfig, metadata: pd.DataFrame, problems) -> None:
    candidates = [config.strata_file] if config.strata_file else []
    candidates += [f"groups_{config.name}.csv"]
    for name in dict.fromkeys(candidates):
        path = lab_dir / name
        if not path.is_file():
            continue
        try:
            strata = pd.read_csv(path, dtype=str)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise InputError(path, f"cannot be read as CSV ({type(exc).__name__})") from None
        if not {"file_id", "group_id"} <= set(strata.columns):
            raise InputError(path, "strata file needs columns file_id,group_id")
        unknown = sorted(set(strata["file_id"]) - set(metadata["image_id"]))
        if unknown:
            raise InputError(path, f"names images that do not exist: {', '.join(unknown[:5])}")
        metadata["stratum"] = metadata["image_id"].map(dict(zip(strata["file_id"], strata["group_id"])))
        missing = metadata.loc[metadata["stratum"].isna(), "image_id"].tolist()
        if missing:
            problems.append(Problem("warning", str(path), f"no stratum for images {', '.join(missing[:5])}"))
        return


def read_training_layout(lab_dir: str | Path, config: LabConfig) -> Lab:
    """Read a lab in the training layout (``images/``, ``labels/<annotator>/``, ...).

    Parameters
    ----------
    lab_dir : str or Path
        The lab folder, e.g. ``train_data/lab-wue1``.
    config : LabConfig
        The lab's registry entry (label name, annotators, strata file).

    Returns
    -------
    Lab
        Every image is marked ``training``; conditions are unknown (NA) in this layout.

    Examples
    --------
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> folder = "../shared/data/train_data/lab-mue"
    >>> lab = read_training_layout(folder, load_lab_config("mue"))
    >>> lab.annotators
    ['expert_1', 'expert_3', 'expert_4', 'expert_5']
    """
    lab_dir = Path(lab_dir)
    problems: list[Problem] = []
    image_files = _image_files(lab_dir / "images")
    metadata = _empty_metadata(image_files)
    _read_strata(lab_dir, config, metadata, problems)
    sources = _read_label_sources(lab_dir / "labels", config, list(image_files), problems)
    return Lab(
        config=config,
        root=lab_dir,
        layout="training",
        metadata=metadata,
        label_sources=sources,
        region_files=_region_files(lab_dir, list(image_files), problems),
        ignore_files=_ignore_files(lab_dir, list(image_files), problems),
        problems=problems,
    )


def _region_files(lab_dir: Path, image_ids: list[str], problems) -> dict[str, dict[str, Path]]:
    folder = lab_dir / "regions"
    if not folder.is_dir():
        return {}
    regions: dict[str, dict[str, Path]] = {}
    known = set(image_ids)
    for region_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = {}
        for path in sorted(region_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                if path.stem in known:
                    files[path.stem] = path
                else:
                    problems.append(
                        Problem("warning", str(path), f"region mask without image '{path.stem}'; ignored")
                    )
        regions[region_dir.name] = files
    return regions


# -- full study layout ----------------------------------------------------------------------------


def _read_mapping(path: Path) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # openpyxl: "no default style"
            raw = pd.read_excel(path, dtype=object, engine="openpyxl")
    except Exception as exc:  # openpyxl/zipfile raise many types on a corrupt workbook
        raise InputError(path, f"cannot be read as an Excel workbook ({type(exc).__name__})") from None
    columns = {str(c).strip().lower(): c for c in raw.columns}
    missing = [c for c in ("lab", "id", "condition") if c not in columns]
    if missing:
        raise InputError(path, f"lacks column(s): {', '.join(missing)}")
    out = pd.DataFrame()
    for name in ("lab", "ID", "area", "condition", "experiment", "animal", "training"):
        source = columns.get(name.lower())
        out[name] = raw[source] if source is not None else pd.NA
    return out


def _as_text(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _resolve_image_id(raw_id: str, image_files: dict[str, Path]) -> str | None:
    """The image id a mapping row names: exact, or numerically equal when Excel dropped zeros."""
    if raw_id in image_files:
        return raw_id
    if re.fullmatch(r"\d+", raw_id):
        for stem in image_files:
            if stem.isdigit() and int(stem) == int(raw_id):
                return stem
    return None


def _truthy(value) -> bool:
    text = _as_text(value)
    return text is not None and text.lower() not in ("", "0", "false", "no", "n")


def read_study_layout(root: str | Path, config: LabConfig) -> Lab:
    """Read a lab from a full study root holding ``image_mapping.xlsx`` and ``lab-<id>/``.

    Raises
    ------
    InputError
        When the mapping cannot be read, names images that do not exist, or names conditions
        the lab registry does not know.
    """
    root = Path(root)
    mapping_path = root / MAPPING_FILE
    lab_dir = root / config.folder
    if not lab_dir.is_dir():
        raise InputError(lab_dir, f"lab folder not found in study root {root}")
    mapping = _read_mapping(mapping_path)
    rows = mapping[mapping["lab"].map(_as_text).isin({config.folder, config.name})]
    if rows.empty:
        raise InputError(mapping_path, f"no rows for lab '{config.folder}'")
    image_files = _image_files(lab_dir / "images")
    records = []
    for excel_row, row in rows.iterrows():
        raw_id = _as_text(row["ID"])
        line = f"row {excel_row + 2}"  # +1 header, +1 one-based
        if raw_id is None:
            raise InputError(mapping_path, f"{line}: empty ID")
        image_id = _resolve_image_id(raw_id, image_files)
        if image_id is None:
            raise InputError(mapping_path, f"{line}: image '{raw_id}' not found in {lab_dir / 'images'}")
        condition = _as_text(row["condition"])
        if condition is not None and condition not in config.conditions:
            raise InputError(
                mapping_path,
                f"{line}: unknown condition '{condition}' for lab {config.name} "
                f"(known: {', '.join(config.conditions)})",
            )
        records.append(
            {
                "image_id": image_id,
                "path": str(image_files[image_id]),
                "area": _as_text(row["area"]),
                "condition": condition,
                "experiment": _as_text(row["experiment"]),
                "animal": _as_text(row["animal"]),
                "training": _truthy(row["training"]),
                "stratum": pd.NA,
            }
        )
    metadata = pd.DataFrame.from_records(records, columns=list(METADATA_COLUMNS))
    duplicated = metadata.loc[metadata["image_id"].duplicated(), "image_id"].tolist()
    if duplicated:
        raise InputError(mapping_path, f"image(s) listed twice: {', '.join(duplicated[:5])}")
    metadata = metadata.sort_values("image_id", kind="stable").reset_index(drop=True)
    problems: list[Problem] = []
    for stem in sorted(set(image_files) - set(metadata["image_id"])):
        problems.append(
            Problem("warning", str(image_files[stem]), "image not listed in the mapping; ignored")
        )
    image_ids = list(metadata["image_id"])
    _read_strata(lab_dir, config, metadata, problems)
    return Lab(
        config=config,
        root=lab_dir,
        layout="study",
        metadata=metadata,
        label_sources=_read_label_sources(lab_dir / "labels", config, image_ids, problems),
        region_files=_region_files(lab_dir, image_ids, problems),
        ignore_files=_ignore_files(lab_dir, image_ids, problems),
        problems=problems,
    )

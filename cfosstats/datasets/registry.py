"""The lab registry: one TOML file per lab under `data/labs/` with what the study published.

A user adds a lab by dropping `<name>.toml` into `data/labs/` (or anywhere, passed with
`--lab-config PATH`). Required keys: `name`, `label`, `min_object_size`, `conditions` (control
first). Optional: `folder` (default `lab-<name>`), `pixel_size_px_per_um`, `areas`, `regions`
(area -> list of analysed regions), `annotators`, `strata_file`, `cv_folds`,
`test_images_per_stratum`, `exclude`,
`description`, `species`, `condition_names`, `simulated`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cfosstats.core.errors import InputError
from cfosstats.core.resources import data_dir

_REQUIRED = ("name", "label", "min_object_size", "conditions")


@dataclass(frozen=True)
class LabConfig:
    """One lab's published analysis settings.

    Attributes
    ----------
    name : str
        Short lab id (``wue1``).
    folder : str
        Folder name of the lab in a data root (``lab-wue1``).
    label : str
        Label name as used in mask file names (``cFOS`` in ``0001_cFOS.png``).
    min_object_size : int
        Objects (8-connected) smaller than this many pixels are not counted.
    conditions : tuple of str
        Experimental conditions, control first.
    pixel_size_px_per_um : float or None
        Pixels per micrometre, where known; densities per mm² need it.
    areas : tuple of str
        Imaged areas (``CA1``, ``CA3``, ``DG``).
    regions : dict
        Imaged area -> analysed regions (region mask folders).
    annotators : tuple of str
        Annotator folder names.
    strata_file : str or None
        CSV naming the sampling strata of the training images (``file_id,group_id``).
    cv_folds : int
        Cross-validation folds of the model library (the study: 4 for wue1, 5 elsewhere).
    test_images_per_stratum : int
        Images per stratum held out as a test set that no model trains on (the study: one per
        stratum for wue1; 0 for the other labs, whose 5 images were cross-validated, one per fold).
        A lab without strata holds out a fifth of its images unless this is 0.
    """

    name: str
    label: str
    min_object_size: int
    conditions: tuple[str, ...]
    folder: str = ""
    description: str = ""
    species: str = ""
    pixel_size_px_per_um: float | None = None
    condition_names: dict[str, str] = field(default_factory=dict)
    areas: tuple[str, ...] = ()
    regions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    annotators: tuple[str, ...] = ()
    strata_file: str | None = None
    cv_folds: int = 5
    test_images_per_stratum: int = 1
    exclude: tuple[str, ...] = ()
    simulated: bool = False
    source: Path | None = None

    @property
    def control(self) -> str:
        """The control condition (the first one)."""
        return self.conditions[0]

    @property
    def all_regions(self) -> tuple[str, ...]:
        """Every analysed region, in registry order, without repeats."""
        seen: dict[str, None] = {}
        for regions in self.regions.values():
            seen.update(dict.fromkeys(regions))
        return tuple(seen)

    @property
    def um2_per_px(self) -> float | None:
        """Area of one pixel in µm², where the pixel size is known."""
        if not self.pixel_size_px_per_um:
            return None
        return 1.0 / self.pixel_size_px_per_um**2

    def as_dict(self) -> dict:
        """The entry as plain data (for provenance records)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "source"}
        out["source"] = str(self.source) if self.source else None
        return out


def labs_dir() -> Path:
    """The registry folder shipped with the package."""
    return data_dir() / "labs"


def available_labs() -> list[str]:
    """Names of the labs in the shipped registry.

    Examples
    --------
    >>> "wue1" in available_labs()
    True
    """
    return sorted(p.stem for p in labs_dir().glob("*.toml"))


def read_lab_config(path: str | Path) -> LabConfig:
    """Read and validate one registry file.

    Raises
    ------
    InputError
        When the file is missing, not TOML, or lacks or mistypes a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "lab config file not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid TOML ({exc})") from None
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise InputError(path, f"lab config lacks required key(s): {', '.join(missing)}")
    unknown = set(raw) - set(LabConfig.__dataclass_fields__)
    if unknown:
        raise InputError(path, f"unknown key(s) in lab config: {', '.join(sorted(unknown))}")
    conditions = raw["conditions"]
    if not isinstance(conditions, list) or not conditions or not all(isinstance(c, str) for c in conditions):
        raise InputError(path, "'conditions' must be a non-empty list of names, control first")
    if len(set(conditions)) != len(conditions):
        raise InputError(path, "'conditions' has repeated names")
    size = raw["min_object_size"]
    if not isinstance(size, int) or size < 0:
        raise InputError(path, f"'min_object_size' must be a non-negative integer, got {size!r}")
    pixel = raw.get("pixel_size_px_per_um")
    if pixel is not None and (not isinstance(pixel, int | float) or pixel <= 0):
        raise InputError(path, f"'pixel_size_px_per_um' must be positive, got {pixel!r}")
    regions = raw.get("regions", {})
    if not isinstance(regions, dict):
        raise InputError(path, "'regions' must map each area to a list of regions")
    held_out = raw.get("test_images_per_stratum", 1)
    if not isinstance(held_out, int) or held_out < 0:
        raise InputError(path, f"'test_images_per_stratum' must be a non-negative integer, got {held_out!r}")
    name = str(raw["name"])
    return LabConfig(
        name=name,
        label=str(raw["label"]),
        min_object_size=size,
        conditions=tuple(conditions),
        folder=str(raw.get("folder", f"lab-{name}")),
        description=str(raw.get("description", "")),
        species=str(raw.get("species", "")),
        pixel_size_px_per_um=None if pixel is None else float(pixel),
        condition_names=dict(raw.get("condition_names", {})),
        areas=tuple(raw.get("areas", ())),
        regions={str(k): tuple(v) for k, v in regions.items()},
        annotators=tuple(raw.get("annotators", ())),
        strata_file=raw.get("strata_file"),
        cv_folds=int(raw.get("cv_folds", 5)),
        test_images_per_stratum=held_out,
        exclude=tuple(str(x) for x in raw.get("exclude", ())),
        simulated=bool(raw.get("simulated", False)),
        source=path,
    )


def load_lab_config(lab: str, config_path: str | Path | None = None) -> LabConfig:
    """The registry entry of `lab`, or the file at `config_path` when one is given.

    Parameters
    ----------
    lab : str
        Registry name, with or without the ``lab-`` prefix (``wue1``, ``lab-mue``).
    config_path : str or Path, optional
        A lab registry file (TOML, as ``data/labs/*.toml``) to read instead of the shipped entry.

    Returns
    -------
    LabConfig
        Label, minimum object size, pixel size, conditions (control first), annotators, regions.

    Raises
    ------
    InputError
        An unknown lab (the message lists the known ones) or an invalid registry file.

    Examples
    --------
    >>> cfg = load_lab_config("wue1")
    >>> cfg.min_object_size, cfg.control, cfg.pixel_size_px_per_um
    (30, 'H', 1.61)
    """
    if config_path is not None:
        return read_lab_config(config_path)
    name = lab.removeprefix("lab-")
    path = labs_dir() / f"{name}.toml"
    if not path.is_file():
        raise InputError(
            None,
            f"unknown lab '{lab}': known labs are {', '.join(available_labs())}; "
            "add data/labs/<name>.toml or pass --lab-config PATH",
        )
    return read_lab_config(path)

"""Predictions written apart from a lab's data, and which images a model was trained on.

``cfosstats predict`` writes into a data root of its own: masks under
``DIR/<lab folder>/labels/<initialization>/<model_type>/<model>/<unet>/<id>_<label>.png`` and, per
model, ``DIR/<lab folder>/uncertainty/.../prediction.json`` naming the model card (whose
``training_images`` say which predictions are in-sample). :func:`with_predictions` adds those
label sets to a lab read from elsewhere (e.g. the annotated training data), so annotators,
estimated ground truth and models are analysed together.

The in-sample rule lives here too: :func:`in_sample` decides which of a label source's images
its model was trained on (a record that names the source, else the metadata's ``training`` flag,
read by :func:`training_flag`); :func:`training_images_from_predictions` reads the records.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from cfosstats.core.errors import InputError
from cfosstats.datasets.lab import Lab, LabelSource
from cfosstats.datasets.readers import read_predicted_label_sets

__all__ = [
    "NOT_A_MODEL",
    "TRAINING_FLAG",
    "flagged_training_images",
    "in_sample",
    "lab_training_images",
    "predicted_label_sources",
    "predicted_training_images",
    "training_flag",
    "training_images_from_predictions",
    "with_predictions",
]

#: Basis of a person's masks (never in-sample) and of in-sample images from the training flag.
NOT_A_MODEL = "not a model"
TRAINING_FLAG = "training flag"


def predicted_label_sources(lab: Lab, root: str | Path, prefix: str = "") -> dict[str, LabelSource]:
    """Every predicted label set of `lab` under the data root `root`, names prefixed by `prefix`.

    Masks of images the lab does not have are left out. Returns an empty dict when `root` holds
    no predictions of the lab.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> predicted_label_sources(SimpleNamespace(config=SimpleNamespace(folder="lab-x")), "/nonexistent")
    {}
    """
    labels = Path(root) / lab.config.folder / "labels"
    if not labels.is_dir():
        return {}
    known = set(lab.image_ids)
    sources: dict[str, LabelSource] = {}
    for folder in sorted(p for p in labels.iterdir() if p.is_dir()):
        sources.update(read_predicted_label_sets(folder, lab.config, known, [], prefix))
    return sources


# -- the in-sample rule ------------------------------------------------------------------------------


def training_flag(metadata: pd.DataFrame) -> pd.Series:
    """The metadata's ``training`` column as booleans (Python truth; missing is False).

    Examples
    --------
    >>> training_flag(pd.DataFrame({"training": [True, False, None, 1, 0]})).tolist()
    [True, False, False, True, False]
    """
    return metadata["training"].map(lambda v: bool(v) if pd.notna(v) else False).astype(bool)


def flagged_training_images(metadata: pd.DataFrame) -> set[str]:
    """Ids of the images the metadata flags as training images (:func:`training_flag`)."""
    return set(metadata.loc[training_flag(metadata), "image_id"])


def in_sample(
    source: LabelSource,
    known: Sequence[tuple[str, Mapping[str, Collection[str]]]],
    flagged: Collection[str],
) -> tuple[frozenset[str], str]:
    """Which images of `source` its model was trained on, and the basis: the in-sample rule.

    A person's masks are never in-sample (basis ``not a model``). A model's in-sample images are
    those of the first record of `known` (``(basis, {source name: image ids})``, in order of
    precedence) that names the source, else the images it predicted among `flagged` (the
    metadata's training images; basis ``training flag``).

    Examples
    --------
    >>> model = LabelSource("m", "expert_models", Path("m"), {"1": Path("1.png"), "2": Path("2.png")},
    ...                     "scratch", "expert_1", "expert_1", "unet_1")
    >>> in_sample(model, [("given", {"m": ["2"]})], {"1"})
    (frozenset({'2'}), 'given')
    >>> in_sample(model, [("given", {})], {"1", "3"})
    (frozenset({'1'}), 'training flag')
    """
    if not source.is_prediction:
        return frozenset(), NOT_A_MODEL
    for basis, images in known:
        if source.name in images:
            return frozenset(map(str, images[source.name])), basis
    return frozenset(set(flagged) & set(map(str, source.files))), TRAINING_FLAG


def lab_training_images(lab: Lab, prediction_root: str | Path | None, prefix: str = "library") -> dict:
    """Predicted label source -> images its model was trained on (where known), for a study run.

    The records under `prediction_root` (:func:`predicted_training_images`, names prefixed by
    `prefix`) first; every other predicted label set of `lab` whose name does not carry the
    prefix by the training flag (:func:`in_sample`).

    Examples
    --------
    >>> lab = SimpleNamespace(metadata=pd.DataFrame({"image_id": ["1"], "training": [True]}),
    ...                       label_sources={})
    >>> lab_training_images(lab, None)
    {}
    """
    out: dict[str, set[str]] = {}
    if prediction_root is not None:
        out.update(predicted_training_images(lab, prediction_root, prefix=prefix))
    flagged = flagged_training_images(lab.metadata)
    for name, source in lab.label_sources.items():
        if source.is_prediction and name not in out and not name.startswith(f"{prefix}/"):
            out[name] = set(in_sample(source, (), flagged)[0])
    return out


# -- records of the predictions cfosstats made -------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    """The JSON content of `path`; None when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _card_training(card_path: Path) -> tuple[dict | None, set[str] | None]:
    card = _read_json(card_path)
    if card is None:
        return None, None
    images = card.get("training_images")
    return card, (set(map(str, images)) if isinstance(images, list) else None)


def training_images_from_predictions(lab) -> dict[str, set[str]]:
    """Training images of the predicted label sources, from the records cfosstats wrote.

    ``cfosstats predict`` writes ``uncertainty/<initialization>/<model_type>/<model>/<unet>/``
    with ``prediction.json`` (naming the model card) and ``uncertainty.csv`` (each image's
    ``role``). The card's ``training_images`` give the model's training images; an ensemble's
    are the union of its members', and each member's own folder (``unet_<fold>``) gets the
    member card's. Without readable cards, images with role ``training`` are used for the
    ensemble or model itself.

    Returns
    -------
    dict
        Label source name -> set of image ids it was trained on (only sources with a record).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> training_images_from_predictions(SimpleNamespace(root=Path("/nonexistent")))
    {}
    """
    root = Path(lab.root) / "uncertainty"
    found: dict[str, set[str]] = {}
    if not root.is_dir():
        return found
    for record_path in sorted(root.glob("*/*/*/*/prediction.json")):
        folder = record_path.parent
        parts = folder.relative_to(root).parts
        name = "/".join(parts)
        record = _read_json(record_path) or {}
        found.update(_from_cards(record, parts))
        if name not in found:
            roles = _roles(folder / "uncertainty.csv")
            if roles is not None:
                found[name] = roles
    return found


def _from_cards(record: dict, parts: tuple[str, ...]) -> dict[str, set[str]]:
    card_path = Path(str(record.get("model_card", "")))
    if not record.get("model_card") or not card_path.is_file():
        return {}
    card, images = _card_training(card_path)
    if card is None:
        return {}
    name = "/".join(parts)
    if card.get("kind") != "ensemble":
        return {name: images} if images is not None else {}
    found: dict[str, set[str]] = {}
    union: set[str] = set()
    for index, member in enumerate(card.get("members", []), 1):
        member_card, member_images = _card_training(card_path.parent.parent / f"{member}.json")
        if member_card is None or member_images is None:
            return {name: images} if images is not None else {}
        fold = member_card.get("fold") or index
        found["/".join((*parts[:3], f"unet_{fold}"))] = member_images
        union |= member_images
    found[name] = images if images is not None else union
    return found


def _roles(path: Path) -> set[str] | None:
    try:
        table = pd.read_csv(path, dtype={"image_id": str})
    except (OSError, ValueError):
        return None
    if not {"image_id", "role"} <= set(table.columns):
        return None
    return set(table.loc[table["role"] == "training", "image_id"].astype(str))


def predicted_training_images(lab: Lab, root: str | Path, prefix: str = "") -> dict[str, set[str]]:
    """Source name (prefixed like :func:`predicted_label_sources`) -> images its model trained on.

    Read from the records ``cfosstats predict`` wrote under `root`
    (:func:`training_images_from_predictions`).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> predicted_training_images(SimpleNamespace(config=SimpleNamespace(folder="lab-x")), "/nonexistent")
    {}
    """
    found = training_images_from_predictions(SimpleNamespace(root=Path(root) / lab.config.folder))
    return {(f"{prefix}/{name}" if prefix else name): set(images) for name, images in found.items()}


def with_predictions(
    lab: Lab, root: str | Path, prefix: str = "predicted"
) -> tuple[Lab, dict[str, set[str]]]:
    """`lab` with the predictions under `root` added to its label sources.

    Parameters
    ----------
    lab : Lab
        From :func:`cfosstats.datasets.load_lab`.
    root : str or Path
        A data root ``cfosstats predict --out`` wrote into (it holds ``<lab folder>/labels/``).
    prefix : str, default "predicted"
        Prepended to every added source name, so they cannot clash with the lab's own.

    Returns
    -------
    lab : Lab
        A copy with the added label sources (the input is not changed).
    training_images : dict
        Added source name -> the images its model was trained on, from the model cards that
        ``prediction.json`` names (the in-sample predictions; only sources with a record).

    Raises
    ------
    InputError
        `root` holds no predicted masks of any of the lab's images.

    Examples
    --------
    >>> from cfosstats.datasets import load_lab  # doctest: +SKIP
    >>> lab, trained = with_predictions(load_lab("wue1"), "predictions")  # doctest: +SKIP
    >>> sorted(trained)[0]  # doctest: +SKIP
    'predicted/scratch/consensus_ensembles/ensemble_1/ensemble'
    """
    root = Path(root)
    added = predicted_label_sources(lab, root, prefix)
    if not any(source.files for source in added.values()):
        raise InputError(
            root,
            f"no predictions of lab {lab.name}: expected masks <image>_{lab.config.label}.png of its images "
            f"under {lab.config.folder}/labels/<initialization>/<model_type>/<model>/<unet>/ "
            "(as 'cfosstats predict --out' writes them)",
        )
    trained = predicted_training_images(lab, root, prefix)
    training = {name: images for name, images in trained.items() if name in added}
    return dataclasses.replace(lab, label_sources={**lab.label_sources, **added}), training

"""Predictions written apart from a lab's data (by ``cfosstats predict --out DIR``), joined to the lab.

``cfosstats predict`` writes into a data root of its own: masks under
``DIR/<lab folder>/labels/<initialization>/<model_type>/<model>/<unet>/<id>_<label>.png`` and, per
model, ``DIR/<lab folder>/uncertainty/.../prediction.json`` naming the model card (whose
``training_images`` say which predictions are in-sample). :func:`with_predictions` adds those
label sets to a lab read from elsewhere (e.g. the annotated training data), so annotators,
estimated ground truth and models are analysed together.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

from cfosstats.core.errors import InputError
from cfosstats.datasets.lab import Lab, LabelSource
from cfosstats.datasets.readers import read_predicted_label_sets

__all__ = ["predicted_label_sources", "predicted_training_images", "with_predictions"]


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


def predicted_training_images(lab: Lab, root: str | Path, prefix: str = "") -> dict[str, set[str]]:
    """Source name (prefixed like :func:`predicted_label_sources`) -> images its model trained on.

    Read from the records ``cfosstats predict`` wrote under `root`
    (:func:`cfosstats.analyses.validity.training_images_from_predictions`).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> predicted_training_images(SimpleNamespace(config=SimpleNamespace(folder="lab-x")), "/nonexistent")
    {}
    """
    from cfosstats.analyses.validity import training_images_from_predictions

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

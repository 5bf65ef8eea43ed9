"""Lab-level training and prediction: from a `Lab` to model cards, and from a model to masks in
the full study label layout.

Training (:func:`train_lab`) writes ``<out>/<lab>/<model>.json`` + ``.pt`` per fold (a model
library folder, see :mod:`cfosstats.segment.library`):

* strategy ``consensus`` (targets: the estimated ground truth): ``consensus_model_<fold>``, and,
  once all k folds of the split exist, the ensemble ``consensus_ensemble``;
* strategy ``<annotator>`` (targets: that annotator's masks): ``<annotator>`` when one fold is
  trained (the library keeps one model per annotator), else ``<annotator>_model_<fold>``.

Prediction (:func:`predict_lab`) writes into a data root (pass the lab's own data root to add
the predictions to the lab as label sources)::

    <out>/lab-<id>/labels/<initialization>/<model_type>/<model>/<unet>/<image>_<label>.png
    <out>/lab-<id>/uncertainty/<initialization>/<model_type>/<model>/<unet>/
        <image>_epistemic.png, <image>_aleatoric.png, <image>_total.png   16-bit, 0..65535 = 0..1
        uncertainty.csv     per-image scores and review rank
        prediction.json     model, card checksum, settings, versions

with, for example, ``scratch/consensus_models/consensus/unet_2`` (a consensus model of fold 2),
``scratch/expert_models/expert_3/unet_1`` (a model trained on expert 3, fold 1), and
``scratch/consensus_ensembles/ensemble_1/ensemble`` for an ensemble's own masks beside its
members' ``.../ensemble_1/unet_<fold>``. Every output folder is staged and swapped in only when
all images are done: an interrupted run leaves nothing partial.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from cfosstats.core.atomic import atomic_dir, write_csv, write_text
from cfosstats.core.errors import InputError
from cfosstats.core.hashing import sha256_bytes, sha256_file
from cfosstats.core.parallel import map_tasks, progress_bar
from cfosstats.core.version import software_versions
from cfosstats.datasets.lab import Lab
from cfosstats.segment import library
from cfosstats.segment.folds import Split, split_images
from cfosstats.segment.predict import Settings, prepare_model
from cfosstats.segment.predict_files import (
    background_writes,
    forget_prepared,
    predict_and_write,
    use_prepared,
)
from cfosstats.segment.selection import reference_mask, reference_source, validate_model
from cfosstats.segment.train import TrainConfig, train_model
from cfosstats.stats.selection import selection_verdict

CONSENSUS = "consensus"
INITIALIZATION = "scratch"
FINE_TUNED = "fine-tuned"


SOFTWARE = ("torch", "numpy")  # recorded in every card and prediction.json, with Python and cfosstats


def _progress(enabled: bool):
    return progress_bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        enabled=enabled,
        transient=False,
    )


# -- the split ---------------------------------------------------------------------------------


def splittable_images(lab: Lab) -> list[str]:
    """Images with a reference: the published est_GT, else every annotated image."""
    if lab.has_published_gt:
        files = lab.label_sources["est_GT"].files
        return [i for i in lab.image_ids if i in files]
    return lab.annotated_image_ids()


def lab_split(lab: Lab, k: int | None = None, seed: int = 0) -> Split:
    """The test hold-out and k folds of a lab (k: the lab's ``cv_folds`` by default; the test set
    holds the lab's ``test_images_per_stratum``).

    Raises
    ------
    InputError
        When the lab has too few annotated images for the split.
    """
    k = k or lab.config.cv_folds
    ids = splittable_images(lab)
    strata = dict(zip(lab.metadata["image_id"], lab.metadata["stratum"]))
    has_strata = any(strata.get(i) is not None and not pd.isna(strata.get(i)) for i in ids)
    try:
        return split_images(
            ids, strata if has_strata else None, k=k, seed=seed,
            test_per_stratum=lab.config.test_images_per_stratum,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(lab.root, f"cannot split lab {lab.name}: {exc}") from None


# -- training ----------------------------------------------------------------------------------


def replicate_suffix(replicate: int) -> str:
    """What a replicate adds to a model's name: nothing for the first, ``_r<n>`` after it."""
    return "" if replicate == 1 else f"_r{replicate}"


def model_names(strategy: str, folds: Sequence[int], replicate: int = 1) -> dict[int, str]:
    """Library name (without the lab) of each fold's model.

    Replicates (the same split trained again with other seeds, for the study's within-strategy
    reliability) are told apart by a suffix.

    Examples
    --------
    >>> model_names("consensus", [1, 2])
    {1: 'consensus_model_1', 2: 'consensus_model_2'}
    >>> model_names("expert_3", [1]), model_names("expert_3", [1, 2])[2]
    ({1: 'expert_3'}, 'expert_3_model_2')
    >>> model_names("consensus", [1], replicate=2), model_names("expert_3", [1], replicate=2)
    ({1: 'consensus_model_1_r2'}, {1: 'expert_3_r2'})
    """
    suffix = replicate_suffix(replicate)
    if strategy != CONSENSUS and len(folds) == 1:
        return {folds[0]: f"{strategy}{suffix}"}
    return {fold: f"{strategy}_model_{fold}{suffix}" for fold in folds}


def ensemble_name(replicate: int = 1) -> str:
    """Library name (without the lab) of a consensus ensemble replicate.

    Examples
    --------
    >>> ensemble_name(), ensemble_name(3)
    ('consensus_ensemble', 'consensus_ensemble_r3')
    """
    return f"{CONSENSUS}_ensemble{replicate_suffix(replicate)}"


def init_member(init, fold: int):
    """The library model fold `fold` starts from: `init` itself when it is one model; for an
    ensemble, member ``(fold - 1) mod n + 1``, so the folds start from different, independently
    trained weights (as the folds of a scratch run start from different random ones).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> ensemble = NS(is_ensemble=True, members=["m1", "m2", "m3", "m4"])
    >>> [init_member(ensemble, fold) for fold in range(1, 6)]
    ['m1', 'm2', 'm3', 'm4', 'm1']
    """
    if init is None or not init.is_ensemble:
        return init
    return init.members[(fold - 1) % len(init.members)]


def _targets(lab: Lab, strategy: str, image_ids: Sequence[str]):
    """Images, target masks, loss masks and file checksums of the training images of a strategy."""
    images, masks, valid, checksums, skipped = [], [], [], {}, []
    for image_id in image_ids:
        if strategy == CONSENSUS:
            target = reference_mask(lab, image_id)
            source = reference_source(lab)
            files = (
                [lab.mask_path("est_GT", image_id)]
                if source == "est_GT"
                else [
                    lab.mask_path(a, image_id)
                    for a in lab.annotators
                    if image_id in lab.label_sources[a].files
                ]
            )
        else:
            if image_id not in lab.label_sources[strategy].files:
                skipped.append(image_id)  # this annotator did not mask the image
                continue
            target = lab.mask(strategy, image_id)
            files = [lab.mask_path(strategy, image_id)]
        ignore = lab.ignore_mask(image_id)
        images.append(lab.image(image_id))
        masks.append(target)
        valid.append(None if ignore is None else ~ignore)
        checksums[image_id] = {
            "image": sha256_file(lab.image_path(image_id)),
            "target": [sha256_file(f) for f in files],
        }
    if all(v is None for v in valid):
        valid = None
    return images, masks, valid, checksums, skipped


def _digest(data) -> str:
    return sha256_bytes(json.dumps(data, sort_keys=True).encode())


def train_lab(
    lab: Lab,
    strategy: str = CONSENSUS,
    out: str | Path = ".",
    *,
    k: int | None = None,
    seed: int = 0,
    split_seed: int | None = None,
    replicate: int = 1,
    init=None,
    steps: int = 2000,
    folds: Sequence[int] | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train one model per fold of a lab's split, validate each, and save it with its card.

    Parameters
    ----------
    lab : Lab
        The lab (images, annotators, est_GT, strata).
    strategy : str
        ``consensus`` (targets: estimated ground truth) or an annotator's name.
    out : str or Path
        Library folder; models go to ``<out>/<lab>/``.
    k : int, optional
        Number of folds (default: the lab's ``cv_folds``).
    seed : int
        Fixes the initial weights and all sampling (fold f trains with seed ``1000 * seed + f``).
    split_seed : int, optional
        Fixes the test hold-out and the folds (default: `seed`). Replicates keep one split and
        vary `seed`.
    replicate : int
        Replicate number: 1 names models as always, n > 1 adds ``_r<n>`` to every name.
    init : StoredModel or StoredEnsemble, optional
        Fine-tune from a library model instead of random weights (fold f from
        :func:`init_member`); the cards record ``initialization: fine-tuned`` and the weights'
        checksum.
    steps : int
        Optimiser steps per model.
    folds : sequence of int, optional
        Which folds (1..k) to train; default all.
    config : TrainConfig, optional
        Further training settings; its `steps` and `seed` are replaced by the arguments.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of dict
        The cards written: the fold models, then, for ``consensus`` once all folds exist, the
        ensemble of the members that passed the selection rule (none when every member failed).

    Examples
    --------
    A tiny U-Net, two optimiser steps, fold 1 of 2 on the real lab-mue (no test set: the study
    cross-validated all of its 5 images):

    >>> import tempfile
    >>> from cfosstats.datasets.discover import load_lab
    >>> from cfosstats.segment.train import TrainConfig
    >>> lab = load_lab("mue", data="../shared/data/train_data")
    >>> tiny = TrainConfig(base=4, depth=2, tile=64, batch_size=2, precision="fp32")
    >>> cards = train_lab(lab, "consensus", tempfile.mkdtemp(), k=2, folds=[1], steps=2, config=tiny,
    ...                   progress=False)
    >>> card = cards[0]
    >>> card["name"], card["test_images"], len(card["validation_images"]), card["selection"]["verdict"]
    ('mue/consensus_model_1', [], 3, 'rejected')
    """
    if strategy != CONSENSUS and strategy not in lab.annotators:
        known = ", ".join([CONSENSUS, *lab.annotators])
        raise InputError(lab.root / "labels", f"unknown strategy '{strategy}' (known: {known})")
    if replicate < 1:
        raise InputError(None, f"replicate must be at least 1, got {replicate}")
    split = lab_split(lab, k, seed if split_seed is None else split_seed)
    folds = sorted(set(folds)) if folds else list(range(1, split.k + 1))
    bad = [f for f in folds if not 1 <= f <= split.k]
    if bad:
        raise InputError(None, f"fold(s) {bad} outside 1..{split.k}")
    base_config = config or TrainConfig()
    config = TrainConfig(**{**base_config.__dict__, "steps": steps, "seed": seed})
    names = model_names(strategy, folds, replicate)
    folder = Path(out) / lab.name
    run = {"split": split, "replicate": replicate, "init": init}
    cards = []
    with _progress(progress) as bars:
        for fold in folds:
            card = _train_fold(lab, strategy, run, fold, names[fold], config, folder, bars)
            cards.append(card)
    if strategy == CONSENSUS:
        ensemble = _write_ensemble_if_complete(lab, split, folder, replicate, _initialization(init))
        if ensemble is not None:
            cards.append(ensemble)
    return cards


def _initialization(init) -> str:
    return INITIALIZATION if init is None else FINE_TUNED


def _init_record(init) -> dict | None:
    """What a fine-tuned card says about its init model: name, card and weights checksums."""
    if init is None:
        return None
    return {
        "name": init.name,
        "sha256": init.card["sha256"],
        "card_sha256": sha256_file(init.path),
        "lab": init.card.get("lab"),
        "normalisation": init.card.get("normalisation"),
    }


def _train_fold(lab, strategy, run, fold, name, config, folder, progress) -> dict:
    split = run["split"]
    init = init_member(run["init"], fold)
    train_ids = split.training(fold)
    images, masks, valid, checksums, skipped = _targets(lab, strategy, train_ids)
    if not images:
        raise InputError(lab.root, f"no training images for {strategy}, fold {fold}")
    used_ids = [i for i in train_ids if i not in skipped]
    too_small = [i for i, im in zip(used_ids, images) if min(im.shape) < config.tile]
    if too_small:
        raise InputError(lab.image_path(too_small[0]), f"image smaller than the training tile {config.tile}")
    task = progress.add_task(f"{lab.name} {name} (fold {fold}/{split.k})", total=config.steps, info="")

    def advance(step: int, loss: float) -> None:
        progress.update(task, completed=step, info=f"loss {loss:.3f}")

    # Fold-specific seed: folds differ in initialisation as well as data, like independent runs.
    fold_config = TrainConfig(**{**config.__dict__, "seed": config.seed * 1000 + fold})
    if init is not None:  # the init model's shape, whatever the defaults
        shape = init.module.architecture
        fold_config = TrainConfig(**{**fold_config.__dict__, "base": shape.base, "depth": shape.depth})
    start = None if init is None else init.module
    result = train_model(images, masks, fold_config, valid, advance, init=start)
    model = library.round_to_storage(result.model)  # validate exactly what is stored
    validation_ids = split.validation(fold)
    table, verdict = _validate(lab, model, validation_ids, f"{lab.name} {name}", progress)
    card = {
        "name": f"{lab.name}/{name}",
        "lab": lab.name,
        "strategy": strategy,
        "initialization": _initialization(init),
        "initialized_from": _init_record(init),
        "replicate": run["replicate"],
        "fold": fold,
        "folds": split.k,
        "seed": config.seed,
        "split_seed": split.seed,
        "steps": config.steps,
        "test_images": list(split.test),
        "validation_images": list(validation_ids),
        "training_images": used_ids,
        "skipped_images": skipped,
        "target": reference_source(lab) if strategy == CONSENSUS else strategy,
        "training_data": checksums,
        "training_data_sha256": _digest(checksums),
        "normalisation": {
            "mean": float(model.input_mean[0]),
            "std": float(model.input_std[0]),
            "method": "training-set mean and standard deviation, stored in the weights",
        },
        "training": {**fold_config.as_dict(), **result.summary()},
        "validation": table.to_dict(orient="records"),
        "selection": verdict,
        "validation_prediction": Settings().resolved().as_dict(),
        "versions": software_versions(SOFTWARE),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return library.save_model(folder / f"{name}.json", model, card)


def _validate(lab: Lab, model, image_ids, description: str, progress) -> tuple[pd.DataFrame, dict]:
    """Predict `image_ids` with one model and judge them by the selection rule."""
    check = progress.add_task(f"{description}: validating", total=len(image_ids), info="")
    table = validate_model(lab, model, image_ids, Settings(), lambda: progress.advance(check))
    verdict = selection_verdict(table)
    progress.update(check, info=f"{verdict['verdict']} ({verdict['n_passed']}/{verdict['n_images']})")
    return table, verdict


def _init_names(cards: list[dict]) -> list[str] | None:
    names = sorted({c["initialized_from"]["name"] for c in cards if c.get("initialized_from")})
    return names or None


def _write_ensemble_if_complete(
    lab: Lab, split: Split, folder: Path, replicate: int = 1, initialization: str = INITIALIZATION
) -> dict | None:
    """The ensemble card of the selected members, once every fold's consensus model of this split,
    replicate and initialization is in `folder`; None while one is missing or when none passed."""
    members = []
    for fold, name in model_names(CONSENSUS, range(1, split.k + 1), replicate).items():
        path = folder / f"{name}.json"
        if not path.is_file():
            return None
        card = library.read_card(path)
        card_split = (card.get("split_seed", card.get("seed")), card.get("folds"), card.get("test_images"))
        same_split = card_split == (split.seed, split.k, list(split.test))
        same_run = card.get("initialization", INITIALIZATION) == initialization
        if not same_split or not same_run or card.get("fold") != fold:
            return None
        members.append(card)
    verdicts = {m["name"]: m["selection"]["verdict"] for m in members}
    # The study's rule decides the ensemble: a member that failed it is left out (and listed).
    selected = [m for m in members if verdicts[m["name"]] == "selected"]
    if not selected:
        return None
    steps = sorted({m.get("steps") for m in selected})
    card = {
        "name": f"{lab.name}/{ensemble_name(replicate)}",
        "lab": lab.name,
        "strategy": CONSENSUS,
        "initialization": initialization,
        "initialized_from": _init_names(selected),
        "replicate": replicate,
        "folds": split.k,
        "seed": split.seed,
        "split_seed": split.seed,
        "member_seeds": {m["name"]: m.get("seed") for m in selected},
        "steps": steps[0] if len(steps) == 1 else steps,
        "test_images": list(split.test),
        "validation_images": {m["name"]: m["validation_images"] for m in selected},
        "combination": "mean of the members' softmax probabilities",
        # The ensemble has no out-of-fold images of its own (each validation image trained the
        # other members), so the counts pool its members' out-of-fold checks.
        "selection": {
            "verdict": "selected",
            "rule": "members: the fold models that passed the rule on their own validation images",
            "members": verdicts,
            "rejected": [m["name"] for m in members if verdicts[m["name"]] != "selected"],
            "n_images": sum(m["selection"]["n_images"] for m in selected),
            "n_passed": sum(m["selection"]["n_passed"] for m in selected),
            "failed_images": {
                m["name"]: m["selection"]["failed_images"] for m in members if m["selection"]["failed_images"]
            },
        },
        "versions": software_versions(SOFTWARE),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return library.save_ensemble(folder / f"{ensemble_name(replicate)}.json", selected, card)


# -- prediction --------------------------------------------------------------------------------


def _single_folder(card: dict) -> tuple[str, str, str]:
    strategy, fold = card.get("strategy", "model"), card.get("fold") or 1
    model = f"{strategy}{replicate_suffix(card.get('replicate') or 1)}"
    if strategy == CONSENSUS:
        return "consensus_models", model, f"unet_{fold}"
    return "expert_models", model, f"unet_{fold}"


def prediction_folders(stored, replicate: int | None = None) -> dict[str, tuple[str, ...]]:
    """Study-layout folders (initialization, model_type, model, unet) of a model's masks.

    Parameters
    ----------
    stored : StoredModel or StoredEnsemble
        The model.
    replicate : int, optional
        Number in an ensemble's folder name (``ensemble_<replicate>``); default the card's.

    Returns
    -------
    dict
        ``"self"`` -> the model's (or ensemble's) own folder; for an ensemble also each member's
        name -> its ``unet_<fold>`` folder beside the ensemble's.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> prediction_folders(NS(is_ensemble=False, card={"strategy": "expert_3", "fold": 2}))
    {'self': ('scratch', 'expert_models', 'expert_3', 'unet_2')}
    >>> card = {"strategy": "consensus", "fold": 1, "replicate": 2, "initialization": "fine-tuned"}
    >>> prediction_folders(NS(is_ensemble=False, card=card))
    {'self': ('fine-tuned', 'consensus_models', 'consensus_r2', 'unet_1')}
    """
    initialization = stored.card.get("initialization", INITIALIZATION)
    if not stored.is_ensemble:
        return {"self": (initialization, *_single_folder(stored.card))}
    strategy = stored.card.get("strategy", CONSENSUS)
    model_type = "consensus_ensembles" if strategy == CONSENSUS else "expert_ensembles"
    model = f"ensemble_{replicate or stored.card.get('replicate') or 1}"
    folders = {"self": (initialization, model_type, model, "ensemble")}
    for index, member in enumerate(stored.members, 1):
        folders[member.name] = (initialization, model_type, model, f"unet_{member.card.get('fold') or index}")
    return folders


def _image_role(stored, image_id: str) -> str:
    cards = [stored.card, *(m.card for m in stored.members)] if stored.is_ensemble else [stored.card]
    if any(image_id in c.get("test_images", []) for c in cards):
        return "test"
    if any(image_id in c.get("training_images", []) for c in cards):
        return "training"
    if any(
        image_id in c.get("validation_images", [])
        for c in cards
        if isinstance(c.get("validation_images"), list)
    ):
        return "validation"
    return "unseen"


def predict_lab(
    lab: Lab,
    model: str | Path | library.StoredModel | library.StoredEnsemble,
    out: str | Path,
    settings: Settings = Settings(),
    *,
    image_ids: Sequence[str] | None = None,
    model_library=None,
    replicate: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict a lab's images with a model or an ensemble; write masks and uncertainty maps.

    Parameters
    ----------
    lab : Lab
        Only its images are used.
    model : str, Path, StoredModel or StoredEnsemble
        A library name (``wue1/consensus_ensemble``), a card path, or a loaded model.
    out : str or Path
        Data root to write into (``<out>/<lab folder>/labels/...`` and ``.../uncertainty/...``).
    settings : Settings
        Tiling, test-time augmentation, precision.
    image_ids : sequence of str, optional
        Which images (default: all).
    model_library : str or Path, optional
        Library folder for names (default: the shipped library).
    replicate : int, optional
        Number in an ensemble's folder name (``ensemble_<replicate>``); default the card's.
    progress : bool
        Show a progress bar.

    Returns
    -------
    DataFrame
        The ``uncertainty.csv`` table: one row per image with ``role`` (test / training /
        validation / unseen for this model), ``n_objects``, the uncertainty scores of
        :meth:`Prediction.scores` and ``review_rank`` (1 = review first).

    Examples
    --------
    Two real lab-mue images predicted with the shipped lab-wue1 ensemble ("frozen" transfer):

    >>> import tempfile
    >>> from cfosstats.datasets.discover import load_lab
    >>> lab = load_lab("mue", data="../shared/data/train_data")
    >>> table = predict_lab(lab, "wue1/consensus_ensemble", tempfile.mkdtemp(), Settings(),
    ...                     image_ids=lab.image_ids[:2], progress=False)
    >>> table["role"].tolist(), int(table["review_rank"].min())
    (['unseen', 'unseen'], 1)
    """
    stored = model if hasattr(model, "is_ensemble") else library.load_model(model, model_library)
    image_ids = list(image_ids) if image_ids is not None else lab.image_ids
    unknown = [i for i in image_ids if i not in set(lab.image_ids)]
    if unknown:
        raise InputError(lab.root / "images", f"no image(s) {', '.join(unknown[:5])} in lab {lab.name}")
    settings = settings.resolved()
    members = stored.members
    prepared = [prepare_model(m.module, settings) for m in members]
    folders = prediction_folders(stored, replicate)
    lab_out = Path(out) / lab.config.folder
    label = lab.config.label
    rows = []
    with contextlib.ExitStack() as stack, _progress(progress) as bars:
        # Stage every output folder; they replace the old ones only when all images are done.
        staged = {
            key: stack.enter_context(atomic_dir(lab_out.joinpath("labels", *parts)))
            for key, parts in folders.items()
        }
        uncertainty_dir = stack.enter_context(atomic_dir(lab_out.joinpath("uncertainty", *folders["self"])))
        task = bars.add_task(f"{lab.name}: predicting with {stored.name}", total=len(image_ids), info="")
        key = (str(stored.path), sha256_file(stored.path), settings)
        use_prepared(key, prepared)  # inline, this process predicts with the model already loaded
        own = [str(staged["self"])] + ([str(staged[m.name]) for m in members] if stored.is_ensemble else [])
        tasks = [
            (key, str(lab.image_path(i)), i, label, lab.config.min_object_size, own, str(uncertainty_dir))
            for i in image_ids
        ]
        try:
            # One job here: torch already uses every core for one image (and a thread writes the
            # previous image's files meanwhile). On a Dask cluster (--scheduler) each worker loads
            # the model once and predicts its share.
            with background_writes():
                for image_id, scores in zip(
                    image_ids, map_tasks(predict_and_write, tasks, 1, False, "predict")
                ):
                    rows.append({"image_id": image_id, "role": _image_role(stored, image_id), **scores})
                    bars.advance(task)
        finally:
            forget_prepared(key)
        table = pd.DataFrame(rows)
        if not table.empty:
            order = table["review_score"].rank(ascending=False, method="first")
            table["review_rank"] = order.astype(int)
            table = table.sort_values("review_rank").reset_index(drop=True)
        write_csv(uncertainty_dir / "uncertainty.csv", table)
        record = {
            "model": stored.name,
            "model_card": str(stored.path),
            "model_card_sha256": key[1],  # read once, when the run began
            "members": [m.name for m in members],
            "settings": settings.as_dict(),
            "uncertainty_scale": "16-bit PNG: 0..65535 = 0..1 bit (entropy in bits, 2 classes)",
            "review_score": "ensemble: mean epistemic over predicted foreground; single model: mean total",
            "versions": software_versions(SOFTWARE),
        }
        write_text(uncertainty_dir / "prediction.json", json.dumps(record, indent=2) + "\n")
    return table

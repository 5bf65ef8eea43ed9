"""The two on-disk layouts cfosstats reads, and the names used in them.

Training layout (the public ``train_data/`` of the study)::

    <root>/lab-<id>/images/<image_id>.png
    <root>/lab-<id>/labels/<annotator>/<image_id>_<label>.png
    <root>/lab-<id>/labels/est_GT/<image_id>_<label>.png          estimated ground truth
    <root>/lab-<id>/ignored_regions/<image_id>_ignore.png         optional
    <root>/lab-<id>/groups_<id>.csv                               optional strata: file_id,group_id

Full study layout (the Dryad archive; also what ``cfosstats simulate`` writes)::

    <root>/image_mapping.xlsx        one row per image, first sheet, columns (case-insensitive):
        lab          lab folder name, e.g. ``lab-wue1``
        ID           image id (text, kept as written, e.g. ``0001``)
        area         imaged area, e.g. ``CA1``
        condition    experimental condition (one of the lab's conditions)
        experiment   experiment / batch number (normalisation is per experiment)
        animal       animal id (optional column; blank when unknown)
        training     1 for images of the annotated training subset, else 0 or blank
    <root>/lab-<id>/images/<ID>.tif                              (.png accepted)
    <root>/lab-<id>/regions/<region>/<ID>.png                    region masks, one folder per region
    <root>/lab-<id>/ignored_regions/<ID>_ignore.png              optional
    <root>/lab-<id>/labels/<annotator>/<ID>_<label>.png          annotators (training subset)
    <root>/lab-<id>/labels/est_GT/<ID>_<label>.png               estimated ground truth
    <root>/lab-<id>/labels/<initialization>/<model_type>/<model>/<unet>/<ID>_<label>.png
        initialization  how training started: ``scratch`` or ``transfer``
        model_type      ``expert_models``, ``consensus_models`` or ``consensus_ensembles``
        model           which model: ``expert_1`` (trained on that annotator), ``consensus_1``, ...
        unet            ``unet_1``, ``unet_2``, ... or ``ensemble`` for an ensemble's own masks

A folder under ``labels/`` that holds mask files directly is an annotator (or ``est_GT``); one
that holds sub-folders is an initialization of predicted label sets.
"""

from __future__ import annotations

MAPPING_FILE = "image_mapping.xlsx"
MAPPING_COLUMNS = ("lab", "ID", "area", "condition", "experiment", "animal", "training")
ESTIMATED_GT = "est_GT"
ENSEMBLE_UNET = "ensemble"

# model_type folder -> strategy of the label sources under it. An ensemble folder's members
# (unet_k) are single models of the same training recipe; its `ensemble` unet is the ensemble.
MODEL_TYPES = {
    "expert_models": "expert_models",
    "consensus_models": "consensus_models",
    "consensus_ensembles": "consensus_ensembles",
}
STRATEGY_ORDER = (
    "annotators",
    "estimated_gt",
    "expert_models",
    "consensus_models",
    "ensemble_members",
    "consensus_ensembles",
    "expert_ensembles",
)


def mask_name(image_id: str, label: str) -> str:
    """File name of a mask: ``<image_id>_<label>.png``.

    Examples
    --------
    >>> mask_name("0001", "cFOS")
    '0001_cFOS.png'
    """
    return f"{image_id}_{label}.png"


def strategy_of(model_type: str, unet: str) -> str:
    """The strategy a predicted label set belongs to.

    Examples
    --------
    >>> strategy_of("consensus_ensembles", "ensemble"), strategy_of("consensus_ensembles", "unet_2")
    ('consensus_ensembles', 'ensemble_members')
    """
    strategy = MODEL_TYPES.get(model_type, model_type)
    if strategy.endswith("_ensembles") and unet != ENSEMBLE_UNET:
        return "ensemble_members"
    return strategy

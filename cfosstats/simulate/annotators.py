"""The simulated labellers: annotators with their archetypal biases, the models and ensembles
trained after them, and how a labeller turns a scene's nuclei into a hard mask or a soft map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from cfosstats.datasets.layout import ENSEMBLE_UNET
from cfosstats.datasets.registry import LabConfig
from cfosstats.simulate.design import (
    INITIALIZATION,
    MEMBERS_PER_ENSEMBLE,
    N_CONSENSUS_MODELS,
    N_ENSEMBLES,
    UNETS_PER_EXPERT,
    _rng,
)
from cfosstats.simulate.scene import Nuclei, Scene

# --- labellers ---------------------------------------------------------------------------------
DETECTION_WIDTH = 0.15  # log-brightness change that moves the detection logit by one unit
EDGE_SHARPNESS = 2.0  # 1/px: steepness of a model's soft map at the object boundary
HUMAN_EDGE_JITTER = 1.0  # px: per-object outline noise of an annotator (drawing by hand)
MODEL_EDGE_JITTER = 0.4  # px: per-object outline noise of a model
PROFILES = {  # annotator archetypes: threshold, boundary (px), miss rate, false-positive bias
    "conservative": (-0.05, -0.6, 0.08, 0.0),
    "moderate": (-0.65, 0.0, 0.06, 0.0),
    "liberal": (-1.0, 0.5, 0.02, 0.2),
}
ANNOTATOR_NOISE = (0.08, 0.4)  # sd of threshold and boundary around the archetype
HUMAN_JITTER = 1.5  # per-nucleus decision noise of an annotator (logit units)
MODEL_NOISE = (0.1, 0.3, 0.15)  # sd of a model's threshold, boundary, false-positive bias
MODEL_MISS_RATE = 0.02
MODEL_JITTER = 0.8


@dataclass(frozen=True)
class Labeller:
    """How one annotator or model turns nuclei into a mask.

    Attributes
    ----------
    name : str
        Annotator name, or the label set's path below ``labels/`` for a model.
    threshold : float
        Visibility (log brightness relative to a median control nucleus) detected half the time.
    boundary : float
        Pixels added to (positive) or taken from (negative) every outline.
    miss_rate : float
        Probability of overlooking a nucleus whatever its brightness.
    fp_bias : float
        Visibility credited to cFOS-negative nuclei: > 0 marks more of them (false positives).
    jitter : float
        Sd of the per-nucleus decision noise (logit units).
    edge_jitter : float
        Sd of the per-nucleus outline noise (px).
    profile : str
        ``conservative``, ``moderate``, ``liberal`` or the strategy of a model.
    """

    name: str
    threshold: float
    boundary: float
    miss_rate: float
    fp_bias: float
    jitter: float
    edge_jitter: float
    profile: str = ""


# --- labellers ---------------------------------------------------------------------------------


def _profile_of(index: int, n_annotators: int) -> str:
    # The first annotator is conservative (as wue1's expert_1), the third (or the last) liberal.
    if index == 0:
        return "conservative"
    if n_annotators > 1 and index == min(2, n_annotators - 1):
        return "liberal"
    return "moderate"


def make_annotators(config: LabConfig, seed: int) -> list[Labeller]:
    """The lab's annotators with their simulated biases.

    Examples
    --------
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> [a.profile for a in make_annotators(load_lab_config("demo"), 0)]
    ['conservative', 'moderate', 'liberal', 'moderate']
    """
    out = []
    for i, name in enumerate(config.annotators):
        profile = _profile_of(i, len(config.annotators))
        threshold, boundary, miss, fp_bias = PROFILES[profile]
        rng = _rng(seed, "annotator", name)
        out.append(
            Labeller(
                name,
                threshold + rng.normal(0, ANNOTATOR_NOISE[0]),
                boundary + rng.normal(0, ANNOTATOR_NOISE[1]),
                miss,
                fp_bias,
                HUMAN_JITTER,
                HUMAN_EDGE_JITTER,
                profile,
            )
        )
    return out


def _model(seed: int, name: str, base: Labeller, profile: str) -> Labeller:
    """A trained model: its recipe's biases (`base`) plus its own training-run randomness."""
    rng = _rng(seed, "model", name)
    sd_threshold, sd_boundary, sd_fp = MODEL_NOISE
    return Labeller(
        name,
        base.threshold + rng.normal(0, sd_threshold),
        base.boundary + rng.normal(0, sd_boundary),
        MODEL_MISS_RATE,
        base.fp_bias + rng.normal(0, sd_fp),
        MODEL_JITTER,
        MODEL_EDGE_JITTER,
        profile,
    )


def _consensus(annotators: list[Labeller]) -> Labeller:
    # Models trained on est_GT learn roughly the annotators' median behaviour.
    threshold, boundary, _, fp_bias = PROFILES["moderate"]
    if annotators:
        threshold = float(np.median([a.threshold for a in annotators]))
        boundary = float(np.median([a.boundary for a in annotators]))
        fp_bias = float(np.median([a.fp_bias for a in annotators]))
    return Labeller("consensus", threshold, boundary, 0.0, fp_bias, 0.0, 0.0, "consensus")


def make_models(
    annotators: list[Labeller],
    seed: int,
    expert_models: int = UNETS_PER_EXPERT,
    consensus_models: int = N_CONSENSUS_MODELS,
    ensembles: int = N_ENSEMBLES,
    ensemble_members: int = MEMBERS_PER_ENSEMBLE,
) -> dict[str, list[Labeller]]:
    """Every predicted label set, keyed by its folder below ``labels/`` (one model or ensemble).

    An ensemble's entry lists its members; a single model's entry lists itself. Each model's
    randomness is keyed by its folder, so asking for more models adds models and leaves the
    others (and their masks) as they were.

    Parameters
    ----------
    annotators : list of Labeller
        The lab's annotators (each gets `expert_models` models trained after them).
    seed : int
        The study's seed.
    expert_models : int
        Models per annotator (``expert_models/<annotator>/unet_1..``).
    consensus_models : int
        Models trained on est_GT (``consensus_models/consensus/unet_1..``).
    ensembles : int
        Consensus ensembles (``consensus_ensembles/ensemble_1..``).
    ensemble_members : int
        Members per ensemble (each also a label set, ``.../ensemble_<e>/unet_1..``).

    Examples
    --------
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> models = make_models(make_annotators(load_lab_config("demo"), 0), 0)
    >>> len(models), len(models["scratch/consensus_ensembles/ensemble_1/ensemble"])
    (20, 3)
    >>> len(make_models(make_annotators(load_lab_config("demo"), 0), 0, 5, 0, 9, 4))
    65
    """
    root, out = INITIALIZATION, {}
    for annotator in annotators:
        for u in range(1, expert_models + 1):
            name = f"{root}/expert_models/{annotator.name}/unet_{u}"
            out[name] = [_model(seed, name, annotator, "expert_models")]
    consensus = _consensus(annotators)
    for u in range(1, consensus_models + 1):
        name = f"{root}/consensus_models/consensus/unet_{u}"
        out[name] = [_model(seed, name, consensus, "consensus_models")]
    for e in range(1, ensembles + 1):
        folder = f"{root}/consensus_ensembles/ensemble_{e}"
        members = []
        for u in range(1, ensemble_members + 1):
            member = _model(seed, f"{folder}/unet_{u}", consensus, "ensemble_members")
            out[member.name] = [member]
            members.append(member)
        out[f"{folder}/{ENSEMBLE_UNET}"] = members
    return out


# --- labelling ---------------------------------------------------------------------------------


def _decide(rng: np.random.Generator, nuclei: Nuclei, labeller: Labeller) -> tuple[np.ndarray, np.ndarray]:
    """Per nucleus: the labeller's detection logit and outline offset (px)."""
    n = len(nuclei)
    visibility = nuclei.visibility + np.where(nuclei.positive, 0.0, labeller.fp_bias)
    logit = (visibility - labeller.threshold) / DETECTION_WIDTH
    logit = logit + labeller.jitter * rng.standard_normal(n)
    logit[rng.random(n) < labeller.miss_rate] = -30.0
    edge = labeller.boundary + labeller.edge_jitter * rng.standard_normal(n)
    return logit, edge


def _hard_mask(scene: Scene, logit: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """A human's mask: every detected nucleus drawn with the labeller's outline offset."""
    o = scene.near_owner
    return scene.to_mask((logit[o] > 0) & (scene.near_dist + edge[o] > 0))


def _soft_map(
    scene: Scene, logit: np.ndarray, edge: np.ndarray, pixels: np.ndarray | None = None
) -> np.ndarray:
    """A model's foreground probability on the near-nucleus pixels: detection x soft outline.

    `pixels` (indices into ``scene.near``) restricts it to those pixels; every value is the same
    as on the full map (a pure function of the pixel and its nucleus).

    Examples
    --------
    >>> from cfosstats.simulate.scene import Nuclei
    >>> n = Nuclei(*(np.zeros(1) for _ in range(7)), np.ones(1, bool))
    >>> scene = Scene({}, np.ones((1, 2), bool), n, np.zeros((1, 2), np.int32), np.float32([[1, -1]]))
    >>> [round(float(v), 3) for v in _soft_map(scene, np.array([30.0]), np.zeros(1))]
    [0.881, 0.119]
    """
    owner, dist = scene.near_owner, scene.near_dist
    if pixels is not None:
        owner, dist = owner[pixels], dist[pixels]
    outline = expit(EDGE_SHARPNESS * (dist + edge[owner]))
    # expit per nucleus, then gathered: the same values as expit of the gathered logits.
    return (expit(logit)[owner] * outline).astype(np.float32)


def _foreground(
    scene: Scene, decisions: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Where the mean of these models' maps is > 0.5, and where each one's own map is.

    Pixels are indices into ``scene.near``. A map value never exceeds its nucleus's detection
    probability (the outline is at most 1), so only nuclei whose mean or own probability can
    pass 0.5 are computed; the 1e-4 margin covers float32 rounding many times over, so the
    result is that of the full maps. An ensemble's members are computed once for both.

    Examples
    --------
    >>> from cfosstats.simulate.scene import Nuclei
    >>> n = Nuclei(*(np.zeros(2) for _ in range(7)), np.ones(2, bool))
    >>> owner, dist = np.int32([[0, 0, 1, 1]]), np.float32([[1, -1, 1, -1]])
    >>> scene = Scene({}, np.ones((1, 4), bool), n, owner, dist)
    >>> mean, own = _foreground(scene, [(np.array([30.0, -30.0]), np.zeros(2))])
    >>> mean.tolist(), [o.tolist() for o in own]
    ([0], [[0]])
    """
    threshold = 0.5 * (1 - 1e-4)
    probability = [expit(logit) for logit, _ in decisions]
    needed = sum(probability) > len(decisions) * threshold
    for p in probability:
        needed |= p > threshold
    candidates = np.flatnonzero(needed[scene.near_owner])
    maps = [_soft_map(scene, logit, edge, candidates) for logit, edge in decisions]
    mean = maps[0] if len(maps) == 1 else np.mean(maps, axis=0)
    return candidates[mean > 0.5], [candidates[m > 0.5] for m in maps]

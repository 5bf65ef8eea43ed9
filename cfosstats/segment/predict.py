"""Prediction: one model or an ensemble, tiled and blended, with flip test-time augmentation and
per-pixel uncertainty split into model disagreement and per-model uncertainty.

Uncertainty, on one fixed scale
-------------------------------
With members' class probabilities ``p_m`` and the ensemble mean ``p̄ = mean_m p_m`` (the
ensemble *is* the mean of the members' softmax), entropies in bits (natural log divided by
log 2, so a two-class map lies in [0, 1] on every image):

* ``aleatoric = mean_m H(p_m)`` — expected entropy: what each model itself is unsure of (object
  edges, dim nuclei);
* ``epistemic = mean_m KL(p_m || p̄)`` — mutual information between prediction and member: how
  much the members *disagree*; zero exactly when all members agree;
* ``total = aleatoric + epistemic`` — the entropy of the ensemble, ``H(p̄)``.

``variance`` (of the foreground probability across members, at most 0.25) is kept as a second,
simpler measure of disagreement. The member mean is summed in float64, so identical members give
a mean bit-identical to each member, hence exactly zero disagreement.

Per-image review score
----------------------
``review_score`` is the mean *epistemic* uncertainty over the image's predicted foreground (the
union of all members' and the ensemble's foreground pixels): members' disagreement about the
objects, not diluted by empty tissue, so images with few but disputed nuclei rank high. A single
model has no members to disagree, so its score is the mean *total* uncertainty over its
foreground instead. Rank 1 = look at this image first.

Speed
-----
On CPUs with bf16 support (AVX512-BF16 or AMX) the model runs under bf16 autocast; on a CUDA GPU
under bf16 autocast; elsewhere in float32. It always runs in channels-last memory format: oneDNN's
convolutions with few channels are much faster on it (measured 1.6-1.9x in float32 on a 2-core
AMD EPYC without bf16; ``benchmarks/bench_predict.py``). Conv + BatchNorm pairs are folded into
one convolution for inference. Images up to the tile size
(1024 by default, i.e. a whole wue1 image) are predicted in one piece.

Examples
--------
>>> from cfosstats.segment.unet import UNet
>>> models = [UNet(base=4, depth=2).eval()] * 2
>>> result = predict_image(models, np.zeros((40, 40), np.float32), Settings(precision="fp32"))
>>> result.mask.shape, float(result.epistemic.max())
((40, 40), 0.0)
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from cfosstats.segment.tiling import predict_tiled
from cfosstats.segment.unet import UNet

LOG2 = math.log(2)
#: The flips averaged by test-time augmentation: (flip rows, flip columns).
TTA_FLIPS = ((False, False), (False, True), (True, False), (True, True))
UNCERTAINTY_MAPS = ("epistemic", "aleatoric", "total")


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 matrix work natively (AMX tiles or AVX512-BF16)."""
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def default_device() -> str:
    """``cuda`` when a GPU is present, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def fast_precision(device: str) -> str:
    """The fast compute precision on `device`: ``bf16`` where supported, else ``fp32``.

    Examples
    --------
    >>> fast_precision("cpu") in ("bf16", "fp32")
    True
    """
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if bf16_supported() else "fp32"


@dataclass(frozen=True)
class Settings:
    """How to predict (recorded with every prediction).

    Attributes
    ----------
    tile, overlap : int
        Tile side and minimum overlap (multiples of the model's ``2**depth``).
    tta : bool
        Average the four flips of each image (4x the work).
    precision : str
        ``auto`` (the fast path where supported), ``bf16`` or ``fp32``.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    fuse : bool
        Fold BatchNorm into the convolutions (same results up to float rounding, faster).
    batch_size : int
        Tiles per forward pass.
    channels_last : bool
        Run in channels-last memory format (faster; same results up to float rounding).
    threads : int
        torch CPU threads while predicting; 0 = this process's current count, fixed by
        :meth:`resolved` at the start of a run so that every process predicting a share (a Dask
        worker, whatever its own count) uses the same: how oneDNN splits a convolution's sums
        between threads changes the last bits of the probabilities (1 vs 3 threads: 1e-8).
    """

    tile: int = 1024
    overlap: int = 128
    tta: bool = False
    precision: str = "auto"
    device: str = "auto"
    fuse: bool = True
    batch_size: int = 1
    channels_last: bool = True
    threads: int = 0

    def resolved(self) -> Settings:
        """The settings with ``auto`` (and ``threads=0``) replaced by what this machine does."""
        device = default_device() if self.device == "auto" else self.device
        precision = fast_precision(device) if self.precision == "auto" else self.precision
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"unknown precision {precision!r}; use auto, bf16 or fp32")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 (torch's current count) or more, got {self.threads}")
        threads = self.threads or torch.get_num_threads()
        return replace(self, precision=precision, device=device, threads=threads)

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def torch_threads(threads: int):
    """Run the block with `threads` torch CPU threads, then restore the count before.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def fuse_batchnorm(model: UNet) -> UNet:
    """An eval-mode copy of `model` with every Conv2d + BatchNorm2d pair folded into one Conv2d."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module[index] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, norm)
                module[index + 1] = nn.Identity()
    return fused


def prepare_model(model: UNet, settings: Settings) -> UNet:
    """The module that actually runs: eval mode, fused, on the device, channels-last."""
    settings = settings.resolved()
    # A copy: moving or fusing must never change the caller's model.
    prepared = fuse_batchnorm(model) if settings.fuse else copy.deepcopy(model).eval()
    prepared = prepared.to(settings.device)
    if settings.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return prepared


def _batch_predictor(model: UNet, settings: Settings):
    device = torch.device(settings.device)

    @torch.inference_mode()
    def predict_batch(tiles: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))[:, None].to(device)
        if settings.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if settings.precision == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(batch)
        else:
            logits = model(batch)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    return predict_batch


def model_probabilities(
    model: UNet, image: np.ndarray, settings: Settings, prepared: bool = False
) -> np.ndarray:
    """Class probabilities (C, H, W) float32 of one model for one image.

    Parameters
    ----------
    model : UNet
        The model; pass ``prepared=True`` if it already went through :func:`prepare_model`.
    image : ndarray, shape (H, W)
        Raw image.
    settings : Settings
        Tiling, TTA, precision, device.
    """
    settings = settings.resolved()
    module = model if prepared else prepare_model(model, settings)
    predict_batch = _batch_predictor(module, settings)
    architecture = model.architecture

    def tiled(view: np.ndarray) -> np.ndarray:
        return predict_tiled(
            predict_batch,
            view,
            architecture.n_classes,
            tile=settings.tile,
            overlap=settings.overlap,
            align=architecture.align,
            batch_size=settings.batch_size,
        )

    if not settings.tta:
        return tiled(image)
    total = None
    for flip_rows, flip_cols in TTA_FLIPS:
        axes = tuple(axis for axis, flip in ((0, flip_rows), (1, flip_cols)) if flip)
        view = np.flip(image, axes) if axes else image
        probability = tiled(view)
        probability = np.flip(probability, tuple(a + 1 for a in axes)) if axes else probability
        total = probability if total is None else total + probability
    return (total / len(TTA_FLIPS)).astype(np.float32)


@dataclass
class Prediction:
    """One image predicted by a model or an ensemble.

    Attributes
    ----------
    probability : ndarray of float32, (H, W)
        Ensemble (mean) foreground probability.
    mask : ndarray of bool, (H, W)
        ``probability > 0.5``.
    member_probabilities : ndarray of float32, (M, H, W)
        Each member's foreground probability.
    epistemic, aleatoric, total : ndarray of float32, (H, W)
        Uncertainty maps in [0, 1] (see the module docstring).
    variance : ndarray of float32, (H, W)
        Variance of the foreground probability across members, in [0, 0.25].
    """

    probability: np.ndarray
    mask: np.ndarray
    member_probabilities: np.ndarray
    epistemic: np.ndarray
    aleatoric: np.ndarray
    total: np.ndarray
    variance: np.ndarray

    @property
    def member_masks(self) -> np.ndarray:
        """Each member's binary mask, (M, H, W)."""
        return self.member_probabilities > 0.5

    def scores(self) -> dict[str, float]:
        """Per-image uncertainty summaries; ``review_score`` ranks images for human review."""
        region = self.mask | self.member_masks.any(axis=0)
        n_region = int(region.sum())

        def over_region(values: np.ndarray) -> float:
            return float(values[region].mean()) if n_region else 0.0

        scores = {
            "foreground_fraction": float(self.mask.mean()),
            "epistemic_mean": float(self.epistemic.mean()),
            "epistemic_foreground": over_region(self.epistemic),
            "aleatoric_mean": float(self.aleatoric.mean()),
            "aleatoric_foreground": over_region(self.aleatoric),
            "total_mean": float(self.total.mean()),
            "total_foreground": over_region(self.total),
            "variance_mean": float(self.variance.mean()),
        }
        single = len(self.member_probabilities) == 1
        scores["review_score"] = scores["total_foreground" if single else "epistemic_foreground"]
        return scores


def _single_model_uncertainty(probabilities: torch.Tensor) -> dict[str, np.ndarray]:
    """:func:`decompose_uncertainty` of one member, without the ensemble arithmetic: one model
    cannot disagree with itself, so epistemic and variance are zero and total = aleatoric (the
    general path gives the same bits: its KL terms are exactly zero; a test checks this)."""
    aleatoric = (-torch.special.xlogy(probabilities, probabilities).sum(dim=0) / LOG2).clamp(0.0, 1.0)
    zeros = np.zeros(aleatoric.shape, dtype=np.float32)
    return {
        "mean": probabilities.numpy(),
        "epistemic": zeros,
        "aleatoric": aleatoric.numpy(),
        "total": aleatoric.numpy().copy(),
        "variance": zeros.copy(),
    }


def decompose_uncertainty(member_probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Split the ensemble's predictive entropy into disagreement and per-model parts.

    Parameters
    ----------
    member_probabilities : ndarray, shape (M, C, H, W)
        Class probabilities of each member.

    Returns
    -------
    dict
        ``mean`` (C, H, W) ensemble probabilities; ``epistemic``, ``aleatoric``, ``total``,
        ``variance`` (H, W); all float32.

    Notes
    -----
    The member mean is summed in float64 and rounded once to float32, so identical members
    give a mean bit-identical to each member, and every KL term ``p log p - p log p̄`` is then
    exactly zero. The rest runs in float32 with torch (vectorised, multi-threaded): ~4x faster
    than float64 numpy on a 1024² image.

    Examples
    --------
    >>> p = np.array([[[[0.9]], [[0.1]]], [[[0.1]], [[0.9]]]])  # two members disagree
    >>> parts = decompose_uncertainty(p)
    >>> round(float(parts["total"][0, 0]), 3), round(float(parts["epistemic"][0, 0]), 3)
    (1.0, 0.531)
    """
    members = torch.as_tensor(np.asarray(member_probabilities), dtype=torch.float32)
    if members.shape[0] == 1:
        return _single_model_uncertainty(members[0])
    mean = (members.sum(dim=0, dtype=torch.float64) / members.shape[0]).float()
    p_log_p = torch.special.xlogy(members, members)
    aleatoric = -p_log_p.sum(dim=1).mean(dim=0) / LOG2
    divergence = (p_log_p - torch.special.xlogy(members, mean)).sum(dim=1) / LOG2  # KL(p_m || mean)
    epistemic = divergence.mean(dim=0).clamp(0.0, 1.0)
    foreground = members[:, -1]
    return {
        "mean": mean.numpy(),
        "epistemic": epistemic.numpy(),
        "aleatoric": aleatoric.clamp(0.0, 1.0).numpy(),
        "total": (aleatoric + epistemic).clamp(0.0, 1.0).numpy(),
        "variance": ((foreground - mean[-1]) ** 2).mean(dim=0).numpy(),
    }


def predict_image(
    models: list[UNet], image: np.ndarray, settings: Settings = Settings(), prepared: bool = False
) -> Prediction:
    """Predict one image with one or more models (an ensemble) and its uncertainty.

    Parameters
    ----------
    models : list of UNet
        The members (one for a single model).
    image : ndarray, shape (H, W)
        Raw image.
    settings : Settings
        How to predict.
    prepared : bool
        Whether `models` already went through :func:`prepare_model` (saves the fusion per image).

    Returns
    -------
    Prediction
    """
    settings = settings.resolved()
    with torch_threads(settings.threads):
        member_probabilities = np.stack([model_probabilities(m, image, settings, prepared) for m in models])
    parts = decompose_uncertainty(member_probabilities)
    probability = parts["mean"][-1]
    return Prediction(
        probability=probability,
        mask=probability > 0.5,
        member_probabilities=member_probabilities[:, -1],
        epistemic=parts["epistemic"],
        aleatoric=parts["aleatoric"],
        total=parts["total"],
        variance=parts["variance"],
    )


def to_uint16(values: np.ndarray) -> np.ndarray:
    """Map [0, 1] onto 0..65535 (the fixed scale of uncertainty PNGs).

    Examples
    --------
    >>> to_uint16(np.array([0.0, 0.5, 1.0])).tolist()
    [0, 32768, 65535]
    """
    return np.round(np.clip(values, 0.0, 1.0) * 65535).astype(np.uint16)

"""Training one U-Net: random augmented tiles, cross-entropy + Dice, AdamW with a one-cycle
learning rate, bf16 autocast and channels-last where the CPU supports bf16, the GPU when present.

Training starts from random weights (``scratch``) or from a trained model's (``init``: transfer
learning, as the study fine-tuned lab-wue1's models on the other labs). A fine-tuned model's
input normalisation is the new training set's mean and standard deviation, not the init model's:
its first layer then sees standardised intensities with the same distribution it was trained on,
whatever the brightness of the new lab's images (lab-inns2's are ~3x brighter than lab-wue1's).

Everything random is drawn from the seed: the initial weights (``torch.manual_seed``) and every
tile, transform and intensity change (one `numpy.random.Generator`). On the same machine and
thread count, the same seed gives the same model.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> images = [rng.normal(10, 2, (64, 64)).astype(np.float32) for _ in range(2)]
>>> masks = [image > 12 for image in images]
>>> config = TrainConfig(steps=3, batch_size=2, tile=32, base=4, depth=2, precision="fp32")
>>> result = train_model(images, masks, config)
>>> len(result.losses), result.precision
(3, 'fp32')
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from cfosstats.segment.augment import Augmentation, sample_batch
from cfosstats.segment.losses import segmentation_loss
from cfosstats.segment.predict import default_device, fast_precision, torch_threads
from cfosstats.segment.unet import UNet


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (stored in every model card).

    Attributes
    ----------
    steps : int
        Optimiser steps (one batch each).
    batch_size, tile : int
        Tiles per batch and tile side in pixels (a multiple of ``2**depth``).
    max_lr, weight_decay, pct_start : float
        AdamW with a one-cycle schedule: warm up over `pct_start` of the steps to `max_lr`,
        then anneal (cosine) to ~0. One cycle trains fast and needs no tuning of decay epochs.
    dice_weight : float
        Weight of the soft Dice term in the loss.
    base, depth : int
        U-Net shape.
    seed : int
        Fixes the weights' initialisation and every sample.
    device, precision : str
        ``auto`` picks CUDA when present and bf16 where supported; else ``cpu`` / ``fp32``.
    threads : int or None
        torch CPU threads during training (None: torch's default).
    augmentation : Augmentation
        What the samples vary.
    """

    steps: int = 2000
    batch_size: int = 4
    tile: int = 256
    max_lr: float = 3e-3
    weight_decay: float = 1e-4
    pct_start: float = 0.3
    dice_weight: float = 1.0
    base: int = 16
    depth: int = 4
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    augmentation: Augmentation = field(default_factory=Augmentation)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """A trained model and how training went."""

    model: UNet
    losses: list[float]
    device: str
    precision: str
    seconds: float

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(len(self.losses), 1)

    def summary(self) -> dict:
        """Loss at the start and end (means over the first and last tenth of the steps), timing."""
        n = max(len(self.losses) // 10, 1)
        return {
            "device": self.device,
            "precision": self.precision,
            "seconds": round(self.seconds, 1),
            "seconds_per_step": round(self.seconds_per_step, 4),
            "loss_start": float(np.mean(self.losses[:n])),
            "loss_end": float(np.mean(self.losses[-n:])),
        }


def intensity_statistics(images: list[np.ndarray]) -> tuple[float, float]:
    """Mean and standard deviation of all pixels of the training images (float64 sums).

    Examples
    --------
    >>> intensity_statistics([np.array([[0, 2]]), np.array([[4, 6]])])
    (3.0, 2.23606797749979)
    """
    count = sum(image.size for image in images)
    total = sum(float(image.sum(dtype=np.float64)) for image in images)
    mean = total / count
    squares = sum(float(((image.astype(np.float64) - mean) ** 2).sum()) for image in images)
    return mean, (squares / count) ** 0.5


def start_model(config: TrainConfig, init: UNet | None, mean: float, std: float) -> UNet:
    """The model training starts from: fresh weights (seeded by the caller), or a copy of
    `init`'s; either way normalised with the training images' `mean` and `std`.

    Examples
    --------
    >>> init = UNet(base=4, depth=2)
    >>> start = start_model(TrainConfig(), init, 20.0, 5.0)
    >>> start is init, float(start.input_mean[0]), float(init.input_mean[0])
    (False, 20.0, 0.0)
    >>> bool(torch.equal(start.head.weight, init.head.weight))
    True
    """
    if init is None:
        model = UNet(base=config.base, depth=config.depth)
    else:
        model = copy.deepcopy(init).to("cpu", memory_format=torch.contiguous_format).float()
    model.set_normalisation(mean, std if std > 0 else 1.0)
    return model


def train_model(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    config: TrainConfig = TrainConfig(),
    valid: list[np.ndarray | None] | None = None,
    progress: Callable[[int, float], None] | None = None,
    init: UNet | None = None,
) -> TrainResult:
    """Train a U-Net on images and binary target masks.

    Parameters
    ----------
    images : list of ndarray (H, W)
        Raw training images (at least `config.tile` on each side).
    masks : list of bool ndarray (H, W)
        Targets, one per image.
    config : TrainConfig
        Settings.
    valid : list of (bool ndarray or None), optional
        Pixels that count in the loss (False in ignored regions).
    progress : callable, optional
        Called as ``progress(step, loss)`` after every step (1-based).
    init : UNet, optional
        Start from a copy of this model's weights (fine-tuning; `init` itself is not changed);
        its architecture replaces `config.base` and `config.depth`, and its normalisation is
        replaced by the training images' statistics. Default: random weights from `config.seed`.

    Returns
    -------
    TrainResult
        The model (eval mode, float32, on the CPU), the loss of every step, timing.
    """
    if not images or len(images) != len(masks):
        raise ValueError("need at least one image and exactly one mask per image")
    if config.steps < 2:
        raise ValueError(f"steps must be at least 2, got {config.steps}")
    depth = config.depth if init is None else init.architecture.depth
    if config.tile % 2**depth:
        raise ValueError(f"tile {config.tile} is not a multiple of {2**depth}")
    device = default_device() if config.device == "auto" else config.device
    precision = fast_precision(device) if config.precision == "auto" else config.precision
    use_bf16 = precision == "bf16"
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    mean, std = intensity_statistics(images)
    model = start_model(config, init, mean, std)
    model = model.to(device)
    if use_bf16:
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.max_lr, total_steps=config.steps, pct_start=config.pct_start
    )
    memory_format = torch.channels_last if use_bf16 else torch.contiguous_format
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    with torch_threads(config.threads or 0):
        for step in range(1, config.steps + 1):
            tiles, targets, weights = sample_batch(
                images, masks, config.batch_size, config.tile, rng, config.augmentation, std, valid
            )
            x = torch.from_numpy(tiles)[:, None].to(device).contiguous(memory_format=memory_format)
            y = torch.from_numpy(targets).to(device)
            w = torch.from_numpy(weights).to(device) if valid is not None else None
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(x)
            loss = segmentation_loss(logits, y, w, config.dice_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, losses[-1])
    seconds = time.perf_counter() - start
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    return TrainResult(model, losses, device, precision, seconds)

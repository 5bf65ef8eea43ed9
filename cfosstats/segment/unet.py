"""A compact U-Net (Ronneberger et al. 2015) with its input normalisation stored in the weights.

Why these choices
-----------------
* **BatchNorm**, not GroupNorm: in eval mode BatchNorm is a fixed per-channel affine map, so a
  pixel's prediction depends only on the pixels around it, never on the rest of the tile. That is
  what makes tiled prediction equal to whole-image prediction away from tile edges; GroupNorm
  (or InstanceNorm) normalises with per-tile statistics and breaks it. With training batches of
  4 tiles of 256² there are ~260k pixels per statistic, plenty for stable BatchNorm.
* **Normalisation buffers** (`input_mean`, `input_std`): the model takes raw intensities and
  standardises them with the training set's mean and standard deviation. They are saved with the
  weights (in float32), so a model can never be used with the wrong normalisation. The scale is
  per data set, not per image, because cFOS brightness is itself a readout: per-image
  normalisation would make dim and bright images look alike to the model.
* **Two output classes with softmax**, so an ensemble is the mean of its members' softmax.
* Padding is ``same`` (zero), so output and input have the same size; inputs must be multiples
  of ``2**depth`` (the tiler pads for you).

Examples
--------
>>> import torch
>>> model = UNet(base=4, depth=2).eval()
>>> model(torch.zeros(1, 1, 32, 32)).shape
torch.Size([1, 2, 32, 32])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

#: Buffers kept in float32 when weights are stored in float16 (image intensities may be 16-bit).
FLOAT32_BUFFERS = ("input_mean", "input_std")


@dataclass(frozen=True)
class Architecture:
    """The hyper-parameters that define a U-Net's shape (stored in every model card).

    Attributes
    ----------
    in_channels : int
        Image channels (1: fluorescence images are greyscale).
    n_classes : int
        Output classes (2: background, foreground).
    base : int
        Channels of the first level; level ``i`` has ``base * 2**i``.
    depth : int
        Number of 2x2 poolings; inputs must be multiples of ``2**depth``.

    Examples
    --------
    >>> Architecture(base=16, depth=4).align
    16
    """

    in_channels: int = 1
    n_classes: int = 2
    base: int = 16
    depth: int = 4

    @property
    def align(self) -> int:
        """Image sizes (and tile offsets) must be multiples of this."""
        return 2**self.depth

    @property
    def receptive_radius(self) -> int:
        """Upper bound on how far (in pixels) an input can be from an output that depends on it.

        Per level ``i`` (scale ``2**i``): two 3x3 convolutions in the encoder (``2 * 2**i``),
        and below the bottleneck a pooling, a transposed convolution and two decoder
        convolutions (``4 * 2**i``); summed: ``8 * 2**depth - 6``. A pixel at least this far
        from every tile edge is predicted exactly as in the whole image.

        Examples
        --------
        >>> Architecture(depth=4).receptive_radius, Architecture(depth=2).receptive_radius
        (122, 26)
        """
        return 8 * 2**self.depth - 6

    def as_dict(self) -> dict:
        return asdict(self)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` poolings and ``base`` channels at full resolution.

    Parameters
    ----------
    in_channels, n_classes, base, depth : int
        See :class:`Architecture`.

    Notes
    -----
    ``forward`` returns logits; use :meth:`probabilities` for softmax. The input is raw image
    intensity (any dtype convertible to float), standardised inside with ``input_mean`` and
    ``input_std`` (set them with :meth:`set_normalisation` before training).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, base: int = 16, depth: int = 4):
        super().__init__()
        self.architecture = Architecture(in_channels, n_classes, base, depth)
        widths = [base * 2**level for level in range(depth + 1)]
        self.register_buffer("input_mean", torch.zeros(in_channels))
        self.register_buffer("input_std", torch.ones(in_channels))
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoders.append(_conv_block(previous, width))
            previous = width
        self.pool = nn.MaxPool2d(2)
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2) for level in range(depth)
        )
        self.decoders = nn.ModuleList(_conv_block(2 * widths[level], widths[level]) for level in range(depth))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    @classmethod
    def from_architecture(cls, architecture: Architecture | dict) -> UNet:
        """Build an untrained U-Net of a given shape (e.g. from a model card)."""
        if isinstance(architecture, dict):
            architecture = Architecture(**architecture)
        return cls(**architecture.as_dict())

    def set_normalisation(self, mean: float, std: float) -> None:
        """Store the intensity mean and standard deviation of the training images."""
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.input_mean.fill_(float(mean))
        self.input_std.fill_(float(std))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        size = image.shape[-2:]
        align = self.architecture.align
        if size[0] % align or size[1] % align:
            raise ValueError(f"input size {tuple(size)} is not a multiple of {align}; pad it first")
        x = (image.float() - self.input_mean.view(1, -1, 1, 1)) / self.input_std.view(1, -1, 1, 1)
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < len(self.upsamplers):
                skips.append(x)
                x = self.pool(x)
        for level in reversed(range(len(self.decoders))):
            x = self.upsamplers[level](x)
            x = self.decoders[level](torch.cat([skips[level], x], dim=1))
        return self.head(x)

    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Softmax over classes, in float32 whatever the compute precision."""
        return torch.softmax(self.forward(image).float(), dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Examples
    --------
    >>> count_parameters(UNet(base=16, depth=4))
    1942306
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

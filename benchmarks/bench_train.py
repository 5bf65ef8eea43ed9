"""Time U-Net training steps on real lab-wue1 tiles: float32 against bf16 autocast (where supported).

Prints seconds per optimiser step for each U-Net width and precision, the fp32 / bf16 ratio, and
the loss after the same number of steps (bf16 must learn as fp32 does, not only run faster).

Usage::

    python benchmarks/bench_train.py                 # base 8 and 16, 12 steps each, batch 4, 256² tiles
    python benchmarks/bench_train.py --steps 30 --bases 16
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cfosstats.datasets import load_lab
from cfosstats.segment.predict import bf16_supported
from cfosstats.segment.train import TrainConfig, train_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("CFOSSTATS_TRAIN_DATA", REPO.parent / "shared" / "data" / "train_data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training-layout data root")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--bases", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--images", type=int, default=8, help="training images to sample tiles from")
    args = parser.parse_args()

    lab = load_lab("wue1", data=args.data)
    ids = lab.image_ids[: args.images]
    images = [lab.image(i) for i in ids]
    masks = [lab.mask("est_GT", i) for i in ids]
    precisions = ["fp32", "bf16"] if bf16_supported() else ["fp32"]
    print(f"bf16 supported: {bf16_supported()}; {args.steps} steps, batch 4, 256² tiles, {len(ids)} images")
    for base in args.bases:
        per_step = {}
        for precision in precisions:
            config = TrainConfig(steps=args.steps, base=base, precision=precision, device="cpu")
            result = train_model(images, masks, config)
            per_step[precision] = result.seconds_per_step
            print(
                f"base {base:2d} {precision}: {result.seconds_per_step:.3f} s/step, "
                f"loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}"
            )
        if "bf16" in per_step:
            print(f"base {base:2d} fp32 / bf16: {per_step['fp32'] / per_step['bf16']:.2f}x")


if __name__ == "__main__":
    main()

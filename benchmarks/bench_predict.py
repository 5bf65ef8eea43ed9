"""Time ensemble prediction of real 1024x1024 images on this machine.

Prints seconds per image for the whole ensemble and per member, for plain float32 and for the
fast path that ``cfosstats predict`` chooses here (BatchNorm folded into the convolutions,
channels-last memory format, and bf16 autocast where the CPU supports bf16), and their ratio.
Target: a 4-member ensemble predicts one 1024² image in under 2 s on 2 cores.

Usage::

    python benchmarks/bench_predict.py                       # wue1 images, 4 untrained members
    python benchmarks/bench_predict.py --model wue1/consensus_ensemble --images 4
    python benchmarks/bench_predict.py --data ../shared/data/train_data --threads 2

The weights do not change the timing, so without ``--model`` the members are untrained U-Nets
of the library's shape (``--base``, default 8, depth 4).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from cfosstats.datasets import load_lab
from cfosstats.segment.library import load_model
from cfosstats.segment.predict import Settings, bf16_supported, predict_image, prepare_model
from cfosstats.segment.unet import UNet

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("CFOSSTATS_TRAIN_DATA", REPO.parent / "shared" / "data" / "train_data"))
TARGET_SECONDS = 2.0


def members(model: str | None, n_members: int, base: int) -> list[UNet]:
    if model:
        return [m.module for m in load_model(model).members]
    torch.manual_seed(0)
    return [UNet(base=base, depth=4).eval() for _ in range(n_members)]


def seconds_per_image(models: list[UNet], images: list, settings: Settings, repeats: int) -> float:
    prepared = [prepare_model(m, settings) for m in models]
    predict_image(prepared, images[0], settings, prepared=True)  # warm-up: kernel selection, caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for image in images:
            predict_image(prepared, image, settings, prepared=True)
        best = min(best, (time.perf_counter() - start) / len(images))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training-layout data root")
    parser.add_argument("--lab", default="wue1")
    parser.add_argument("--model", default=None, help="library model or ensemble (default: untrained)")
    parser.add_argument("--members", type=int, default=4, help="members when no --model is given")
    parser.add_argument("--base", type=int, default=8, help="U-Net width of untrained members")
    parser.add_argument("--images", type=int, default=2, help="images to predict per timing")
    parser.add_argument("--repeats", type=int, default=1, help="timings per setting (best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--tile", type=int, default=1024)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lab = load_lab(args.lab, data=args.data)
    images = [lab.image(i) for i in lab.image_ids[: args.images]]
    models = members(args.model, args.members, args.base)
    plain = Settings(tile=args.tile, precision="fp32", device="cpu", fuse=False, channels_last=False)
    fast = Settings(tile=args.tile, device="cpu").resolved()
    fast_label = f"fast path ({fast.precision}, fused, channels-last)"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 supported: {bf16_supported()}")
    print(f"{len(images)} images of {images[0].shape[0]}x{images[0].shape[1]}, {len(models)} members")

    timings = {}
    for label, settings in (("fp32 (plain)", plain), (fast_label, fast)):
        seconds = seconds_per_image(models, images, settings, args.repeats)
        timings[label] = seconds
        print(f"{label:42s} {seconds:7.2f} s/image  {seconds / len(models):6.2f} s/image/member")
    ratio = timings["fp32 (plain)"] / timings[fast_label]
    ensemble = timings[fast_label] * 4 / len(models)
    print(f"fp32 / fast path: {ratio:.2f}x")
    verdict = "meets" if ensemble < TARGET_SECONDS else "misses"
    print(
        f"4-member ensemble: {ensemble:.2f} s per 1024² image ({verdict} the {TARGET_SECONDS:.0f} s target)"
    )


if __name__ == "__main__":
    main()

"""Evaluate a lab-wue1 model library on its held-out test images (run by hand, not a test).

For each of the 9 test images that no model trained on (listed in every card under
``test_images``): object F1 against the published estimated ground truth of each annotator, each
model of the library, and the consensus ensemble; and object counts (expert_1's model should
find fewer objects than the others, as expert_1 does).

Usage::

    python scripts/evaluate_wue1_library.py [--library data/models] [--data ../shared/data/train_data]
        [--out benchmarks/results/wue1_library]

With ``--out`` it also writes ``test_images_f1.csv`` (one row per image and label source) and
``summary.csv`` (per source: median and mean F1, mean object count).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cfosstats.datasets import load_lab  # noqa: E402
from cfosstats.objects.label import label_objects  # noqa: E402
from cfosstats.objects.matching import match_labels  # noqa: E402
from cfosstats.segment.library import list_models, load_model  # noqa: E402
from cfosstats.segment.predict import Settings, predict_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train_data")
    parser.add_argument("--out", type=Path, default=None, help="folder for the CSV tables")
    args = parser.parse_args()

    lab = load_lab("wue1", data=args.data)
    min_size = lab.config.min_object_size
    names = [n for n in list_models(args.library)["name"] if n.startswith("wue1/")]
    stored = {name: load_model(name, library=args.library) for name in names}
    test_images = next(iter(stored.values())).card["test_images"]
    settings = Settings()
    rows = []
    for image_id in test_images:
        reference = label_objects(lab.mask("est_GT", image_id), min_size)
        image = lab.image(image_id)
        label_sets = {a: lab.mask(a, image_id) for a in lab.annotators}
        for name, model in stored.items():
            modules = [m.module for m in model.members] if model.is_ensemble else [model.module]
            label_sets[name] = predict_image(modules, image, settings).mask
        for name, mask in label_sets.items():
            result = match_labels(label_objects(mask, min_size), reference)
            kind = "annotator" if name in lab.annotators else "model"
            rows.append(
                {
                    "image_id": image_id,
                    "source": name,
                    "kind": kind,
                    "f1": result.f1,
                    "n_objects": result.n_rater,
                    "n_reference": result.n_reference,
                }
            )
        print(f"{image_id} done", flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby(["kind", "source"]).agg(
        f1_median=("f1", "median"), f1_mean=("f1", "mean"), objects_mean=("n_objects", "mean")
    )
    pd.set_option("display.width", 140)
    print(summary.round(3).to_string())
    annotators = table[table["kind"] == "annotator"]
    pooled = annotators["f1"].median()
    print(f"\nmedian annotator F1 on the test images (all annotator-image pairs): {pooled:.3f}")
    per_annotator = summary.loc["annotator", "f1_median"]
    print(f"median of the annotators' median F1: {per_annotator.median():.3f}")
    members = [n for n in summary.loc["model"].index if "consensus_model_" in n]
    member_median = summary.loc["model"].loc[members, "f1_median"].median()
    print(f"median of the consensus members' median F1: {member_median:.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "test_images_f1.csv", index=False)
        summary.reset_index().to_csv(args.out / "summary.csv", index=False)
        print(f"tables written to {args.out}")


if __name__ == "__main__":
    main()

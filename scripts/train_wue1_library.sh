#!/usr/bin/env bash
# Train the pretrained lab-wue1 model library (data/models/wue1/) with `cfosstats train`.
#
# Run by hand from the repository root:
#   CFOSSTATS_TRAIN_DATA=../shared/data/train_data scripts/train_wue1_library.sh
# Measured on the 2-core CPU without bf16 (2026-11-25): base 8, 1500 steps took 518 s of training
# (0.35 s per step) plus validation per model, and consensus_model_1 passed the selection rule on
# 7/7 validation images (median F1 0.83). Nine models: about 80 minutes. Base 16: 1.0 s per step.
#
# Set-up as in the study: a test set of 9 images (one per stratum, chosen by SEED) that no model
# trains on; k=4 stratified folds on the other 27. One consensus model per fold (targets: est_GT)
# and their ensemble; one model per annotator (expert_1..expert_5) on fold 1, i.e. on exactly the
# training images of consensus_model_1, so every comparison is fair. All models share the split
# because they share SEED and k.
#
# Replicates: two more consensus ensembles (seeds 2 and 3) and a second model per annotator (seed
# 2), all on the same split, for within-strategy agreement and the ensemble-size analysis; measured
# 2026-12-03 on the 2-core CPU with bf16: about 4.5 min of training per model.
#
# Everything is trained into a staging library first and moved into data/models/wue1 only when
# all 24 models exist, so an interrupted run leaves data/models untouched.
set -euo pipefail

DATA=${CFOSSTATS_TRAIN_DATA:-../shared/data/train_data}
STEPS=${STEPS:-1500}   # ~14 passes over the 27 training images (256² tiles, batch 4)
BASE=${BASE:-8}        # U-Net channels at full resolution
SEED=${SEED:-0}
FOLDS=4
STAGE=${STAGE:-build/wue1-library}
TARGET=data/models/wue1

mkdir -p "$STAGE"

# 1. The consensus ensemble: one model per fold, then the ensemble card (written automatically).
cfosstats train --lab wue1 --data "$DATA" --strategy consensus --folds "$FOLDS" \
    --seed "$SEED" --steps "$STEPS" --base "$BASE" --out "$STAGE"

# 2. One model per annotator, on fold 1 (named wue1/expert_<n> because a single fold is trained).
for expert in expert_1 expert_2 expert_3 expert_4 expert_5; do
    cfosstats train --lab wue1 --data "$DATA" --strategy "$expert" --folds "$FOLDS" --fold 1 \
        --seed "$SEED" --steps "$STEPS" --base "$BASE" --out "$STAGE"
done

# 3. Reliability replicates (the study's Figure 3): two more consensus ensembles and a second model
#    per annotator, same split (--split-seed), other weights' seeds; named *_r2, *_r3.
for replicate in 2 3; do
    cfosstats train --lab wue1 --data "$DATA" --strategy consensus --folds "$FOLDS" \
        --seed "$replicate" --split-seed "$SEED" --replicate "$replicate" --steps "$STEPS" --base "$BASE" \
        --out "$STAGE"
done
for expert in expert_1 expert_2 expert_3 expert_4 expert_5; do
    cfosstats train --lab wue1 --data "$DATA" --strategy "$expert" --folds "$FOLDS" --fold 1 \
        --seed 2 --split-seed "$SEED" --replicate 2 --steps "$STEPS" --base "$BASE" --out "$STAGE"
done

# 4. Check that all load (checksums verified), then move them into the library.
cfosstats models --library "$STAGE"
python - "$STAGE" <<'PY'
import sys
from cfosstats.segment.library import load_model
names = ["consensus_ensemble", "consensus_ensemble_r2", "consensus_ensemble_r3"]
names += [f"expert_{i}{r}" for i in range(1, 6) for r in ("", "_r2")]
for name in names:
    stored = load_model(f"wue1/{name}", library=sys.argv[1])
    print(stored.name, "ok", [m.name for m in stored.members])
PY
rm -rf "$TARGET.new" && cp -r "$STAGE/wue1" "$TARGET.new"
rm -rf "$TARGET.old" && { [ -d "$TARGET" ] && mv "$TARGET" "$TARGET.old" || true; }
mv "$TARGET.new" "$TARGET" && rm -rf "$TARGET.old"
du -sh "$TARGET"
cfosstats models

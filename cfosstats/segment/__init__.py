"""Segmentation: a torch U-Net, training, ensemble prediction with uncertainty, the model library.

One job per module:

* :mod:`~cfosstats.segment.unet` — the U-Net (BatchNorm, normalisation stored in the weights);
* :mod:`~cfosstats.segment.tiling` — tile grid and Gaussian blending;
* :mod:`~cfosstats.segment.augment` — random tiles, rotations/flips, intensity changes;
* :mod:`~cfosstats.segment.losses` — cross-entropy + soft Dice;
* :mod:`~cfosstats.segment.folds` — test hold-out per stratum and stratified k folds;
* :mod:`~cfosstats.segment.train` — the training loop (one-cycle LR, bf16 where supported);
* :mod:`~cfosstats.segment.predict` — single-model / ensemble prediction, TTA, uncertainty;
* :mod:`~cfosstats.segment.selection` — validation F1 and the study's selection rule;
* :mod:`~cfosstats.segment.library` — weights + cards, loaded by name, checksummed;
* :mod:`~cfosstats.segment.pipeline` — lab-level training and prediction in the study layout;
* :mod:`~cfosstats.cli.segment` — the ``train``, ``predict`` and ``models`` commands.
"""

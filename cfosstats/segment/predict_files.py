"""Predict one image file and write its masks and uncertainty maps: the per-image task of predict.

:func:`predict_and_write` is a top-level function of paths and plain values, so
:func:`cfosstats.segment.pipeline.predict_lab` maps it like any per-image work (inline on this
machine, where torch uses every core itself, or on a Dask cluster's workers). Each process loads
and prepares the model once, from its card, checksums verified (:func:`prepared_members`).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from cfosstats.core.errors import InputError
from cfosstats.core.hashing import sha256_file
from cfosstats.core.imageio import read_image, write_mask, write_png
from cfosstats.objects.label import count_objects
from cfosstats.segment import library
from cfosstats.segment.predict import UNCERTAINTY_MAPS, Settings, predict_image, prepare_model, to_uint16

__all__ = [
    "ModelKey",
    "background_writes",
    "forget_prepared",
    "predict_and_write",
    "prepared_members",
    "use_prepared",
    "write_prediction",
]

#: (model card path, its SHA-256, the resolved settings): what a prepared model is cached by.
ModelKey = tuple[str, str, Settings]

# This process's prepared model (one at a time: an ensemble's members fill memory enough).
_PREPARED: dict[ModelKey, list] = {}


def use_prepared(key: ModelKey, members: list) -> None:
    """Make already prepared members this process's model for `key` (the caller's own process)."""
    _PREPARED.clear()
    _PREPARED[key] = members


def forget_prepared(key: ModelKey) -> None:
    """Release the model cached for `key` (after a prediction run)."""
    _PREPARED.pop(key, None)


def prepared_members(key: ModelKey) -> list:
    """The prepared members of the model `key` names, loaded from its card on first use.

    Parameters
    ----------
    key : ModelKey
        Card path, its SHA-256 (a card changed since the run began is refused) and settings.
    """
    if key not in _PREPARED:
        card, checksum, settings = key
        if sha256_file(card) != checksum:
            raise InputError(card, "model card changed while predicting (its SHA-256 differs)")
        stored = library.load_model(card)
        use_prepared(key, [prepare_model(m.module, settings) for m in stored.members])
    return _PREPARED[key]


def predict_and_write(
    key: ModelKey,
    image_path: str,
    image_id: str,
    label: str,
    min_object_size: int,
    mask_folders: list[str],
    uncertainty_folder: str,
) -> dict:
    """Predict one image; write its mask (and each member's) and its uncertainty maps.

    Parameters
    ----------
    key : ModelKey
        The model (see :func:`prepared_members`).
    image_path : str
        The microscopy image.
    image_id, label : str
        Name the files: ``<image_id>_<label>.png``.
    min_object_size : int
        For the object count.
    mask_folders : list of str
        The model's own mask folder, then one per ensemble member (in member order).
    uncertainty_folder : str
        Where ``<image_id>_<map>.png`` go.

    Returns
    -------
    dict
        ``n_objects`` and the prediction's uncertainty scores.
    """
    members = prepared_members(key)
    prediction = predict_image(members, read_image(image_path), key[2], prepared=True)
    scores = {"n_objects": count_objects(prediction.mask, min_object_size), **prediction.scores()}
    writer = _WRITER.get()
    if writer is None:
        write_prediction(prediction, image_id, label, mask_folders, uncertainty_folder)
    else:
        writer.submit(write_prediction, prediction, image_id, label, mask_folders, uncertainty_folder)
    return scores


def write_prediction(prediction, image_id: str, label: str, mask_folders: list[str], uncertainty_folder: str):
    """Write one prediction's mask (and each member's) and its uncertainty maps."""
    own, *member_folders = (Path(f) for f in mask_folders)
    write_mask(own / f"{image_id}_{label}.png", prediction.mask)
    if member_folders:
        for folder, member_mask in zip(member_folders, prediction.member_masks, strict=True):
            write_mask(folder / f"{image_id}_{label}.png", member_mask)
    for kind in UNCERTAINTY_MAPS:
        # Level 1: these continuous maps compress poorly; level 6 would double predict's time.
        path = Path(uncertainty_folder) / f"{image_id}_{kind}.png"
        write_png(path, to_uint16(getattr(prediction, kind)), 1)


class _BackgroundWriter:
    """One thread writing predictions while the next image is predicted (zlib and file I/O free
    the GIL: 0.70 -> 0.55 s per 1024² image of a single model on 2 busy cores). At most
    `pending` predictions wait, so memory stays bounded; the first failure is raised on close."""

    def __init__(self, pending: int = 2):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="cfosstats-write")
        self.futures: deque = deque()
        self.pending = pending

    def submit(self, function, *args) -> None:
        while len(self.futures) >= self.pending:
            self.futures.popleft().result()
        self.futures.append(self.pool.submit(function, *args))

    def close(self) -> None:
        """Wait for every write; raise the first failure."""
        try:
            while self.futures:
                self.futures.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def abandon(self) -> None:
        """Drop the writes not started (the run failed: its staged folders are discarded)."""
        self.futures.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


_WRITER: ContextVar[_BackgroundWriter | None] = ContextVar("cfosstats_prediction_writer", default=None)


@contextmanager
def background_writes():
    """Within this block, :func:`predict_and_write` run in this process writes its files on a
    background thread; every file is written (or the first error raised) when the block ends.
    Tasks on Dask workers write inline, as before."""
    writer = _BackgroundWriter()
    token = _WRITER.set(writer)
    try:
        yield
    except BaseException:
        writer.abandon()  # the run's own error is the one to report
        raise
    else:
        writer.close()
    finally:
        _WRITER.reset(token)

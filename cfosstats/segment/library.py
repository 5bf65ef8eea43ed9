"""The model library: U-Net weights plus a metadata card each, loaded by name and checksummed.

Format (see also ``data/models/README.md``)::

    <library>/<lab>/<model>.json     the card: what the model is, how it was trained, how it did
    <library>/<lab>/<model>.pt       weights: torch.save of a state_dict, float16 (normalisation
                                     buffers float32); the card's "sha256" is this file's hash

An ensemble is a card only (``"kind": "ensemble"``) naming its members (``"members"``, names in
the same library) with each member's weight checksum (``"member_sha256"``), so a member swapped
after the ensemble was built is refused too. A model is called ``<lab>/<model>``, e.g.
``wue1/consensus_ensemble``; the shipped library is ``data/models`` (:func:`default_library`).

Weights are stored in float16 (half the size, < 4 MB for the base-16 U-Net) and turned back into
float32 on load. :func:`round_to_storage` rounds a trained model the same way *before* it is
validated and saved, so the validated model, the saved model and the loaded model are the same
numbers: a save/load round trip is bit-exact.

Examples
--------
>>> import tempfile, pathlib
>>> from cfosstats.segment.unet import UNet
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> card = save_model(folder / "demo" / "tiny.json", UNet(base=4, depth=2), {"name": "demo/tiny"})
>>> stored = load_model("demo/tiny", library=folder)
>>> from cfosstats.core.hashing import sha256_file
>>> stored.name, stored.card["sha256"] == sha256_file(folder / "demo" / "tiny.pt")
('demo/tiny', True)
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from cfosstats.core.atomic import atomic_path, write_text
from cfosstats.core.errors import InputError
from cfosstats.core.hashing import sha256_bytes
from cfosstats.core.resources import data_dir
from cfosstats.segment.unet import FLOAT32_BUFFERS, UNet

CARD_SUFFIX = ".json"
WEIGHTS_SUFFIX = ".pt"
FORMAT_VERSION = 1


def default_library() -> Path:
    """The model library shipped with the package (``data/models``)."""
    return data_dir() / "models"


def _stored_dtype(name: str, tensor: torch.Tensor) -> torch.dtype:
    if not tensor.is_floating_point():
        return tensor.dtype
    return torch.float32 if name.split(".")[-1] in FLOAT32_BUFFERS else torch.float16


def storage_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as stored: float16 weights, float32 normalisation buffers, on the CPU."""
    return {
        name: tensor.detach().to("cpu", _stored_dtype(name, tensor)).contiguous()
        for name, tensor in model.state_dict().items()
    }


@torch.no_grad()
def round_to_storage(model: torch.nn.Module) -> torch.nn.Module:
    """Round a model's float weights to float16 precision in place (and return it).

    After this, ``load_model(save_model(model))`` reproduces the model exactly.
    """
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.copy_(tensor.to(_stored_dtype(name, tensor)))
    return model


def weights_bytes(model: torch.nn.Module) -> bytes:
    """The bytes of the weights file (deterministic for given weights)."""
    buffer = io.BytesIO()
    torch.save(storage_state_dict(model), buffer)
    return buffer.getvalue()


def _write_card(path: Path, card: dict) -> None:
    write_text(path, json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n")


def save_model(path: str | Path, model: UNet, card: dict) -> dict:
    """Write a model's weights and its card, atomically: weights first, the card last.

    Parameters
    ----------
    path : str or Path
        The card file (``<library>/<lab>/<model>.json``); the weights go beside it (``.pt``).
    model : UNet
        The model (its float weights are stored as float16; see :func:`round_to_storage`).
    card : dict
        Metadata (lab, strategy, fold, seed, ...). ``kind``, ``architecture``, ``weights`` and
        ``sha256`` are filled in here.

    Returns
    -------
    dict
        The card as written.
    """
    path = Path(path).with_suffix(CARD_SUFFIX)
    data = weights_bytes(model)
    weights = path.with_suffix(WEIGHTS_SUFFIX)
    with atomic_path(weights) as tmp:
        tmp.write_bytes(data)
    card = {
        "format_version": FORMAT_VERSION,
        "kind": "model",
        "name": f"{path.parent.name}/{path.stem}",
        **card,
        "architecture": model.architecture.as_dict(),
        "weights": weights.name,
        "sha256": sha256_bytes(data),
    }
    _write_card(path, card)  # the card is written last: a model without a card does not exist
    return card


def save_ensemble(path: str | Path, members: Iterable[StoredModel | dict], card: dict) -> dict:
    """Write an ensemble card naming its members (already saved in the same library).

    Parameters
    ----------
    path : str or Path
        The ensemble's card file.
    members : iterable of StoredModel or card dict
        The members, each with ``name`` and ``sha256`` in its card.
    card : dict
        Further metadata of the ensemble.
    """
    path = Path(path).with_suffix(CARD_SUFFIX)
    cards = [m.card if isinstance(m, StoredModel) else m for m in members]
    card = {
        "format_version": FORMAT_VERSION,
        "kind": "ensemble",
        "name": f"{path.parent.name}/{path.stem}",
        **card,
        "members": [c["name"] for c in cards],
        "member_sha256": {c["name"]: c["sha256"] for c in cards},
    }
    _write_card(path, card)
    return card


@dataclass
class StoredModel:
    """A single model loaded from the library (weights verified)."""

    name: str
    card: dict
    path: Path
    module: UNet = field(repr=False)

    is_ensemble = False

    @property
    def members(self) -> list[StoredModel]:
        """A single model is its own only member."""
        return [self]


@dataclass
class StoredEnsemble:
    """An ensemble loaded from the library: its card and its verified members."""

    name: str
    card: dict
    path: Path
    members: list[StoredModel] = field(repr=False)

    is_ensemble = True


def _library_roots(library: str | Path | Iterable[str | Path] | None) -> list[Path]:
    if library is None:
        return [default_library()]
    if isinstance(library, str | Path):
        return [Path(library)]
    return [Path(p) for p in library]


def find_card(name_or_path: str | Path, library=None) -> Path:
    """The card file of a model given by name (``wue1/expert_1``) or by path.

    Raises
    ------
    InputError
        When no such model exists (the message lists the known names).
    """
    candidate = Path(name_or_path)
    for path in (candidate, candidate.with_suffix(CARD_SUFFIX)):
        if path.suffix == CARD_SUFFIX and path.is_file():
            return path
    roots = _library_roots(library)
    for root in roots:
        path = root / f"{name_or_path}{CARD_SUFFIX}"
        if path.is_file():
            return path
    known = sorted(list_models(roots)["name"]) if roots else []
    hint = f"known models: {', '.join(known)}" if known else "the model library is empty"
    raise InputError(name_or_path, f"model not found ({hint})")


def read_card(path: str | Path) -> dict:
    """Read and minimally check a card file."""
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot be read as a model card ({type(exc).__name__})") from None
    if not isinstance(card, dict) or card.get("kind") not in ("model", "ensemble"):
        raise InputError(path, 'not a model card (needs "kind": "model" or "ensemble")')
    needed = ("sha256", "weights", "architecture") if card["kind"] == "model" else ("members",)
    missing = [key for key in needed if key not in card]
    if missing:
        raise InputError(path, f"model card lacks {', '.join(missing)}")
    card.setdefault("name", f"{path.parent.name}/{path.stem}")
    return card


def _load_single(card_path: Path, card: dict) -> StoredModel:
    weights = card_path.parent / card["weights"]
    if not weights.is_file():
        raise InputError(weights, "weights file not found")
    data = weights.read_bytes()
    found = sha256_bytes(data)
    if found != card["sha256"]:
        raise InputError(weights, f"checksum mismatch (expected {card['sha256']}, found {found})")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        module = UNet.from_architecture(card["architecture"])
        module.load_state_dict(state)  # copies float16 values into the float32 parameters
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise InputError(weights, f"weights do not fit the card's architecture ({exc})") from None
    return StoredModel(card["name"], card, card_path, module.eval())


def load_model(name_or_path: str | Path, library=None) -> StoredModel | StoredEnsemble:
    """Load a model or an ensemble by name or card path, verifying every weight checksum.

    Parameters
    ----------
    name_or_path : str or Path
        ``<lab>/<model>`` (looked up in `library`) or the path of a card file.
    library : str, Path or list of them, optional
        Library folder(s); default the shipped library. An ensemble's members are looked up in
        the ensemble's own library first.

    Returns
    -------
    StoredModel or StoredEnsemble
        Modules are on the CPU, in eval mode, float32.

    Raises
    ------
    InputError
        Unknown name, unreadable card, missing weights, ``<file>: checksum mismatch (expected
        ..., found ...)``, or a member that differs from the one the ensemble was built with.

    Examples
    --------
    >>> ensemble = load_model("wue1/consensus_ensemble")
    >>> ensemble.is_ensemble, [m.name for m in ensemble.members][:2]
    (True, ['wue1/consensus_model_1', 'wue1/consensus_model_2'])
    """
    card_path = find_card(name_or_path, library)
    card = read_card(card_path)
    if card["kind"] == "model":
        return _load_single(card_path, card)
    own_root = card_path.parent.parent
    members = []
    for member in card["members"]:
        stored = load_model(member, [own_root, *_library_roots(library)])
        if stored.is_ensemble:
            raise InputError(stored.path, f"member {member} of ensemble {card['name']} is an ensemble")
        expected = card.get("member_sha256", {}).get(member)
        if expected is not None and expected != stored.card["sha256"]:
            raise InputError(
                stored.path,
                f"member differs from the one ensemble {card['name']} was built with "
                f"(expected sha256 {expected}, found {stored.card['sha256']})",
            )
        members.append(stored)
    return StoredEnsemble(card["name"], card, card_path, members)


LIST_COLUMNS = (
    "name",
    "kind",
    "lab",
    "strategy",
    "initialization",
    "fold",
    "members",
    "steps",
    "verdict",
    "validation_passed",
    "size_mb",
    "path",
)


def list_models(library=None) -> pd.DataFrame:
    """One row per model card in the library folder(s), sorted by name.

    Columns: :data:`LIST_COLUMNS` (``verdict`` is the model-selection verdict;
    ``validation_passed`` how many validation images passed the selection rule, ``"7/7"``, for an
    ensemble pooled over its members; ``size_mb`` the weights' size, for an ensemble the sum over
    its members). Checksums are not verified here.

    Parameters
    ----------
    library : str, Path or list of them, optional
        Library folder(s); default the shipped library (``data/models``).

    Returns
    -------
    DataFrame
        Columns :data:`LIST_COLUMNS`.

    Examples
    --------
    >>> import tempfile
    >>> list_models(tempfile.mkdtemp()).empty
    True
    """
    rows = []
    for root in _library_roots(library):
        if not root.is_dir():
            continue
        for path in sorted(root.glob(f"*/*{CARD_SUFFIX}")):
            try:
                card = read_card(path)
            except InputError:
                continue
            weights = path.with_suffix(WEIGHTS_SUFFIX)
            selection = card.get("selection") or {}
            passed = (
                f"{selection['n_passed']}/{selection['n_images']}"
                if "n_passed" in selection and "n_images" in selection
                else None
            )
            rows.append(
                {
                    "name": card["name"],
                    "kind": card["kind"],
                    "lab": card.get("lab"),
                    "strategy": card.get("strategy"),
                    "initialization": card.get("initialization"),
                    "fold": card.get("fold"),
                    "members": ", ".join(card.get("members", [])),
                    "steps": card.get("steps"),
                    "verdict": selection.get("verdict"),
                    "validation_passed": passed,
                    "size_mb": weights.stat().st_size / 1e6 if weights.is_file() else None,
                    "path": str(path),
                }
            )
    table = pd.DataFrame(rows, columns=list(LIST_COLUMNS))
    if not table.empty:
        sizes = dict(zip(table["name"], table["size_mb"]))
        is_ensemble = table["kind"] == "ensemble"
        table.loc[is_ensemble, "size_mb"] = [
            sum(sizes.get(m, 0) or 0 for m in members.split(", "))
            for members in table.loc[is_ensemble, "members"]
        ]
        table = table.drop_duplicates("name").sort_values("name").reset_index(drop=True)
    return table

"""Models, training checkpoints and scikit-learn estimators as files (safetensors + JSON, skops; nothing is unpickled).

A model file is ``model.safetensors``: the weights, with the config that rebuilds the model in
its metadata. A checkpoint is one safetensors file of weights and optimiser buffers with the
trainer's JSON state. scikit-learn estimators are written with skops and loaded only when they
hold the types hsickit saves.

Examples
--------
>>> import tempfile
>>> from hsickit.core.models import create_model
>>> from hsickit.core.serialization import save_model, load_model
>>> path = tempfile.mkdtemp() + "/model.safetensors"
>>> _ = save_model(create_model("mlp", in_features=4, out_features=2, hidden=(8,)), path)
>>> load_model(path).config.hidden
(8,)
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from hsickit.core.errors import HsickitError
from hsickit.core.files import atomic_write, jsonable

# torch and safetensors are imported where tensors are read or written: the command line
# imports this module for its run folders, and `hsickit --help` should not wait for torch.
if TYPE_CHECKING:
    import torch

__all__ = ["SKLEARN_TYPES", "load_checkpoint", "load_model", "load_sklearn", "load_state_into", "save_checkpoint",
           "save_model", "save_sklearn", "saved_params"]


def saved_params(estimator, leave_out: Sequence[str] = ()) -> dict:
    """``estimator.get_params()`` as saved beside a model: tuples as lists, callables and
    ``checkpoint_dir`` (which belongs to one training run, not to the model) left out, and
    any names in ``leave_out``."""
    drop = {"checkpoint_dir", *leave_out}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in estimator.get_params(deep=False).items()
            if k not in drop and not callable(v)}


def _save_tensors(tensors: dict[str, torch.Tensor], metadata: dict) -> bytes:
    from safetensors.torch import save as st_save_bytes

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return st_save_bytes(tensors, metadata={k: json.dumps(jsonable(v)) for k, v in metadata.items()})


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load_bytes

    if not path.exists():
        raise HsickitError(f"{path} does not exist; pass the model file or run folder written by hsickit")
    raw = path.read_bytes()
    try:
        tensors = st_load_bytes(raw)
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
    except (SafetensorError, ValueError, json.JSONDecodeError, OverflowError) as err:
        raise HsickitError(f"{path} is not a readable safetensors file ({err}); it is truncated or corrupted: restore it or re-run training") from err
    meta = {k: json.loads(v) for k, v in header.get("__metadata__", {}).items()}
    return tensors, meta


def save_model(model: torch.nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save weights and the config that rebuilds ``model`` to one safetensors file, atomically."""
    meta = {"config": dataclasses.asdict(model.config), "hsickit_format": 1, **(metadata or {})}
    return atomic_write(path, _save_tensors(model.state_dict(), meta))


def load_state_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``model.load_state_dict(state)`` with an error that names ``source`` and the mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        detail = "; ".join(filter(None, [
            f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "", "; ".join(shapes[:3])]))
        raise HsickitError(f"{source} does not match the model architecture ({detail}); it was written for another architecture or size: load it with the config it was saved with")
    model.load_state_dict(state)


def load_model(path: str | os.PathLike, metadata: bool = False):
    """Rebuild a model saved by :func:`save_model`; ``metadata=True`` also returns the metadata."""
    from hsickit.core.models import model_from_config

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    tensors, meta = _load_tensors(path)
    if "config" not in meta:
        raise HsickitError(f"{path} has no hsickit model config in its metadata; it was not written by hsickit.save_model")
    model = model_from_config(meta["config"])
    load_state_into(model, tensors, path)
    return (model, meta) if metadata else model


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], state: dict) -> Path:
    """One atomic file holding tensors (weights, optimiser buffers) and JSON trainer state."""
    return atomic_write(path, _save_tensors(tensors, {"trainer_state": state}))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = _load_tensors(Path(path))
    if "trainer_state" not in meta:
        raise HsickitError(f"{path} is not a hsickit training checkpoint (no trainer state); delete it to start afresh")
    return tensors, meta["trainer_state"]


def save_sklearn(path: str | os.PathLike, estimator) -> Path:
    """Write a scikit-learn estimator to ``path`` with skops (no pickle), atomically."""
    import skops.io as sio

    return atomic_write(path, sio.dumps(estimator))


#: The types outside skops' own trusted set that the scikit-learn models hsickit saves hold (trees
#: of forests and of gradient boosting; one-vs-rest's stand-in for a label with one value);
#: :func:`load_sklearn` loads these and no others.
SKLEARN_TYPES = ("sklearn.tree._tree.Tree", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "sklearn.multiclass._ConstantPredictor")


def load_sklearn(path: str | os.PathLike, trusted: Sequence[str] = ()):
    """Load an estimator written by :func:`save_sklearn`. Beyond skops' default trusted types, only
    the exact names in :data:`SKLEARN_TYPES` and in ``trusted`` (hsickit's own estimators) are
    loaded, never a type for its module prefix alone; a missing, foreign or damaged file is an
    error that names it."""
    import skops.io as sio

    path = Path(path)
    if not path.exists():
        raise HsickitError(f"{path} is missing; give the model folder written by hsickit, or retrain")
    try:
        untrusted = sio.get_untrusted_types(file=path)
        foreign = [t for t in untrusted if t not in SKLEARN_TYPES and t not in trusted]
        if foreign:
            raise HsickitError(f"{path} asks to load types hsickit never saves ({foreign[:3]}); refusing to load it "
                               "(it was not written by hsickit, or was altered): retrain the model")
        return sio.load(path, trusted=untrusted)
    except HsickitError:
        raise
    except Exception as exc:
        raise HsickitError(f"{path} is corrupted or truncated ({type(exc).__name__}: {exc}); "
                           "retrain the model or restore the file from a copy") from exc

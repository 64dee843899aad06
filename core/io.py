"""Run folders, atomic writes, and model files (safetensors + JSON; nothing is unpickled).

A run folder holds ``config.json``, ``history.csv``, ``metrics.json``,
``model.safetensors`` (the weights, with the config that rebuilds the model in its
metadata), a model card ``README.md`` and ``plots/``.

Examples
--------
>>> import tempfile
>>> from hsickit.core.models import create_model
>>> from hsickit.core.io import save_model, load_model
>>> path = tempfile.mkdtemp() + "/model.safetensors"
>>> _ = save_model(create_model("mlp", in_features=4, out_features=2, hidden=(8,)), path)
>>> load_model(path).config.hidden
(8,)
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from hsickit.core.errors import HsickitError


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``: readers never see half a file.

    Under ``torchrun`` only rank 0 writes (every file hsickit writes goes through here).
    """
    from hsickit.core.distributed import is_main_process

    path = Path(path)
    if not is_main_process():  # under torchrun only rank 0 writes files
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_output_folder(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` as a Path when a run may be written there: new, empty, or (with ``overwrite``) a run folder.

    A folder holding a finished run (``config.json``) is refused unless ``overwrite``; any other
    non-empty folder is always refused, never deleted.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HsickitError(f"--out {path} is a file; give a folder for the run")
    if path.exists() and any(path.iterdir()):
        if not (path / "config.json").exists():
            raise HsickitError(f"--out {path} is not empty and holds no hsickit run; choose a new or empty folder")
        if not overwrite:
            raise HsickitError(f"{path} holds a finished run; pass --overwrite to replace it (the folder is cleared), "
                               "or choose a new --out")
    return path


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike, overwrite: bool = False):
    """Build a folder in a temporary sibling that takes ``path``'s place only when the block succeeds.

    A failure removes the sibling and leaves ``path`` as it was, so no reader ever finds a
    half-written folder. An existing run folder at ``path`` is replaced only with ``overwrite``
    (:func:`check_output_folder`).
    Under ``torchrun`` only rank 0 writes, in ``path`` itself.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> with staged_folder(out) as tmp:
    ...     _ = write_json(tmp / "config.json", {}); out.exists()
    False
    >>> sorted(p.name for p in out.iterdir())
    ['config.json']
    """
    from hsickit.core.distributed import is_main_process

    path = check_output_folder(path, overwrite)
    if not is_main_process():
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the run folder's mode
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = tmp.with_suffix(".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def saved_params(estimator, leave_out: Sequence[str] = ()) -> dict:
    """``estimator.get_params()`` as saved beside a model: tuples as lists, callables and
    ``checkpoint_dir`` (which belongs to one training run, not to the model) left out, and
    any names in ``leave_out``."""
    drop = {"checkpoint_dir", *leave_out}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in estimator.get_params(deep=False).items()
            if k not in drop and not callable(v)}


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if callable(obj):
        return getattr(obj, "__qualname__", repr(obj))
    return obj


def write_json(path: str | os.PathLike, obj) -> Path:
    """Atomically write ``obj`` as indented JSON (dataclasses, numpy scalars and arrays allowed)."""
    return atomic_write(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON file, naming the file in the error when it is missing or corrupted."""
    path = Path(path)
    if not path.exists():
        raise HsickitError(f"{path} does not exist; is this a hsickit run folder (it needs {path.name})?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise HsickitError(f"{path} is not valid JSON ({err}); the file is corrupted: re-run the command that wrote it") from err


def _save_tensors(tensors: dict[str, torch.Tensor], metadata: dict) -> bytes:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return st_save_bytes(tensors, metadata={k: json.dumps(_jsonable(v)) for k, v in metadata.items()})


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
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


def load_sklearn(path: str | os.PathLike, trusted: Sequence[str] = ()):
    """Load an estimator written by :func:`save_sklearn`; only scikit-learn and NumPy types, and
    the exact type names in ``trusted`` (hsickit's own estimators), are loaded; a missing,
    foreign or damaged file is an error that names it."""
    import skops.io as sio

    path = Path(path)
    if not path.exists():
        raise HsickitError(f"{path} is missing; give the model folder written by hsickit, or retrain")
    try:
        untrusted = sio.get_untrusted_types(file=path)
        foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy.")) and t not in trusted]
        if foreign:
            raise HsickitError(f"{path} asks to load types outside scikit-learn / NumPy ({foreign[:3]}); refusing; retrain the model")
        return sio.load(path, trusted=untrusted)
    except HsickitError:
        raise
    except Exception as exc:
        raise HsickitError(f"{path} is corrupted or truncated ({type(exc).__name__}: {exc}); "
                           "retrain the model or restore the file from a copy") from exc


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose numbers a run depends on."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("hsickit", "torch", "numpy", "scikit-learn", "wfdb", "pymatgen", "xarray"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def evaluation_folder(run: str | os.PathLike, data: str | os.PathLike, split: str | None = None) -> Path:
    """``RUN/eval-<data file stem>[-<split>]``: where ``evaluate`` writes by default, so it never
    overwrites the run's own (validation) metrics.json and plots.

    >>> evaluation_folder("runs/a", "data/test.csv").as_posix(), evaluation_folder("runs/a", "all.csv", "test").as_posix()
    ('runs/a/eval-test', 'runs/a/eval-all-test')
    """
    name = Path(data).stem
    return Path(run) / (f"eval-{name}-{split}" if split else f"eval-{name}")


class RunFolder:
    """A folder of one training or evaluation run.

    Examples
    --------
    >>> import tempfile
    >>> run = RunFolder(tempfile.mkdtemp())
    >>> _ = run.write_metrics({"accuracy": 0.9, "n_samples": 10}, split="test")
    >>> run.read_json("metrics.json")["split"]
    'test'
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def plots(self) -> Path:
        p = self.path / "plots"
        p.mkdir(exist_ok=True)
        return p

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str) -> dict:
        return read_json(self.path / name)

    def write_json(self, name: str, obj) -> Path:
        return write_json(self.path / name, obj)

    def write_config(self, config: dict) -> Path:
        return self.write_json("config.json", {**config, "versions": versions()})

    def write_history(self, history: list[dict], name: str = "history.csv") -> Path:
        keys: list[str] = []
        for row in history:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        return atomic_write(self.path / name, buf.getvalue())

    def write_metrics(self, metrics: dict, split: str, n_samples: int | None = None, name: str = "metrics.json",
                      info: dict[str, str] | None = None) -> Path:
        """Flat JSON, metric name -> number (NaN -> null), plus ``n_samples``, ``split`` and the
        strings in ``info`` (what was scored: data folder, records)."""
        flat = {k: _jsonable(v) for k, v in metrics.items()}
        n_samples = flat.pop("n_samples", None) if n_samples is None else n_samples
        if n_samples is None:
            raise HsickitError("write_metrics needs n_samples (as an argument or a key of the metrics)")
        bad = [k for k, v in flat.items() if not isinstance(v, (int, float, type(None)))]
        if bad:
            raise HsickitError(f"metrics must be flat name -> number; {bad} are not numbers")
        return self.write_json(name, {**flat, "n_samples": int(n_samples), "split": split, **{k: str(v) for k, v in (info or {}).items()}})

    def write_model_card(self, title: str, sections: dict[str, str], command: str | None = None) -> Path:
        lines = [f"# {title}", "", f"Written {_dt.datetime.now().isoformat(timespec='seconds')} by hsickit.", ""]
        cmd = command or " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])
        lines += ["## Command", "", f"    {cmd}", ""]
        for head, body in sections.items():
            lines += [f"## {head}", "", str(body).rstrip(), ""]
        lines += ["## Versions", ""] + [f"- {k}: {v}" for k, v in versions().items()] + [""]
        return atomic_write(self.path / "README.md", "\n".join(lines))


#: Written when a training command starts, removed when its run folder is complete: a folder
#: holding it is an unfinished run, which the same command resumes.
TRAINING_MARKER = "training.json"


def file_digest(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's bytes (None for a folder or a path that does not exist)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def start_training_run(path: str | os.PathLike, settings: dict, inputs: Sequence = (),
                       overwrite: bool = False) -> tuple[RunFolder, bool]:
    """Open the run folder of a training command; returns ``(run, resumed)``.

    Call it once the input has been read and validated. A new or empty folder starts a run.
    An unfinished run (holding :data:`TRAINING_MARKER`) resumes when ``settings`` and the
    checksums of the ``inputs`` files match those it was started with. A finished run is
    refused unless ``overwrite``, which clears it first; a non-empty folder that is no
    hsickit run is always refused.
    """
    path = Path(path)
    record = _jsonable({"settings": settings, "inputs": {str(p): file_digest(p) for p in inputs if p is not None}})
    marker = path / TRAINING_MARKER
    if marker.exists() and not overwrite:
        old = read_json(marker)
        if old != record:
            diff = sorted(k for k in {**old["settings"], **record["settings"]}
                          if old["settings"].get(k) != record["settings"].get(k))
            diff += [f"{p} (its contents)" for p in record["inputs"] if old["inputs"].get(p) != record["inputs"][p]]
            raise HsickitError(f"{path} holds an unfinished run started with other settings or data ({', '.join(diff)}); "
                               "rerun the same command to resume it, or pass --overwrite to start afresh")
        for tmp in path.rglob(".*.tmp"):  # atomic_write's temporaries, left by a killed process
            tmp.unlink()
        return RunFolder(path), True
    if not marker.exists():
        check_output_folder(path, overwrite)
    if overwrite and path.exists():
        shutil.rmtree(path)
    run = RunFolder(path)
    write_json(marker, record)
    return run, False


@contextlib.contextmanager
def resumable_training(estimator, path: str | os.PathLike, settings: dict, inputs: Sequence = (), overwrite: bool = False,
                       verbose: int = 1):
    """Checkpoint ``estimator`` (its ``checkpoint_dir``, set for the block) while a training command
    that writes its run folder ``path`` whole at the end (:func:`staged_folder`) fits it.

    The checkpoints live beside ``path``, in the unfinished run ``.<name>.training``
    (:func:`start_training_run`: the same ``settings``, ``estimator`` parameters and ``inputs``
    resume, ``overwrite`` starts afresh), so ``path`` is never half-written. When the block
    fails, the checkpoints already written stay and the same command resumes from them; when
    it succeeds, they go.
    """
    path = Path(os.path.abspath(path))  # "." or "run/" name their folder
    home = path.parent / f".{path.name}.training"
    _, resumed = start_training_run(home, {**saved_params(estimator, leave_out=["verbose"]), **settings}, inputs, overwrite)
    checkpoints = home / "checkpoints"
    if resumed and verbose:
        print(f"resuming the unfinished training kept in {home}")
    try:
        estimator.set_params(checkpoint_dir=checkpoints)
        yield
    except BaseException:
        if checkpoints.exists() and any(checkpoints.iterdir()):
            if verbose:
                print(f"training stopped; what it had trained is kept in {home}: run the same command again to resume")
        else:
            shutil.rmtree(home, ignore_errors=True)
        raise
    finally:
        estimator.set_params(checkpoint_dir=None)
    shutil.rmtree(home, ignore_errors=True)


def fit_or_load(estimator, folder: str | os.PathLike | None, fit, verbose: int = 0):
    """``fit(estimator)``, saved in ``folder``; if an earlier, interrupted run saved it there, loaded instead.

    ``estimator`` takes a ``checkpoint_dir`` (checkpointed every epoch in ``folder``'s sibling
    ``<name>.training``, from which an interrupted fit resumes) and has ``save`` and a
    ``load`` classmethod. ``folder`` None: just ``fit(estimator)``.
    """
    if folder is None:
        return fit(estimator)
    folder = Path(folder)
    if folder.exists():  # staged: present only once saved whole
        if verbose:
            print(f"{folder.name}: trained before the run was interrupted; loaded from {folder}")
        return type(estimator).load(folder)
    training = folder.with_name(folder.name + ".training")
    fitted = fit(estimator.set_params(checkpoint_dir=training))
    with staged_folder(folder) as tmp:
        fitted.set_params(checkpoint_dir=None).save(tmp)
    shutil.rmtree(training, ignore_errors=True)
    return fitted


def finish_training_run(run: RunFolder) -> None:
    """Mark ``run`` complete (remove :data:`TRAINING_MARKER`); call it after its last output is written."""
    (run / TRAINING_MARKER).unlink(missing_ok=True)


def markdown_table(rows: list[dict], floatfmt: str = ".4g") -> str:
    """A GitHub-markdown table of a list of dicts (for model cards and benchmark output); NaN and None show as n/a."""
    if not rows:
        return ""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(out)

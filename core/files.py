"""Files that readers never see half-written, and JSON that takes what hsickit computes.

Every file hsickit writes goes through :func:`atomic_write` (a temporary sibling, then
``os.replace``; under ``torchrun`` only rank 0 writes). :func:`write_json` accepts
dataclasses, paths, numpy scalars and arrays (NaN and inf become null).

Examples
--------
>>> import tempfile
>>> from hsickit.core.files import read_json, write_json
>>> path = tempfile.mkdtemp() + "/scores.json"
>>> _ = write_json(path, {"mae": float("nan"), "rows": (1, 2)})
>>> read_json(path)
{'mae': None, 'rows': [1, 2]}
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

from hsickit.core.errors import HsickitError

__all__ = ["atomic_write", "file_digest", "jsonable", "read_json", "write_json"]


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


def jsonable(obj):
    """``obj`` as plain JSON types: dataclasses as dicts, tuples as lists, paths as strings, numpy
    scalars and arrays as numbers and lists, NaN and inf as None, callables by their name."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
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
    return atomic_write(path, json.dumps(jsonable(obj), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON file, naming the file in the error when it is missing or corrupted."""
    path = Path(path)
    if not path.exists():
        raise HsickitError(f"{path} does not exist; is this a hsickit run folder (it needs {path.name})?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise HsickitError(f"{path} is not valid JSON ({err}); the file is corrupted: re-run the command that wrote it") from err


def file_digest(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's bytes (None for a folder or a path that does not exist)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()

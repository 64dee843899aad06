"""Element property tables, indexed by atomic number, read from matminer's and pymatgen's data.

* Magpie properties (Ward et al. 2016): the ``*.table`` files that ship with matminer
  (``matminer/utils/data_files/magpie_elementdata``), read as matminer's ``MagpieData`` reads them
  (one line per element Z = 1, 2, ...; unreadable or absent values are NaN and, with
  ``impute_nan=True``, replaced by the mean over the 118 elements).
* Pauling electronegativity and common oxidation states: pymatgen's periodic table, as
  matminer's ``PymatgenData`` serves them to ``IonProperty``.

Every table is an array of length 119 whose index is the atomic number (index 0 unused, NaN).

Example
-------
>>> from hsickit.apps.materials.elements import magpie_table
>>> float(magpie_table("Number")[26])
26.0
"""
from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path

import numpy as np

from hsickit.core.errors import HsickitError

__all__ = ["N_Z", "magpie_dir", "magpie_table", "electronegativity", "oxidation_states", "symbols"]

N_Z = 119  # array length: index = atomic number 1..118


def magpie_dir() -> Path:
    """Folder of matminer's Magpie element tables (matminer must be installed; it is not imported)."""
    spec = importlib.util.find_spec("matminer")
    if spec is None or not spec.submodule_search_locations:
        raise HsickitError("the Magpie element data come from matminer, which is not installed; "
                           "install it with `pip install matminer` (or `pip install hsickit[matminer]`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "utils" / "data_files" / "magpie_elementdata"
    if not path.is_dir():
        raise HsickitError(f"matminer is installed but {path} is missing; reinstall matminer")
    return path


@functools.lru_cache(maxsize=None)
def _magpie_raw(name: str) -> np.ndarray:
    path = magpie_dir() / f"{name}.table"
    if not path.exists():
        known = sorted(p.stem for p in magpie_dir().glob("*.table"))
        raise HsickitError(f"no Magpie property {name!r}; known properties: {known}")
    lines = path.read_text().splitlines()
    out = np.full(N_Z, np.nan)
    for z in range(1, N_Z):
        try:
            out[z] = float(lines[z - 1])
        except (ValueError, IndexError):
            pass
    return out


def magpie_table(name: str, impute_nan: bool = True) -> np.ndarray:
    """One Magpie element property, shape (119,), index = atomic number.

    Parameters
    ----------
    name : str
        File stem in matminer's magpie_elementdata, e.g. ``"MeltingT"``, ``"GSvolume_pa"``.
    impute_nan : bool
        Replace missing values by the mean over elements 1..118 (matminer's default).
    """
    out = _magpie_raw(name).copy()
    if impute_nan:
        vals = out[1:]
        vals[np.isnan(vals)] = np.nanmean(vals)
    return out


@functools.lru_cache(maxsize=None)
def _pymatgen_x() -> np.ndarray:
    from pymatgen.core import Element

    out = np.full(N_Z, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for el in Element:
            x = el.X
            out[el.Z] = x if x else np.nan  # matminer treats a falsy value as missing
    return out


def electronegativity(impute_nan: bool = True) -> np.ndarray:
    """Pauling electronegativity from pymatgen, shape (119,); missing values imputed by the mean
    over elements, as matminer's ``PymatgenData(impute_nan=True)`` does."""
    out = _pymatgen_x().copy()
    if impute_nan:
        vals = out[1:]
        vals[np.isnan(vals)] = np.nanmean(vals)
    return out


@functools.lru_cache(maxsize=None)
def oxidation_states() -> tuple:
    """pymatgen's common oxidation states per atomic number (``(0,)`` where none is listed, as
    matminer's ``PymatgenData`` does); a tuple of 119 tuples, index = atomic number."""
    from pymatgen.core import Element

    out = [(0,)] * N_Z
    for el in Element:
        out[el.Z] = tuple(el.common_oxidation_states) or (0,)
    return tuple(out)


@functools.lru_cache(maxsize=None)
def symbols() -> tuple:
    """Element symbols by atomic number (index 0 is '')."""
    from pymatgen.core import Element

    out = [""] * N_Z
    for el in Element:
        out[el.Z] = el.symbol
    return tuple(out)

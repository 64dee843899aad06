"""PTB-XL (Wagner et al. 2020): 10-s 12-lead records, SCP-ECG statements, the official folds.

A PTB-XL folder is the release as PhysioNet ships it (or a part of it): ``ptbxl_database.csv``
(``ecg_id``, ``scp_codes``, ``strat_fold``, ``filename_lr``, ``filename_hr``; other columns are
ignored), ``scp_statements.csv`` and the WFDB records under ``records100/`` (100 Hz) and/or
``records500/`` (500 Hz). Records are named by their ``ecg_id`` (``"1"``, ``"2"``, ...).

Labels follow Strodthoff et al. (IEEE JBHI 2021, the ``ecg_ptbxl_benchmarking`` code) and
PhysioNet's ``example_physionet.py``: every statement of ``scp_codes`` counts whatever its
likelihood (``min_likelihood`` raises that floor), and a record's label set for a task is

================ ===========================================================================
task             labels
================ ===========================================================================
superdiagnostic  ``diagnostic_class`` of its diagnostic statements (NORM, MI, STTC, CD, HYP)
subdiagnostic    ``diagnostic_subclass`` of its diagnostic statements (23 subclasses)
diagnostic       its diagnostic statements themselves (44 codes)
form             its statements flagged ``form`` (19 codes)
rhythm           its statements flagged ``rhythm`` (12 codes)
all              all its statements (71 codes)
================ ===========================================================================

(the issue's "diagnostic (subclasses)" is Strodthoff's ``subdiagnostic``; ``diagnostic`` keeps
his meaning). Records with no label for the task are left out of its table, as in that code,
and listed in ``attrs["unlabelled"]``. Official split: folds 1-8 train, 9 validation, 10 test
(:data:`OFFICIAL_FOLDS`).

Example
-------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "scp_statements.csv").write_text(
...     ",diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\\n"
...     "NORM,1.0,,,NORM,NORM\\nIMI,1.0,,,MI,IMI\\nSR,,,1.0,,\\n")
>>> _ = (d / "ptbxl_database.csv").write_text(
...     "ecg_id,scp_codes,strat_fold,filename_lr,filename_hr\\n"
...     "1,\\"{'NORM': 100.0, 'SR': 0.0}\\",3,records100/00000/00001_lr,records500/00000/00001_hr\\n"
...     "2,\\"{'IMI': 50.0}\\",9,records100/00000/00002_lr,records500/00000/00002_hr\\n")
>>> ptbxl_labels(d, "superdiagnostic").to_dict("index")
{'1': {'NORM': 1, 'MI': 0}, '2': {'NORM': 0, 'MI': 1}}
>>> ptbxl_labels(d, "rhythm").attrs["unlabelled"]
['2']
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from hsickit.core.errors import HsickitError

__all__ = ["TASKS", "SUPERCLASSES", "OFFICIAL_FOLDS", "is_ptbxl", "read_ptbxl_database", "read_scp_statements", "ptbxl_labels",
           "ptbxl_records", "ptbxl_record_path", "ptbxl_folds"]

TASKS = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
OFFICIAL_FOLDS = {"train": tuple(range(1, 9)), "validation": (9,), "test": (10,)}
DATABASE, STATEMENTS = "ptbxl_database.csv", "scp_statements.csv"
_COLUMNS = ("ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")


def is_ptbxl(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a PTB-XL folder (holds ``ptbxl_database.csv``)."""
    return (Path(directory) / DATABASE).is_file()


def _parse_codes(text, path: Path, row: int) -> dict[str, float]:
    try:
        codes = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError):
        codes = None
    if not isinstance(codes, dict) or not all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in codes.items()):
        raise HsickitError(f"{path}, row {row}: scp_codes {text!r} is not a dict of statement -> likelihood "
                           "like \"{'NORM': 100.0, 'SR': 0.0}\"; fix the row (rows are numbered from 1 after the header)")
    return {k: float(v) for k, v in codes.items()}


def read_ptbxl_database(directory: str | os.PathLike) -> pd.DataFrame:
    """``ptbxl_database.csv`` indexed by record name (the ``ecg_id`` as text), ``scp_codes`` parsed into dicts.

    Columns: ``scp_codes``, ``strat_fold`` (int), ``filename_lr``, ``filename_hr``.
    """
    path = Path(directory) / DATABASE
    if not path.is_file():
        raise HsickitError(f"{path} not found; pass the PTB-XL folder that holds ptbxl_database.csv and scp_statements.csv")
    df = pd.read_csv(path, dtype={"ecg_id": str, "filename_lr": str, "filename_hr": str})
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise HsickitError(f"{path}: no column(s) {', '.join(missing)}; is this PTB-XL's ptbxl_database.csv?")
    df = df[list(_COLUMNS)].copy()
    ids = df["ecg_id"].astype(str).str.strip()
    bad = ~ids.str.fullmatch(r"\d+")
    if bad.any():
        raise HsickitError(f"{path}, row {int(np.flatnonzero(bad)[0]) + 1}: ecg_id {df['ecg_id'][bad].iloc[0]!r} is not a whole "
                           "number; fix the row (rows are numbered from 1 after the header)")
    ids = ids.astype(int).astype(str)  # "00001" and "1" are the same record
    if ids.duplicated().any():
        raise HsickitError(f"{path}: ecg_id {ids[ids.duplicated()].iloc[0]} appears twice; keep one row per record")
    folds = pd.to_numeric(df["strat_fold"], errors="coerce")
    bad = folds.isna() | (folds != folds.round())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise HsickitError(f"{path}, row {i + 1}: strat_fold {df['strat_fold'].iloc[i]!r} is not a fold number (1-10); fix the row")
    df["scp_codes"] = [_parse_codes(t, path, i + 1) for i, t in enumerate(df["scp_codes"])]
    df["strat_fold"] = folds.astype(int)
    df.index = pd.Index(ids, name="record")
    return df.drop(columns="ecg_id").sort_index(key=lambda s: s.astype(int))


def read_scp_statements(directory: str | os.PathLike) -> pd.DataFrame:
    """``scp_statements.csv`` indexed by SCP code, with boolean ``diagnostic``, ``form``, ``rhythm``."""
    path = Path(directory) / STATEMENTS
    if not path.is_file():
        raise HsickitError(f"{path} not found; copy PTB-XL's scp_statements.csv next to ptbxl_database.csv")
    df = pd.read_csv(path, index_col=0)
    missing = [c for c in ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass") if c not in df.columns]
    if missing:
        raise HsickitError(f"{path}: no column(s) {', '.join(missing)}; is this PTB-XL's scp_statements.csv?")
    for c in ("diagnostic", "form", "rhythm"):
        df[c] = df[c].fillna(0).astype(float) == 1.0
    return df


def _task_labels(codes: dict[str, float], task: str, statements: pd.DataFrame) -> set[str]:
    if task == "all":
        return set(codes)
    known = [k for k in codes if k in statements.index]
    if task in ("form", "rhythm"):
        return {k for k in known if statements.at[k, task]}
    diagnostic = [k for k in known if statements.at[k, "diagnostic"]]
    if task == "diagnostic":
        return set(diagnostic)
    column = "diagnostic_class" if task == "superdiagnostic" else "diagnostic_subclass"
    return {str(statements.at[k, column]) for k in diagnostic if pd.notna(statements.at[k, column])}


def ptbxl_labels(directory: str | os.PathLike, task: str = "superdiagnostic", records: Sequence[str] | None = None, *,
                 min_likelihood: float = 0.0) -> pd.DataFrame:
    """The multi-hot label table of ``task`` (one of :data:`TASKS`), indexed by record name.

    Statements with a likelihood below ``min_likelihood`` are ignored (0: all count, the
    benchmark convention). ``records`` restricts the table to those records (``ecg_id``);
    records without a label for the task are left out and listed in ``attrs["unlabelled"]``.
    Columns are sorted by name, except that ``superdiagnostic`` keeps :data:`SUPERCLASSES`'
    order (those present).
    """
    if task not in TASKS:
        raise HsickitError(f"unknown PTB-XL task {task!r}; choose from {', '.join(TASKS)}")
    db = read_ptbxl_database(directory)
    statements = read_scp_statements(directory)
    names = ptbxl_records(directory, records, database=db, check_files=False)
    sets = {}
    for r in names:
        codes = {k for k, v in db.at[r, "scp_codes"].items() if v >= min_likelihood}
        sets[r] = _task_labels({k: 1.0 for k in codes}, task, statements)
    columns = sorted(set().union(*sets.values())) if sets else []
    if task == "superdiagnostic":
        columns = [c for c in SUPERCLASSES if c in columns] + [c for c in columns if c not in SUPERCLASSES]
    labelled = [r for r in names if sets[r]]
    table = pd.DataFrame([[int(c in sets[r]) for c in columns] for r in labelled], index=pd.Index(labelled, name="record"),
                         columns=columns, dtype=int)
    table.attrs["unlabelled"] = [r for r in names if not sets[r]]
    table.attrs["task"] = task
    return table


def _file_column(directory: Path, db: pd.DataFrame, sampling_rate: float | None) -> str:
    if sampling_rate is not None:
        if float(sampling_rate) not in (100.0, 500.0):
            raise HsickitError(f"PTB-XL comes at 100 or 500 Hz, not {sampling_rate}; pass sampling_rate=100 or 500")
        return "filename_lr" if float(sampling_rate) == 100.0 else "filename_hr"
    first = db.index[0] if len(db) else None
    if first is not None and not (directory / f"{db.at[first, 'filename_lr']}.hea").exists() \
            and (directory / f"{db.at[first, 'filename_hr']}.hea").exists():
        return "filename_hr"
    return "filename_lr"


def ptbxl_records(directory: str | os.PathLike, records: Sequence[str] | str | None = None, *, folds: Sequence[int] | None = None,
                  sampling_rate: float | None = None, database: pd.DataFrame | None = None, check_files: bool = True) -> list[str]:
    """Record names (``ecg_id``) of a PTB-XL folder: ``records`` if given (checked), else every row of the
    database whose record files are present, in ``ecg_id`` order; ``folds`` keeps those folds.

    ``records`` may be a list or a comma-separated string (``"1,2,17"``). ``sampling_rate``
    (100 or 500) picks the release (None: 100 Hz where its files are present, else 500 Hz).
    """
    directory = Path(directory)
    db = read_ptbxl_database(directory) if database is None else database
    if isinstance(records, str):
        records = [r.strip() for r in records.split(",") if r.strip()]
    if records:
        names = [str(int(r)) if str(r).strip().isdigit() else str(r) for r in records]
        unknown = [r for r in names if r not in db.index]
        if unknown:
            raise HsickitError(f"record(s) {', '.join(unknown[:5])} are not in {directory / DATABASE}; "
                               "name PTB-XL records by their ecg_id (e.g. 1,2,17)")
    else:
        names = list(db.index)
    if folds is not None:
        keep = {int(f) for f in folds}
        names = [r for r in names if db.at[r, "strat_fold"] in keep]
    if check_files:
        column = _file_column(directory, db, sampling_rate)
        present = [r for r in names if (directory / f"{db.at[r, column]}.hea").exists()]
        if records and len(present) < len(names):
            missing = [r for r in names if r not in present]
            raise HsickitError(f"record(s) {', '.join(missing[:5])}: no {column} file ({directory / db.at[missing[0], column]}.hea); "
                               "copy the records or leave them out of --records-list")
        if not present:
            raise HsickitError(f"{directory}: none of the records of {DATABASE} is there ({column}, e.g. "
                               f"{directory / db[column].iloc[0]}.hea); copy the records100/ or records500/ folder next to it")
        names = present
    return names


def ptbxl_record_path(directory: str | os.PathLike, record: str, sampling_rate: float | None = None,
                      database: pd.DataFrame | None = None) -> str:
    """The WFDB path (no extension) of record ``record`` (its ``ecg_id``)."""
    directory = Path(directory)
    db = read_ptbxl_database(directory) if database is None else database
    if str(record) not in db.index:
        raise HsickitError(f"record {record} is not in {directory / DATABASE}")
    return str(directory / db.at[str(record), _file_column(directory, db, sampling_rate)])


def ptbxl_folds(directory: str | os.PathLike, records: Sequence[str] | None = None) -> dict[str, int]:
    """``strat_fold`` of every record (name -> fold)."""
    db = read_ptbxl_database(directory)
    names = list(db.index) if records is None else [str(r) for r in records]
    return {r: int(db.at[r, "strat_fold"]) for r in names}

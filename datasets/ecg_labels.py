"""Record-level multi-label tables: LUDB diagnoses and PhysioNet/CinC 2021 SNOMED-CT codes.

Each reader returns a 0/1 :class:`pandas.DataFrame` indexed by record name with one
column per label (a *multi-hot* table), ready to be a multi-label target.

Example
-------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "ludb.csv").write_text('ID,Sex,Age,Rhythms,Ischemia\\n1,F,51,"Sinus rhythm",\\n6,M,70,"Atrial fibrillation","Ischemia: apical"\\n')
>>> read_ludb_labels(d).loc["6"].to_dict()
{'Atrial fibrillation': 1, 'Ischemia: apical': 1, 'Sinus rhythm': 0}
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
import wfdb

from hsickit.core.errors import HsickitError

__all__ = ["read_ludb_labels", "read_cinc_labels", "cinc_code_map"]

_LUDB_NON_LABEL = {"ID", "Sex", "Age"}
_LUDB_ONE_OF = {"Rhythms", "Electric axis of the heart"}  # columns whose statements are alternatives, not findings


def read_ludb_labels(directory: str | os.PathLike, *, level: str = "statement") -> pd.DataFrame:
    """Multi-hot LUDB diagnoses from ``ludb.csv`` (parsed with :mod:`csv`: cells hold several lines).

    ``level="statement"``: one column per distinct statement (``"Sinus bradycardia"``,
    ``"Ischemia: apical"``, ...); ``level="category"``: one column per diagnosis column of
    ``ludb.csv`` that is non-empty, except the rhythm and electric-axis columns: each record
    has one of their statements (the axis column is non-empty for 39 of the 40 developer
    records, so as a category it would be a constant label), so both levels expand them into
    their statements (``"Sinus rhythm"``, ``"Electric axis of the heart: left axis deviation"``).
    """
    if level not in ("statement", "category"):
        raise HsickitError(f"level={level!r}; use 'statement' or 'category'")
    path = Path(directory) / "ludb.csv"
    if not path.exists():
        raise HsickitError(f"{path} not found; pass the LUDB folder that holds ludb.csv")
    rows: dict[str, set[str]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "ID" not in reader.fieldnames:
            raise HsickitError(f"{path}: no ID column; is this LUDB's ludb.csv?")
        for i, row in enumerate(reader, start=2):
            rid = (row.get("ID") or "").strip()
            if not rid:
                raise HsickitError(f"{path}, row {i}: empty ID; fix or remove the row")
            labels: set[str] = set()
            for column, cell in row.items():
                if column in _LUDB_NON_LABEL or column is None or not (cell or "").strip():
                    continue
                statements = [s.strip().rstrip(".") for s in cell.splitlines() if s.strip()]
                if level == "category" and column not in _LUDB_ONE_OF:
                    labels.add(column)
                else:
                    labels.update(statements)
            rows[rid] = labels
    names = sorted(set().union(*rows.values())) if rows else []
    table = pd.DataFrame([[int(n in rows[r]) for n in names] for r in rows], index=list(rows), columns=names)
    table.index.name = "record"
    return table


def cinc_code_map(directory: str | os.PathLike) -> pd.DataFrame:
    """SNOMED-CT code -> abbreviation, description, scored flag and the scored class it merges into.

    Read from the Challenge's ``dx_mapping_scored.csv`` / ``dx_mapping_unscored.csv``; the
    equivalent classes of ``weights.csv`` (codes joined with ``|``) map to their first code.
    """
    directory = Path(directory)
    parts = []
    for fname, scored in (("dx_mapping_scored.csv", True), ("dx_mapping_unscored.csv", False)):
        p = directory / fname
        if not p.exists():
            if scored:
                raise HsickitError(f"{p} not found; copy the Challenge's dx_mapping_scored.csv next to the records")
            continue
        df = pd.read_csv(p, dtype={"SNOMEDCTCode": str})
        parts.append(pd.DataFrame({"code": df["SNOMEDCTCode"].str.strip(), "abbreviation": df["Abbreviation"],
                                   "description": df["Dx"], "scored": scored}))
    table = pd.concat(parts).drop_duplicates("code").set_index("code")
    table["class_code"] = table.index
    weights = directory / "weights.csv"
    if weights.exists():
        header = next(csv.reader(open(weights)))
        for cell in header[1:]:
            codes = [c.strip() for c in cell.split("|")]
            for c in codes[1:]:
                if c in table.index:
                    table.loc[c, "class_code"] = codes[0]
    return table


def read_cinc_labels(directory: str | os.PathLike, records=None, *, scored_only: bool = False) -> pd.DataFrame:
    """Multi-hot SNOMED-CT diagnoses of CinC 2021 records (the ``# Dx:`` header line).

    Columns are abbreviations (``"PAC"``, ``"STach"``, ...); equivalent codes are merged as
    the Challenge scores them. Codes missing from the official maps keep their code as column
    name and are listed in ``attrs["unmapped"]``. ``scored_only`` keeps the 26 scored classes.
    """
    from hsickit.datasets.ecg import list_records, record_path

    codes = cinc_code_map(directory)
    names = list_records(directory, records)
    rows, unmapped = {}, set()
    for r in names:
        comments = wfdb.rdheader(record_path(directory, r)).comments or []
        dx = [c.split(":", 1)[1] for c in comments if c.strip().lower().startswith("dx:")]
        if not dx:
            raise HsickitError(f"record {r}: no '# Dx:' line in {record_path(directory, r)}.hea; add the diagnoses")
        labels = set()
        for code in (c.strip() for c in dx[0].split(",") if c.strip()):
            if code not in codes.index:
                unmapped.add(code)
                labels.add(code)
                continue
            cls = codes.loc[code, "class_code"]
            if scored_only and not codes.loc[cls, "scored"]:
                continue
            labels.add(str(codes.loc[cls, "abbreviation"]))
        rows[r] = labels
    columns = sorted(set().union(*rows.values()))
    table = pd.DataFrame([[int(c in rows[r]) for c in columns] for r in names], index=names, columns=columns)
    table.index.name = "record"
    table.attrs["unmapped"] = sorted(unmapped)
    return table

"""Tables of chemical formulas and properties, strict formula parsing, Matbench tasks and folds.

A materials table is any table pandas reads (CSV, TSV, Excel, JSON, Parquet) with one column
of formulas and one or more numeric target columns. :func:`read_formula_table` parses every
formula strictly with pymatgen, checks every target, and either stops with *all* bad rows
listed or (``skip_invalid=True``) skips them and writes them to a rejects file. Rows are
numbered from 1 after the header (row 1 is the first data row).

Example
-------
>>> import pandas as pd
>>> from hsickit.datasets.materials import read_formula_table
>>> df = pd.DataFrame({"formula": ["NaCl", "Fe2O3", "Na2Cl2"], "target": [5.0, 2.2, 6.0]})
>>> table = read_formula_table(df, duplicates="mean")
>>> table.formulas, table.y.tolist()
(['NaCl', 'Fe2O3'], [5.5, 2.2])
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from hsickit.core.errors import HsickitError

__all__ = [
    "FormulaTable",
    "parse_formula",
    "read_formula_table",
    "MATBENCH_TASKS",
    "MATBENCH_SEED",
    "load_matbench",
    "matbench_folds",
    "matbench_kfold",
    "load_leaderboard",
    "DUPLICATE_POLICIES",
    "demo_table_path",
]

DUPLICATE_POLICIES = ("keep", "mean", "min")

#: Matbench v0.1 composition tasks: name -> (task type, metric).
MATBENCH_TASKS = {
    "expt_gap": ("regression", "mae"),
    "steels": ("regression", "mae"),
    "expt_is_metal": ("classification", "rocauc"),
    "glass": ("classification", "rocauc"),
    "mp_e_form": ("regression", "mae"),
    "mp_gap": ("regression", "mae"),
}
#: Seed of Matbench's official KFold / StratifiedKFold (scripts/mvb01_generate_validation.py).
MATBENCH_SEED = 18012019

# An amount written right after an element symbol or a closing bracket (pymatgen's grammar).
_AMOUNT = re.compile(r"(?:[A-Z][a-z]*|[)\]])\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)")
_SYMBOL = re.compile(r"[A-Z][a-z]*")
#: Amounts above this (atoms per formula unit) are refused as typos; below ``MIN_RELATIVE_AMOUNT``
#: times the formula's largest amount as negligible (pymatgen drops them without a word).
MAX_AMOUNT = 1e6
MIN_RELATIVE_AMOUNT = 1e-6
#: Targets beyond ± this are refused: float32 networks (and the scaler) overflow on them.
MAX_TARGET = 1e30


def parse_formula(text):
    """Parse one formula strictly; raise :class:`HsickitError` saying what is wrong.

    pymatgen alone accepts placeholder species (``Xx2O``) and silently drops zero amounts
    (``Na0Cl`` becomes ``Cl``); both are rejected here, as are empty strings, unbalanced
    brackets, unknown element symbols and negative amounts. Deuterium and tritium (``D``,
    ``T``) are read as hydrogen, as pymatgen does.

    Parameters
    ----------
    text : str
        A formula such as ``"Fe2O3"``, ``"Ag(AuS)2"`` or ``"Fe0.62Ni0.19Co0.15"``.

    Returns
    -------
    pymatgen.core.Composition

    Example
    -------
    >>> parse_formula("Ag(AuS)2").formula
    'Ag1 Au2 S2'
    """
    from pymatgen.core import Composition, Element

    if text is None or (isinstance(text, float) and np.isnan(text)):
        raise HsickitError("empty formula: write a chemical formula such as 'Fe2O3'")
    if not isinstance(text, str):
        raise HsickitError(f"formula {text!r} is not a string: write a chemical formula such as 'Fe2O3'")
    s = text.strip()
    if not s:
        raise HsickitError("empty formula: write a chemical formula such as 'Fe2O3'")
    amounts = [(m.group(0)[:m.start(1) - m.start(0)].strip(), m.group(1), float(m.group(1))) for m in _AMOUNT.finditer(s)]
    for who, written, value in amounts:
        if value <= 0:
            raise HsickitError(
                f"formula {text!r}: amount {written} is {'zero' if value == 0 else 'negative'}; "
                "every element needs a positive amount (leave an element out rather than writing 0)"
            )
        if not np.isfinite(value) or value > MAX_AMOUNT:
            raise HsickitError(f"formula {text!r}: amount {written} is absurdly large (more than {MAX_AMOUNT:g} atoms per "
                               "formula unit); check the number (a missing decimal point or separator?)")
    implicit = any(not s[m.end():].lstrip()[:1].replace(".", "0").isdigit() for m in _SYMBOL.finditer(s))
    largest = max([v for _, _, v in amounts] + ([1.0] if implicit or not amounts else []))  # no number: 1
    for who, written, value in amounts:
        if value <= MIN_RELATIVE_AMOUNT * largest:
            of = "the bracket" if who in (")", "]") else who
            raise HsickitError(f"formula {text!r}: the amount {written} of {of} is negligible (less than a millionth of "
                               f"the largest amount, {largest:g}); such an amount is a typo or below what pymatgen keeps: "
                               f"leave {of} out, or write its real amount")
    for sym in set(_SYMBOL.findall(s)):
        if sym in ("D", "T"):
            continue
        if not Element.is_valid_symbol(sym):
            raise HsickitError(
                f"formula {text!r}: {sym!r} is not a chemical element (pymatgen would accept it as a "
                "placeholder species); fix the symbol (element symbols start with a capital letter, "
                "e.g. 'Co' not 'CO')"
            )
    try:
        comp = Composition(s, strict=True)
    except Exception as exc:  # pymatgen raises ValueError/KeyError/TypeError with terse messages
        case = (" (element symbols start with a capital letter: 'Fe2O3', not 'fe2o3')"
                if re.search(r"(^|[^A-Za-z])[a-z]", s) else "")
        raise HsickitError(
            f"formula {text!r} cannot be parsed ({exc}); check brackets, symbols and amounts{case}, "
            "e.g. 'Ag(AuS)2', 'Fe0.7Ni0.3'"
        ) from None
    lost = sorted({sym for sym in _SYMBOL.findall(s) if sym not in ("D", "T")} - {el.symbol for el in comp.elements})
    if lost:
        raise HsickitError(f"formula {text!r}: element(s) {lost} were lost in parsing (an amount too small to keep?); "
                           "leave them out or write their real amounts")
    if comp.num_atoms <= 0 or len(comp) == 0:
        raise HsickitError(f"formula {text!r} contains no atoms; write a chemical formula such as 'Fe2O3'")
    return comp


@dataclass
class FormulaTable:
    """A parsed materials table (only valid rows; see :attr:`rejects` for the others).

    Attributes
    ----------
    formulas : list of str
        The formula strings as written (surrounding spaces removed).
    compositions : list of pymatgen.core.Composition
    y : numpy.ndarray or None
        Targets, shape (n,) for one target column, (n, k) for several; None when no target
        column was asked for (prediction input).
    target_names : list of str
    rows : numpy.ndarray
        1-based data-row numbers in the source table (row 1 = first row after the header).
    frame : pandas.DataFrame
        The kept source rows with all their columns (e.g. ``mbid``, ``fold``).
    rejects : pandas.DataFrame
        Columns ``row, column, value, reason`` for every skipped row.
    duplicates : pandas.DataFrame
        Columns ``key, rows, formulas``: groups of rows with the same composition
        (same element fractions), reported whatever the policy.
    duplicates_policy : str
    source : str
    """

    formulas: list
    compositions: list
    y: np.ndarray | None
    target_names: list
    rows: np.ndarray
    frame: pd.DataFrame
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "column", "value", "reason"]))
    duplicates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["key", "rows", "formulas"]))
    duplicates_policy: str = "keep"
    source: str = "<DataFrame>"

    def __len__(self):
        return len(self.formulas)

    def summary(self):
        """One line for logs: rows kept, rejected, duplicate groups."""
        return (f"{self.source}: {len(self)} rows kept, {len(self.rejects)} rejected, "
                f"{len(self.duplicates)} duplicate-composition groups (policy {self.duplicates_policy!r})")


def _read_any(source, sep=None):
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True), "<DataFrame>"
    path = Path(source)
    if not path.exists():
        raise HsickitError(f"table {str(path)!r} does not exist; give the path of a CSV/TSV/Excel/JSON/Parquet file")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix in (".gz", ".bz2", ".zip", ".xz") else path.suffix.lower()
    try:
        if suffix.startswith((".xlsx", ".xls")):
            df = pd.read_excel(path)
        elif suffix.startswith(".json"):
            df = pd.read_json(path)
        elif suffix.startswith(".parquet"):
            df = pd.read_parquet(path)
        else:
            from hsickit.datasets.tables import read_text_table

            if sep is None and suffix.startswith((".tsv", ".tab")):
                sep = "\t"
            # an empty formula cell stays "" and is reported as empty; repeated headers, another
            # separator and non-UTF-8 bytes are errors naming the file and row
            df = read_text_table(path, sep=sep if sep is not None else ",", name=str(path))
    except HsickitError:
        raise
    except Exception as exc:
        raise HsickitError(f"cannot read table {str(path)!r}: {exc}; check the file format (CSV with a header row)") from None
    return df.reset_index(drop=True), str(path)


def _check_columns(df, cols, source, what):
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise HsickitError(
            f"{source}: {what} column(s) {missing} not found; the table has columns {list(df.columns)}. "
            f"Name the right one(s) with --formula-col / --target-col (formula_col= / target_cols=)."
        )


def _composition_key(comp):
    frac = comp.fractional_composition
    return tuple(sorted((el.symbol, round(float(a), 10)) for el, a in frac.items()))


def _labels(text, num):
    """Class labels of one column: numbers (integers when whole) when every non-empty one is a
    number, else the stripped strings."""
    given = text != ""
    if given.any() and np.isfinite(num[given]).all():
        whole = np.all(num[given] == np.round(num[given]))
        return np.where(given, num, 0).astype(np.int64) if whole else num
    return text


def read_formula_table(source, formula_col="formula", target_cols="target", *, skip_invalid=False,
                       rejects_path=None, duplicates="keep", sep=None, verbose=0, target_type="number"):
    """Read a table of formulas and targets; parse strictly; handle bad rows and duplicates.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A file pandas can read (.csv, .tsv, .xlsx, .json, .parquet) or a DataFrame.
    formula_col : str
        Column holding the formulas.
    target_cols : str, sequence of str or None
        Target column(s). None reads formulas only (input for prediction).
    target_type : {"number", "label", "auto"}
        "number": targets are numbers (regression). "label": class labels (classification),
        strings such as ``metal`` or numbers such as 0/1 (returned as numbers, integers when
        whole, when every label is a number); only a missing label is a bad row. "auto": a
        column none of whose values is a number holds labels, any other holds numbers.
    skip_invalid : bool
        False (default): any bad row raises :class:`HsickitError` listing *all* bad rows.
        True: bad rows are skipped, kept in ``table.rejects`` and written to `rejects_path`.
    rejects_path : str or Path, optional
        Where to write the rejected rows (CSV: row, column, value, reason) when skipping.
        When None and rows are skipped, a warning says how many.
    duplicates : {"keep", "mean", "min"}
        Rows whose compositions have the same element fractions (``NaCl`` and ``Na2Cl2``):
        keep all rows, or merge each group into its first row with the mean or minimum target.
        Groups are listed in ``table.duplicates`` whatever the policy.
    sep : str, optional
        Column separator for text files (default: comma, tab for .tsv).
    verbose : int
        >0 prints a summary line.

    Returns
    -------
    FormulaTable

    Example
    -------
    >>> import pandas as pd
    >>> t = read_formula_table(pd.DataFrame({"formula": ["NaCl", "Xx2O"], "target": ["1", "2"]}),
    ...                        skip_invalid=True)  # doctest: +SKIP
    >>> t.rejects.reason[0]  # doctest: +SKIP
    "formula 'Xx2O': 'Xx' is not a chemical element ..."
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise HsickitError(f"duplicates={duplicates!r} is not a policy; use one of {DUPLICATE_POLICIES}")
    df, name = _read_any(source, sep=sep)
    if target_cols is None:
        target_cols = []
    elif isinstance(target_cols, str):
        target_cols = [target_cols]
    else:
        target_cols = list(target_cols)
    _check_columns(df, [formula_col], name, "formula")
    _check_columns(df, target_cols, name, "target")
    if len(df) == 0:
        raise HsickitError(f"{name}: the table has no data rows; add rows of formula,target")

    bad = []  # (row, column, value, reason)
    cache = {}
    comps = [None] * len(df)
    for i, text in enumerate(df[formula_col].tolist()):
        key = text.strip() if isinstance(text, str) else text
        try:
            if isinstance(key, str) and key in cache:
                comps[i] = cache[key]
            else:
                comps[i] = parse_formula(text)
                if isinstance(key, str):
                    cache[key] = comps[i]
        except HsickitError as exc:
            bad.append((i + 1, formula_col, "" if text is None else str(text), str(exc)))

    if target_type not in ("number", "label", "auto"):
        raise HsickitError(f"target_type={target_type!r}: use 'number', 'label' or 'auto'")
    ys = []
    for col in target_cols:
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        cells = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in raw],
                         dtype=object)
        if target_type == "label" or (target_type == "auto" and not np.isfinite(num).any() and (cells != "").any()):
            ys.append(_labels(cells, num))
            bad += [(i + 1, col, "", f"class label in column {col!r} is missing; write the row's class (for "
                                     "example metal) or remove the row") for i in np.flatnonzero(cells == "")]
            continue
        for i in np.flatnonzero(~np.isfinite(num)):
            text = raw.iloc[i]
            text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
            why = "is missing" if text.strip() == "" else ("is not finite" if text.strip().lower() in
                                                          ("inf", "-inf", "+inf", "infinity", "-infinity") else "is not a number")
            bad.append((i + 1, col, text, f"target {col!r} value {text!r} {why}; write a plain number "
                                          "such as 1.25 (no units) or remove the row (class labels such as "
                                          "'metal': target_type='label', CLI --task classification)"))
        for i in np.flatnonzero(np.isfinite(num) & (np.abs(num) > MAX_TARGET)):
            bad.append((i + 1, col, str(raw.iloc[i]), f"target {col!r} value {raw.iloc[i]!r} is beyond ±{MAX_TARGET:g}, "
                                                      "too large for a network to learn (float32); fix the value or "
                                                      "rescale the column (another unit)"))
        ys.append(num)

    rejects = pd.DataFrame(sorted(bad), columns=["row", "column", "value", "reason"])
    bad_rows = set(rejects["row"].tolist())
    if bad and not skip_invalid:
        lines = [f"  row {r}, column {c!r}: {why}" for r, c, _, why in sorted(bad)[:50]]
        more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
        raise HsickitError(
            f"{name}: {len(bad_rows)} invalid row(s) (rows numbered from 1 after the header):\n"
            + "\n".join(lines) + more
            + "\nFix these rows, or skip them with skip_invalid=True (CLI: --skip-invalid); "
              "skipped rows are written to a rejects file."
        )
    if bad:
        if rejects_path is not None:
            from hsickit.core.files import atomic_write
            atomic_write(rejects_path, rejects.to_csv(index=False))
        else:
            warnings.warn(f"{name}: skipped {len(bad_rows)} invalid row(s); see FormulaTable.rejects "
                          "or pass rejects_path= to write them to a file", stacklevel=2)

    keep = np.array([i for i in range(len(df)) if (i + 1) not in bad_rows], dtype=int)
    if len(keep) == 0:
        raise HsickitError(f"{name}: every row is invalid; first problem: {bad[0][3]}")
    y = np.stack([v[keep] for v in ys], axis=1) if ys else None
    if y is not None and y.shape[1] == 1:
        y = y[:, 0]
    frame = df.iloc[keep].reset_index(drop=True)
    kept_comps = [comps[i] for i in keep]
    formulas = [str(df[formula_col].iloc[i]).strip() for i in keep]
    rows = keep + 1

    # duplicates: same element fractions
    keys = [_composition_key(c) for c in kept_comps]
    groups = {}
    for j, k in enumerate(keys):
        groups.setdefault(k, []).append(j)
    dup_groups = [g for g in groups.values() if len(g) > 1]
    dup_report = pd.DataFrame(
        [{"key": kept_comps[g[0]].reduced_formula, "rows": " ".join(str(rows[j]) for j in g),
          "formulas": " ".join(formulas[j] for j in g)} for g in dup_groups],
        columns=["key", "rows", "formulas"])
    if dup_groups and duplicates != "keep" and y is not None:
        if y.dtype == object:
            raise HsickitError(f"duplicates={duplicates!r} averages targets, but {name} holds class labels; "
                               "use duplicates='keep' (CLI --duplicates keep)")
        agg = np.mean if duplicates == "mean" else np.min
        order = sorted(groups.values(), key=lambda g: g[0])
        first = np.array([g[0] for g in order])
        y = np.stack([agg(y[g], axis=0) for g in order])
        formulas = [formulas[j] for j in first]
        kept_comps = [kept_comps[j] for j in first]
        frame = frame.iloc[first].reset_index(drop=True)
        rows = rows[first]
    table = FormulaTable(formulas=formulas, compositions=kept_comps, y=y, target_names=target_cols,
                         rows=np.asarray(rows), frame=frame, rejects=rejects, duplicates=dup_report,
                         duplicates_policy=duplicates, source=name)
    if verbose:
        print(table.summary())
    return table


# --------------------------------------------------------------------------- Matbench


def task_name(task):
    t = str(task)
    t = t[len("matbench_"):] if t.startswith("matbench_") else t
    if t not in MATBENCH_TASKS:
        raise HsickitError(f"unknown Matbench task {task!r}; choose one of {sorted(MATBENCH_TASKS)}")
    return t


def load_matbench(task, data_dir, **kwargs):
    """Read ``matbench_<task>.csv`` (columns ``mbid, formula, target, fold``) from `data_dir`.

    Keeps every row (``duplicates="keep"``) so scores stay comparable with the leaderboard.

    Example
    -------
    >>> t = load_matbench("expt_gap", "../shared/data/materials/matbench_v0.1_composition")  # doctest: +SKIP
    >>> len(t)  # doctest: +SKIP
    4604
    """
    t = task_name(task)
    path = Path(data_dir) / f"matbench_{t}.csv"
    if not path.exists():
        raise HsickitError(f"{str(path)!r} not found; --data must be the folder holding matbench_{t}.csv "
                           "(e.g. matbench_v0.1_composition/)")
    kwargs.setdefault("duplicates", "keep")
    return read_formula_table(path, "formula", "target", **kwargs)


def matbench_kfold(y, classification=False):
    """The official Matbench v0.1 folds, regenerated: list of 5 (train_idx, test_idx).

    ``KFold(5, shuffle=True, random_state=18012019)`` for regression,
    ``StratifiedKFold`` with the same settings for classification.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    if classification:
        cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED)
        return [(tr, te) for tr, te in cv.split(np.zeros(len(y)), y)]
    cv = KFold(n_splits=5, shuffle=True, random_state=MATBENCH_SEED)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y)))]


def matbench_folds(table, task_type="regression") -> Iterator:
    """The 5 official folds of a Matbench table: list of (train_idx, test_idx).

    Uses the table's ``fold`` column (row is in the test set of that fold) when present, else
    regenerates them with :func:`matbench_kfold` (same result on the official files).
    """
    frame = table.frame if isinstance(table, FormulaTable) else table
    if "fold" in frame.columns:
        fold = pd.to_numeric(frame["fold"], errors="coerce").to_numpy()
        if np.isnan(fold).any():
            raise HsickitError("the 'fold' column has non-numeric values; it must hold 0..4")
        idx = np.arange(len(fold))
        return [(idx[fold != k], idx[fold == k]) for k in range(5)]
    y = table.y if isinstance(table, FormulaTable) else frame["target"].to_numpy()
    return matbench_kfold(y, classification=(task_type == "classification"))


def load_leaderboard(data_dir, task):
    """Rows of ``leaderboard_matbench_v0.1.csv`` for one task (empty DataFrame if the file is absent)."""
    t = task_name(task)
    path = Path(data_dir) / "leaderboard_matbench_v0.1.csv"
    if not path.exists():
        return pd.DataFrame(columns=["task", "algorithm", "metric", "mean", "std", "source"])
    lb = pd.read_csv(path)
    return lb[lb["task"] == f"matbench_{t}"].reset_index(drop=True)


def demo_table_path() -> Path:
    """Path of the 1,000-row Matbench expt_gap sample shipped with hsickit (see datasets/data/README.md)."""
    from importlib.resources import files

    return Path(str(files("hsickit.datasets") / "data" / "matbench_expt_gap_1000.csv"))

"""Plant taxonomy tables and labelled specimens (feature tables or images), joined to the taxonomy.

A taxonomy table has one row per leaf class with a column per rank: ``species``, ``genus``,
``family`` and optionally ``order`` and further ranks (any of :data:`RANKS`). An optional
``label`` column holds the label exactly as the samples spell it (e.g. ``Acer_Opalus``);
without it the samples are labelled by the species name. The reader checks that the
table is a tree: every species sits in one genus, every genus in one family, and so on.

Samples come as a feature table (CSV, one row per specimen, a label column and numeric
feature columns), as images (one folder per species; an index CSV of image paths and
labels; or an ``.npz`` array with ``images`` and ``ids``/``labels``). The leaf data set
(``leaf-classification-99``: ``train.csv``, ``taxonomy.csv``, ``labels.csv``,
``images_128.npz``) reads as it is.

Examples
--------
>>> import io
>>> tax = read_taxonomy(io.StringIO("species,genus,family\\nQuercus robur,Quercus,Fagaceae\\n"
...                                 "Quercus ilex,Quercus,Fagaceae\\nAcer opalus,Acer,Sapindaceae\\n"))
>>> tax.levels
('species', 'genus', 'family')
>>> tax.group_index("family").tolist()
[0, 0, 1]
>>> tax.distance([0, 0], [1, 2]).tolist()  # same genus: 1 step up; different family: 3
[1, 3]
"""
from __future__ import annotations

import csv
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from hsickit.core.errors import HsickitError
from hsickit.datasets.tables import read_text_table

__all__ = [
    "RANKS",
    "Taxonomy",
    "read_taxonomy",
    "PlantSamples",
    "read_feature_table",
    "read_image_folder",
    "read_image_index",
    "read_image_npz",
    "read_images",
    "skipped_report",
    "fit_image",
    "load_leaf99",
    "LEAF99_GROUPS",
]

#: Rank columns recognised in a taxonomy table, finest first.
RANKS = ("form", "variety", "subspecies", "species", "genus", "subtribe", "tribe", "subfamily", "family",
         "superfamily", "suborder", "order", "superorder", "subclass", "class", "subphylum", "phylum",
         "division", "kingdom")
REQUIRED_RANKS = ("species", "genus", "family")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
#: Feature groups of the leaf data set (column prefixes of ``train.csv``).
LEAF99_GROUPS = ("margin", "shape", "texture")


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", str(name)).strip().casefold()


def source_name(source) -> str:
    """How messages name a table: its path, or ``<table>`` for one given in memory (shared with :mod:`hsickit.datasets.outlines`)."""
    return str(source) if isinstance(source, (str, os.PathLike)) else "<table>"


def _row(i: int) -> str:
    """How messages name data row ``i`` (0-based): ``row i+1``, as specimen tables do."""
    return f"row {int(i) + 1}"


class Taxonomy:
    """A validated taxonomy tree over leaf classes (species, or finer ranks).

    Parameters
    ----------
    table : DataFrame
        One row per leaf; one column per rank, optionally a ``label`` key column.
    levels : sequence of str, optional
        Rank columns, finest first (default: the :data:`RANKS` columns present).
    key : str, optional
        Column holding the labels used by the samples (default ``label`` when present,
        else the finest rank).
    source : str
        Name of the file, for error messages.

    Examples
    --------
    >>> import pandas as pd
    >>> t = Taxonomy(pd.DataFrame({"species": ["a b", "a c"], "genus": ["a", "a"], "family": ["F", "F"]}))
    >>> t.n_leaves, t.names("genus")
    (2, ['a'])
    """

    def __init__(self, table: pd.DataFrame, levels: Sequence[str] | None = None, key: str | None = None,
                 source: str = "<table>"):
        self.source = source
        table = table.copy()
        table.columns = [str(c).strip() for c in table.columns]
        lower = {c.casefold(): c for c in table.columns}
        if levels is None:
            levels = [lower[r] for r in RANKS if r in lower]
            missing = [r for r in REQUIRED_RANKS if r not in lower]
            if missing:
                raise HsickitError(
                    f"taxonomy {source} has no column(s) {missing} (columns: {list(table.columns)}); "
                    f"a taxonomy needs at least {list(REQUIRED_RANKS)} columns, one row per species"
                )
        else:
            levels = list(levels)
            absent = [c for c in levels if c not in table.columns]
            if absent or len(levels) < 2:
                raise HsickitError(
                    f"taxonomy {source}: levels {levels} must be at least two columns of the table "
                    f"(missing {absent}; columns: {list(table.columns)})"
                )
        if key is None:
            key = lower.get("label", levels[0])
        if key not in table.columns:
            raise HsickitError(f"taxonomy {source} has no key column {key!r}; columns: {list(table.columns)}")
        if len(table) == 0:
            raise HsickitError(f"the taxonomy file {source} has no rows (only its header); add one row per species "
                               f"with its {', '.join(levels[1:])}")
        self.levels = tuple(levels)
        self.key = key
        cols = [key] + [c for c in self.levels if c != key]
        sub = table[cols].copy()
        self._validate(sub)
        self._warn_suspicious(sub)
        for c in cols:
            sub[c] = sub[c].astype(str).str.strip()
        self.table = sub.reset_index(drop=True)
        self.extra = table.drop(columns=cols).reset_index(drop=True)
        self._build_index()

    # -- validation -------------------------------------------------------------------------
    def _validate(self, sub: pd.DataFrame) -> None:
        src = self.source
        blank = sub.isna() | sub.astype(str).apply(lambda s: s.str.strip().eq(""))
        if blank.to_numpy().any():
            rows, cols = np.nonzero(blank.to_numpy())
            where = ", ".join(f"{_row(r)} column {sub.columns[c]!r}" for r, c in list(zip(rows, cols))[:5])
            raise HsickitError(f"taxonomy {src} has empty cells ({where}; {ROW_NUMBERING}); fill in every rank for every row "
                               "or drop a rank column that is not known for all rows")
        s = sub.astype(str).apply(lambda x: x.str.strip())
        dup = s.duplicated(keep=False)
        if dup.any():
            first = s[dup].iloc[0]
            rows = ", ".join(_row(i) for i in np.nonzero((s == first).all(axis=1).to_numpy())[0])
            raise HsickitError(f"taxonomy {src}: {rows} are duplicates of {first[self.key]!r} ({ROW_NUMBERING}); "
                               "delete all but one of them")
        counts = s[self.key].value_counts()
        if (counts > 1).any():
            name = counts[counts > 1].index[0]
            rows = ", ".join(_row(i) for i in np.nonzero((s[self.key] == name).to_numpy())[0])
            raise HsickitError(f"taxonomy {src}: {self.key} {name!r} appears in conflicting rows ({rows}; {ROW_NUMBERING}); "
                               "keep one row per " f"{self.key} with its correct lineage")
        chain = [c for c in self.levels]
        if self.key != chain[0]:
            chain = [self.key] + chain
        for child, parent in zip(chain[:-1], chain[1:]):
            parents = s.groupby(child)[parent].nunique()
            bad = parents[parents > 1]
            if len(bad):
                name = bad.index[0]
                rows = s[s[child] == name]
                detail = ", ".join(f"{p!r} ({_row(i)})" for i, p in zip(rows.index, rows[parent]))
                raise HsickitError(
                    f"taxonomy {src}: {child} {name!r} is placed in more than one {parent}: {detail} ({ROW_NUMBERING}); "
                    f"each {child} must sit in exactly one {parent} - correct the rows"
                    + (" (if the species column holds epithets only, write the full binomial, e.g. 'Quercus alba')"
                       if child == "species" else "")
                )
        if self.key != self.levels[0]:
            per = s.groupby(self.levels[0])[self.key].nunique()
            if (per > 1).any():
                name = per[per > 1].index[0]
                keys = sorted(s.loc[s[self.levels[0]] == name, self.key])
                raise HsickitError(f"taxonomy {src}: {self.levels[0]} {name!r} has several labels {keys}; "
                                   "use one label per species (merge the samples under one label)")

    def _warn_suspicious(self, sub: pd.DataFrame) -> None:
        """Warn (not refuse: it is legal, if odd) when a name sits at two ranks, e.g. a genus named as its
        family, or when a row's species and genus look swapped (a one-word species in a two-word genus)."""
        s = sub.astype(str).apply(lambda x: x.str.strip())
        seen: dict[str, str] = {}
        for level in self.levels:
            for name in s[level].unique():
                if name in seen and seen[name] != level:
                    warnings.warn(f"taxonomy {self.source}: {name!r} is both a {seen[name]} and a {level} name; "
                                  "check the columns are in the right order and each rank holds its own names",
                                  stacklevel=4)
                seen.setdefault(name, level)
        if "species" in s.columns and "genus" in s.columns:
            swapped = np.flatnonzero(~s["species"].str.contains(" ").to_numpy() & s["genus"].str.contains(" ").to_numpy())
            if len(swapped):
                i = swapped[0]
                warnings.warn(f"taxonomy {self.source}: {_row(i)} has species {s['species'].iloc[i]!r} and genus "
                              f"{s['genus'].iloc[i]!r} ({len(swapped)} such row(s); {ROW_NUMBERING}): species and "
                              "genus look swapped; a species is usually 'Genus epithet'", stacklevel=4)

    def _build_index(self) -> None:
        self._codes = {}
        self._names = {}
        for lvl in self.levels:
            names, codes = [], {}
            idx = np.empty(len(self.table), dtype=np.int64)
            for i, v in enumerate(self.table[lvl]):
                if v not in codes:
                    codes[v] = len(names)
                    names.append(v)
                idx[i] = codes[v]
            self._codes[lvl] = idx
            self._names[lvl] = names
        lookup: dict[str, int] = {}
        norm: dict[str, set] = {}
        for i, (k, leaf) in enumerate(zip(self.table[self.key], self.table[self.levels[0]])):
            lookup.setdefault(k, i)
            lookup.setdefault(leaf, i)
            norm.setdefault(_norm(k), set()).add(i)
            norm.setdefault(_norm(leaf), set()).add(i)
        self._lookup = lookup
        self._norm_lookup = {n: next(iter(s)) for n, s in norm.items() if len(s) == 1}

    # -- reading --------------------------------------------------------------------------------
    @property
    def leaves(self) -> np.ndarray:
        """Leaf labels (the key column), in leaf-index order."""
        return self.table[self.key].to_numpy(dtype=object)

    @property
    def n_leaves(self) -> int:
        return len(self.table)

    @property
    def leaf_level(self) -> str:
        return self.levels[0]

    def names(self, level: str) -> list[str]:
        """Group names at ``level``, in group-index order."""
        return list(self._names[self._level(level)])

    def group_index(self, level: str) -> np.ndarray:
        """Leaf index -> group index at ``level`` (int64, length ``n_leaves``)."""
        return self._codes[self._level(level)].copy()

    def group_maps(self) -> list[np.ndarray]:
        """Leaf -> group index maps for every level above the leaves (input of ``core.losses.GroupedLoss``)."""
        return [self.group_index(lvl) for lvl in self.levels[1:]]

    def _level(self, level: str) -> str:
        if level in self._codes:
            return level
        if level == self.key:
            return self.levels[0]
        raise HsickitError(f"taxonomy {self.source} has no level {level!r}; its levels are {list(self.levels)}")

    def lineage(self, leaf_index: int) -> dict[str, str]:
        """Names at every level of one leaf."""
        return {lvl: self._names[lvl][self._codes[lvl][leaf_index]] for lvl in self.levels}

    def index_of(self, labels: Iterable, *, ignore_errors: bool = False, what: str = "samples",
                 where: Sequence[str] | None = None) -> np.ndarray:
        """Leaf indices of ``labels`` (matched to the key, the leaf name, or either ignoring case/underscores).

        Unknown labels raise :class:`HsickitError` naming them and where each first occurs
        (``where[i]`` for label i, default ``"row i+1"``); with ``ignore_errors`` they get -1.
        """
        labels = list(labels)
        out = np.empty(len(labels), dtype=np.int64)
        missing: dict[str, list[int]] = {}
        for i, lab in enumerate(labels):
            s = str(lab).strip()
            j = self._lookup.get(s)
            if j is None:
                j = self._norm_lookup.get(_norm(s))
            if j is None:
                missing.setdefault(s, []).append(i)
                j = -1
            out[i] = j
        if missing and not ignore_errors:
            where = row_names(len(labels)) if where is None else where
            detail = "; ".join(f"{k!r} ({len(v)} {what}, first at {where[v[0]]})" for k, v in list(missing.items())[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise HsickitError(
                f"{len(missing)} label(s) are not in the taxonomy {self.source}: {detail}{more}; add a row for each "
                f"to the taxonomy (with its {', '.join(self.levels[1:])}), fix the spelling, or skip those {what} "
                "with ignore_errors=True (--skip-invalid)"
            )
        return out

    def distance(self, a, b) -> np.ndarray:
        """Tree distance between leaves: levels to climb to the lowest common ancestor.

        0 for the same leaf, 1 for two species of one genus, 2 within a family, ...;
        ``len(levels)`` when they share no rank in the table.
        """
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        d = np.full(np.broadcast(a, b).shape, len(self.levels), dtype=np.int64)
        for k in range(len(self.levels) - 1, -1, -1):
            codes = self._codes[self.levels[k]]
            d = np.where(codes[a] == codes[b], k, d)
        return d

    # -- growing and saving -----------------------------------------------------------------------
    def extend(self, other: "Taxonomy") -> "Taxonomy":
        """A taxonomy with the leaves of ``other`` that this one lacks appended (old indices kept).

        A leaf present in both with a different lineage, or a new species placed in a genus
        whose family differs here, raises :class:`HsickitError`.
        """
        missing = [lvl for lvl in self.levels if lvl not in other.levels]
        if missing:
            raise HsickitError(f"taxonomy {other.source} lacks the level(s) {missing} of the model's taxonomy "
                               f"{list(self.levels)}; add those columns")
        cols = [self.key] + [c for c in self.levels if c != self.key]
        theirs = other.table.copy()
        if self.key not in theirs.columns:
            theirs[self.key] = theirs[other.key]
        theirs = theirs[cols]
        for _, row in theirs.iterrows():
            j = self._lookup.get(row[self.key])
            if j is not None and dict(self.table.iloc[j][cols]) != dict(row):
                raise HsickitError(
                    f"taxonomy {other.source}: {row[self.key]!r} is {dict(row)} but the model knows it as "
                    f"{dict(self.table.iloc[j][cols])}; correct the row or rename the new species"
                )
        new = theirs[~theirs[self.key].isin(set(self.table[self.key]))]
        merged = pd.concat([self.table, new], ignore_index=True)
        return Taxonomy(merged, levels=self.levels, key=self.key, source=f"{self.source} + {other.source}")

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def to_dict(self) -> dict:
        """JSON-able form (see :meth:`from_dict`)."""
        return {"levels": list(self.levels), "key": self.key,
                "rows": self.table.to_dict(orient="list")}

    @classmethod
    def from_dict(cls, d: dict, source: str = "<saved taxonomy>") -> "Taxonomy":
        return cls(pd.DataFrame(d["rows"]), levels=d["levels"], key=d["key"], source=source)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(self._names[lvl])} {lvl}" for lvl in self.levels)
        return f"Taxonomy({sizes}; source={self.source})"


def read_taxonomy(path, levels: Sequence[str] | None = None, key: str | None = None) -> Taxonomy:
    """Read and validate a taxonomy table (CSV or TSV; a path or a file object).

    Examples
    --------
    >>> import io
    >>> read_taxonomy(io.StringIO("label,species,genus,family\\nA_b,A b,A,F\\n")).key
    'label'
    """
    name = source_name(path)
    if isinstance(path, (str, os.PathLike)) and not Path(path).exists():
        raise HsickitError(f"taxonomy file {path} does not exist; pass a CSV with species,genus,family columns")
    try:
        sep = "\t" if str(name).endswith((".tsv", ".tab")) else ","
        table = read_text_table(path, sep=sep, name=name, na_blank=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise HsickitError(f"taxonomy {name} is not a readable CSV ({err}); save it as comma-separated text "
                           "with a header row") from err
    return Taxonomy(table, levels=levels, key=key, source=name)


# ---------------------------------------------------------------------------------------------
@dataclass
class PlantSamples:
    """Specimens as arrays, joined to a taxonomy.

    ``X`` is float32: (n, d) feature vectors or (n, 1, H, W) images scaled to [0, 1].
    ``y`` holds leaf indices into ``taxonomy.leaves`` (None when the file has no labels).
    """

    X: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None = None
    y: np.ndarray | None = None
    taxonomy: Taxonomy | None = None
    feature_names: list[str] = field(default_factory=list)
    kind: str = "features"
    split: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, mask) -> "PlantSamples":
        """The samples selected by a boolean mask or an index array."""
        mask = np.asarray(mask)
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return replace(self, X=self.X[mask], ids=self.ids[mask], labels=pick(self.labels), y=pick(self.y),
                       split=pick(self.split))

    def select_split(self, split: str | Sequence[str]) -> "PlantSamples":
        if self.split is None:
            raise HsickitError(f"{self.source} has no split column; pass a splits file (id,split) or drop --split")
        wanted = [split] if isinstance(split, str) else list(split)
        mask = np.isin(self.split, wanted)
        if not mask.any():
            raise HsickitError(f"no sample of {self.source} is in split {wanted}; the splits present are "
                               f"{sorted(set(self.split.tolist()))}")
        return self.subset(mask)


#: How specimen tables number their rows in messages (as materials tables do).
ROW_NUMBERING = "rows numbered from 1 after the header"


def row_names(n: int) -> np.ndarray:
    """Where each data row of a table is, as messages name it: ``row 1``, ``row 2``, ..."""
    return np.array([_row(i) for i in range(n)], dtype=object)


def _numbering(places) -> str:
    """' (rows numbered ...)' when `places` (messages or places) name table rows, else ''."""
    return f" ({ROW_NUMBERING})" if any(str(p).startswith("row ") for p in places) else ""


def skipped_report(source: str, skipped: Sequence[str], limit: int = 20) -> str:
    """The rows skipped from `source`, one per line with why ('' when none).

    Examples
    --------
    >>> print(skipped_report("f.csv", ["row 2: no label"]))
    f.csv: skipped 1 bad row (rows numbered from 1 after the header):
      row 2: no label
    """
    if not skipped:
        return ""
    more = [f"  ... and {len(skipped) - limit} more"] if len(skipped) > limit else []
    head = f"{source}: skipped {len(skipped)} bad row{'s' if len(skipped) > 1 else ''}{_numbering(skipped)}:"
    return "\n".join([head] + [f"  {p}" for p in skipped[:limit]] + more)


def skip_or_raise(problems: list[str], ignore_errors: bool, source: str) -> list[str]:
    """``problems`` (one message per bad row of ``source``) as an error naming them, or with
    ``ignore_errors`` as a warning; returns them (the rows skipped)."""
    if problems and not ignore_errors:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise HsickitError(f"{source}{_numbering(problems)}: " + "; ".join(problems[:5]) + more +
                           "; correct those rows, or skip them with ignore_errors=True (--skip-invalid)")
    if problems:
        warnings.warn(skipped_report(source, problems), stacklevel=3)
    return problems


def join_labels(labels, taxonomy: Taxonomy | None, ignore_errors: bool, source: str, where):
    """Leaf indices for labels; returns (y, keep_mask, problems). ``where[i]`` names sample i (``row 3``, ``id 7``)."""
    labels = np.asarray(labels, dtype=object)
    where = np.asarray(where, dtype=object)
    blank = np.array([pd.isna(v) or str(v).strip() == "" for v in labels], dtype=bool)
    y, keep = None, ~blank
    if taxonomy is not None:
        y = np.full(len(labels), -1, dtype=np.int64)
        try:
            y[keep] = taxonomy.index_of(labels[keep], what=f"samples of {source}", where=where[keep])
        except HsickitError:
            if not ignore_errors:
                raise
            y[keep] = taxonomy.index_of(labels[keep], ignore_errors=True)
        keep = y >= 0
    problems = [f"{where[i]}: no label" if blank[i] else f"{where[i]}: label {labels[i]!r} is not in the taxonomy"
                for i in np.nonzero(~keep)[0]]
    return y, keep, problems


def _read_splits(splits, id_col: str) -> dict:
    name = source_name(splits)
    tab = read_text_table(splits, name=name)
    if id_col not in tab.columns or "split" not in tab.columns:
        raise HsickitError(f"splits file {name} needs columns {id_col!r} and 'split'; it has {list(tab.columns)}")
    return dict(zip(tab[id_col].str.strip(), tab["split"].str.strip()))


def select_columns(columns: list[str], feature_cols, source: str) -> list[str]:
    """The columns ``feature_cols`` names (a list or comma-separated; ``name`` also takes ``name_1``,
    ``name_2``, ...) among ``columns``; all of them when None."""
    if feature_cols is None:
        return columns
    if isinstance(feature_cols, str):
        feature_cols = [c.strip() for c in feature_cols.split(",") if c.strip()]
    chosen = []
    for want in feature_cols:
        if want in columns:
            hits = [want]
        else:
            hits = [c for c in columns if re.fullmatch(re.escape(want) + r"[_\-]?\d+", c)]
        if not hits:
            raise HsickitError(f"{source} has no feature column {want!r} (nor columns {want}1, {want}2, ...); "
                               f"numeric columns are {columns[:6]}{' ...' if len(columns) > 6 else ''}")
        chosen += [c for c in hits if c not in chosen]
    return chosen


def read_feature_table(path, taxonomy: Taxonomy | None = None, label_col: str = "species", id_col: str = "id",
                       feature_cols: Sequence[str] | str | None = None, splits=None, split=None,
                       require_labels: bool = False, ignore_errors: bool = False) -> PlantSamples:
    """Read a CSV of specimens: a label column, an optional id column and numeric feature columns.

    Parameters
    ----------
    path : path or file object
    taxonomy : Taxonomy, optional
        Join the labels to it (unknown labels are an error naming them).
    label_col, id_col : str
        Column names; a file without ``label_col`` is read unlabelled unless ``require_labels``.
    feature_cols : list of str or comma-separated str, optional
        Column names or name prefixes (``"shape"`` picks ``shape1..shape64``). Default:
        every numeric column except the id, the label and a ``split`` column.
    splits : path, optional
        A CSV with ``id_col`` and ``split`` columns (e.g. the leaf set's ``labels.csv``);
        a ``split`` column in the table itself is used otherwise.
    split : str or list of str, optional
        Keep only these splits.
    ignore_errors : bool
        Skip rows with bad values or unknown labels (listed in ``skipped`` and in a warning, by row
        numbered from 1 after the header, as errors number them).

    Examples
    --------
    >>> import io
    >>> s = read_feature_table(io.StringIO("id,species,f1,f2\\n1,A b,0.5,1\\n2,A c,0.1,2\\n"))
    >>> s.X.shape, s.feature_names, s.labels.tolist()
    ((2, 2), ['f1', 'f2'], ['A b', 'A c'])
    """
    source = source_name(path)
    if isinstance(path, (str, os.PathLike)) and not Path(path).exists():
        raise HsickitError(f"feature table {path} does not exist")
    try:
        table = read_text_table(path, name=source)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, csv.Error) as err:
        raise HsickitError(f"{source} is not a readable CSV ({err}); save it as comma-separated text with a header") from err
    table.columns = [str(c).strip() for c in table.columns]
    has_labels = label_col in table.columns
    if require_labels and not has_labels:
        raise HsickitError(f"{source} has no label column {label_col!r} (columns: {list(table.columns)[:8]} ...); "
                           "pass the right --label-col")
    skip = {label_col, id_col, "split"}
    if taxonomy is not None:
        skip |= set(taxonomy.levels) | {taxonomy.key}
    candidates = [c for c in table.columns if c not in skip]
    numeric = {c: pd.to_numeric(table[c].str.strip(), errors="coerce") for c in candidates}
    # a column is a feature column when most of its values are numbers
    auto = [c for c in candidates if numeric[c].notna().mean() >= 0.5 and len(table)]
    cols = select_columns(auto if feature_cols is None else candidates, feature_cols, source)
    if not cols:
        raise HsickitError(f"{source} has no numeric feature columns (columns: {list(table.columns)[:8]}); "
                           "pass feature_cols / --feature-cols")
    X = np.column_stack([numeric[c].to_numpy(dtype=np.float64) for c in cols]) if len(table) else np.zeros((0, len(cols)))
    where = row_names(len(table))
    bad = ~np.isfinite(X)
    problems = []
    for i in np.nonzero(bad.any(axis=1))[0]:
        c = cols[int(np.argmax(bad[i]))]
        problems.append(f"{where[i]}: column {c!r} has a non-numeric or missing value {table[c].iloc[i]!r}")
    keep = ~bad.any(axis=1)
    ids = table[id_col].str.strip().to_numpy(dtype=object) if id_col in table.columns else np.array(
        [str(i) for i in range(len(table))], dtype=object)
    return table_samples(table, X, cols, "features", ids, where, problems, keep, taxonomy=taxonomy, label_col=label_col,
                         id_col=id_col, splits=splits, split=split, ignore_errors=ignore_errors, source=source)


def table_samples(table, X, cols, kind, ids, where, problems, keep, *, taxonomy, label_col, id_col, splits, split,
                  ignore_errors, source) -> "PlantSamples":
    """The end of every specimen-table reader: the rows' ``problems`` (and, with labels, the species the
    taxonomy lacks) stop the read or are skipped, the split column is joined, and the rows kept (``keep``)
    of the chosen ``split`` are returned as :class:`PlantSamples` of ``kind``."""
    if problems and not ignore_errors:
        skip_or_raise(problems, False, source)
    y = labels = None
    if label_col in table.columns:
        labels = table[label_col].str.strip().to_numpy(dtype=object)
        y, ok, more = join_labels(labels, taxonomy, ignore_errors, source, where)
        problems = problems + more
        keep = keep & ok
    skipped = skip_or_raise(problems, ignore_errors, source)
    split_arr = split_column(table, ids, splits, id_col, source)
    samples = PlantSamples(X=X.astype(np.float32), ids=ids, labels=labels, y=y, taxonomy=taxonomy,
                           feature_names=cols, kind=kind, split=split_arr, skipped=skipped, source=source).subset(keep)
    return samples.select_split(split) if split is not None else samples


def split_column(table: pd.DataFrame, ids, splits, id_col: str, source: str):
    """Each specimen's split: from a splits file joined on ids, else the table's ``split`` column, else None."""
    if splits is not None:
        head = pd.read_csv(splits, nrows=0).columns
        mapping = _read_splits(splits, id_col if id_col in head else "id")
        split_arr = np.array([mapping.get(i, "") for i in ids], dtype=object)
        unknown = [i for i, s in zip(ids, split_arr) if s == ""]
        if unknown:
            raise HsickitError(f"{len(unknown)} specimen(s) of {source} are not in the splits file "
                               f"{source_name(splits)} (first: {unknown[:3]}); add them or use a matching splits file")
        return split_arr
    if "split" in table.columns:
        return table["split"].str.strip().to_numpy(dtype=object)
    return None


def fit_image(img, size: int = 128) -> np.ndarray:
    """Grayscale image fitted into ``size`` x ``size``: longest side to ``size``, aspect kept, centred on black.

    Accepts a PIL image or a 2-D array; returns uint8 (size, size).
    """
    from PIL import Image

    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    img = img.convert("L")
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def _load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return fit_image(img, size)
    except (OSError, UnidentifiedImageError) as err:
        raise HsickitError(f"image {path} cannot be read ({err}); replace or remove the file") from err


def _images_to_X(images: np.ndarray, source: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise HsickitError(f"{source}: images must be (n, H, W) or (n, C, H, W), got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    x = images.astype(np.float32)
    if x.size and x.max() > 1.0:
        x = x / 255.0
    return x


def _image_samples(images, labels, ids, taxonomy, ignore_errors, source, where, split=None, problems=()):
    problems = list(problems)
    y = None
    keep = np.ones(len(ids), dtype=bool)
    if labels is not None:
        y, keep, p = join_labels(labels, taxonomy, ignore_errors, source, where)
        problems += p
    skipped = skip_or_raise(problems, ignore_errors, source)
    s = PlantSamples(X=_images_to_X(images, source), ids=np.asarray(ids, dtype=object),
                     labels=None if labels is None else np.asarray(labels, dtype=object), y=y, taxonomy=taxonomy,
                     feature_names=[], kind="images", split=split, skipped=skipped, source=source)
    return s.subset(keep)


def read_image_folder(root, taxonomy: Taxonomy | None = None, size: int = 128,
                      ignore_errors: bool = False) -> PlantSamples:
    """Images in one sub-folder per species (the folder name is the label).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> d = tempfile.mkdtemp(); import os; os.makedirs(d + "/Acer_Opalus")
    >>> Image.fromarray(np.full((20, 10), 255, np.uint8)).save(d + "/Acer_Opalus/1.png")
    >>> read_image_folder(d, size=32).X.shape
    (1, 1, 32, 32)
    """
    root = Path(root)
    if not root.is_dir():
        raise HsickitError(f"image folder {root} does not exist; pass a folder with one sub-folder per species")
    files, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(sub.name)
    if not files:
        raise HsickitError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in sub-folders of {root}; "
                           "put each species' images in a folder named after the species")
    images, keep_files, keep_labels, problems = [], [], [], []
    for f, lab in zip(files, labels):
        try:
            images.append(_load_image(f, size))
            keep_files.append(f)
            keep_labels.append(lab)
        except HsickitError as err:
            if not ignore_errors:
                raise
            problems.append(str(err))
    ids = [str(f.relative_to(root)) for f in keep_files]
    return _image_samples(np.stack(images), keep_labels, ids, taxonomy, ignore_errors, str(root),
                          where=np.array(ids, dtype=object), problems=problems)


def read_image_index(path, taxonomy: Taxonomy | None = None, path_col: str = "path", label_col: str = "species",
                     id_col: str | None = None, size: int = 128, ignore_errors: bool = False) -> PlantSamples:
    """An index CSV with an image path column (relative to the CSV) and a label column."""
    path = Path(path)
    if not path.exists():
        raise HsickitError(f"image index {path} does not exist")
    table = read_text_table(path, name=source_name(path))
    if path_col not in table.columns:
        alt = [c for c in ("path", "file", "filename", "image") if c in table.columns]
        if not alt:
            raise HsickitError(f"image index {path} has no column {path_col!r} of image paths (columns: {list(table.columns)})")
        path_col = alt[0]
    images, keep, problems, where = [], [], [], row_names(len(table))
    for i, rel in enumerate(table[path_col]):
        f = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        try:
            images.append(_load_image(f, size))
            keep.append(i)
        except HsickitError as err:
            if not ignore_errors:
                raise HsickitError(f"{path} {where[i]} ({ROW_NUMBERING}): {err}") from err
            problems.append(f"{where[i]}: {err}")
    table = table.iloc[keep]
    ids = table[id_col] if id_col and id_col in table.columns else table[path_col]
    labels = table[label_col].to_numpy(dtype=object) if label_col in table.columns else None
    split = table["split"].to_numpy(dtype=object) if "split" in table.columns else None
    return _image_samples(np.stack(images) if images else np.zeros((0, size, size), np.uint8), labels,
                          ids.to_numpy(dtype=object), taxonomy, ignore_errors, str(path),
                          where=where[keep], split=split, problems=problems)


def read_image_npz(path, taxonomy: Taxonomy | None = None, labels=None, label_col: str = "label", id_col: str = "id",
                   splits=None, split=None, ignore_errors: bool = False) -> PlantSamples:
    """Images from an ``.npz`` with ``images`` (n, H, W) and ``ids`` and/or ``labels`` arrays.

    Labels come from the array ``labels`` in the file, or from a CSV ``labels`` joined on
    ``id_col`` (the leaf set's ``labels.csv``, which also carries the ``split`` column).
    """
    path = Path(path)
    if not path.exists():
        raise HsickitError(f"image array {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise HsickitError(f"{path} is not a readable .npz ({err}); write it with numpy.savez") from err
    if "images" not in arrays:
        raise HsickitError(f"{path} has no 'images' array (arrays: {sorted(arrays)}); save the images as images=...")
    images = arrays["images"]
    n = len(images)
    ids = arrays.get("ids", np.arange(n))
    ids = np.array([str(i) for i in ids], dtype=object)
    lab = arrays.get("labels")
    split_arr = arrays.get("split")
    if lab is not None:
        lab = np.array([str(v) for v in lab], dtype=object)
    if labels is not None:
        tab = read_text_table(labels, name=source_name(labels))
        if id_col not in tab.columns or label_col not in tab.columns:
            raise HsickitError(f"labels file {labels} needs columns {id_col!r} and {label_col!r}; it has {list(tab.columns)}")
        m = dict(zip(tab[id_col].str.strip(), tab[label_col].str.strip()))
        absent = [i for i in ids if i not in m]
        if absent and not ignore_errors:
            raise HsickitError(f"{len(absent)} image id(s) of {path} have no row in {labels} (first: {absent[:3]}); "
                               "add them or skip them with ignore_errors=True")
        lab = np.array([m.get(i, "") for i in ids], dtype=object)
        if "split" in tab.columns:
            sm = dict(zip(tab[id_col].str.strip(), tab["split"].str.strip()))
            split_arr = np.array([sm.get(i, "") for i in ids], dtype=object)
    if splits is not None:
        mapping = _read_splits(splits, id_col)
        split_arr = np.array([mapping.get(i, "") for i in ids], dtype=object)
    s = _image_samples(images, lab, ids, taxonomy, ignore_errors, str(path),
                       where=np.array([f"id {i}" for i in ids], dtype=object),
                       split=None if split_arr is None else np.asarray(split_arr, dtype=object))
    return s.select_split(split) if split is not None else s


def read_images(path, taxonomy: Taxonomy | None = None, **kwargs) -> PlantSamples:
    """Dispatch on the path: a folder of species folders, an ``.npz``, or an index CSV."""
    p = Path(path)
    if p.is_dir():
        return read_image_folder(p, taxonomy, **{k: v for k, v in kwargs.items() if k in ("size", "ignore_errors")})
    if p.suffix.lower() == ".npz":
        return read_image_npz(p, taxonomy, **{k: v for k, v in kwargs.items()
                                              if k in ("labels", "label_col", "id_col", "splits", "split", "ignore_errors")})
    if p.suffix.lower() in (".csv", ".tsv"):
        split = kwargs.pop("split", None)
        s = read_image_index(p, taxonomy, **{k: v for k, v in kwargs.items()
                                             if k in ("path_col", "label_col", "id_col", "size", "ignore_errors")})
        return s.select_split(split) if split is not None else s
    raise HsickitError(f"{path} is neither a folder of species folders, an .npz nor an index .csv of image paths")


def load_leaf99(root, features: str | Sequence[str] = "all", split: str | Sequence[str] | None = None) -> PlantSamples:
    """The ``leaf-classification-99`` developer set, read from its folder as shipped.

    Parameters
    ----------
    root : path
        Folder holding ``train.csv``, ``taxonomy.csv``, ``labels.csv``, ``images_128.npz``.
    features : "all", "images", or feature group name(s) among :data:`LEAF99_GROUPS`
    split : "train", "val", "test" (the suggested split), a list of them, or None for all.
    """
    root = Path(root)
    need = ["taxonomy.csv", "labels.csv"] + (["images_128.npz"] if features == "images" else ["train.csv"])
    absent = [f for f in need if not (root / f).exists()]
    if absent:
        raise HsickitError(f"{root} lacks {absent}; pass the leaf-classification-99 folder")
    tax = read_taxonomy(root / "taxonomy.csv")
    if features == "images":
        return read_image_npz(root / "images_128.npz", tax, labels=root / "labels.csv", split=split)
    groups = None if features == "all" else ([features] if isinstance(features, str) else list(features))
    if groups is not None:
        unknown = [g for g in groups if g not in LEAF99_GROUPS]
        if unknown:
            raise HsickitError(f"unknown leaf feature group(s) {unknown}; use 'all', 'images' or {list(LEAF99_GROUPS)}")
    return read_feature_table(root / "train.csv", tax, label_col="species", feature_cols=groups,
                              splits=root / "labels.csv", split=split)

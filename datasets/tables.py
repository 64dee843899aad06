"""Reading users' text tables (CSV, TSV) with the checks pandas does not make.

``pandas.read_csv`` renames a repeated header (a second ``target`` becomes ``target.1``),
reads a ``;``-separated file as one column, takes the first column for the index when every
row ends with a comma, and stops at the first byte that is not UTF-8 without naming the row.
:func:`read_text_table` refuses each of these with an error naming the file, the row and the
fix (trailing separators, which spreadsheets write, are dropped). Rows are numbered from 1
after the header, as every hsickit reader numbers them.

Example
-------
>>> import io
>>> read_text_table(io.StringIO("formula,target,\\nNaCl,5.0,\\n")).to_dict("list")
{'formula': ['NaCl'], 'target': ['5.0']}
>>> read_text_table(io.StringIO("formula;target\\nNaCl;5,0\\n"), name="gaps.csv")
Traceback (most recent call last):
...
hsickit.core.errors.HsickitError: gaps.csv looks ';'-separated (its header is 'formula;target'), but is read as comma-separated; save it comma-separated (mind decimal commas: write 5.0, not 5,0)
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from hsickit.core.errors import HsickitError

__all__ = ["read_text_table"]

_NAMES = {",": "comma", "\t": "tab", ";": "';'", "|": "'|'"}


def _text(source, name: str) -> str:
    """The file's text, decoded as UTF-8 (a byte-order mark is dropped), or an error naming the row."""
    if hasattr(source, "read"):
        raw = source.read()
        if isinstance(raw, str):
            return raw
    else:
        raw = Path(source).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        where = "in the header" if line == 1 else f"in row {line - 1} (rows numbered from 1 after the header)"
        raise HsickitError(f"{name} is not UTF-8 text: byte {raw[err.start]:#04x} {where} is not valid UTF-8 (the file "
                           "is probably Latin-1 / Windows-1252, as older spreadsheets save it); save it as UTF-8 "
                           "(spreadsheets: 'CSV UTF-8'; or iconv -f latin1 -t utf-8)") from None


def read_text_table(source, sep: str = ",", name: str | None = None, na_blank: bool = False) -> pd.DataFrame:
    """Read a delimited text table as strings (empty cells stay ``""``; ``na_blank``: NaN), with checks.

    Parameters
    ----------
    source : str, Path or file object
    sep : str
        The separator the file should use (``","``; ``"\\t"`` for .tsv files).
    name : str, optional
        How errors name the file (default: the path).
    na_blank : bool
        Empty cells become NaN instead of ``""``.

    Raises
    ------
    HsickitError
        The file is not UTF-8 (naming the row), looks separated by another character than ``sep``,
        repeats a column name, or has a row with more values than the header.
    """
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "<table>")
    text = _text(source, name)
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=sep) if any(c.strip() for c in r)]
    if not rows:
        raise HsickitError(f"{name} is empty; give a table with a header row and one row per sample")
    header = rows[0]
    while len(header) > 1 and not header[-1].strip():  # a trailing separator after the last name
        header = header[:-1]
    if len(header) == 1:
        first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
        for other in (";", "\t", ",", "|"):
            if other != sep and len(next(csv.reader([first], delimiter=other))) > 1:
                fix = ("name it .tsv or save it comma-separated" if other == "\t" else
                       "save it comma-separated" + (" (mind decimal commas: write 5.0, not 5,0)" if other == ";" else ""))
                raise HsickitError(f"{name} looks {_NAMES[other]}-separated (its header is {first[:80]!r}), but is read "
                                   f"as {_NAMES.get(sep, repr(sep))}-separated; {fix}")
    names = [h.strip() for h in header]
    repeated = [h for i, h in enumerate(names) if h and h in names[:i]]
    if repeated:
        raise HsickitError(f"{name}: column {repeated[0]!r} appears {names.count(repeated[0])} times in the header; "
                           "rename or delete the extra column so that every column has its own name")
    width = len(header)
    data = []
    for i, row in enumerate(rows[1:], start=1):
        if len(row) > width:
            if any(c.strip() for c in row[width:]):
                raise HsickitError(f"{name}: row {i} (rows numbered from 1 after the header) has {len(row)} values but "
                                   f"the header names {width} columns; quote values holding a "
                                   f"{_NAMES.get(sep, repr(sep))} separator, or add the missing column name")
            row = row[:width]
        data.append(row + [""] * (width - len(row)))
    frame = pd.DataFrame(data, columns=header, dtype=object)
    if na_blank:
        frame = frame.mask(frame.apply(lambda c: c.str.strip() == ""))
    return frame

"""Scores as a person reads them: a short table (metric, value, unit, 95 % interval) and where the
files are; the full JSON stays in the run folder (the commands' ``--json`` prints it instead).
:func:`markdown_table` writes the tables of model cards and benchmark output.

Examples
--------
>>> m = {"accuracy": 0.91234, "accuracy_low": 0.88, "accuracy_high": 0.94, "mae": 0.5, "n_samples": 120}
>>> print(metrics_table(m, ["accuracy", "mae", "n_samples"], units={"mae": "eV", "n_samples": "rows"}))
metric     value   unit  95 % interval
accuracy   0.9123        [0.88, 0.94]
mae        0.5     eV
n_samples  120     rows
"""
from __future__ import annotations

import json
import math
from typing import Mapping, Sequence


def _number(value, fmt: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else format(value, fmt)


def metrics_table(metrics: Mapping, keys: Sequence[str] | None = None, units: Mapping[str, str] | str | None = None,
                  interval: str = "95 % interval") -> str:
    """A plain-text table of ``metrics``: one row per key in ``keys`` (default: every number whose name does
    not end in ``_low`` / ``_high``), with its unit (``units``: one unit for all, or per metric) and its
    interval where ``<key>_low`` and ``<key>_high`` are there. Keys missing from ``metrics`` are left out."""
    keys = [k for k in (keys if keys is not None else metrics) if k in metrics
            and not (keys is None and (k.endswith(("_low", "_high")) or not isinstance(metrics[k], (int, float, type(None)))))]
    rows = []
    for k in keys:
        unit = units if isinstance(units, str) else (units or {}).get(k, "")
        low, high = metrics.get(f"{k}_low"), metrics.get(f"{k}_high")
        bounds = f"[{_number(low, '.3g')}, {_number(high, '.3g')}]" if low is not None or high is not None else ""
        rows.append([k, _number(metrics[k]), unit or "", bounds])
    head = ["metric", "value", "unit", interval]
    shown = [i for i in range(4) if i < 2 or any(r[i] for r in rows)]  # no empty unit / interval column
    width = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(str(r[i]).ljust(width[i]) for i in shown).rstrip() for r in [head, *rows]]
    return "\n".join(lines)


def print_metrics(metrics: Mapping, keys: Sequence[str] | None = None, units: Mapping[str, str] | str | None = None,
                  written: str | None = None, as_json: bool = False, echo=print) -> None:
    """What a command prints about its scores: the table and a line saying where the files were written
    (``written``), or with ``as_json`` the metrics as JSON (NaN as null) and nothing else."""
    if as_json:
        echo(json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}, indent=1))
        return
    echo(metrics_table(metrics, keys, units))
    if written:
        echo(f"written: {written}")


def markdown_table(rows: list[dict], floatfmt: str = ".4g") -> str:
    """A GitHub-markdown table of a list of dicts (for model cards and benchmark output); NaN and None show as n/a."""
    if not rows:
        return ""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]

    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(_number(r.get(k, ""), floatfmt) for k in keys) + " |" for r in rows]
    return "\n".join(out)

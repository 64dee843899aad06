"""`hsickit --help` and every app's help load no heavy library (import time is measured in
benchmarks/startup.py; here only what is imported)."""
import subprocess
import sys

HEAVY = ("torch", "pymatgen", "matplotlib", "sklearn", "pandas")

SCRIPT = """
import sys
import typer.main
from typer.testing import CliRunner
from hsickit.core.cli import build_app

app = build_app()
runner = CliRunner()

def paths(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if hasattr(cmd, "commands"):
            yield from paths(cmd, prefix + (name,))

for args in [()] + list(paths(typer.main.get_command(app))):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, (args, result.output)
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


def test_help_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", SCRIPT, *HEAVY], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"--help imported {done.stdout.strip()}: import it inside the command function"


def test_the_python_api_is_still_there():
    from hsickit.apps import ecg, materials, plants

    assert ecg.MultiResolutionClassifier.__name__ == "MultiResolutionClassifier"
    assert materials.MaterialsRegressor.__module__ == "hsickit.apps.materials.estimator"
    assert plants.read_taxonomy is not None and "TaxonomicClassifier" in dir(plants)
    for module in (ecg, materials, plants):
        assert all(hasattr(module, name) for name in module.__all__)
    try:
        ecg.no_such_name
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("an unknown name must raise AttributeError")

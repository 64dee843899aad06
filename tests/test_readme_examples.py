"""Every ```python example of README.md runs as written and prints what it says.

Each block runs in a fresh process in an empty folder beside a link ``../shared`` to the project's
``../shared`` (the README's data paths are relative to the project's root), with one thread. A block
that reads ``../shared/data`` is skipped when that folder is absent, as the other data tests are.
The time of each example as written is measured by ``benchmarks/readme_examples.py``, not here.
"""
import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def python_blocks():
    """(first line number, code) of every ```python block of README.md (the benchmark's own reader)."""
    spec = importlib.util.spec_from_file_location("readme_examples", ROOT / "benchmarks" / "readme_examples.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.python_blocks((ROOT / "README.md").read_text())


BLOCKS = python_blocks()
IDS = [re.search(r"^from hsickit\S* import (\w+)", code, re.M).group(1) if "from hsickit" in code else f"line{line}"
       for line, code in BLOCKS]


def test_readme_has_the_examples():
    """One example per application and the core one (a block lost in an edit is caught here)."""
    text = "".join(code for _, code in BLOCKS)
    for name in ("DeepClassifier", "MaterialsRegressor", "MultiResolutionClassifier", "TaxonomicClassifier"):
        assert name in text


@pytest.mark.parametrize("line,code", BLOCKS, ids=IDS)
def test_readme_example_imports_resolve(line, code):
    """Fast: each block parses and every name it imports from hsickit exists (no run needed)."""
    tree = ast.parse(code, filename=f"README.md, line {line}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hsickit"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"README.md line {line}: {node.module} has no {alias.name}"


def _check_output(code: str, out: str) -> None:
    """What the examples say they print."""
    if "print(" in code:
        assert out.strip(), "the example prints nothing"
    if "DeepClassifier" in code:  # "test accuracy 0.95", the comment says about 0.95
        accuracy = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
        assert 0.93 <= accuracy <= 0.97, out
    if "MaterialsRegressor" in code:  # MAE about 0.4 eV; a table of the three formulas, gaps >= 0 (nonnegative=True)
        mae = float(re.search(r"MAE on the other 200 rows: (\d+\.\d+) eV", out).group(1))
        assert 0.2 <= mae <= 0.6, out
        rows = [line.split() for line in out.splitlines() if re.search(r"\b(Fe2O3|NaCl|GaAs)\b", line)]
        assert len(rows) == 3, out
        assert all(float(r[2]) >= 0 and float(r[3]) >= 0 for r in rows), out
    if "MultiResolutionClassifier" in code:
        assert "sensitivity_S" in out and "ppv_V" in out, out
    if "clf.evaluate(" in code:
        assert "species" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("line,code", BLOCKS, ids=IDS)
def test_readme_example_runs_as_written(line, code, tmp_path):
    if "../shared/data" in code and not (SHARED / "data").is_dir():
        pytest.skip(f"README.md line {line} reads ../shared/data, which is absent")
    for path in re.findall(r"\.\./shared/data/[\w.\-/]+", code):
        if not (ROOT / path).exists():
            pytest.skip(f"README.md line {line} reads {path}, which is absent")
    home = tmp_path / "project"
    home.mkdir()
    if SHARED.exists():
        (tmp_path / "shared").symlink_to(SHARED)
    env = dict(os.environ, OMP_NUM_THREADS="1", HSICKIT_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-c", code], cwd=home, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"README.md line {line} failed:\n{done.stderr[-3000:]}"
    _check_output(code, done.stdout)

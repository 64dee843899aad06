"""The fold logic of benchmarks/ecg_mitdb.py (the benchmark itself needs the real records and minutes)."""
import importlib.util
import sys
from pathlib import Path

import pytest

from hsickit.datasets.ecg_splits import DS1, DS1_VALIDATION


def load(name):
    """A benchmark script as a module; the scripts import each other, as they do when run from benchmarks/."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ecg_benchmark_folds_partition_ds1_by_record():
    folds = load("ecg_mitdb").folds
    loro = list(folds("loro", list(DS1)))
    assert len(loro) == 22 and all(part == "loro" and len(test) == 1 and test[0] not in train for part, _, train, test in loro)
    assert sorted(t for *_, test in loro for t in test) == sorted(DS1)  # pooled: every record tested once
    val, *k4 = list(folds("val,4", list(DS1)))
    assert val[0] is None and sorted(val[3]) == sorted(DS1_VALIDATION)  # the fixed split is not pooled
    assert [f[1] for f in k4] == ["k4.0", "k4.1", "k4.2", "k4.3"]
    assert sorted(r for *_, test in k4 for r in test) == sorted(DS1)
    with pytest.raises(SystemExit, match="unknown part"):
        list(folds("lopo", list(DS1)))


def test_cross_database_variants_split_model_and_beat_parameters():
    parse = load("ecg_cross_database").parse_variant
    assert parse('rb0={"record_balance": 0}') == ("rb0", {"record_balance": 0}, {})
    assert parse('marks={"beats": {"align": null}, "af_rule": false}') == ("marks", {"af_rule": False}, {"align": None})
    with pytest.raises(SystemExit, match="'alignment' not a BeatConfig field|alignment not a BeatConfig field"):
        parse('x={"beats": {"alignment": null}}')
    with pytest.raises(SystemExit, match="give NAME=JSON"):
        parse("x=record_balance 0")


def test_cross_database_scores_each_s_odds_and_the_af_rule_as_feature_sets_of_their_own():
    bench = load("ecg_cross_database")
    run = {"feature_set": "robust", "pred": "NSV", "pred_without_af_rule": "SSV", "pred_s_odds": {"2": "SSS"}}
    scored = {r["feature_set"]: r["pred"] for r in bench.with_baselines([run])}
    assert scored == {"robust": "NSV", "robust, no AF rule": "SSV", "robust, S odds ×2": "SSS"}


def test_detected_beats_are_matched_to_the_reference_within_the_window():
    match = load("ecg_detected_beats").match_beats
    y, p = match([100, 200, 300, 400], ["N", "S", "V", "N"], [103, 290, 520], ["S", "V", "V"], window=11)
    assert y.tolist() == ["N", "S", "V", "N", "-"]  # 200 and 400 missed, 520 a false detection
    assert p.tolist() == ["S", "-", "V", "-", "V"]


def test_hsic_memory_for_the_gradient_does_not_grow_with_depth():
    """benchmarks/hsic_depth.py's count of the bytes autograd keeps for one step: HSIC flat in depth, backprop linear."""
    import numpy as np

    bench = load("hsic_depth")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 20)).astype(np.float32), rng.integers(0, 3, 64)
    saved = {}
    for method in ("hsic", "backprop"):
        for depth in (2, 12):
            net = bench.build(method, 20, 3, depth, 32, "relu")
            saved[method, depth] = bench.saved_bytes(net, bench.config_for(method, 1, 1, 64, 0, False), X, y)
    assert saved["backprop", 12] > 4 * saved["backprop", 2]
    assert saved["hsic", 12] < 1.2 * saved["hsic", 2]


def test_readme_examples_benchmark_finds_every_python_block_and_names_it():
    """benchmarks/readme_examples.py times the README's ```python blocks; its extraction skips other fences."""
    bench = load("readme_examples")
    text = "intro\n```bash\nhsickit demo\n```\n```python\nfrom hsickit.apps.materials import MaterialsRegressor\nx = 1\n```\n" \
           "```\nplain\n```\n```python\nprint(2)\n```\n"
    blocks = bench.python_blocks(text)
    assert [line for line, _ in blocks] == [6, 13]
    assert blocks[0][1] == "from hsickit.apps.materials import MaterialsRegressor\nx = 1\n"
    assert bench.title(blocks[0][1]) == "hsickit.apps.materials.MaterialsRegressor" and bench.title(blocks[1][1]) == "print(2)"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert len(bench.python_blocks(readme)) == readme.count("```python")
    done = bench.run_example("import sys; print('ran'); sys.exit(3)", threads=1, timeout=60)
    assert done["exit_code"] == 3 and done["stdout_tail"] == "ran\n" and not done["within_target"]


LUDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg" / "ludb-dev"


@pytest.mark.skipif(not (LUDB / "1.hea").exists(), reason="shared LUDB records absent")
def test_rpeak_benchmark_reads_ludb_qrs_peaks_and_the_annotated_stretch():
    """benchmarks/ecg_rpeaks.py: LUDB's reference beats are lead II's QRS peaks, scored only where LUDB annotates."""
    import wfdb

    x, fs, ref, (start, end) = load("ecg_rpeaks").beats_ludb(str(LUDB / "1"))
    ann = wfdb.rdann(str(LUDB / "1"), "ii")
    assert fs == 500 and x.shape == (5000,) and ref.size == ann.symbol.count("N") > 5
    assert start < ref.min() / fs < ref.max() / fs < end and 0 < start and end < 10.15


def test_materials_transfer_excludes_every_test_composition_from_pretraining():
    """benchmarks/materials_transfer.py: no pre-training row shares a reduced composition with the
    target's test part (also written differently: Fe4O6 is Fe2O3, FeO1.5 is Fe2O3), rows outside the
    source's training part are never drawn, and the count of removed rows is right."""
    bench = load("materials_transfer")
    source = ["Fe2O3", "Fe4O6", "NaCl", "Na2Cl2", "MgO", "SiO2", "Si2O4", "KCl", "LiF"]
    train_idx = [0, 1, 2, 3, 4, 5, 6, 7]  # LiF (row 8) is in the source's test part
    rows, removed = bench.pretrain_rows(source, train_idx, ["FeO1.5", "ClNa", "LiF"])
    assert removed == 4
    assert rows.tolist() == [4, 5, 6, 7]
    assert not set(bench.composition_keys([source[i] for i in rows])) & set(bench.composition_keys(["Fe2O3", "NaCl", "LiF"]))
    # pymatgen's reduced_formula alone misses the non-integer spelling FeO1.5 (it stays Fe1O1.5)
    assert bench.excluded(source, train_idx, ["FeO1.5", "ClNa", "LiF"], exact=False).sum() == 2
    sub, removed_sub = bench.pretrain_rows(source, train_idx, ["FeO1.5", "ClNa", "LiF"], rows=2, seed=1)
    assert removed_sub == 4 and len(sub) == 2 and set(sub.tolist()) <= {4, 5, 6, 7}
    assert bench.pretrain_rows(source, train_idx, [])[1] == 0


def test_linear_probe_reads_labels_that_a_block_keeps_and_not_those_it_drops():
    """benchmarks/hsic_depth.py's linear probe: high where the representation keeps the classes, chance where it does not."""
    import numpy as np
    import torch

    bench = load("hsic_depth")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = (rng.normal(size=(300, 10)) + 3 * np.eye(10)[y]).astype(np.float32)  # the class shifts its own column
    net = bench.build("hsic", 10, 3, 3, 16, "relu")
    with torch.no_grad():
        for block in net.blocks[:2]:  # identity-like blocks keep the classes
            block.linear.weight.copy_(torch.eye(16, block.linear.in_features))
        net.blocks[2].linear.weight.zero_()  # the last block throws everything away
    before = [p.clone() for p in net.parameters()]
    rows = bench.linear_probe(net, X[:200], y[:200], X[200:], y[200:], every=1)
    assert [r["layer"] for r in rows] == [1, 2, 3]
    assert rows[0]["eval_accuracy"] > 0.8 and rows[1]["eval_accuracy"] > 0.8
    assert rows[2]["eval_accuracy"] < 0.6
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # the probe works on a copy


def test_hsic_depth_adds_a_second_sweep_to_the_runs_of_the_first(tmp_path):
    from hsickit.core.files import write_json

    earlier_runs = load("hsic_depth").earlier_runs
    settings = {"dataset": "mnist", "epochs": 3, "hsic_params": "{}", "depths": [100], "widths": [256],
                "activations": ["relu"], "methods": ["hsic"], "seeds": [0, 1], "fresh": False}
    run = lambda seed: {"method": "hsic", "depth": 100, "width": 256, "activation": "relu", "seed": seed}  # noqa: E731
    path = tmp_path / "hsic_depth_mnist_x.json"
    assert earlier_runs(path, settings) == []
    write_json(path, {"settings": settings, "runs": [run(0), run(1)]})
    assert earlier_runs(path, {**settings, "seeds": [1, 2]}) == [run(0)]  # seed 1 is redone, seed 0 kept
    assert earlier_runs(path, {**settings, "seeds": [1, 2]}, fresh=True) == []
    with pytest.raises(SystemExit, match="other settings \\(epochs\\)"):
        earlier_runs(path, {**settings, "epochs": 5})

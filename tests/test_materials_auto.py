"""model="auto" (extra trees below a row threshold, IRNet-17 above), the modern training recipe, and
the resume logic of benchmarks/materials_learning_curve.py."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hsickit import HsickitError
from hsickit.apps.materials import MaterialsClassifier, MaterialsRegressor
from hsickit.apps.materials.estimator import AUTO_THRESHOLD, RECIPES
from hsickit.apps.materials.forest import ForestMember
from hsickit.core.estimators import DeepRegressor
from hsickit.datasets.materials import demo_table_path, read_formula_table

pytest.importorskip("matminer", reason="the Magpie element tables ship with matminer")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gaps():
    t = read_formula_table(demo_table_path())
    return t.formulas[:120], t.y[:120]


def test_auto_picks_trees_up_to_the_threshold_and_irnet_above(gaps, tmp_path):
    f, y = gaps
    small = MaterialsRegressor(auto_threshold=60, random_state=0).fit(f[:60], y[:60])
    assert small.model_used_ == "extra_trees" and small.features_used_ == "ward145+fractions118"
    assert isinstance(small.members_[0], ForestMember) and small.n_features_in_ == 145 + 118
    assert small.auto_choice_["n_rows"] == 60 and "not above the auto threshold of 60" in small.auto_choice_["reason"]
    large = MaterialsRegressor(auto_threshold=59, epochs=2, random_state=0).fit(f[:60], y[:60])
    assert large.model_used_ == "irnet17" and large.features_used_ == "ward145" and large.n_features_in_ == 145
    assert isinstance(large.members_[0], DeepRegressor) and len(large.members_[0].model_.blocks) == 16  # + the head: 17 layers
    assert "60 training rows, above the auto threshold of 59" in large.auto_choice_["reason"]
    assert large.get_params()["model"] == "auto"  # fit leaves the parameters alone
    large.save(tmp_path / "m")
    back = MaterialsRegressor.load(tmp_path / "m")
    assert back.model_used_ == "irnet17" and back.auto_choice_ == large.auto_choice_
    np.testing.assert_allclose(back.predict(f[100:110]), large.predict(f[100:110]), rtol=1e-5)
    # the tree model's held-out score refits the same model, even when 90 % of the rows fall under the threshold
    held = MaterialsRegressor(auto_threshold=59, epochs=2, random_state=0).fit(f[:60], y[:60]).holdout_metrics(f[:60], y[:60])
    assert held["n_samples"] == 6
    # explicit model, auto features: the model's own features
    assert MaterialsRegressor(model="random_forest").fit(f[:30], y[:30]).features_used_ == "ward145+fractions118"
    assert AUTO_THRESHOLD > 0 and MaterialsRegressor().get_params()["auto_threshold"] == AUTO_THRESHOLD


def test_auto_classifier_and_errors(gaps):
    f, y = gaps
    clf = MaterialsClassifier(random_state=0).fit(f[:60], (y[:60] > 0).astype(int))
    assert clf.model_used_ == "extra_trees" and clf.predict_proba(f[60:65]).shape == (5, 2)
    with pytest.raises(HsickitError, match="auto_threshold must be"):
        MaterialsRegressor(auto_threshold="big").fit(f[:20], y[:20])
    with pytest.raises(HsickitError, match="decided by fit"):
        MaterialsRegressor().featurize(f[:2])


def test_modern_recipe_uses_adamw_and_a_warmup_cosine_schedule(gaps, monkeypatch):
    f, y = gaps
    steps = []
    step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: steps.append(1) or step(self, *a, **k))
    reg = MaterialsRegressor(model="mlp", model_params={"hidden": (32,)}, epochs=40, patience=None, batch_size=32,
                             random_state=0).fit(f[:100], y[:100])
    assert reg.get_params()["optimizer"] == "adamw" and reg.members_[0].train_config_["lr_schedule"] == "warmup_cosine"
    assert len(steps) == 40 * 4  # 100 training rows (no validation split without patience), batches of 32: 4 steps
    lr = [r["lr"] for r in reg.history_]
    assert lr[:3] == pytest.approx([5e-4, 1e-3, 1e-3 * 0.5 * (1 + np.cos(np.pi / 38))])  # 2 warm-up epochs of 40
    assert all(a >= b for a, b in zip(lr[1:], lr[2:])) and lr[-1] < 1e-5
    paper = MaterialsRegressor(model="mlp", model_params={"hidden": (32,)}, random_state=0,
                               **{**RECIPES["paper"], "epochs": 3}).fit(f[:100], y[:100])
    assert [r["lr"] for r in paper.history_] == [1e-4] * 3 and paper.members_[0].train_config_["optimizer"] == "adam"


def test_models_saved_before_the_modern_recipe_fine_tune_as_the_paper(gaps, tmp_path):
    f, y = gaps
    reg = MaterialsRegressor(model="mlp", model_params={"hidden": (16,)}, epochs=2, random_state=0).fit(f[:40], y[:40])
    reg.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "materials.json").read_text())
    for key in ("optimizer", "auto_threshold"):
        meta["params"].pop(key)
    assert meta["params"].pop("train_params") is None and meta["params"].pop("hsic_params") is None
    meta["params"].update(weight_decay=1e-4, sigma=None, beta=100.0, format_epochs=0, hsic_lr=None)  # flat keywords then
    meta["params"]["features"] = "ward145"  # there was no "auto" then
    for key in ("model_used", "features_used", "auto_choice"):
        meta.pop(key)
    (tmp_path / "old" / "materials.json").write_text(json.dumps(meta))
    back = MaterialsRegressor.load(tmp_path / "old")
    assert back.get_params()["optimizer"] == "adam" and back.get_params()["train_params__lr_schedule"] is None
    assert back.model_used_ == "mlp"
    np.testing.assert_allclose(back.predict(f[50:55]), reg.predict(f[50:55]), rtol=1e-5)


def _learning_curve():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "materials_learning_curve.py"
    spec = importlib.util.spec_from_file_location("materials_learning_curve", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_learning_curve_draws_nested_sets_and_resumes(tmp_path, monkeypatch, capsys):
    """A rerun skips the (model, size) cells already in the JSON and measures only the missing ones."""
    import pandas as pd

    lc = _learning_curve()
    sets, test = lc.draw_rows(np.arange(100), np.arange(100, 150), [10, 40, 500, 0], 20, seed=0)
    assert set(sets[10]) <= set(sets[40]) <= set(sets[500]) and len(sets[500]) == len(sets[0]) == 100 and len(test) == 20
    df = pd.read_csv(demo_table_path()).head(150)
    df["fold"] = np.arange(150) % 5
    df.to_csv(tmp_path / "matbench_mp_e_form.csv", index=False)
    fits = []
    run_cell = lc.run_cell
    monkeypatch.setattr(lc, "run_cell", lambda name, *a: fits.append(name) or run_cell(name, *a))
    out = tmp_path / "lc.json"
    common = ["--data", str(tmp_path), "--tasks", "mp_e_form", "--test-size", "20", "--out", str(out),
              "--features-cache", str(tmp_path), "--et-trees", "5", "--rf-trees", "5", "--epochs", "1"]
    lc.main(common + ["--sizes", "30", "--models", "extra_trees", "irnet17"])
    assert fits == ["extra_trees", "irnet17"]
    res = json.loads(out.read_text())
    assert [(c["model"], c["size"], c["n_train"]) for c in res["cells"]] == [("extra_trees", 30, 30), ("irnet17", 30, 30)]
    assert res["test_rows"]["mp_e_form"]["n"] == 20 and out.with_suffix(".png").exists()
    fits.clear()
    lc.main(common + ["--sizes", "30", "60", "--models", "extra_trees", "irnet17", "rf"])
    assert fits == ["rf", "extra_trees", "irnet17", "rf"]  # size 30's two cells were kept
    assert "mp_e_form n=30 extra_trees: already measured, skipped" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["cells"]) == 6
    fits.clear()
    lc.main(common[:-2] + ["--epochs", "2", "--sizes", "30", "--models", "extra_trees", "irnet17"])
    assert fits == ["irnet17"]  # other network settings: measured again, the latest cell is tabled
    cells = lc.latest(json.loads(out.read_text())["cells"])
    assert [c["settings"]["epochs"] for c in cells if c["model"] == "irnet17" and c["size"] == 30] == [2]
    # a parallel run's file merges in; one of another test size does not
    other = tmp_path / "other.json"
    lc.main([a if a != str(out) else str(other) for a in common] + ["--sizes", "45", "--models", "extra_trees"])
    merged = lc.include(json.loads(out.read_text()), [other])
    assert sorted({c["size"] for c in merged["cells"]}) == [30, 45, 60]
    lc.main([a if a not in (str(out), "20") else (str(other) if a == str(out) else "10") for a in common]
            + ["--sizes", "45", "--models", "extra_trees", "--fresh"])
    with pytest.raises(HsickitError, match="do not compare"):
        lc.include(json.loads(out.read_text()), [other])

"""The trainer: both gradient modes, tasks, early stopping, errors, checkpoints and resume."""
import copy
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from hsickit import HsickitError
from hsickit.core.models import create_model
from hsickit.core.serialization import load_checkpoint
from hsickit.core.training import (CHECKPOINT, HSICObjective, TrainConfig, Trainer, hsic_bottleneck_loss, task_loss, train,
                                   validation_split)


def blobs(n=300, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3, size=(k, d))
    y = rng.integers(0, k, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y.astype(np.int64)


def accuracy(net, X, y):
    net.eval()
    with torch.no_grad():
        return float((net(torch.tensor(X)).argmax(1).numpy() == y).mean())


@pytest.mark.parametrize("mode", ["backprop", "hsic"])
def test_both_modes_learn_a_classification_task(mode):
    X, y = blobs()
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(32, 32, 32))
    before = accuracy(net, X, y)
    history = train(net, X[:240], y[:240], TrainConfig(mode=mode, epochs=8, batch_size=48, lr=1e-2, verbose=0, format_epochs=2),
                    X_val=X[240:], y_val=y[240:])
    assert accuracy(net, X[240:], y[240:]) > max(0.9, before)
    # per-epoch history with each block's HSIC(Z, X) and HSIC(Z, Y)
    main = [r for r in history if r["phase"] == "main"]
    assert len(main) == 8
    assert {f"hsic_zx_{i}" for i in range(3)} | {f"hsic_zy_{i}" for i in range(3)} <= set(main[-1])
    assert "val_accuracy" in main[-1]


def test_a_diverging_format_phase_keeps_the_main_phase_model():
    """A format epoch is kept only if it beats the model the main phase left (Matbench expt_gap: one diverged
    format epoch at lr 1e-2 was once kept as the best, 43 eV MAE)."""
    X, _ = blobs()
    y = (X[:, 0] - 0.5 * X[:, 1]).astype(np.float32)
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=1, hidden=(32, 32))
    config = TrainConfig(mode="hsic", task="regression", epochs=4, batch_size=48, lr=1e-2, verbose=0, format_epochs=3, format_lr=1e4)
    history = train(net, X[:240], y[:240], config, X_val=X[240:], y_val=y[240:])
    main, fmt = [r for r in history if r["phase"] == "main"], [r for r in history if r["phase"] == "format"]
    assert fmt and all(r["best"] == 0 for r in fmt) and min(r["val_loss"] for r in fmt) > min(r["val_loss"] for r in main)
    net.eval()
    with torch.no_grad():
        final = float((net(torch.tensor(X[240:])).reshape(-1) - torch.tensor(y[240:])).abs().mean())
    assert final == pytest.approx(min(r["val_loss"] for r in main), rel=1e-5)


@pytest.mark.parametrize("mode", ["backprop", "hsic"])
def test_train_epoch_is_one_epoch_of_fit(mode):
    """``Trainer.train_epoch`` (the public one-epoch step the benchmarks time) does what fit's first epoch does."""
    X, y = blobs(n=96)
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16))
    twin = copy.deepcopy(net)
    config = TrainConfig(mode=mode, epochs=1, batch_size=32, format_epochs=0, verbose=0)
    history = train(net, X, y, config)
    trainer = Trainer(twin, config)
    row = trainer.train_epoch(X, y, 0)  # numpy in: converted to the trainer's device
    assert row["train_loss"] == pytest.approx(history[0]["train_loss"], rel=1e-6)
    for a, b in zip(net.state_dict().values(), twin.state_dict().values()):
        torch.testing.assert_close(a, b)
    second = trainer.train_epoch(torch.tensor(X), torch.tensor(y), 1)  # another epoch: another permutation, lower loss
    assert second["train_loss"] < row["train_loss"]


def test_hsic_gradients_stay_inside_each_block():
    X, y = blobs(n=64)
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16, 16))
    config = TrainConfig(mode="hsic", beta=50.0)
    loss_fn = task_loss(config)
    x, yt = torch.tensor(X), torch.tensor(y)
    total, _ = hsic_bottleneck_loss(net, x, yt, config, loss_fn)
    grads = torch.autograd.grad(total, list(net.blocks[1].parameters()))
    # block 1's own objective, computed by hand on its detached input
    from hsickit.core.training import HSICObjective
    objective = HSICObjective(config, x, yt, "classification")
    h0 = net.blocks[0](x).detach()
    zx, zy = objective(net.blocks[1](h0))
    own = torch.autograd.grad(zx - config.beta * zy, list(net.blocks[1].parameters()))
    for g, o in zip(grads, own):
        torch.testing.assert_close(g, o)


def test_block_by_block_backward_gives_the_same_gradients():
    """One process: each block's loss is differentiated at once (memory flat in depth), same gradients."""
    X, y = blobs(n=64)
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16, 16))
    config = TrainConfig(mode="hsic", beta=50.0)
    x, yt = torch.tensor(X), torch.tensor(y)
    total, head = hsic_bottleneck_loss(net, x, yt, config, task_loss(config))
    total.backward()
    summed = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    total2, head2 = hsic_bottleneck_loss(net, x, yt, config, task_loss(config), backward=True)
    assert not total2.requires_grad and float(total2) == pytest.approx(float(total), rel=1e-6)
    for g, p in zip(summed, net.parameters()):
        torch.testing.assert_close(p.grad, g)


def test_regression_target_kernel_is_standardised_with_the_median_width():
    """A target in MPa gets the same kernel as the standardised target, whatever sigma the blocks use."""
    from hsickit.core import hsic

    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(64, 5)), dtype=torch.float32)
    y = torch.tensor(rng.normal(size=64), dtype=torch.float32)
    ys = (y - y.mean()) / y.std()
    expected = hsic.gaussian_kernel(ys[:, None], hsic.median_sigma(ys[:, None]))
    for sigma in (None, 6.0):
        for target in (y, 1000 * y + 500):  # the unit does not matter
            obj = HSICObjective(TrainConfig(mode="hsic", task="regression", sigma=sigma, kernel_convention="reference"),
                                x, target, "regression")
            torch.testing.assert_close(obj.KY, expected, rtol=1e-4, atol=1e-5)
    # before, sigma=6 on a target in MPa gave (nearly) the identity: HSIC(Z, Y) saw no order in y
    assert float(expected.mean()) > 0.3


@pytest.mark.parametrize("name", ["gaussian", "rank", "multiscale"])
def test_regression_target_kernels_are_psd_and_unit_free(name):
    """Every target kernel is an m x m symmetric PSD matrix with ones on the diagonal, whatever y's unit."""
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(48, 5)), dtype=torch.float32)
    y = torch.tensor(rng.lognormal(size=48), dtype=torch.float32)
    cfg = TrainConfig(mode="hsic", task="regression", target_kernel=name)
    K = HSICObjective(cfg, x, y, "regression").KY
    assert K.shape == (48, 48)
    torch.testing.assert_close(K, K.T)
    torch.testing.assert_close(torch.diagonal(K), torch.ones(48))
    assert float(torch.linalg.eigvalsh(K.double()).min()) > -1e-5
    torch.testing.assert_close(HSICObjective(cfg, x, 1000 * y + 500, "regression").KY, K, rtol=1e-4, atol=1e-5)
    # the kernels differ: each name is its own kernel
    if name != "gaussian":
        assert not torch.allclose(K, HSICObjective(TrainConfig(mode="hsic", task="regression"), x, y, "regression").KY, atol=1e-3)
    # random Fourier features of the same kernel: (m, D) features whose Gram matrix approximates it
    rff = dataclasses.replace(cfg, hsic_approx="rff", n_features=2048, hsic_estimator="biased")
    approx = HSICObjective(rff, x, y, "regression").KY
    assert approx.shape == (48, 2048 * (5 if name == "multiscale" else 1))
    assert float((approx @ approx.T - K).abs().max()) < 0.15


def test_rank_target_kernel_sees_only_the_order_and_multiscale_is_the_mean_of_widths():
    from hsickit.core import hsic
    from hsickit.core.training import MULTISCALE_FACTORS

    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float32)
    y = torch.tensor(rng.normal(size=40), dtype=torch.float32)
    rank = TrainConfig(mode="hsic", task="regression", target_kernel="rank")
    K = HSICObjective(rank, x, y, "regression").KY
    torch.testing.assert_close(HSICObjective(rank, x, torch.exp(3 * y), "regression").KY, K)  # monotone: same kernel
    tied = y.clone()
    tied[1] = tied[0]  # ties share their mean rank: equal targets, equal rows
    Kt = HSICObjective(rank, x, tied, "regression").KY
    torch.testing.assert_close(Kt[0], Kt[1])
    ys = ((y - y.mean()) / y.std())[:, None]
    s = hsic.median_sigma(ys)
    expected = sum(hsic.gaussian_kernel(ys, f * s) for f in MULTISCALE_FACTORS) / len(MULTISCALE_FACTORS)
    multi = TrainConfig(mode="hsic", task="regression", target_kernel="multiscale")
    torch.testing.assert_close(HSICObjective(multi, x, y, "regression").KY, expected, rtol=1e-4, atol=1e-5)


def test_unknown_target_kernel_is_a_clear_error():
    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    net = create_model("mlp", in_features=3, out_features=1, hidden=(8,))
    with pytest.raises(HsickitError, match="unknown target_kernel 'quantile'.*gaussian.*rank.*multiscale"):
        train(net, X, X[:, :1], TrainConfig(mode="hsic", task="regression", target_kernel="quantile", verbose=0))
    from hsickit.core.estimators import DeepRegressor

    with pytest.raises(HsickitError, match="unknown target_kernel"):
        DeepRegressor(training="hsic", epochs=1, hsic_params={"target_kernel": "Rank"}).fit(X, X[:, 0])


def test_multilabel_label_kernels():
    """Label sets: "linear" counts shared labels (the delta kernel of one-hot classes), "balanced" first
    standardises each label, "gaussian" is the blocks' kernel; the feature forms are exact."""
    from hsickit.core import hsic
    from hsickit.core.training import LABEL_KERNELS

    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(32, 4)), dtype=torch.float32)
    y = torch.tensor(rng.random((32, 3)) < [0.6, 0.2, 0.05], dtype=torch.float32)
    y[0, 2] = 1.0  # every label present at least once
    kernels = {name: HSICObjective(TrainConfig(mode="hsic", task="multilabel", label_kernel=name, sigma=6.0), x, y, "multilabel").KY
               for name in LABEL_KERNELS}
    torch.testing.assert_close(kernels["linear"], y @ y.T)
    onehot = torch.nn.functional.one_hot(torch.arange(32) % 3, 3).float()  # one label per row: the classes' delta kernel
    torch.testing.assert_close(HSICObjective(TrainConfig(mode="hsic", task="multilabel", label_kernel="linear"), x, onehot,
                                             "multilabel").KY, hsic.delta_kernel(torch.arange(32) % 3))
    z = (y - y.mean(0)) / y.std(0)
    torch.testing.assert_close(kernels["balanced"], z @ z.T, rtol=1e-4, atol=1e-4)
    # the rare third label weighs as much as the common first one in the balanced kernel, far less in the linear one
    rare, common = y[:, 2] == 1, y[:, 0] == 1
    assert float(kernels["balanced"][rare][:, rare].mean()) > float(kernels["balanced"][common][:, common].mean())
    torch.testing.assert_close(kernels["gaussian"], hsic.gaussian_kernel(y, 6.0))
    for name in ("linear", "balanced"):  # random-feature mode: the label matrix itself is the exact feature map
        cfg = TrainConfig(mode="hsic", task="multilabel", label_kernel=name, hsic_approx="rff", hsic_estimator="cka")
        phi = HSICObjective(cfg, x, y, "multilabel").KY
        torch.testing.assert_close(phi @ phi.T, kernels[name], rtol=1e-4, atol=1e-4)
    with pytest.raises(HsickitError, match="unknown label_kernel 'delta'.*gaussian.*linear.*balanced"):
        TrainConfig(mode="hsic", task="multilabel", label_kernel="delta").check()


@pytest.mark.parametrize("name", ["gaussian", "rank", "multiscale"])
def test_hsic_regression_with_each_target_kernel_beats_a_constant(name):
    """A small HSIC-trained regressor predicts y = f(X) better than y's mean, with every target kernel."""
    from hsickit.core.estimators import DeepRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4)).astype(np.float32)
    y = 3 * X[:, 0] + np.sin(2 * X[:, 1]) + 0.1 * rng.normal(size=400)
    reg = DeepRegressor(model_params={"hidden": (32, 32)}, training="hsic", epochs=15, batch_size=64, lr=1e-2,
                        hsic_params={"target_kernel": name, "format_epochs": 5}, random_state=0, verbose=0)
    reg.fit(X[:300], y[:300])
    assert reg.train_config_["target_kernel"] == name
    mae = np.abs(reg.predict(X[300:]) - y[300:]).mean()
    constant = np.abs(y[300:] - y[:300].mean()).mean()
    assert mae < 0.5 * constant, (name, mae, constant)


def test_hsic_training_recalibrates_batchnorm_on_the_final_weights():
    """After HSIC training every block's running statistics are the training batches' own (cumulative average)."""
    X, y = blobs(n=200)
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16))
    train(net, X, y, TrainConfig(mode="hsic", epochs=3, batch_size=50, lr=0.5, hsic_lr=0.5, optimizer="sgd", verbose=0, recalibrate_bn=True,
                                 format_epochs=1))
    with torch.no_grad():
        a = net.blocks[0].linear(torch.tensor(X))  # batches of 50 rows: the mean of batch means is the full mean
        torch.testing.assert_close(net.blocks[0].norm.running_mean, a.mean(0), rtol=1e-4, atol=1e-5)
        h = net.blocks[0](torch.tensor(X))
        assert float((net.blocks[1].norm.running_mean - net.blocks[1].linear(h).mean(0)).abs().max()) < 0.1
    assert net.blocks[0].norm.momentum == 0.1  # restored


def test_regression_and_multilabel_tasks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    yr = (X[:, :1] * 2 + X[:, 1:2] ** 2).astype(np.float32)
    ym = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0], 1).astype(np.float32)
    for task, y, out in (("regression", yr, 1), ("multilabel", ym, 2)):
        for mode in ("backprop", "hsic"):
            torch.manual_seed(0)
            net = create_model("mlp", in_features=5, out_features=out, hidden=(32, 32))
            h = train(net, X, y, TrainConfig(mode=mode, task=task, epochs=8, batch_size=50, lr=1e-2, verbose=0))
            assert h[-1]["train_loss"] < h[0]["train_loss"], (task, mode)


def test_early_stopping_restores_the_best_epoch():
    X, y = blobs()
    rng = np.random.default_rng(1)
    y_noise = rng.integers(0, 3, len(y))  # labels unrelated to X: validation loss soon rises
    net = create_model("mlp", in_features=8, out_features=3, hidden=(64, 64))
    h = train(net, X[:200], y_noise[:200], TrainConfig(epochs=200, batch_size=50, patience=3, lr=1e-2, verbose=0),
              X_val=X[200:], y_val=y_noise[200:])
    assert len(h) < 200
    best = min(h, key=lambda r: r["val_loss"])
    assert sum(r["best"] for r in h[h.index(best) + 1:]) == 0
    loss = task_loss(TrainConfig())
    net.eval()
    with torch.no_grad():
        val = float(loss(net(torch.tensor(X[200:])), torch.tensor(y_noise[200:])))
    assert val == pytest.approx(best["val_loss"], rel=1e-5)


def test_divergence_stops_with_a_clear_message():
    X, y = blobs()
    net = create_model("mlp", in_features=8, out_features=1, hidden=(8,), batchnorm=False)
    with pytest.raises(HsickitError, match="diverged at epoch .*lower the learning rate"):
        train(net, X, y.astype(np.float32) * 1e3, TrainConfig(task="regression", loss="mse", optimizer="sgd",
                                                              epochs=20, batch_size=50, lr=10.0, verbose=0))


def test_hsic_divergence_names_the_block_and_the_epoch():
    """A block whose weights turn NaN after epoch 1 stops the fit at that block in epoch 2, not in a kernel."""
    X, y = blobs()
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16, 16))

    def poison(row):
        if row["epoch"] == 1:
            with torch.no_grad():
                net.blocks[1].linear.weight[0, 0] = float("nan")

    with pytest.raises(HsickitError, match=r"HSIC training diverged at block 2 of 3, epoch 2, batch 1: its output holds NaN"
                                           r".*data were checked.*learning rate.*beta.*sigma.*normalisation") as err:
        train(net, X, y, TrainConfig(mode="hsic", epochs=3, batch_size=50, verbose=0), callbacks=[poison])
    assert "not positive semi-definite" not in str(err.value)  # not the kernel's error that blames the data


def test_hsic_divergence_from_a_huge_learning_rate_is_reported():
    X, y = blobs()
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16,) * 4, batchnorm=False)
    with pytest.raises(HsickitError, match=r"HSIC training diverged at block \d of 4, epoch \d+, batch \d+.*hsic_lr=1e\+30"):
        train(net, X, y, TrainConfig(mode="hsic", optimizer="sgd", hsic_lr=1e30, epochs=20, batch_size=50, verbose=0))


def test_information_plane_probe_never_stops_a_fit():
    """Validation rows with extreme (finite) values: the probe's representation overflows; NaN is recorded, with warnings."""
    X, y = blobs()
    X_val = X[:40].copy()
    X_val[:, 0] = 3e38  # the validation loss overflows to inf and the probe kernels break
    torch.manual_seed(0)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16))
    with pytest.warns(RuntimeWarning, match="information plane: NaN recorded"), pytest.warns(RuntimeWarning, match="validation loss"):
        history = train(net, X, y, TrainConfig(mode="backprop", epochs=2, batch_size=50, verbose=0), X_val=X_val, y_val=y[:40])
    assert len(history) == 2 and all(np.isfinite(r["train_loss"]) for r in history)
    assert all(np.isnan(r["hsic_zx_1"]) and np.isnan(r["hsic_zy_1"]) for r in history)


def test_information_plane_records_nan_for_non_finite_input():
    from hsickit.core.training import Trainer

    X, y = blobs(n=64)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(16, 16))
    trainer = Trainer(net, TrainConfig(mode="hsic", verbose=0))
    Xt = torch.tensor(X)
    ok = trainer.information_plane(Xt, torch.tensor(y))
    assert set(ok) == {"hsic_zx_0", "hsic_zy_0", "hsic_zx_1", "hsic_zy_1"} and np.isfinite(list(ok.values())).all()
    with torch.no_grad():  # a representation that diverged at block 2: block 1 is still measured
        net.blocks[1].linear.weight[0, 0] = float("inf")
    with pytest.warns(RuntimeWarning, match="NaN recorded from block 2: its representation holds NaN or inf"):
        row = trainer.information_plane(Xt, torch.tensor(y))
    assert row["hsic_zx_0"] == ok["hsic_zx_0"] and np.isnan([row["hsic_zx_1"], row["hsic_zy_1"]]).all()
    Xt[3, 2] = float("inf")  # non-finite probe input: everything NaN, nothing raised
    with pytest.warns(RuntimeWarning, match="NaN recorded from the probe batch"):
        row = trainer.information_plane(Xt, torch.tensor(y))
    assert set(row) == set(ok) and np.isnan(list(row.values())).all()


@pytest.mark.parametrize("mutate,match", [
    (lambda X, y: (X, y[:-1]), "X has 300 samples but y has 299"),
    (lambda X, y: (np.where(np.arange(len(X))[:, None] == 5, np.nan, X), y), "NaN or inf.*row 5"),
    (lambda X, y: (X, np.zeros_like(y)), "only one class"),
    (lambda X, y: (X[:0], y[:0]), "empty"),
])
def test_bad_training_data(mutate, match):
    X, y = mutate(*blobs())
    net = create_model("mlp", in_features=8, out_features=3, hidden=(8,))
    with pytest.raises(HsickitError, match=match):
        train(net, X, y, TrainConfig(epochs=1, batch_size=32, verbose=0))


def test_bad_settings():
    X, y = blobs(n=40)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(8,))
    with pytest.raises(HsickitError, match="batch_size=64 is larger than the 40"):
        train(net, X, y, TrainConfig(epochs=1, batch_size=64, verbose=0))
    with pytest.raises(HsickitError, match="sigma must be > 0"):
        train(net, X, y, TrainConfig(mode="hsic", sigma=-1.0, verbose=0))
    with pytest.raises(HsickitError, match="y contains NaN or inf"):
        train(net, X, np.full(40, np.nan, np.float32), TrainConfig(task="regression", verbose=0))


def test_validation_split_is_stratified_and_disjoint():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    tr, va = validation_split(len(y), 0.2, seed=0, stratify=y)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100
    assert np.bincount(y[va]).tolist() == [10, 6, 4]


SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np, torch
    torch.set_num_threads(1)
    from hsickit.core.models import create_model
    from hsickit.core.training import TrainConfig, train
    from hsickit.core.serialization import save_model
    run_dir, mode, pause_after, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 6)).astype("float32"); y = (X[:, 0] + X[:, 1] ** 2 > 1).astype("int64")
    torch.manual_seed(0)
    net = create_model("mlp", in_features=6, out_features=2, hidden=(16, 16), dropout=0.2)
    def pause(row):
        if row["epoch"] == pause_after:
            open(run_dir + "/paused", "w").close()
            time.sleep(120)
    cfg = TrainConfig(mode=mode, epochs=6, batch_size=40, patience=10, format_epochs=2, verbose=0)
    train(net, X[:200], y[:200], cfg, X_val=X[200:], y_val=y[200:], run_dir=run_dir, resume=True,
          callbacks=[pause] if pause_after else [])
    save_model(net, out)
""")


@pytest.mark.parametrize("mode,kill_after", [("backprop", 3), ("hsic", 7)])
@pytest.mark.slow
def test_resume_after_sigkill_reaches_the_same_numbers(tmp_path, mode, kill_after):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def run(run_dir, pause, out):
        run_dir.mkdir(exist_ok=True)
        return subprocess.Popen([sys.executable, str(script), str(run_dir), mode, str(pause), str(out)], env=env)

    assert run(tmp_path / "full", 0, tmp_path / "full.safetensors").wait(timeout=120) == 0
    proc = run(tmp_path / "cut", kill_after, tmp_path / "cut.safetensors")
    deadline = time.time() + 120
    while not (tmp_path / "cut" / "paused").exists():
        assert proc.poll() is None and time.time() < deadline, "training subprocess ended before the pause"
        time.sleep(0.1)
    time.sleep(0.5)  # the pause happens before the epoch's checkpoint: kill while it is pending
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, state = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert len(state["history"]) < 8  # interrupted mid-run
    assert run(tmp_path / "cut", 0, tmp_path / "cut.safetensors").wait(timeout=120) == 0
    from safetensors.torch import load_file
    full, cut = load_file(tmp_path / "full.safetensors"), load_file(tmp_path / "cut.safetensors")
    assert full.keys() == cut.keys()
    for k in full:
        torch.testing.assert_close(cut[k], full[k], rtol=0, atol=0)


def test_resume_refuses_other_settings(tmp_path):
    X, y = blobs(n=100)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(8,))
    train(net, X, y, TrainConfig(epochs=2, batch_size=50, verbose=0), run_dir=tmp_path)
    with pytest.raises(HsickitError, match="different training settings.*lr"):
        train(net, X, y, TrainConfig(epochs=2, batch_size=50, lr=0.5, verbose=0), run_dir=tmp_path, resume=True)


def test_sigma_combined_network_trains_one_member_per_width(tmp_path):
    from hsickit.core.estimators import DeepClassifier
    from hsickit.core.models import ParallelModel

    X, y = blobs(n=240)
    clf = DeepClassifier(model_params={"hidden": (16, 16)}, training="hsic", sigma=(1.0, 5.0, 10.0), epochs=6,
                         lr=1e-2, format_epochs=2, random_state=0).fit(X, y)
    assert isinstance(clf.model_, ParallelModel) and len(clf.model_.members) == 3
    assert clf.transform(X).shape == (240, 48)  # three 16-wide representations, concatenated
    assert clf.score(X, y) > 0.9
    assert "hsic_zy_5" in clf.history_[0]  # 3 members x 2 blocks on the information plane
    clf.save(tmp_path / "m")
    np.testing.assert_array_equal(DeepClassifier.load(tmp_path / "m").predict(X), clf.predict(X))
    # each member's gradient comes from its own width only
    config = TrainConfig(mode="hsic", sigma=(1.0, 5.0, 10.0))
    x, yt = torch.tensor(X[:64]), torch.tensor(y[:64])
    total, _ = hsic_bottleneck_loss(clf.model_, x, yt, config, task_loss(config))
    member = clf.model_.members[1]
    grads = torch.autograd.grad(total, list(member.blocks[0].parameters()))
    from hsickit.core.training import HSICObjective
    zx, zy = HSICObjective(TrainConfig(mode="hsic", sigma=5.0), x, yt, "classification")(member.blocks[0](x))
    own = torch.autograd.grad(zx - config.beta * zy, list(member.blocks[0].parameters()))
    for g, o in zip(grads, own):
        torch.testing.assert_close(g, o)
    with pytest.raises(HsickitError, match="3 kernel widths for a model with 1"):
        train(create_model("mlp", in_features=8, out_features=3, hidden=(8,)), X, y, TrainConfig(mode="hsic", sigma=(1.0, 5.0, 10.0), verbose=0))


# --- approximate HSIC, precision -------------------------------------------------------------

def test_hsic_training_with_random_fourier_features_learns_and_is_seeded():
    X, y = blobs()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = create_model("mlp", in_features=8, out_features=3, hidden=(32, 32))
        config = TrainConfig(mode="hsic", epochs=6, batch_size=60, lr=1e-2, format_epochs=2, hsic_approx="rff",
                             n_features=128, verbose=0)
        history = train(net, X[:240], y[:240], config, X_val=X[240:], y_val=y[240:])
        assert accuracy(net, X[240:], y[240:]) > 0.9
        assert "hsic_zy_1" in history[0]
        runs.append(net.state_dict())
    for k in runs[0]:  # the random features come from the seed: two runs are identical
        torch.testing.assert_close(runs[1][k], runs[0][k], rtol=0, atol=0)


def test_approximate_objective_tracks_the_exact_one():
    """HSICObjective with 4,096 random features vs exact kernels on one batch of 512."""
    X, y = blobs(n=512, d=16)
    x, yt = torch.tensor(X), torch.tensor(y)
    torch.manual_seed(0)
    block = create_model("mlp", in_features=16, out_features=3, hidden=(64,)).blocks[0]
    with torch.no_grad():
        z = block(x)
    for estimator, tol in (("biased", 0.05), ("cka", 0.05)):
        config = TrainConfig(mode="hsic", hsic_estimator=estimator)
        exact = HSICObjective(config, x, yt, "classification")(z)
        approx = HSICObjective(dataclasses.replace(config, hsic_approx="rff", n_features=4096), x, yt, "classification",
                               random_state=1)(z)
        for a, e in zip(approx, exact):
            assert a.item() == pytest.approx(e.item(), rel=tol), estimator


def test_approximate_hsic_resumes_exactly(tmp_path):
    X, y = blobs(n=120)
    config = dict(mode="hsic", batch_size=40, lr=1e-2, hsic_approx="rff", n_features=64, verbose=0)
    torch.manual_seed(0)
    straight = create_model("mlp", in_features=8, out_features=3, hidden=(16,))
    cut = copy.deepcopy(straight)
    train(straight, X, y, TrainConfig(epochs=4, **config))
    train(cut, X, y, TrainConfig(epochs=2, **config), run_dir=tmp_path)
    train(cut, X, y, TrainConfig(epochs=4, **config), run_dir=tmp_path, resume=True)
    for a, b in zip(cut.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bf16_autocast_keeps_hsic_kernels_in_float32():
    X, y = blobs(n=128)
    x, yt = torch.tensor(X), torch.tensor(y)
    config = TrainConfig(mode="hsic", hsic_estimator="nocco")
    objective = HSICObjective(config, x, yt, "classification")
    z = torch.relu(x @ torch.randn(8, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = objective(z.bfloat16())
        assert objective.KX.dtype == torch.float32 and all(v.dtype == torch.float32 for v in inside)
    outside = objective(z.bfloat16().float())
    for a, b in zip(inside, outside):
        assert a.item() == b.item()
    # and bf16 training runs and learns (blocks and head in bfloat16 autocast)
    X, y = blobs()
    for mode in ("backprop", "hsic"):
        torch.manual_seed(0)
        net = create_model("mlp", in_features=8, out_features=3, hidden=(32, 32))
        train(net, X[:240], y[:240], TrainConfig(mode=mode, precision="bf16", epochs=6, batch_size=48, lr=1e-2, verbose=0))
        assert accuracy(net, X[240:], y[240:]) > 0.85, mode


def test_scale_settings_are_checked():
    X, y = blobs(n=40)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(8,))
    for bad, match in ((dict(precision="fp8"), "precision"), (dict(hsic_approx="nystrom"), "hsic_approx"),
                       (dict(hsic_approx="rff", n_features=7), "even number"), (dict(distributed_hsic="all"), "distributed_hsic")):
        with pytest.raises(HsickitError, match=match):
            train(net, X, y, TrainConfig(verbose=0, **bad))


def test_old_checkpoints_without_the_new_options_resume(tmp_path):
    """A checkpoint written before an option existed resumes when the option has its default."""
    from hsickit.core.serialization import save_checkpoint

    X, y = blobs(n=100)
    net = create_model("mlp", in_features=8, out_features=3, hidden=(8,))
    train(net, X, y, TrainConfig(epochs=1, batch_size=50, verbose=0), run_dir=tmp_path)
    tensors, state = load_checkpoint(tmp_path / CHECKPOINT)
    for key in ("precision", "hsic_approx", "n_features", "distributed_hsic", "sync_batchnorm", "target_kernel", "label_kernel",
                "keep_epoch"):
        del state["config"][key]
    save_checkpoint(tmp_path / CHECKPOINT, tensors, state)
    h = train(net, X, y, TrainConfig(epochs=2, batch_size=50, verbose=0), run_dir=tmp_path, resume=True)
    assert [r["epoch"] for r in h] == [1, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_path_keeps_kernels_on_the_gpu(monkeypatch):
    from hsickit.core import hsic

    seen = []
    original = hsic.gaussian_kernel

    def spy(x, *args, **kwargs):
        out = original(x, *args, **kwargs)
        seen.append((x.device.type, out.device.type))
        return out

    monkeypatch.setattr(hsic, "gaussian_kernel", spy)
    X, y = blobs()
    net = create_model("mlp", in_features=8, out_features=3, hidden=(32, 32))
    train(net, X, y, TrainConfig(mode="hsic", device="auto", precision="bf16", epochs=2, batch_size=60, verbose=0))
    assert next(net.parameters()).device.type == "cuda"
    assert seen and all(s == ("cuda", "cuda") for s in seen)


def test_regressors_default_to_cka_and_a_format_phase_in_hsic_mode_classifiers_do_not():
    """REGRESSION_HSIC (benchmarks/hsic_regression.py: NOCCO without a format phase ends near a constant predictor)."""
    from hsickit.apps.materials import MaterialsClassifier, MaterialsRegressor
    from hsickit.core.estimators import REGRESSION_HSIC, DeepClassifier, DeepRegressor

    for cls in (DeepRegressor, MaterialsRegressor):
        assert {k: cls().group("hsic_params")[k] for k in REGRESSION_HSIC} == REGRESSION_HSIC
        assert cls(hsic_params={"estimator": "nocco"}).get_params()["hsic_params__estimator"] == "nocco"
    for cls in (DeepClassifier, MaterialsClassifier):
        assert cls().group("hsic_params")["estimator"] == "nocco" and cls().group("hsic_params")["format_epochs"] == 0
    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    reg = DeepRegressor(model_params={"hidden": (8,)}, training="hsic", epochs=1, random_state=0, verbose=0).fit(X, X[:, 0])
    assert reg.train_config_["hsic_estimator"] == "cka" and reg.train_config_["format_epochs"] == 100



def test_hsic_without_validation_rows_keeps_the_main_epoch_of_the_lowest_head_loss():
    """Without validation rows the blocks come from the main epoch whose head loss was lowest, not the last one:
    at 100 layers on MNIST that choice is what keeps 0.605 (the last epoch: 0.100; benchmarks/hsic_depth.py)."""
    X, _ = blobs(n=200)
    y = np.random.default_rng(2).integers(0, 3, 200)  # labels unrelated to X: the head's loss wanders
    config = TrainConfig(mode="hsic", epochs=6, batch_size=50, lr=0.5, verbose=0)

    def fresh():
        torch.manual_seed(0)
        return create_model("mlp", in_features=8, out_features=3, hidden=(16, 16))

    fitted = fresh()
    losses = [r["train_loss"] for r in train(fitted, X, y, config) if r["phase"] == "main"]
    best = int(np.argmin(losses)) + 1
    assert best < config.epochs  # the case where the two differ
    stepped = fresh()  # the same batches, epoch by epoch, stopped at the best epoch
    trainer = Trainer(stepped, config)
    for epoch in range(best):
        trainer.train_epoch(X, y, epoch)
    for a, b in zip(fitted.blocks, stepped.blocks):
        torch.testing.assert_close(a.linear.weight, b.linear.weight)
    last = fresh()  # keep_epoch="last": the blocks of the final main epoch
    train(last, X, y, dataclasses.replace(config, keep_epoch="last"))
    for epoch in range(best, config.epochs):
        trainer.train_epoch(X, y, epoch)
    for a, b in zip(last.blocks, stepped.blocks):
        torch.testing.assert_close(a.linear.weight, b.linear.weight)
    with pytest.raises(HsickitError, match="unknown keep_epoch 'first'"):
        train(fresh(), X, y, dataclasses.replace(config, keep_epoch="first"))

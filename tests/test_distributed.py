"""Multi-process training: 2 gloo processes under torchrun against 1 process with the same global batch."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from hsickit import HsickitError
from hsickit.core import distributed
from hsickit.core.models import create_model
from hsickit.core.training import TrainConfig, Trainer, hsic_bottleneck_loss, task_loss, train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch without gloo")


def data(n=245, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] ** 2 > 1).astype(np.int64) + (X[:, 2] > 0.5)).astype(np.int64)
    return X, y


def net(seed=0):
    torch.manual_seed(seed)  # no BatchNorm, no dropout: one batch's gradient does not depend on how it is split
    return create_model("mlp", in_features=6, out_features=3, hidden=(16, 16), batchnorm=False)


# 245 rows, global batch 64: the last batch (53 rows) splits 27 / 26, so the weighting by shard size is exercised
CONFIGS = {
    "backprop": dict(mode="backprop", epochs=3, batch_size=64, lr=1e-2),
    # HSIC with SGD: Adam turns the float noise of a dead unit's ~0 gradient into full-size steps
    "gather": dict(mode="hsic", epochs=2, batch_size=64, optimizer="sgd", lr=0.05, sigma=2.0, beta=5.0,
                   distributed_hsic="gather", hsic_estimator="cka"),
    # NOCCO's float32 gradient changes by ~1e-3 (relative) when the batch's rows are reordered
    # (its eps*m-regularised solves): compare one step only
    "gather_nocco": dict(mode="hsic", epochs=1, batch_size=205, optimizer="sgd", lr=0.005, sigma=2.0, beta=5.0,
                         distributed_hsic="gather"),
    "gather_rff": dict(mode="hsic", epochs=2, batch_size=64, optimizer="sgd", lr=0.05, sigma=2.0, beta=5.0,
                       distributed_hsic="gather", hsic_approx="rff", n_features=64, hsic_estimator="cka"),
    "local_one_step": dict(mode="hsic", epochs=1, batch_size=205, lr=0.1, optimizer="sgd", momentum=0.0,
                           sigma=2.0, beta=5.0, hsic_estimator="cka"),
    "resume_first_half": dict(mode="backprop", epochs=2, batch_size=64, lr=1e-2, patience=50),
}

SCRIPT = textwrap.dedent("""
    import json, sys, numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[2])
    from test_distributed import CONFIGS, data, net
    from hsickit import HsickitError
    from hsickit.core import distributed
    from hsickit.core.training import TrainConfig, train
    out = sys.argv[1]
    X, y = data()
    results = {}
    for name, params in CONFIGS.items():
        model = net()
        run_dir = out + "/run" if name == "resume_first_half" else None
        history = train(model, X[:205], y[:205], TrainConfig(verbose=0, **params), X_val=X[205:], y_val=y[205:],
                        run_dir=run_dir)
        results[name] = {"params": {k: v.tolist() for k, v in model.state_dict().items()}, "history": history}
    try:
        train(net(), X, y, TrainConfig(verbose=0, sync_batchnorm=True, epochs=1, batch_size=64))
    except HsickitError as err:
        results["sync_batchnorm_error"] = str(err)
    results["world"] = distributed.world_size()
    with open(f"{out}/rank{distributed.rank()}.json", "w") as f:
        json.dump(results, f)
""")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every 2-process run of this file, in one torchrun launch (gloo on the CPU)."""
    out = tmp_path_factory.mktemp("ddp")
    script = out / "ddp.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), str(out), os.path.dirname(__file__)],
                          env=env, capture_output=True, text=True, timeout=240)
    ranks_err = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("[rank"))
    assert proc.returncode == 0, (ranks_err or proc.stderr)[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return out, ranks


def one_process(name, **extra):
    X, y = data()
    model = net()
    history = train(model, X[:205], y[:205], TrainConfig(verbose=0, **{**CONFIGS[name], **extra}), X_val=X[205:], y_val=y[205:])
    return model, history


def assert_params_close(model, params, atol=2e-5):
    for k, v in model.state_dict().items():
        torch.testing.assert_close(torch.tensor(params[k], dtype=v.dtype), v, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name", ["backprop", "gather", "gather_rff", "gather_nocco"])
@pytest.mark.slow
def test_two_processes_reach_the_parameters_of_one_process(two_ranks, name):
    _, ranks = two_ranks
    assert ranks[0]["world"] == 2
    model, history = one_process(name)
    for r in ranks:  # both ranks hold the same model, the one a single process trains on the global batch
        assert_params_close(model, r[name]["params"], atol=1e-4 if name == "gather_nocco" else 2e-5)
    # metrics are reduced over the ranks: the global batch's mean loss and the whole validation set
    for row, row2 in zip(history, ranks[0][name]["history"]):
        assert row2["train_loss"] == pytest.approx(row["train_loss"], rel=1e-4)
        assert row2["val_loss"] == pytest.approx(row["val_loss"], rel=1e-4)
        assert row2["val_accuracy"] == row["val_accuracy"]
    assert ranks[1][name]["history"] == ranks[0][name]["history"]


@pytest.mark.slow
def test_local_hsic_averages_the_per_rank_gradients(two_ranks):
    """distributed_hsic="local": each rank's HSIC on its own rows; DDP averages the gradients."""
    _, ranks = two_ranks
    X, y = data()
    X, y = torch.tensor(X[:205]), torch.tensor(y[:205])
    config = TrainConfig(verbose=0, **CONFIGS["local_one_step"])
    model = net()
    perm = torch.randperm(205, generator=torch.Generator().manual_seed(config.seed * 100_003 + 0))
    idx = perm[:config.batch_size]
    params = [p for p in model.parameters()]
    grads = [torch.zeros_like(p) for p in params]
    for r in (0, 1):  # rank r's rows r, r+2, ...; weight n_r * 2 / n (205 rows: 103 and 102)
        local = idx[r::2]
        loss, _ = hsic_bottleneck_loss(model, X[local], y[local], config, task_loss(config), weight=len(local) * 2 / len(idx))
        for g, gr in zip(grads, torch.autograd.grad(loss, params)):
            g += gr / 2
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= config.lr * g
    assert_params_close(model, ranks[0]["local_one_step"]["params"], atol=1e-5)
    # ... which is not the one-process step: HSIC is not a mean over samples
    single, _ = one_process("local_one_step")
    diff = max((a - b).abs().max().item() for a, b in zip(single.state_dict().values(), model.state_dict().values()))
    assert diff > 1e-4


@pytest.mark.slow
def test_resume_on_another_number_of_processes(two_ranks):
    """2 processes train 2 epochs and checkpoint (rank 0 writes); 1 process resumes to 4 epochs."""
    out, _ = two_ranks
    X, y = data()
    params = {**CONFIGS["resume_first_half"], "epochs": 4}
    resumed = net()
    h = train(resumed, X[:205], y[:205], TrainConfig(verbose=0, **params), X_val=X[205:], y_val=y[205:],
              run_dir=out / "run", resume=True)
    assert [r["epoch"] for r in h] == [1, 2, 3, 4]
    straight = net()
    train(straight, X[:205], y[:205], TrainConfig(verbose=0, **params), X_val=X[205:], y_val=y[205:])
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)


@pytest.mark.slow
def test_sync_batchnorm_on_cpu_is_refused_with_a_reason(two_ranks):
    _, ranks = two_ranks
    assert "needs CUDA" in ranks[0]["sync_batchnorm_error"] and "sync_batchnorm=False" in ranks[0]["sync_batchnorm_error"]


def test_single_process_helpers():
    assert (distributed.world_size(), distributed.rank(), distributed.is_main_process()) == (1, 0, True)
    t = torch.arange(6.0).reshape(3, 2)
    assert distributed.gather_rows(t) is t
    assert distributed.resolve_device("cpu") == torch.device("cpu")
    assert distributed.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(HsickitError, match="no CUDA GPU"):
            distributed.resolve_device("cuda")


def test_batch_must_leave_two_rows_per_process():
    X, y = data(n=40)
    trainer = Trainer(net(), TrainConfig(epochs=1, batch_size=4, verbose=0))
    trainer.world = 3  # as if under torchrun with 3 processes
    with pytest.raises(HsickitError, match="batch_size=4 is the global batch, split over 3 processes"):
        trainer.fit(X, y)

"""``device`` in the ECG application: every network it builds trains where ``device`` says, a saved
model loads and predicts on a CPU-only machine whatever device it trained on (or none: saved before
the parameter existed), and ``hsickit ecg train/finetune --device`` refuses a device the machine lacks
before reading anything.

No GPU here: "auto" (CUDA when there is one) stands for a device other than the default "cpu", so
that a network the device does not reach (left at its own default, "cpu") is caught.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hsickit.apps.ecg.beats import load_beats
from hsickit.apps.ecg.channels import ChannelNetwork, RecordCNN
from hsickit.apps.ecg.fusion import MultiResolutionClassifier
from hsickit.apps.ecg.records import RecordClassifier, RecordSet
from hsickit.apps.ecg.synthetic import write_synthetic_records
from hsickit.core.cli import main
from hsickit.core.estimators import DeepClassifier

torch.set_num_threads(1)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")


@pytest.fixture(scope="module")
def beats(tmp_path_factory):
    return load_beats(write_synthetic_records(tmp_path_factory.mktemp("rec"), 3, 30, random_state=1), verbose=0)


@pytest.fixture
def fitted_devices(monkeypatch):
    """The ``device`` of every DeepClassifier and RecordCNN fitted while the test runs."""
    seen = []
    for cls in (DeepClassifier, RecordCNN):
        fit = cls.fit

        def spy(self, *args, _fit=fit, **kwargs):
            seen.append((type(self).__name__, self.device))
            return _fit(self, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", spy)
    return seen


def small_record_set(n=12, seed=0) -> RecordSet:
    rng = np.random.default_rng(seed)
    Y = np.stack([np.arange(n) % 2, (np.arange(n) // 2) % 2], 1).astype(np.float32)
    f = lambda *shape: rng.normal(size=(n, *shape)).astype(np.float32) + Y[:, :1].reshape(n, *[1] * len(shape))  # noqa: E731
    return RecordSet(f(2, 300), f(2, 120), f(10), f(16), f(6), [f"r{i}" for i in range(n)], Y, ["A", "B"])


def test_the_device_reaches_every_beat_network_and_is_saved(beats, fitted_devices, tmp_path):
    clf = MultiResolutionClassifier(channels=("rr", "wavelet"), downstream="mlp", channel_epochs=1, epochs=1,
                                    crossfit_folds=2, random_state=0, verbose=0, device="auto")
    assert clf.get_params()["device"] == "auto"
    clf.fit(beats)
    # crossfit: 2 groups x 2 channels, the 2 final channels, the downstream
    assert fitted_devices == [("DeepClassifier", "auto")] * 7
    assert {net.device for net in clf.channels_.values()} == {"auto"}
    assert {net.estimator_.device for net in clf.channels_.values()} == {"auto"}
    assert clf.downstream_.device == "auto"
    clf.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "fusion.json").read_text())["params"]["device"] == "auto"
    assert json.loads((tmp_path / "m" / "channels" / "rr" / "channel.json").read_text())["params"]["device"] == "auto"

    fitted_devices.clear()  # fine-tuning moves every network to the device it is given now
    clf.set_params(warm_start=True, channel_epochs=1, epochs=1, frozen_blocks=1, device="cpu").fit(beats)
    assert fitted_devices == [("DeepClassifier", "cpu")] * 3
    assert {net.estimator_.device for net in clf.channels_.values()} | {clf.downstream_.device} == {"cpu"}


def test_the_device_reaches_every_record_network(fitted_devices):
    rs = small_record_set()
    clf = RecordClassifier(channels=("rr", "cnn"), downstream="mlp", epochs=1, channel_epochs=1, cnn_epochs=1,
                           random_state=0, verbose=0, device="auto").fit(rs)
    assert sorted(fitted_devices) == [("DeepClassifier", "auto"), ("DeepClassifier", "auto"), ("RecordCNN", "auto")]
    assert clf.nets_["cnn"].device == clf.nets_["rr"].device == clf.downstream_.device == "auto"
    assert clf.predict_proba(rs).shape == (12, 2)

    fitted_devices.clear()
    clf.set_params(warm_start=True, device="cpu").fit(rs)
    assert sorted(fitted_devices) == [("DeepClassifier", "cpu"), ("DeepClassifier", "cpu"), ("RecordCNN", "cpu")]


def test_record_cnn_trains_on_its_device_and_predicts_where_its_weights_are(tmp_path):
    rs = small_record_set()
    kw = dict(model_params={"channels": (8, 8)}, epochs=2, crop=100, random_state=0)
    on_cpu = RecordCNN(**kw).fit(rs.rhythm, rs.Y, rs.rhythm[:4], rs.Y[:4])
    on_auto = RecordCNN(**kw, device="auto").fit(rs.rhythm, rs.Y, rs.rhythm[:4], rs.Y[:4])
    assert on_auto.get_params()["device"] == "auto"
    assert next(on_auto.model_.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():  # the same device: the same network (crops are drawn on the CPU)
        np.testing.assert_allclose(on_auto.predict_proba(rs.rhythm), on_cpu.predict_proba(rs.rhythm), atol=1e-6)
    on_auto.save(tmp_path / "cnn")
    loaded = RecordCNN.load(tmp_path / "cnn")
    assert loaded.device == "auto" and next(loaded.model_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(loaded.predict_proba(rs.rhythm), on_auto.predict_proba(rs.rhythm), atol=1e-5)


def _set_saved_device(folder: Path, device) -> int:
    """Set (None: remove) ``device`` in every saved params of a model folder; returns how many files held it."""
    n = 0
    for path in folder.rglob("*.json"):
        meta = json.loads(path.read_text())
        if "device" in meta.get("params", {}):
            n += 1
            if device is None:
                del meta["params"]["device"]
            else:
                meta["params"]["device"] = device
            path.write_text(json.dumps(meta))
    return n


@pytest.mark.parametrize("saved", [None, "cuda"])
def test_a_beat_model_saved_without_device_or_on_cuda_loads_and_predicts_on_the_cpu(beats, tmp_path, saved):
    clf = MultiResolutionClassifier(channels=("rr",), downstream="mlp", stacking="insample", channel_epochs=1, epochs=1,
                                    random_state=0, verbose=0).fit(beats)
    p = clf.predict_proba(beats)
    clf.save(tmp_path / "m")
    assert _set_saved_device(tmp_path / "m", saved) == 4  # fusion.json, channel.json + its estimator.json, downstream
    loaded = MultiResolutionClassifier.load(tmp_path / "m")
    expected = "cpu" if saved is None else saved
    assert loaded.device == loaded.channels_["rr"].device == loaded.downstream_.device == expected
    np.testing.assert_allclose(loaded.predict_proba(beats), p, atol=1e-5)


@pytest.mark.parametrize("saved", [None, "cuda"])
def test_a_record_model_saved_without_device_or_on_cuda_loads_and_predicts_on_the_cpu(tmp_path, saved):
    rs = small_record_set()
    clf = RecordClassifier(channels=("rr", "cnn"), downstream="mlp", epochs=1, channel_epochs=1, cnn_epochs=1,
                           random_state=0, verbose=0).fit(rs)
    p = clf.predict_proba(rs)
    clf.save(tmp_path / "m")
    assert _set_saved_device(tmp_path / "m", saved) == 4  # records_model.json, rr, cnn, downstream
    loaded = RecordClassifier.load(tmp_path / "m")
    expected = "cpu" if saved is None else saved
    assert loaded.device == loaded.nets_["cnn"].device == loaded.nets_["rr"].device == expected
    np.testing.assert_allclose(loaded.predict_proba(rs), p, atol=1e-5)


def test_channel_network_passes_its_device_on(beats):
    net = ChannelNetwork("rr", epochs=1, random_state=0, device="auto")
    assert net.get_params()["device"] == "auto"
    assert net.fit(beats).estimator_.device == "auto"


def _hsickit(capsys, monkeypatch, *args):
    monkeypatch.delenv("HSICKIT_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["hsickit", *map(str, args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code, capsys.readouterr().err


@no_cuda
@pytest.mark.parametrize("verb", ["train", "finetune"])
def test_a_device_this_machine_lacks_is_refused_before_anything_is_read(capsys, monkeypatch, tmp_path, verb):
    records = write_synthetic_records(tmp_path / "records", 2, 20, random_state=0)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    run = ["--records", records, "--out", tmp_path / "run", "--device", "cuda"]
    code, err = _hsickit(capsys, monkeypatch, "ecg", verb, *([tmp_path / "no-such-run"] if verb == "finetune" else []), *run)
    assert code == 2 and "Traceback" not in err, err
    assert "error: --device cuda: this machine has no CUDA GPU" in err and "use --device cpu" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no run folder, nothing beside it


@no_cuda
@pytest.mark.parametrize("app", ["plants", "materials"])
def test_plants_and_materials_refuse_a_device_this_machine_lacks_before_reading(capsys, monkeypatch, tmp_path, app):
    table = tmp_path / "missing.csv"  # never opened: the device is checked first
    args = (["--taxonomy", table, "--table", table] if app == "plants" else [table]) + ["--out", tmp_path / "run", "--device", "cuda"]
    code, err = _hsickit(capsys, monkeypatch, app, "train", *args)
    assert code == 2 and "error: --device cuda: this machine has no CUDA GPU" in err, err
    assert not (tmp_path / "run").exists()


def test_a_device_name_torch_does_not_know_is_refused(capsys, monkeypatch, tmp_path):
    code, err = _hsickit(capsys, monkeypatch, "ecg", "train", "--records", tmp_path, "--out", tmp_path / "run",
                         "--device", "gpu")
    assert code == 2 and "error: --device gpu: not a torch device; use --device cpu" in err, err
    assert not (tmp_path / "run").exists()


def test_an_unfinished_training_resumes_on_another_device(tmp_path, capsys):
    """Where a network trains is not what it trains: a run interrupted on one device resumes on another
    (plants and materials leave the device out of their resume settings too)."""
    from hsickit.core.runs import resumable_training

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with resumable_training(ChannelNetwork("rr", device="cpu"), out, {"task": "beats"}, verbose=1):
            (tmp_path / ".run.training" / "checkpoints" / "rr").mkdir(parents=True)  # a network trained so far
            raise KeyboardInterrupt
    capsys.readouterr()
    with resumable_training(ChannelNetwork("rr", device="auto"), out, {"task": "beats"}, verbose=1):
        assert (tmp_path / ".run.training" / "checkpoints" / "rr").is_dir()
    assert "resuming the unfinished training" in capsys.readouterr().out


def _ludb_like(folder: Path, n: int = 6) -> Path:
    """A LUDB-style folder (12 leads at 500 Hz, labels in ludb.csv), as in test_ecg_records."""
    import wfdb

    from hsickit.apps.ecg.signal import resample
    from hsickit.apps.ecg.synthetic import synthetic_record

    folder.mkdir(parents=True)
    leads = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    rows = ["ID,Sex,Age,Rhythms,Extrasystolies"]
    for i in range(n):
        sig, _, _ = synthetic_record(10, rates={"S": 0.0, "V": 0.35 if i % 2 else 0.0, "F": 0.0}, random_state=i)
        x = resample(sig.T, 360, 500)
        wfdb.wrsamp(str(i + 1), fs=500, units=["mV"] * 12, sig_name=leads, fmt=["16"] * 12, write_dir=str(folder),
                    p_signal=np.stack([x[k % 2] * (1 + 0.1 * k) for k in range(12)], 1).astype(float))
        rows.append(f'{i + 1},F,50,Sinus rhythm,{"Ventricular extrasystole" if i % 2 else ""}')
    (folder / "ludb.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.parametrize("task", ["beats", "records"])
def test_train_and_finetune_pass_the_device_to_every_network(tmp_path, fitted_devices, task):
    from hsickit.apps.ecg import pipelines

    if task == "beats":
        records = write_synthetic_records(tmp_path / "records", 3, 30, random_state=0)
        kw = dict(channels="rr", channel_epochs=1, stacking="insample", validation_list="none", downstream="mlp")
    else:
        records = _ludb_like(tmp_path / "records")
        kw = dict(training="hsic")  # an MLP downstream: a network beside the four channels
    pipelines.train(records, tmp_path / "run", task=task, epochs=1, quiet=True, device="auto", **kw)
    assert fitted_devices and {d for _, d in fitted_devices} == {"auto"}, fitted_devices
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert model["device"] == "auto"
    fitted_devices.clear()
    pipelines.finetune(tmp_path / "run", records, tmp_path / "tuned", epochs=1, quiet=True, device="cpu")
    assert fitted_devices and {d for _, d in fitted_devices} == {"cpu"}, fitted_devices


def test_train_and_finetune_take_device_cpu_by_default():
    import typer

    from hsickit.apps.ecg.cli import app

    group = typer.main.get_command(app)
    for verb in ("train", "finetune"):
        (param,) = [p for p in group.commands[verb].params if p.name == "device"]
        assert param.opts == ["--device"] and param.default == "cpu", (verb, param.default)

"""verbose="auto": progress bars when a person watches (a terminal, a notebook), quiet otherwise."""
import io
import sys
import types

import numpy as np
import pytest
from sklearn.base import clone

from hsickit import HsickitError
from hsickit.core.estimators import DeepClassifier
from hsickit.core.progress import default_verbose, resolve_verbose


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_default_verbose_follows_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a log file
    assert default_verbose() == 0
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert default_verbose() == 1
    monkeypatch.setattr(sys, "stderr", None)  # pythonw, some services
    assert default_verbose() == 0


def test_a_notebook_counts_as_watched(monkeypatch):
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert default_verbose() == 1
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))  # IPython, no kernel
    assert default_verbose() == 0


def test_resolve_verbose():
    assert resolve_verbose(0) == 0 and resolve_verbose(2) == 2 and resolve_verbose(None) == 0
    with pytest.raises(HsickitError, match="verbose='loud'"):
        resolve_verbose("loud")


def test_estimators_show_progress_only_when_watched(monkeypatch):
    """The contract: __init__ stores "auto" (get_params, clone); fit decides from where it runs."""
    from hsickit.apps.ecg.channels import ChannelNetwork
    from hsickit.apps.ecg.fusion import MultiResolutionClassifier
    from hsickit.apps.ecg.records import RecordClassifier
    from hsickit.apps.materials.estimator import MaterialsRegressor
    from hsickit.apps.plants.classifier import TaxonomicClassifier

    assert DeepClassifier().get_params()["verbose"] == "auto" and clone(DeepClassifier()).verbose == "auto"
    for est in (MaterialsRegressor(), MultiResolutionClassifier(), RecordClassifier(), ChannelNetwork("rr")):
        assert est.get_params()["verbose"] == "auto", type(est).__name__
    assert TaxonomicClassifier(None).get_params()["verbose"] == "auto"
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    for stream, shown in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        DeepClassifier(epochs=2, random_state=0).fit(X, y)
        assert ("backprop training" in stream.getvalue()) == shown, stream.getvalue()

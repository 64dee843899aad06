"""Materials application: composition -> property with extremely randomised trees on small tables
and very deep residual MLPs (IRNet) on large ones (``model="auto"``, the default), or any one of them.

Python API: :class:`MaterialsRegressor`, :class:`MaterialsClassifier` (fit / predict with an
ensemble spread / score / evaluate / save / load; fine-tuning by ``set_params(warm_start=True,
frozen_blocks=k).fit(...)``), the composition featurisers
(:class:`WardAttributes`, :class:`ElementFraction`, ...) and the CLI ``hsickit materials``, whose
pipelines (train, evaluate, predict, finetune: plain arguments -> run folder) are
:mod:`hsickit.apps.materials.pipelines`.
"""
from hsickit.core.lazy import lazy_api

__all__ = ["MaterialsRegressor", "MaterialsClassifier", "load_estimator", "WardAttributes", "ElementFraction",
           "ElementProperty", "IonProperty", "Stoichiometry", "ValenceOrbital", "get_featurizer"]


def _api() -> dict:
    # imported on first use, so that `hsickit materials --help` (which imports this package) does not import torch
    from hsickit.apps.materials.estimator import MaterialsClassifier, MaterialsRegressor, load_estimator
    from hsickit.apps.materials.featurizers import (
        ElementFraction, ElementProperty, IonProperty, Stoichiometry, ValenceOrbital, WardAttributes, get_featurizer,
    )
    return locals()


__getattr__, __dir__ = lazy_api(__name__, __all__, _api)

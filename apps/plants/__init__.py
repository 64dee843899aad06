"""Hierarchical plant classification (species -> genus -> family ...) with the taxonomic loss.

Python API: :class:`TaxonomicClassifier` (fit / predict / predict_levels / predict_table /
score / evaluate / save / load; fine-tuning by ``set_params(warm_start=True,
frozen_blocks="encoder").fit(...)``), the tree-consistent prediction helpers and the
metrics. Readers for taxonomy tables and specimens live in :mod:`hsickit.datasets.plants`.
The command line is ``hsickit plants ...`` (:mod:`hsickit.apps.plants.cli`); the same pipelines in
Python, run folders and all: :mod:`hsickit.apps.plants.pipelines` (train, evaluate, predict, finetune, demo).
"""
from hsickit.core.lazy import lazy_api

__all__ = [
    "TaxonomicClassifier", "LOSSES", "level_probabilities", "prediction_table", "top_k", "back_off",
    "taxonomic_metrics", "hierarchical_prf", "backoff_metrics", "per_level_accuracy", "Taxonomy", "read_taxonomy",
]


def _api() -> dict:
    # imported on first use, so that `hsickit plants --help` (which imports this package) does not import torch
    from hsickit.apps.plants.classifier import LOSSES, TaxonomicClassifier
    from hsickit.apps.plants.hierarchy import back_off, level_probabilities, prediction_table, top_k
    from hsickit.apps.plants.metrics import backoff_metrics, hierarchical_prf, per_level_accuracy, taxonomic_metrics
    from hsickit.datasets.plants import Taxonomy, read_taxonomy
    return locals()


__getattr__, __dir__ = lazy_api(__name__, __all__, _api)

"""hsickit: HSIC-bottleneck and residual-MLP training for domain scientists.

The repository's top-level folders are installed as sub-packages of ``hsickit``:
``hsickit.core`` (HSIC, models, training, estimators, files, serialization, runs, plots, cli),
``hsickit.datasets`` (readers and splits) and ``hsickit.apps.{ecg,materials,plants}``.
"""
from hsickit.core.errors import HsickitError

__version__ = "0.1.0"
__all__ = ["HsickitError", "__version__"]

"""mbwrap-linear: an example mbwrap plugin, a least-squares linear dynamics model.

Installing this distribution registers :class:`LinearModel` under the name ``"linear"``
(entry-point group ``mbwrap.models``), so ``mbwrap.make_model("linear", ...)`` builds it.
"""

from mbwrap_linear.model import LinearModel, linear_features, ridge_regression

__version__ = "0.1.0"

__all__ = ["LinearModel", "__version__", "linear_features", "ridge_regression"]

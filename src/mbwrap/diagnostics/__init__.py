"""Model diagnostics: how well a world model predicts held-out real experience.

- :func:`open_loop_error`: the error of the model's predictions fed back for ``h`` steps
  under the real actions, per horizon ``h`` (and :func:`open_loop_predictions`, the
  rollouts themselves);
- :func:`one_step_nll`: the likelihood of real transitions, for models that define one
  (:class:`MixtureDensityModel`, :class:`GaussianEnsembleModel`);
- :func:`plot_open_loop`, :func:`plot_open_loop_error`: the pictures of both.

Evaluate on real data the model was not fitted on: a second buffer collected the same way.
"""

from mbwrap.diagnostics.likelihood import (
    GaussianEnsembleModel,
    MixtureDensityModel,
    one_step_nll,
    predictive_mixture,
)
from mbwrap.diagnostics.open_loop import (
    DEFAULT_NUM_STARTS,
    open_loop_error,
    open_loop_predictions,
)
from mbwrap.diagnostics.plot import plot_open_loop, plot_open_loop_error

__all__ = [
    "DEFAULT_NUM_STARTS",
    "GaussianEnsembleModel",
    "MixtureDensityModel",
    "one_step_nll",
    "open_loop_error",
    "open_loop_predictions",
    "plot_open_loop",
    "plot_open_loop_error",
    "predictive_mixture",
]

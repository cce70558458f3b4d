"""Settings of PILCO (Deisenroth & Rasmussen 2011, "PILCO: A Model-Based and
Data-Efficient Approach to Policy Search"), and the saturating costs of the tasks it
knows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.envs.cartpole_swingup import COST_WIDTH, POLE_LENGTH

_PILCO = "Deisenroth & Rasmussen 2011"


def _tip_weight(rows: list[list[float]], width: float) -> list[list[float]]:
    """``W = F^T F / width^2`` for the tip distance ``|F (x - target)|``."""
    dim = len(rows[0])
    return [[sum(r[i] * r[j] for r in rows) / width**2 for j in range(dim)] for i in range(dim)]


#: ``env id -> (target, W)`` of the saturating cost ``1 - exp(-(x - t)^T W (x - t) / 2)``
#: on observations: the distance of the pole's tip from upright over the cost width.
KNOWN_COSTS: dict[str, tuple[list[float], list[list[float]]]] = {
    # (x, x_dot, theta_dot, sin, cos): tip = (x + l sin, -l cos), upright at sin 0, cos -1;
    # width 0.25 m (PILCO's).
    "mbwrap/CartPoleSwingUp-v0": (
        [0.0, 0.0, 0.0, 0.0, -1.0],
        _tip_weight(
            [[1.0, 0.0, 0.0, POLE_LENGTH, 0.0], [0.0, 0.0, 0.0, 0.0, POLE_LENGTH]], COST_WIDTH
        ),
    ),
    # (cos, sin, theta_dot): tip = (sin, cos) of a unit pole, upright at cos 1; width 0.5
    # (half the pole's length, as PILCO's pendulum).
    "Pendulum-v1": (
        [1.0, 0.0, 0.0],
        _tip_weight([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 0.5),
    ),
}

#: ``env id -> [(sin_dim, cos_dim), ...]``: the observation dimensions that hold the sine
#: and cosine of an angle, which PILCO's GPs model as the angle (Deisenroth 2010,
#: Section 3.5: the GP inputs carry the sine and cosine, the state the angle).
KNOWN_ANGLE_PAIRS: dict[str, list[list[int]]] = {
    "mbwrap/CartPoleSwingUp-v0": [[3, 4]],
    "Pendulum-v1": [[1, 0]],
}


@dataclass(kw_only=True)
class PILCOConfig(AlgoConfig):
    """Settings of :class:`~mbwrap.algos.pilco.PILCO`."""

    algo_name: ClassVar[str] = "pilco"

    model_kwargs: dict[str, Any] = setting(
        {"max_points": 200},
        "constructor keywords of the 'gp' model",
        source=f"{_PILCO}, Section 2.1 (a GP per state dimension)",
    )
    horizon: int = setting(
        30, "time steps the state distribution is propagated and its cost summed", low=1
    )
    num_basis: int = setting(50, "centres of the RBF controller", low=1)
    policy_iterations: int = setting(
        50, "L-BFGS iterations on the controller after each real episode", low=1
    )
    restarts: int = setting(
        1,
        "controller optimisations after each real episode: from the current controller, "
        "and restarts - 1 from fresh ones (centres placed as centres says, new weights); the "
        "lowest predicted cost is kept",
        low=1,
    )
    restart_spread: float = setting(
        0.0,
        "0: restarts from fresh controllers; s > 0: each restart from the best controller "
        "so far with every parameter tensor moved by Gaussian noise of s times its own "
        "standard deviation (1 where its entries are all equal): a local multi-start on the "
        "same predicted cost",
        low=0.0,
    )
    propagation: str = setting(
        "moments",
        "how the state distribution is propagated for the controller's cost: 'moments', "
        "one Gaussian per start by moment matching (PILCO); 'particles', samples from "
        "each start pushed through the GPs' predictive distribution with noise fixed for "
        "each optimisation (reparameterised, as PIPPS and Deep PILCO), which can hold "
        "outcomes that split",
        choices=("moments", "particles"),
    )
    particles: int = setting(100, "samples per start Gaussian with propagation='particles'", low=1)
    cost_target: list[float] | None = setting(
        None,
        "the state the saturating cost is centred on; None: the env's (KNOWN_COSTS)",
        optional=True,
    )
    cost_weight: list[list[float]] | None = setting(
        None,
        "W of the saturating cost 1 - exp(-(x - t)^T W (x - t) / 2); None: the env's",
        source=f"{_PILCO}, eq. 25 (the saturating cost)",
        optional=True,
    )
    cost_scales: list[float] = setting(
        [1.0],
        "the saturating cost is the mean of the costs with W / s^2 for each s here: the "
        "cost width times each s (one scale: the cost as it is)",
        source="PILCO's released code: a scale mixture of saturating costs (cost.width a "
        "vector, the losses averaged)",
        low=1,
    )
    angle_pairs: list[list[int]] | None = setting(
        None,
        "[[sin_dim, cos_dim], ...] observation dimensions holding an angle's sine and "
        "cosine: the GPs model the angle's change and the propagated state holds the "
        "angle, as in PILCO; None: the env's (KNOWN_ANGLE_PAIRS, else none); []: none",
        source=f"{_PILCO}; Deisenroth 2010, Section 3.5",
        optional=True,
    )
    start_std: float = setting(
        0.1,
        "floor on the standard deviation of the start-state distribution, estimated "
        "from the real episodes' first observations",
        low=0.0,
    )
    start_batch: int = setting(
        1,
        "1: one Gaussian start distribution fitted to the episodes' first observations "
        "(PILCO's); k > 1: the k latest first observations, each the mean of its own "
        "start distribution (std start_std), propagated side by side and their costs "
        "averaged (for tasks whose start states are not near one Gaussian)",
        low=1,
    )
    start_means: list[list[float]] | None = setting(
        None,
        "the start-state distribution given by the task, as PILCO's scenarios give mu0 "
        "and S0: observations, each the mean of a Gaussian with std start_std over the "
        "model's states, propagated side by side and their costs averaged; None: "
        "estimated from the real episodes' first observations (start_batch)",
        source=f"{_PILCO}, Section 2.2 (p(x0) given)",
        optional=True,
    )
    mirror: list[float] | None = setting(
        None,
        "[D] signs (1 or -1) of a reflection of the observation under which the task is "
        "symmetric with the action's sign flipped (Pendulum-v1's (cos, sin, theta_dot): "
        "[1, -1, -1]): the controller is made odd under it (RBFController's mirror); "
        "None: no symmetry, as in PILCO",
        optional=True,
        kind="sequence",
    )
    centres: str = setting(
        "data",
        "where the controller's RBF centres start, before the first optimisation (and "
        "at each restart): 'data', on random real states; 'start', drawn from the "
        "start-state distribution, as PILCO's released code draws them from mu0 and S0",
        choices=("data", "start"),
    )
    buffer_size: int = setting(1_000_000, "real transitions kept", low=1)

    def validate(self) -> None:
        super().validate()
        if (self.cost_target is None) != (self.cost_weight is None):
            raise ValueError("cost_target, cost_weight: give both or neither")
        if not all(isinstance(x, (int, float)) and x > 0 for x in self.cost_scales):
            raise ValueError(
                f"cost_scales: expected positive numbers, got {self.cost_scales!r}"
            )
        if "angle_pairs" in self.model_kwargs:
            raise ValueError("model_kwargs: give the angles as the setting angle_pairs")

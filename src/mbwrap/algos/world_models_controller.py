"""World Models' controller C and its evolution by CMA-ES (Ha & Schmidhuber 2018, Sections
2.3 and 3.3): the linear map on ``[z, h]`` for a whole population at once, its fitness in
the dream and in the real env, and the CMA-ES loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.envs import DreamVecEnv
from mbwrap.spaces import action_bounds, unscale_action

#: ``params [P, n_params] -> fitness [P]`` (higher is better).
Fitness = Callable[[torch.Tensor], torch.Tensor]
#: ``(generation, fitness [P], sigma)``, called after each generation.
Recorder = Callable[[int, np.ndarray, float], None]


def controller_size(feature_dim: int, output_dim: int) -> int:
    """Parameters of the linear controller ``W [z, h] + b``: ``output_dim * (feature_dim +
    1)`` (World Models' CarRacing controller: ``3 * (32 + 256 + 1) = 867``)."""
    return output_dim * (feature_dim + 1)


def linear_controller(
    params: torch.Tensor, features: torch.Tensor, output_dim: int
) -> torch.Tensor:
    """Every candidate controller on its own rows: ``W_p f + b_p``.

    A flat parameter vector holds ``W`` (``[output_dim, F]``, row-major) then ``b``.

    :param params: ``[P, output_dim * (F + 1)]``, one controller per candidate.
    :param features: ``[P, R, F]``, ``R`` rows (rollouts) per candidate.
    :return: ``[P, R, output_dim]``.
    """
    p, _, f = features.shape
    weights = params[:, : output_dim * f].reshape(p, output_dim, f)
    bias = params[:, output_dim * f :]
    return torch.einsum("prf,pof->pro", features, weights) + bias[:, None]


def controller_actions(outputs: torch.Tensor, space: spaces.Space) -> torch.Tensor:
    """Controller outputs ``[..., output_dim]`` to env actions: argmax for ``Discrete``
    (``[...]``), ``tanh`` rescaled to the bounds for a ``Box`` (``[..., output_dim]``)."""
    if isinstance(space, spaces.Discrete):
        return outputs.argmax(-1) + int(space.start)
    return unscale_action(torch.tanh(outputs), *action_bounds(space, outputs.device))


@torch.no_grad()
def dream_returns(params: torch.Tensor, dream: DreamVecEnv) -> tuple[torch.Tensor, torch.Tensor]:
    """Dreamed returns of every candidate controller as one batch: the first episode of
    each env of ``dream`` (whose observations are the controller's features), ``R =
    dream.num_envs / P`` envs per candidate.

    :param params: ``[P, n_params]`` candidate controllers.
    :return: ``(returns [P, R], lengths [P, R])``.
    """
    p, n = params.shape[0], dream.num_envs
    features = dream.single_observation_space.shape[0]
    if n % p or params.shape[1] % (features + 1):
        raise ValueError(
            f"params: expected [P, output_dim * {features + 1}] with P dividing the dream's "
            f"{n} envs, got {list(params.shape)}"
        )
    output_dim = params.shape[1] // (features + 1)
    obs, _ = dream.reset()
    returns, lengths = np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    for _ in range(dream.horizon):
        x = torch.as_tensor(obs, device=params.device).reshape(p, n // p, -1)
        outputs = linear_controller(params, x, output_dim).reshape(n, -1)
        actions = controller_actions(outputs, dream.single_action_space)
        obs, reward, terminated, truncated, _ = dream.step(actions.cpu().numpy())
        returns += np.where(alive, reward, 0.0)
        lengths += alive
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    shape = (p, n // p)
    return torch.tensor(returns).float().reshape(shape), torch.tensor(lengths).float().reshape(
        shape
    )


def cma_es(
    x0: torch.Tensor,
    fitness: Fitness,
    *,
    population: int,
    sigma0: float,
    generations: int,
    seed: int,
    record: Recorder,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CMA-ES from ``x0: [n_params]``: ``generations`` of ``population`` candidates, all
    scored by one ``fitness`` call per generation.

    :return: the distribution's mean after the last generation (``[n_params]``, on
        ``x0``'s device) and ``generations``, ``fitness_max`` (the best candidate seen)
        and ``last_mean`` (the last generation's mean fitness).
    """
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise ValueError(f"generations: expected a positive int, got {generations!r}")
    try:
        import cma
    except ImportError as err:
        raise ImportError(
            "world-models evolves its controller with CMA-ES from the `cma` package; "
            "install it with `pip install cma` (or `pip install mbwrap[world-models]`)"
        ) from err
    es = cma.CMAEvolutionStrategy(
        x0.double().cpu().numpy(), sigma0, {"popsize": population, "seed": seed, "verbose": -9}
    )
    best, scores = -np.inf, np.zeros(0)
    for generation in range(generations):
        solutions = es.ask()
        params = torch.as_tensor(np.stack(solutions), dtype=torch.float32, device=x0.device)
        scores = fitness(params).double().cpu().numpy()
        es.tell(solutions, (-scores).tolist())  # CMA-ES minimises
        best = max(best, float(scores.max()))
        record(generation + 1, scores, float(es.sigma))
    mean = torch.as_tensor(es.result.xfavorite, dtype=torch.float32, device=x0.device)
    return mean, {"generations": generations, "fitness_max": best, "last_mean": scores.mean()}


def real_returns(
    algo: Any, params: torch.Tensor, venv: VecEnv, rollouts: int
) -> tuple[torch.Tensor, int]:
    """Real returns of ``rollouts`` episodes of each candidate, acting as
    ``algo.predict`` does (``algo.act_real``).

    The ``P x rollouts`` episodes are shared out over the envs of ``venv`` and stepped
    together; an episode ends when the env ends it.

    :param params: ``[P, n_params]``.
    :return: ``(returns [P, rollouts], real steps taken)``.
    """
    p, n = params.shape[0], venv.num_envs
    returns = np.zeros(p * rollouts)
    # The episode (candidate * rollouts + rollout) each env plays; -1 once none is left.
    queued = iter(range(p * rollouts))
    job = np.array([next(queued, -1) for _ in range(n)])
    obs = venv.reset()
    hidden = torch.zeros(2, n, algo.model.hidden_size, device=params.device)
    steps = 0
    while (job >= 0).any():
        candidate = torch.as_tensor(np.maximum(job, 0) // rollouts, device=params.device)
        actions, (h, c) = algo.act_real(params[candidate], obs, tuple(hidden), noise=False)
        obs, rewards, dones, _ = venv.step(actions.cpu().numpy())
        active = job >= 0
        returns[job[active]] += rewards[active]
        steps += int(active.sum())
        hidden = torch.stack([h, c])
        for i in np.flatnonzero(dones):
            hidden[:, i] = 0.0
            job[i] = next(queued, -1) if job[i] >= 0 else -1
    return torch.as_tensor(returns, dtype=torch.float32).reshape(p, rollouts), steps

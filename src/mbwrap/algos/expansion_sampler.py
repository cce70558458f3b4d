"""Replay samplers that put value-expansion targets into an SB3 agent's own update.

An SB3 off-policy agent's ``train()`` draws ``replay_buffer.sample(batch_size)`` and
regresses its critics on ``rewards + (1 - dones) * gamma * Q'(next_observations)``. The
samplers here stand in for that buffer: each draws real transitions, imagines ``H`` model
steps from every next state with the agent's target policy, and writes the expanded
targets into those fields, so the agent's own code (TD3's clipped double Q, SAC's entropy
term, its optimisers and target updates) trains on them unchanged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from mbwrap.algos.expansion_agent import (
    rollout_actions,
)
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.envs.imagination import ImaginationCore
from mbwrap.errors import NonFiniteModelWarning
from mbwrap.models import WorldModel
from mbwrap.spaces import action_bounds, scale_action, unscale_action


@dataclass
class Imagined:
    """``H`` imagined steps of ``N`` rollouts.

    :ivar obs: ``[H + 1, N, *obs_shape]``, the start states first.
    :ivar actions: ``[H, N, *act_shape]`` in the agent's ``[-1, 1]`` units.
    :ivar rewards: ``[H, N]``.
    :ivar continues: ``[H, N]`` float, 0 where the step terminated.
    :ivar nonfinite: ``[N]`` bool, rollouts where the model predicted NaN or infinity (the
        state then stays where it was and the reward is 0).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    continues: torch.Tensor
    nonfinite: torch.Tensor


@dataclass
class RealBatch:
    """Real transitions as SB3 sees them: actions in ``[-1, 1]``, floats ``[B]``."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ExpansionSampler:
    """Base of :class:`~mbwrap.algos.mve_sampler.MVESampler` and
    :class:`~mbwrap.algos.steve_sampler.STEVESampler`: draws real transitions and
    imagines from them; subclasses turn both into a batch (:meth:`_batch`).

    :param real: the real transitions (an :class:`~mbwrap.ReplayBuffer`).
    :param model: the world model; reward and termination come from the functions
        registered for its env id where there are some (see ``resolve_fns``).
    :param agent: the SB3 actor-critic whose ``replay_buffer`` this replaces.
    :param horizon: ``H``, model steps imagined after each real transition (0: the
        agent's own one-step targets).
    :param seed: seeds the real draws, the model's sampling and TD3's smoothing noise.
    """

    def __init__(
        self, real: ReplayBuffer, model: WorldModel, agent: Any, horizon: int, *, seed: int | None
    ) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 0:
            raise ValueError(f"horizon: expected an int >= 0, got {horizon!r}")
        self.real, self.model, self.agent, self.horizon = real, model, agent, int(horizon)
        self.device = torch.device(agent.device)
        self._bounds = action_bounds(real.action_space, self.device)
        self._model_bounds = action_bounds(real.action_space, model.device)
        seeds = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64) >> np.uint64(1)
        self._draws = make_generator(real.device, int(seeds[0]))
        self._noise = make_generator(self.device, int(seeds[1]))
        self._core_seed = int(seeds[2])
        self._cores: dict[int, ImaginationCore] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._batches = 0

    def size(self) -> int:
        """Real transitions stored (SB3 buffers report ``size()``)."""
        return len(self.real)

    # ------------------------------------------------------------------ drawing, imagining
    def _draw(self, n: int) -> RealBatch:
        batch = self.real.sample(n, generator=self._draws).to(self.device)
        return RealBatch(
            obs=batch.obs.float(),
            action=scale_action(batch.action.float(), *self._bounds),
            reward=batch.reward.float(),
            next_obs=batch.next_obs.float(),
            terminated=batch.terminated.float(),
        )

    def _core(self, n: int) -> ImaginationCore:
        if n not in self._cores:
            core = ImaginationCore(self.model, n, start_states=self.real)
            core.seed(self._core_seed + n)
            self._cores[n] = core
        return self._cores[n]

    @torch.no_grad()
    def imagine(self, start: torch.Tensor, blocks: torch.Tensor | None = None) -> Imagined:
        """``H`` model steps from ``start`` (``[N, *obs_shape]``) acting with the agent's
        :func:`~mbwrap.algos.expansion_agent.rollout_actions`, batched on the model's
        device with no host round trip; results on the agent's device.

        :param blocks: ``[M]`` members followed by ``M`` equal blocks of the rows (see
            :meth:`ImaginationCore.start_at`); ``None``: the model's propagation."""
        core = self._core(start.shape[0])
        obs = core.start_at(start.to(self.model.device), blocks=blocks)
        states, actions, rewards, continues = [obs], [], [], []
        nonfinite = torch.zeros(start.shape[0], dtype=torch.bool, device=self.model.device)
        for _ in range(self.horizon):
            scaled = rollout_actions(self.agent, obs.to(self.device), self._noise)
            scaled = scaled.to(self.model.device)
            # In the Box by construction (the policy's [-1, 1], mapped): no check, no sync.
            action = unscale_action(scaled.clamp(-1.0, 1.0), *self._model_bounds)
            obs, reward, terminated, bad = core.step(action, check=False)
            states.append(obs)
            actions.append(scaled)
            rewards.append(reward)
            continues.append((~terminated).float())
            nonfinite |= bad

        def stack(items: list[torch.Tensor], empty: tuple[int, ...]) -> torch.Tensor:
            out = torch.stack(items) if items else start.new_zeros(empty)
            return out.float().to(self.device)

        n = start.shape[0]
        return Imagined(
            obs=stack(states, ()),
            actions=stack(actions, (0, n, *self._bounds[0].shape)),
            rewards=stack(rewards, (0, n)),
            continues=stack(continues, (0, n)),
            nonfinite=nonfinite.to(self.device),
        )

    # ------------------------------------------------------------------ SB3's interface
    def sample(self, batch_size: int, env: object = None) -> ReplayBufferSamples:
        """A batch for the agent's ``train()``; ``env`` (SB3's ``VecNormalize``) is not
        supported and ignored."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        real = self._draw(int(batch_size))
        return self._batch(real)

    def _batch(self, real: RealBatch) -> ReplayBufferSamples:
        raise NotImplementedError

    # ------------------------------------------------------------------ metrics, state
    def _accumulate(self, **values: torch.Tensor) -> None:
        # Summed on the device; read once per log dump, not once per batch.
        for name, value in values.items():
            value = value.detach().float()
            self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._batches += 1

    def metrics(self) -> dict[str, float]:
        """Means per batch since the last call of what the batches held, then reset:
        ``model_reward_mean``, ``nonfinite_rollouts`` (rollouts whose model output was NaN or
        infinite: warned of with :class:`~mbwrap.errors.NonFiniteModelWarning`), and MVE's
        ``target_reward_mean`` or STEVE's ``horizon_weight_i``."""
        count = max(self._batches, 1)
        out: dict[str, float] = {}
        for name, value in self._sums.items():
            flat = value.reshape(-1).cpu()
            if flat.numel() == 1:
                out[name] = float(flat[0]) / count
            else:
                out.update({f"{name}_{i}": float(v) / count for i, v in enumerate(flat)})
        self._sums, self._batches = {}, 0
        if out.get("nonfinite_rollouts", 0.0) > 0:
            warnings.warn(
                f"{type(self.model).__name__} predicted NaN or infinite values in "
                f"{out['nonfinite_rollouts'] * count:.0f} imagined rollouts since the last log; "
                "those rollouts stood still from there (reward 0)",
                NonFiniteModelWarning,
                stacklevel=2,
            )
        return out

    def state_dict(self) -> dict[str, Any]:
        """The random states of the draws, the noise and each imagination batch size."""
        return {
            "draws": self._draws.get_state(),
            "noise": self._noise.get_state(),
            "cores": {
                str(n): {"model": c._gen.get_state(), "start": c._start_gen.get_state()}
                for n, c in self._cores.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self._draws.set_state(state["draws"].to(torch.uint8).cpu())
        self._noise.set_state(state["noise"].to(torch.uint8).cpu())
        for n, gens in state["cores"].items():
            core = self._core(int(n))
            core._gen.set_state(gens["model"].to(torch.uint8).cpu())
            core._start_gen.set_state(gens["start"].to(torch.uint8).cpu())

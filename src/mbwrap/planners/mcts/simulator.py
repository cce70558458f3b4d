"""Search models over real games: a black-box simulator, or batched tensor rules.

:class:`SimulatorSearch` steps a real env (a PettingZoo game through
:class:`~mbwrap.envs.aec.AECGame`, or a :class:`~mbwrap.envs.clonable.ClonableEnv`) by
snapshot and restore. :class:`BoardGameSearch` steps the tensor rules of
:mod:`mbwrap.envs.board_games` and asks a policy-value network for priors and values,
with no loop over the batch: AlphaZero's search model.

Both follow the two-player convention of :class:`~mbwrap.planners.mcts.RecurrentFnOutput`:
rewards are the mover's, values the next player's, the discount is ``-1`` between moves
and ``0`` after the game ended; ``invalid_actions`` come from the game's action mask at
every node.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mbwrap.envs.board_games import BoardGame, GameState
from mbwrap.envs.clonable import ClonableEnv
from mbwrap.envs.observations import stack_observations
from mbwrap.envs.snapshot import Snapshot
from mbwrap.planners.mcts.types import Embedding, RecurrentFnOutput, RootFnOutput

#: ``observations [B, ...] -> values [B]`` (for the player to move).
ObsValueFn = Callable[[Any], torch.Tensor]
#: ``observations [B, ...] -> (prior logits [B, A], values [B])``.
PolicyValueFn = Callable[[Any], tuple[torch.Tensor, torch.Tensor]]


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


class SimulatorSearch:
    """A :class:`SearchModel` over a real simulator, stepped by snapshot and restore.

    A black-box simulator steps one state at a time on the host, so ``recurrent_fn``
    loops over the batch in Python (restore the parent's snapshot in a scratch copy of
    the env, play the action, snapshot the child): the search's tensors stay batched,
    but each simulation costs ``B`` simulator steps. The embedding is ``(index [B] long,
    done [B] bool)``, the index into the snapshots this search has made; :meth:`root`
    starts a new search and forgets them.

    A new node's value is, in this order: ``policy_value_fn`` or ``value_fn`` on the
    observations of all new nodes at once, else the mean return of ``num_rollouts``
    uniformly random playouts (to the end of the game, or ``max_rollout_steps`` moves;
    Abramson 1990, the Monte-Carlo evaluation of UCT). The prior is the policy's, or
    uniform.

    Two-player games (:class:`AECGame`): the discount is ``-1`` between moves, ``0``
    after the end. Single-agent envs (:class:`ClonableEnv`): the discount is ``gamma``,
    ``0`` after a termination or truncation (the search cannot look past either).

    :param env: the game or env to search; roots are its current state (or snapshots
        given to :meth:`root_from_snapshots`). A deep copy of it is the scratch simulator.
    :param num_rollouts: random playouts per new node when there is no value function.
    :param max_rollout_steps: longest playout (``None``: to the end; required for
        single-agent envs, which may never end).
    :param gamma: single-agent envs only, per-step discount.
    :param seed: seeds the playouts' random moves.
    """

    def __init__(
        self,
        env: Any,
        *,
        num_rollouts: int = 1,
        max_rollout_steps: int | None = None,
        value_fn: ObsValueFn | None = None,
        policy_value_fn: PolicyValueFn | None = None,
        gamma: float = 0.997,
        seed: int | None = None,
    ) -> None:
        # An AECGame is recognised by what it does, so that this module needs no PettingZoo.
        needs = ("snapshot", "restore", "legal_actions", "current_observation", "to_play")
        self.two_player = not isinstance(env, ClonableEnv)
        if not all(hasattr(type(env), name) for name in needs) or (
            self.two_player and not hasattr(type(env), "play")
        ):
            raise TypeError(
                f"env: expected an mbwrap AECGame or ClonableEnv (snapshot/restore), got "
                f"{type(env).__name__}"
            )
        if value_fn is not None and policy_value_fn is not None:
            raise ValueError("value_fn, policy_value_fn: pass at most one of them")
        if not self.two_player and env.num_actions is None:
            raise TypeError(
                f"env.action_space: tree search needs Discrete actions, got {env.action_space!r}"
            )
        self.num_rollouts = _positive_int(num_rollouts, "num_rollouts")
        if max_rollout_steps is not None:
            max_rollout_steps = _positive_int(max_rollout_steps, "max_rollout_steps")
        elif not self.two_player and value_fn is None and policy_value_fn is None:
            raise ValueError(
                "max_rollout_steps: expected an int >= 1 for a single-agent env (its playouts "
                "may never end), got None"
            )
        self.env = env
        self.num_actions = int(env.num_actions)
        # The search plays indices 0..n-1; a single-agent env takes index + start.
        self.action_start = 0 if self.two_player else int(env.action_space.start)
        self.max_rollout_steps = max_rollout_steps
        self.value_fn = value_fn
        self.policy_value_fn = policy_value_fn
        self.gamma = float(gamma)
        self.device = torch.device("cpu")
        self.rng = np.random.default_rng(seed)
        self._scratch = copy.deepcopy(env)
        self._snapshots: list[Snapshot] = []

    # ------------------------------------------------------------------ stepping the scratch
    def _legal(self) -> np.ndarray:
        return self._scratch.legal_actions()

    def _play(self, action: int) -> tuple[float, bool, Any]:
        """``(reward of the mover, ended, observation after)`` in the scratch env, for
        the action of index ``action``."""
        if self.two_player:
            reward, over = self._scratch.play(int(action))
            return reward, over, self._scratch.current_observation()
        obs, reward, terminated, truncated, _ = self._scratch.step(
            int(action) + self.action_start
        )
        return float(reward), bool(terminated or truncated), obs

    def _rollout_value(self, snapshot: Snapshot) -> float:
        """Mean return of random playouts from ``snapshot``, for the player to move there."""
        total = 0.0
        for _ in range(self.num_rollouts):
            self._scratch.restore(snapshot)
            me = self._scratch.to_play
            sign_scale, steps, ended = 1.0, 0, False
            while not ended and (self.max_rollout_steps is None or steps < self.max_rollout_steps):
                mover = self._scratch.to_play
                legal = np.flatnonzero(self._legal())
                if legal.size == 0:
                    break
                reward, ended, _ = self._play(int(self.rng.choice(legal)))
                if self.two_player:
                    total += reward if mover == me else -reward
                else:
                    total += sign_scale * reward
                    sign_scale *= self.gamma
                steps += 1
        return total / self.num_rollouts

    def _batch_obs(self, observations: list[Any]) -> Any:
        if self.two_player:
            return {
                "observation": np.stack([o["observation"] for o in observations]),
                "action_mask": np.stack([o["action_mask"] for o in observations]),
            }
        return np.stack([np.asarray(o) for o in observations])

    def _evaluate(
        self, observations: list[Any], snapshots: list[Snapshot]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior logits ``[n, A]`` and values ``[n]`` of new, unfinished nodes."""
        n = len(snapshots)
        logits = torch.zeros(n, self.num_actions)
        if n == 0:
            return logits, torch.zeros(0)
        if self.policy_value_fn is not None:
            prior, value = self.policy_value_fn(self._batch_obs(observations))
            return prior.detach().float().cpu().reshape(n, -1), value.detach().float().cpu()
        if self.value_fn is not None:
            value = self.value_fn(self._batch_obs(observations))
            return logits, value.detach().float().cpu().reshape(n)
        return logits, torch.tensor([self._rollout_value(s) for s in snapshots])

    # ------------------------------------------------------------------ SearchModel
    def root(self, obs: Any = None) -> RootFnOutput:
        """One root: the env's current state (a black-box simulator cannot be set from an
        observation, so ``obs`` is not read)."""
        return self.root_from_snapshots([self.env.snapshot()])

    def root_from_snapshots(self, snapshots: list[Snapshot]) -> RootFnOutput:
        """``B`` roots at the given snapshots of the env; a new search begins."""
        if not snapshots:
            raise ValueError("snapshots: expected at least one snapshot, got none")
        self._snapshots = list(snapshots)
        observations, legal = [], []
        for snapshot in self._snapshots:
            self._scratch.restore(snapshot)
            observations.append(self._scratch.current_observation())
            legal.append(self._legal())
        logits, value = self._evaluate(observations, self._snapshots)
        index = torch.arange(len(self._snapshots))
        invalid = ~torch.as_tensor(np.stack(legal))
        done = torch.zeros(len(self._snapshots), dtype=torch.bool)
        return RootFnOutput(logits, value, (index, done), invalid)

    def recurrent_fn(
        self, embedding: Embedding, action: torch.Tensor
    ) -> tuple[RecurrentFnOutput, Embedding]:
        """Step every node's snapshot by ``action`` (``[B]``), one by one on the host."""
        index, done = embedding
        batch = int(action.shape[0])
        reward = torch.zeros(batch)
        ended = done.clone().cpu()
        invalid = torch.ones(batch, self.num_actions, dtype=torch.bool)
        new_index = index.clone().cpu()
        fresh: list[int] = []
        fresh_obs: list[Any] = []
        for b in range(batch):
            if bool(done[b]):
                continue
            self._scratch.restore(self._snapshots[int(index[b])])
            r, over, obs = self._play(int(action[b]))
            reward[b] = r
            self._snapshots.append(self._scratch.snapshot())
            new_index[b] = len(self._snapshots) - 1
            if over:
                ended[b] = True
                continue
            invalid[b] = torch.as_tensor(~self._legal())
            fresh.append(b)
            fresh_obs.append(obs)
        logits = torch.zeros(batch, self.num_actions)
        value = torch.zeros(batch)
        if fresh:
            fresh_logits, fresh_value = self._evaluate(
                fresh_obs, [self._snapshots[int(new_index[b])] for b in fresh]
            )
            logits[fresh] = fresh_logits
            value[fresh] = fresh_value
        step_discount = -1.0 if self.two_player else self.gamma
        out = RecurrentFnOutput(
            reward=reward.to(action.device),
            discount=torch.where(ended, 0.0, step_discount).to(action.device),
            prior_logits=logits.to(action.device),
            value=value.to(action.device),
            invalid_actions=invalid.to(action.device),
        )
        return out, (new_index.to(action.device), ended.to(action.device))


class BoardGameSearch:
    """A :class:`SearchModel` over tensor board rules and a policy-value function.

    Every step is a batched tensor operation on the rules' device (no loop over the
    batch, no host read): the embedding is the :class:`GameState` as a tuple ``(board
    [B, cells], to_play [B], terminal [B])``. New nodes are valued by
    ``policy_value_fn`` on PettingZoo's observation of the player to move (``0`` at the
    end of a game, with discount ``0``).

    :param game: the rules (:class:`~mbwrap.envs.board_games.TicTacToe`, ...).
    :param policy_value_fn: ``observation [B, H, W, 2] int8 -> (logits [B, A], value [B])``,
        e.g. a :class:`~mbwrap.networks.PolicyValueNet`.
    :param device: where states live.
    """

    def __init__(
        self,
        game: BoardGame,
        policy_value_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        *,
        device: torch.device | str = "cpu",
    ) -> None:
        if not isinstance(game, BoardGame):
            raise TypeError(f"game: expected an mbwrap BoardGame, got {type(game).__name__}")
        self.game = game
        self.policy_value_fn = policy_value_fn
        self.num_actions = game.num_actions
        self.device = torch.device(device)

    def _evaluate(self, state: GameState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        planes, _ = self.game.observe(state)
        logits, value = self.policy_value_fn(planes)
        invalid = ~self.game.legal_actions(state)
        value = value.reshape(-1).float().masked_fill(state.terminal, 0.0)
        return logits.float(), value, invalid

    def root_from_state(self, state: GameState) -> RootFnOutput:
        """Roots at ``B`` game states."""
        logits, value, invalid = self._evaluate(state)
        return RootFnOutput(logits, value, tuple(state), invalid)

    def root(self, obs: Any) -> RootFnOutput:
        """Roots from PettingZoo observations of the players to move (a dict, a batched
        dict or a list of dicts; see :func:`~mbwrap.envs.aec.stack_observations`)."""
        planes, _, _ = stack_observations(
            obs, obs_shape=self.game.obs_shape, num_actions=self.num_actions, name="obs"
        )
        return self.root_from_state(self.game.state_from_observation(planes, device=self.device))

    def recurrent_fn(
        self, embedding: Embedding, action: torch.Tensor
    ) -> tuple[RecurrentFnOutput, Embedding]:
        state = GameState(*embedding)
        next_state, reward, terminal = self.game.step(state, action)
        logits, value, invalid = self._evaluate(next_state)
        out = RecurrentFnOutput(
            reward=reward,
            discount=torch.where(terminal, 0.0, -1.0),
            prior_logits=logits,
            value=value,
            invalid_actions=invalid,
        )
        return out, tuple(next_state)

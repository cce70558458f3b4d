"""A batch of games of one turn-based PettingZoo game, played side by side for self-play.

What a self-play algorithm steps as a model-free one steps a ``VecEnv``: every call of
:meth:`GameBatch.play` makes one move in each game, records the position before it (the
observation of the player to move, the search policy, the player) and, for the games
that ended, hands back every position with its outcome target and starts a new game in
their place. Games with tensor rules (:mod:`mbwrap.envs.board_games`) are one batched
:class:`~mbwrap.envs.board_games.GameState` on the device; other games are copies of an
:class:`~mbwrap.envs.aec.AECGame` stepped on the host.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch

from mbwrap.envs.aec import AECGame
from mbwrap.envs.board_games import BoardGame, GameState


def outcome_targets(
    players: torch.Tensor, final_mover: torch.Tensor, final_reward: torch.Tensor
) -> torch.Tensor:
    """The value target ``z`` of every position of finished games.

    :param players: ``[N, T]`` the player to move at each position.
    :param final_mover: ``[N]`` who made the last move; :param final_reward: ``[N]`` its
        reward (+1 win, 0 draw; a two-player zero-sum game).
    :return: ``[N, T]`` ``+final_reward`` where the final mover was to move, else minus it.
    """
    same = players == final_mover[:, None]
    return torch.where(same, final_reward[:, None], -final_reward[:, None])


class FinishedGames(NamedTuple):
    """The games that ended at one move, ``M`` positions in all.

    :param obs: ``[M, *obs_shape]`` int8, the observations of the players to move.
    :param policy: ``[M, A]`` the search policies played from.
    :param outcome: ``[M]`` the outcome for the player to move (+1, 0, -1).
    :param first_player_outcomes: one per game, its outcome for the first player.
    :param lengths: one per game, its moves.
    """

    obs: torch.Tensor
    policy: torch.Tensor
    outcome: torch.Tensor
    first_player_outcomes: list[float]
    lengths: list[int]


class GameBatch:
    """``num_envs`` games of ``game`` played side by side (``num_envs`` is what SB3
    callbacks read from a training env).

    :param game: the game (its observations are dicts with ``observation`` and
        ``action_mask``).
    :param num_envs: games at once.
    :param rules: the game's tensor rules, or ``None`` to step copies of ``game``.
    :param device: where positions (and, with rules, the games) live.
    :param seed: seeds the copies' resets (game ``i`` gets ``seed + i``).
    :raises ValueError: naming ``env`` when observations have no ``action_mask``.
    """

    def __init__(
        self,
        game: AECGame,
        num_envs: int,
        *,
        rules: BoardGame | None = None,
        device: torch.device | str = "cpu",
        seed: int | None = None,
    ) -> None:
        self.game = game
        self.num_envs = int(num_envs)
        self.rules = rules
        self.device = torch.device(device)
        #: One player's board planes, and the moves.
        self.observation_space, self.action_space = self.spaces(game).values()
        self.obs_shape = tuple(int(d) for d in self.observation_space.shape)
        self.num_actions = game.num_actions
        self.reset(seed)

    @staticmethod
    def spaces(game: AECGame) -> dict[str, gym.Space]:
        """``{"observation_space": one player's planes, "action_space": the moves}``.

        :raises ValueError: naming ``env`` when observations have no ``action_mask``.
        """
        agent = game.possible_agents[0]
        space = game.observation_space(agent)
        if not isinstance(space, gym.spaces.Dict) or "action_mask" not in space.spaces:
            raise ValueError(
                f"env: expected observations with an 'action_mask' (a Dict space), got "
                f"{space!r}"
            )
        return {"observation_space": space["observation"],
                "action_space": game.action_space(agent)}

    def reset(self, seed: int | None = None) -> None:
        """Start new games in every slot, forgetting those in progress."""
        n = self.num_envs
        if self.rules is not None:
            horizon = self.rules.num_cells
            self.state = self.rules.initial_state(n, self.device)
            self._move = torch.zeros(n, dtype=torch.long, device=self.device)
            self._obs = torch.zeros((n, horizon, *self.obs_shape), dtype=torch.int8,
                                    device=self.device)
            self._policy = torch.zeros(n, horizon, self.num_actions, device=self.device)
            self._player = torch.zeros(n, horizon, dtype=torch.long, device=self.device)
            return
        self.games: list[AECGame] = []
        for i in range(n):
            copied = copy.deepcopy(self.game)
            copied.reset(seed=None if seed is None else seed + i)
            self.games.append(copied)
        self._history: list[list[tuple[np.ndarray, torch.Tensor, int]]] = [[] for _ in range(n)]

    @property
    def moves(self) -> torch.Tensor:
        """``[num_envs]`` long, moves played so far in each game in progress."""
        if self.rules is not None:
            return self._move
        return torch.tensor([len(h) for h in self._history], device=self.device)

    def play(
        self, actions: torch.Tensor, policies: torch.Tensor
    ) -> tuple[torch.Tensor, FinishedGames | None]:
        """One move in every game.

        :param actions: ``[num_envs]`` long, legal moves of the players to move.
        :param policies: ``[num_envs, A]`` the search policies they come from.
        :return: ``(done [num_envs] bool, the finished games or None)``; finished games
            are replaced by new ones.
        """
        if self.rules is not None:
            return self._play_rules(actions, policies)
        return self._play_copies(actions.tolist(), policies.cpu())

    def _play_rules(
        self, actions: torch.Tensor, policies: torch.Tensor
    ) -> tuple[torch.Tensor, FinishedGames | None]:
        assert self.rules is not None
        rules, state, move = self.rules, self.state, self._move
        rows = torch.arange(self.num_envs, device=self.device)
        self._obs[rows, move] = rules.observe(state)[0]
        self._policy[rows, move] = policies.to(self.device)
        self._player[rows, move] = state.to_play
        next_state, reward, done = rules.step(state, actions)
        finished = None
        if bool(done.any()):
            ended = torch.nonzero(done).flatten()
            z = outcome_targets(self._player[ended], state.to_play[ended], reward[ended])
            length = move[ended] + 1
            valid = torch.arange(rules.num_cells, device=self.device)[None] < length[:, None]
            first = torch.where(state.to_play[ended] == 0, reward[ended], -reward[ended])
            finished = FinishedGames(self._obs[ended][valid], self._policy[ended][valid],
                                     z[valid], first.tolist(), length.tolist())
            fresh = rules.initial_state(self.num_envs, self.device)
            next_state = GameState(*(torch.where(done.view(-1, *[1] * (a.dim() - 1)), b, a)
                                     for a, b in zip(next_state, fresh, strict=True)))
        self.state = next_state
        self._move = torch.where(done, 0, move + 1)
        return done, finished

    def _play_copies(
        self, actions: list[int], policies: torch.Tensor
    ) -> tuple[torch.Tensor, FinishedGames | None]:
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        outcomes, lengths, done = [], [], []
        for i, game in enumerate(self.games):
            planes = np.asarray(game.current_observation()["observation"]).astype(np.int8)
            self._history[i].append((planes, policies[i], game.to_play))
            mover = game.to_play
            reward, over = game.play(int(actions[i]))
            done.append(over)
            if not over:
                continue
            history = self._history[i]
            players = torch.tensor([h[2] for h in history])[None]
            z = outcome_targets(players, torch.tensor([mover]), torch.tensor([reward]))
            parts.append((torch.as_tensor(np.stack([h[0] for h in history])),
                          torch.stack([h[1] for h in history]), z.flatten()))
            outcomes.append(reward if mover == 0 else -reward)
            lengths.append(len(history))
            self._history[i] = []
            game.reset()
        finished = None
        if parts:
            obs, policy, outcome = (torch.cat(column) for column in zip(*parts, strict=True))
            finished = FinishedGames(obs, policy, outcome, outcomes, lengths)
        return torch.tensor(done, device=self.device), finished

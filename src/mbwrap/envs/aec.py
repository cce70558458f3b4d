"""Turn-based PettingZoo (AEC) games as simulators: who moves, what is legal, snapshots.

:class:`AECGame` wraps a PettingZoo classic game (``tictactoe_v3``, ``connect_four_v3``,
``chess_v6``) and is itself a PettingZoo AEC env (it passes ``pettingzoo.test.api_test``),
adding what a tree search over the real game needs: the player to move, the legal
actions from the observation's ``action_mask``, a move that reports the mover's reward,
and :meth:`~AECGame.snapshot` / :meth:`~AECGame.restore` of the whole game state
(the env and every wrapper around it, see :mod:`mbwrap.envs.snapshot`).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from pettingzoo import AECEnv
from pettingzoo.utils.wrappers import BaseWrapper

from mbwrap.envs.observations import action_mask, stack_observations
from mbwrap.envs.snapshot import Snapshot, restore_env, snapshot_env

__all__ = [
    "CLASSIC_GAMES",
    "AECGame",
    "action_mask",
    "game_name",
    "make_classic_env",
    "stack_observations",
]

#: PettingZoo classic games known to work with :class:`AECGame` (module names).
CLASSIC_GAMES = ("tictactoe_v3", "connect_four_v3", "chess_v6")


def make_classic_env(name: str, **kwargs: Any) -> AECEnv:
    """``pettingzoo.classic.<name>.env(**kwargs)``, with a clear error for unknown names.

    :raises ValueError: naming ``env`` when ``name`` is no PettingZoo classic game.
    :raises ImportError: when the game's optional dependencies are missing.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"env: expected a PettingZoo classic game such as 'tictactoe_v3', got "
                         f"{name!r}")
    try:
        module = importlib.import_module(f"pettingzoo.classic.{name}")
    except ModuleNotFoundError as err:
        if err.name and err.name.endswith(name):
            raise ValueError(
                f"env: expected a PettingZoo classic game such as {', '.join(CLASSIC_GAMES)}, "
                f"got {name!r}"
            ) from err
        raise
    return module.env(**kwargs)


def game_name(env: AECEnv) -> str:
    """The PettingZoo name of a game (``metadata["name"]``, e.g. ``"tictactoe_v3"``)."""
    return str(env.unwrapped.metadata.get("name", type(env.unwrapped).__name__))


class AECGame(BaseWrapper):
    """A turn-based PettingZoo game with snapshots, still a PettingZoo AEC env.

    :param env: a PettingZoo AEC env (with an ``action_mask`` in its observations) or a
        classic game's name (``"tictactoe_v3"``), built with ``env_kwargs``.
    """

    def __init__(self, env: AECEnv | str, **env_kwargs: Any) -> None:
        if isinstance(env, str):
            env = make_classic_env(env, **env_kwargs)
        elif env_kwargs:
            raise ValueError("env_kwargs: only used when env is a game name")
        if not isinstance(env, AECEnv):
            raise TypeError(
                f"env: expected a PettingZoo AECEnv or a classic game name, got "
                f"{type(env).__name__}"
            )
        super().__init__(env)
        self.name = game_name(env)
        first = env.possible_agents[0]
        self.num_actions = int(env.action_space(first).n)

    # ------------------------------------------------------------------ game view
    @property
    def to_play(self) -> int:
        """Index in ``possible_agents`` of the agent to move (``agent_selection``)."""
        return self.possible_agents.index(self.agent_selection)

    @property
    def game_over(self) -> bool:
        """Whether the game has ended (every agent terminated or truncated)."""
        return all(self.terminations.get(a, True) or self.truncations.get(a, False)
                   for a in self.possible_agents)

    def current_observation(self) -> dict[str, np.ndarray]:
        """The observation of the agent to move."""
        return self.observe(self.agent_selection)

    def legal_actions(self) -> np.ndarray:
        """``[A]`` bool, the moves of the agent to move (none once the game is over)."""
        if self.game_over:
            return np.zeros(self.num_actions, dtype=bool)
        return action_mask(self.current_observation(), name="env.observe()")

    def play(self, action: int) -> tuple[float, bool]:
        """Play a legal move for the agent to move.

        Unlike :meth:`step`, which follows PettingZoo (an illegal move ends the game with
        a penalty), an illegal move here is a caller's error.

        :return: ``(reward of the mover, game over)``.
        :raises ValueError: naming ``action`` when it is illegal, or the game is over.
        """
        legal = self.legal_actions()
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise ValueError(f"action: expected an int move, got {action!r}")
        if not 0 <= int(action) < self.num_actions or not legal[int(action)]:
            raise ValueError(
                f"action: expected a legal move of {self.agent_selection} in "
                f"{np.flatnonzero(legal).tolist()}, got {action!r}"
                + (" (the game is over)" if self.game_over else "")
            )
        mover = self.agent_selection
        self.step(int(action))
        return float(self.rewards.get(mover, 0.0)), self.game_over

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> Snapshot:
        """The full game state (env and wrappers), to give to :meth:`restore`."""
        return snapshot_env(self.env)

    def restore(self, snapshot: Snapshot) -> None:
        """Put the game back where :meth:`snapshot` recorded it (any number of times)."""
        restore_env(self.env, snapshot)

    def __str__(self) -> str:
        return f"AECGame<{self.env}>"


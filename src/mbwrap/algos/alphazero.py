"""AlphaZero (Silver et al. 2018, "A general reinforcement learning algorithm that
masters chess, shogi, and Go through self-play"; the search and network of Silver et al.
2017, "Mastering the game of Go without human knowledge") on PettingZoo board games.

Self-play runs ``num_parallel_games`` games at once (a :class:`~mbwrap.envs.game_batch.
GameBatch`): at every move each game searches from its position with pUCT over the
game's rules and the policy-value network (one batched search for all games), plays a
move drawn from the root visit counts for the first ``temperature_moves`` moves and the
most visited move after, and keeps the subtree below the move for its next search.
Finished games give their positions, their search policies and their outcome (for the
player to move) to a window of recent positions; the network is trained on it to
minimise ``(z - v)^2 - pi^T log p`` plus L2 regularisation.

Games with tensor rules (:mod:`mbwrap.envs.board_games`: tic-tac-toe, connect four)
search on them batched on the device. Other PettingZoo games (chess) search the real
game by snapshot and restore (:class:`~mbwrap.planners.mcts.simulator.SimulatorSearch`),
one position at a time on the host, without subtree reuse.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pettingzoo import AECEnv

from mbwrap.algos.alphazero_config import AlphaZeroConfig
from mbwrap.algos.presets import PRESETS
from mbwrap.algos.self_play import SelfPlayAlgorithm
from mbwrap.buffers.self_play import SelfPlayBuffer
from mbwrap.device import make_generator
from mbwrap.distributed.self_play import CopyMaker
from mbwrap.envs.aec import AECGame, stack_observations
from mbwrap.envs.board_games import BoardGame, apply_symmetry, board_game
from mbwrap.envs.game_batch import GameBatch, outcome_targets
from mbwrap.networks import PolicyValueNet
from mbwrap.planners.mcts import muzero_policy, reuse_subtree
from mbwrap.planners.mcts.simulator import BoardGameSearch, SimulatorSearch
from mbwrap.planners.mcts.tree import Tree
from mbwrap.space_support import SpaceSupport

__all__ = [
    "AlphaZero",
    "AlphaZeroConfig",
    "alphazero_loss",
    "dirichlet_alpha_for",
    "outcome_targets",
]


def dirichlet_alpha_for(avg_legal_moves: float) -> float:
    """AlphaZero's root-noise concentration, ``10 / average legal moves``: 0.3 for chess
    (about 35 moves), 0.15 for shogi, 0.03 for Go (Silver et al. 2018, Methods)."""
    return 10.0 / max(float(avg_legal_moves), 1.0)


def alphazero_loss(
    logits: torch.Tensor, value: torch.Tensor, policy: torch.Tensor, outcome: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(z - v)^2 - pi^T log p`` (Silver et al. 2017, eq. 1; L2 is the optimiser's).

    :param logits: ``[B, A]``; :param value: ``[B]``; :param policy: ``[B, A]`` search
        policies; :param outcome: ``[B]``.
    :return: ``(total, value loss, policy loss)``, batch means.
    """
    value_loss = (outcome - value).pow(2).mean()
    policy_loss = -(policy * F.log_softmax(logits, -1)).sum(-1).mean()
    return value_loss + policy_loss, value_loss, policy_loss


class AlphaZero(SelfPlayAlgorithm):
    """AlphaZero by batched self-play on a PettingZoo two-player board game.

    ``learn(total_timesteps)`` counts moves of self-play (every game's move is one step);
    SB3 callbacks, ``progress_bar`` and SB3's logger work as in SB3, and callbacks see the
    :class:`~mbwrap.envs.game_batch.GameBatch` as ``training_env``. ``predict`` takes
    PettingZoo's observation of the player to move (a dict with ``observation`` and
    ``action_mask``, or a list / batch of them) and returns legal moves.

    A checkpoint holds the network, the optimizer, the window of positions, the
    generators and the counters (the legal-move statistics of the root-noise rule too).
    Games in progress are not saved: a loaded run starts new games, so two runs continued
    from one checkpoint are identical.

    :param env: a PettingZoo AEC game (``tictactoe_v3.env()``), an
        :class:`~mbwrap.envs.aec.AECGame`, or a classic game's name.

    Settings: :class:`AlphaZeroConfig`; those left ``None`` come from the game's preset
    (:data:`~mbwrap.algos.presets.PRESETS`), else from the paper.
    """

    registry_name = "alphazero"
    space_support = SpaceSupport(
        observations=("Box", "image"), actions=("Discrete",),
        observation_note="a PettingZoo AEC game: the board planes of its observations",
    )
    Config = AlphaZeroConfig
    saved_state = ("network", "optimizer", "generator", "rng", "games_played",
                   "_legal_moves_seen", "_positions_seen")
    saved_buffers = ("buffer",)
    config: AlphaZeroConfig

    def __init__(
        self,
        env: AECEnv | AECGame | str | None,
        *args: Any,
        config: AlphaZeroConfig | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        **kwargs: Any,
    ) -> None:
        if env is None:
            raise ValueError(
                "env: expected a PettingZoo AEC game, an AECGame or a game name such as "
                "'tictactoe_v3', got None"
            )
        del observation_space, action_space  # the game's are used
        self.game = env if isinstance(env, AECGame) else AECGame(env)
        super().__init__(args, kwargs, config=config, **GameBatch.spaces(self.game))
        cfg, seed = self.config, self.config.seed
        # Board-size settings left None take the game's preset (else the paper's values) and
        # are written back, so that the config and checkpoints name what was built.
        preset = PRESETS.get(("alphazero", self.game.name), {})
        for name, value in cfg.game_settings(preset).items():
            setattr(cfg, name, value)
        self.rules: BoardGame | None = board_game(self.game.name) if cfg.tensor_rules else None
        self.env = GameBatch(self.game, cfg.num_parallel_games, rules=self.rules,
                             device=self.device, seed=seed)
        self.num_actions = self.game.num_actions
        self.obs_shape = self.env.obs_shape
        self.network = PolicyValueNet(self.obs_shape, self.num_actions,
                                      **cfg.network_kwargs).to(self.device)
        self.buffer = SelfPlayBuffer(cfg.buffer_size, self.obs_shape, self.num_actions,
                                     device=self.device)
        self.optimizer = torch.optim.Adam(
            self.network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        self.generator = make_generator(self.device, seed)
        self.rng = np.random.default_rng(seed)
        #: Self-play games finished.
        self.games_played = 0
        self._legal_moves_seen = 0.0
        self._positions_seen = 0
        self._tree: Tree | None = None
        self._simulator: SimulatorSearch | None = None
        if self.rules is None:
            self._simulator = SimulatorSearch(self.game, policy_value_fn=self._policy_value_obs)
            # Its playouts draw from the generator checkpoints keep.
            self._simulator.rng = self.rng

    def get_config(self) -> dict[str, Any]:
        """The settings, and the game they were made for."""
        return {**super().get_config(), "game": self.game.name}

    @classmethod
    def _rebuild(cls, env: Any, observation_space: gym.Space, action_space: gym.Space,
                 config: dict[str, Any]) -> AlphaZero:
        """The saved game (``env`` defaults to a new one of it)."""
        saved_game = config.pop("game")
        algo = cls(saved_game if env is None else env, **config)
        if algo.game.name != saved_game:
            raise ValueError(f"env: expected the saved game {saved_game!r}, got "
                             f"{algo.game.name!r}")
        return algo

    # ------------------------------------------------------------------ network as a model
    def _policy_value(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``planes [B, *obs_shape]`` -> ``(logits [B, A], value [B])`` in eval mode."""
        self.network.eval()
        with torch.inference_mode():
            return self.network(torch.as_tensor(planes, device=self.device))

    def _policy_value_obs(self, obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._policy_value(torch.as_tensor(np.asarray(obs["observation"]).astype(np.int8)))

    def search_model(self) -> BoardGameSearch:
        """The search model over the game's tensor rules and the current network.

        :raises ValueError: for a game without tensor rules.
        """
        if self.rules is None:
            raise ValueError(
                f"env: {self.game.name} has no tensor rules; its search runs on the real game "
                "(SimulatorSearch)"
            )
        return BoardGameSearch(self.rules, self._policy_value, device=self.device)

    def _alpha(self) -> float:
        if self.config.dirichlet_alpha is not None:
            return self.config.dirichlet_alpha
        average = (self._legal_moves_seen / self._positions_seen if self._positions_seen
                   else self.num_actions)
        return dirichlet_alpha_for(average)

    def _search(self, root: Any, recurrent_fn: Any, *, tree: Tree | None,
                noise: bool, num_simulations: int, temperature: float,
                invalid: torch.Tensor | None = None) -> Any:
        cfg = self.config
        return muzero_policy(
            root, recurrent_fn, num_simulations,
            invalid_actions=invalid,
            dirichlet_alpha=self._alpha(),
            dirichlet_fraction=cfg.dirichlet_fraction if noise else 0.0,
            pb_c_init=cfg.pb_c_init, pb_c_base=cfg.pb_c_base,
            temperature=temperature, generator=self.generator, tree=tree,
        )

    # ------------------------------------------------------------------ self-play
    def _start_games(self, reset: bool) -> None:
        """Games continue across ``learn`` calls (they are the run's, not the count's)."""

    def _choose(self, out: Any, move_number: torch.Tensor) -> torch.Tensor:
        """Sampled moves (temperature 1) early in a game, the most visited after: ``[B]``."""
        counts = out.search_tree.summary().visit_counts
        # Ties between most visited moves are broken at random, not by index.
        jitter = torch.rand(counts.shape, generator=self.generator, device=counts.device)
        greedy = (counts + 0.5 * jitter * (counts > 0)).argmax(-1)
        return torch.where(move_number < self.config.temperature_moves, out.action, greedy)

    def _self_play_step(self) -> dict[str, Any]:
        """One move in every game, searched together; finished games go to the window."""
        games = self.env
        if self.rules is not None:
            model: Any = self.search_model()
            root = model.root_from_state(games.state)
            tree = self._tree
        else:
            assert self._simulator is not None
            model = self._simulator
            root = model.root_from_snapshots([g.snapshot() for g in games.games])
            tree = None
        legal = ~root.invalid_actions
        self._legal_moves_seen += float(legal.sum())
        self._positions_seen += legal.shape[0]
        out = self._search(root, model.recurrent_fn, tree=tree, noise=True,
                           num_simulations=self.config.num_simulations, temperature=1.0)
        actions = self._choose(out, games.moves.to(out.action.device))
        done, finished = games.play(actions, out.action_weights)
        if self.rules is not None and self.config.reuse_tree:
            self._tree = reuse_subtree(out.search_tree, actions, keep=~done)
        infos: list[dict[str, Any]] = [{} for _ in range(games.num_envs)]
        if finished is not None:
            self.buffer.add(finished.obs, finished.policy, finished.outcome)
            for z, length in zip(finished.first_player_outcomes, finished.lengths, strict=True):
                self.ep_info_buffer.append({"r": float(z), "l": int(length)})
            self._episode_num += len(finished.lengths)
            self.games_played += len(finished.lengths)
        return {"actions": actions.cpu().numpy(), "dones": done.cpu().numpy(), "infos": infos}

    def _worker_games(self, n_games: int) -> tuple[CopyMaker, dict[str, Any]]:
        """A worker's copy plays ``n_games`` games of a copy of the game; its window only
        passes positions on."""
        return CopyMaker(self.game), {"num_parallel_games": n_games, "buffer_size": 1}

    def _warming_up(self) -> bool:
        """Until the window holds ``learning_starts`` positions (at least one)."""
        return len(self.buffer) < max(self.config.learning_starts, 1)

    def _self_play_metrics(self) -> dict[str, Any]:
        return {"games": self.games_played, "dirichlet_alpha": self._alpha(),
                "buffer_positions": len(self.buffer)}

    # ------------------------------------------------------------------ training
    def train(self, gradient_steps: int) -> dict[str, float]:
        """``gradient_steps`` steps on minibatches from the window; mean losses."""
        self.network.train()
        totals = {"loss": 0.0, "value_loss": 0.0, "policy_loss": 0.0}
        for _ in range(gradient_steps):
            obs, policy, outcome = self.buffer.sample(self.config.batch_size,
                                                      generator=self.generator)
            if self.config.augment and self.rules is not None:
                cells, actions = self.rules.symmetries()
                which = torch.randint(cells.shape[0], (obs.shape[0],), generator=self.generator,
                                      device=self.generator.device).to(obs.device)
                obs, policy = apply_symmetry(obs, policy, which, cells, actions)
            logits, value = self.network(obs)
            loss, value_loss, policy_loss = alphazero_loss(logits, value, policy, outcome)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.n_updates += 1
            totals["loss"] += loss.item()
            totals["value_loss"] += value_loss.item()
            totals["policy_loss"] += policy_loss.item()
        self.network.eval()
        return {k: v / max(gradient_steps, 1) for k, v in totals.items()}

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        *,
        game: AECGame | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Moves for PettingZoo observations of the players to move, by a search of
        ``eval_num_simulations`` without root noise.

        :param observation: a dict with ``observation`` and ``action_mask`` (one position,
            or batched arrays), or a list of such dicts.
        :param deterministic: play the most visited move; else sample from visit counts.
        :param game: for games without tensor rules only: the game at that position
            (their positions cannot be rebuilt from an observation).
        :return: ``(moves, None)``: an int array ``[B]``, or a 0-d array for one position.
        :raises ValueError: naming ``observation`` without an ``action_mask``, of the wrong
            shape, or without a legal move.
        """
        planes, masks, batched = stack_observations(
            observation, obs_shape=self.obs_shape, num_actions=self.num_actions,
            name="observation",
        )
        empty = ~masks.any(1)
        if empty.any():
            raise ValueError(
                f"observation: expected an action_mask with at least one legal move, got none "
                f"in rows {np.flatnonzero(empty).tolist()} (is the game over, or is it not "
                "this player's turn?)"
            )
        invalid = torch.as_tensor(~masks, device=self.device)
        if self.rules is not None:
            model: Any = self.search_model()
            root = model.root_from_state(
                self.rules.state_from_observation(planes, device=self.device))
        elif game is None or len(planes) != 1:
            raise ValueError(
                f"game: {self.game.name} has no tensor rules, so a position cannot be "
                "rebuilt from its observation; pass game=<AECGame at that position> with "
                "one observation"
            )
        else:
            model = SimulatorSearch(game, policy_value_fn=self._policy_value_obs)
            root = model.root()
        simulations = self.config.eval_num_simulations or self.config.num_simulations
        out = self._search(root, model.recurrent_fn, tree=None, noise=False,
                           num_simulations=simulations,
                           temperature=0.0 if deterministic else 1.0, invalid=invalid)
        actions = out.action.cpu().numpy().astype(np.int64)
        return (actions if batched else actions[0]), None

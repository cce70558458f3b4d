"""AlphaZero (Silver et al. 2018, "A general reinforcement learning algorithm that
masters chess, shogi, and Go through self-play"; the search and network of Silver et al.
2017, "Mastering the game of Go without human knowledge") on PettingZoo board games.

Self-play runs ``num_parallel_games`` games at once: at every move each game searches
from its position with pUCT over the game's rules and the policy-value network (one
batched search for all games), plays a move drawn from the root visit counts for the
first ``temperature_moves`` moves and the most visited move after, and keeps the
subtree below the move for its next search. Finished games give their positions, their
search policies and their outcome (for the player to move) to a window of recent
positions; the network is trained on it to minimise ``(z - v)^2 - pi^T log p`` plus L2
regularisation.

Games with tensor rules (:mod:`mbwrap.envs.board_games`: tic-tac-toe, connect four)
search on them batched on the device. Other PettingZoo games (chess) search the real
game by snapshot and restore (:class:`~mbwrap.planners.mcts.simulator.SimulatorSearch`),
one position at a time on the host, without subtree reuse.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pettingzoo import AECEnv
from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    ProgressBarCallback,
)
from stable_baselines3.common.type_aliases import MaybeCallback

from mbwrap.algos.base import Algorithm
from mbwrap.buffers.self_play import SelfPlayBuffer
from mbwrap.checkpoint import load_checkpoint
from mbwrap.device import make_generator
from mbwrap.envs.aec import AECGame, stack_observations
from mbwrap.envs.board_games import BoardGame, GameState, apply_symmetry, board_game
from mbwrap.errors import CheckpointError
from mbwrap.models.policy_value import PolicyValueNet
from mbwrap.planners.mcts import muzero_policy, reuse_subtree
from mbwrap.planners.mcts.simulator import BoardGameSearch, SimulatorSearch
from mbwrap.planners.mcts.tree import Tree

_CHECKPOINT_KIND = "mbwrap.algo"


class _SelfPlayGames:
    """Stands for the self-play games where SB3 callbacks expect the training env
    (``ProgressBarCallback`` advances by its ``num_envs`` at every step)."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs

#: Silver et al. 2018: 800 simulations per move, Dirichlet noise of weight 0.25 at the
#: root, moves sampled from visit counts for the first 30 moves (chess/shogi pseudocode:
#: num_sampling_moves = 30), batches of 4096, L2 weight 1e-4.
NUM_SIMULATIONS = 800
DIRICHLET_FRACTION = 0.25
TEMPERATURE_MOVES = 30
WEIGHT_DECAY = 1e-4

#: Per-game settings scaled down from the paper's: small boards need smaller networks,
#: fewer simulations and fewer sampled opening moves (about a third of a typical game).
GAME_DEFAULTS: dict[str, dict[str, Any]] = {
    "tictactoe_v3": {
        "network_kwargs": {"kind": "mlp", "channels": 128, "blocks": 2, "value_hidden": 64},
        "num_simulations": 64,
        "temperature_moves": 3,
    },
    "connect_four_v3": {
        "network_kwargs": {"kind": "resnet", "channels": 64, "blocks": 4, "value_hidden": 64},
        "num_simulations": 100,
        "temperature_moves": 10,
    },
}


def dirichlet_alpha_for(avg_legal_moves: float) -> float:
    """AlphaZero's root-noise concentration, ``10 / average legal moves``: 0.3 for chess
    (about 35 moves), 0.15 for shogi, 0.03 for Go (Silver et al. 2018, Methods)."""
    return 10.0 / max(float(avg_legal_moves), 1.0)


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


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _float_in(value: Any, name: str, low: float, high: float | None = None) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected a float {bound}, got {value!r}")
    return float(value)


class AlphaZero(Algorithm):
    """AlphaZero by batched self-play on a PettingZoo two-player board game.

    ``learn(total_timesteps)`` counts real moves of self-play (every game's move is one
    step); SB3 callbacks, ``progress_bar`` and SB3's logger work as in SB3. ``predict``
    takes PettingZoo's observation of the player to move (a dict with ``observation``
    and ``action_mask``, or a list / batch of them) and returns legal moves.

    :param env: a PettingZoo AEC game (``tictactoe_v3.env()``), an
        :class:`~mbwrap.envs.aec.AECGame`, or a classic game's name.
    :param network_kwargs: keywords of :class:`~mbwrap.models.policy_value.PolicyValueNet`
        (default per game from :data:`GAME_DEFAULTS`, else a 6-block residual network).
    :param num_simulations: searches per self-play move (paper: 800).
    :param eval_simulations: simulations per move in :meth:`predict` (default: as
        ``num_simulations``).
    :param num_parallel_games: games played at once in self-play.
    :param temperature_moves: moves per game drawn from the visit counts (temperature 1);
        the most visited move is played after (paper: 30 for chess).
    :param dirichlet_alpha: root-noise concentration; ``None``: ``10 /`` the average
        number of legal moves seen in self-play (the paper's rule).
    :param dirichlet_fraction: weight of the root noise (paper: 0.25).
    :param pb_c_init, pb_c_base: pUCT's exploration constants (AlphaZero pseudocode: 1.25
        and 19652).
    :param reuse_tree: keep the subtree below each move for the next search.
    :param tensor_rules: search on the game's tensor rules when it has some; ``False``
        searches the real game by snapshot and restore, as for games without them.
    :param augment: train on each position seen through a random symmetry of the board
        (games with tensor rules). AlphaGo Zero did (Silver et al. 2017, the 8 symmetries
        of Go); AlphaZero did not, as chess and shogi have none, so it is off by default.
    :param buffer_size: positions in the training window (the paper keeps the latest 1M
        games; small boards need far fewer).
    :param batch_size: positions per gradient step (paper: 4096).
    :param learning_rate: Adam's step size. The paper uses SGD with momentum 0.9 and a
        step size annealed from 0.2; Adam at 1e-3 needs no schedule at this scale.
    :param weight_decay: L2 regularisation (paper: c = 1e-4).
    :param train_freq: self-play moves (batched: every game moves once) between training
        phases; :param gradient_steps: gradient steps per phase.
    :param learning_starts: positions in the window before the first gradient step.
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "alphazero"

    def __init__(
        self,
        env: AECEnv | AECGame | str | None,
        *,
        network_kwargs: dict[str, Any] | None = None,
        num_simulations: int | None = None,
        eval_simulations: int | None = None,
        num_parallel_games: int = 64,
        temperature_moves: int | None = None,
        dirichlet_alpha: float | None = None,
        dirichlet_fraction: float = DIRICHLET_FRACTION,
        pb_c_init: float = 1.25,
        pb_c_base: float = 19652.0,
        reuse_tree: bool = True,
        tensor_rules: bool = True,
        augment: bool = False,
        buffer_size: int = 50_000,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = WEIGHT_DECAY,
        train_freq: int = 1,
        gradient_steps: int = 1,
        learning_starts: int = 1_000,
        seed: int | None = None,
        device: str | torch.device = "auto",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        if env is None:
            raise ValueError(
                "env: expected a PettingZoo AEC game, an AECGame or a game name such as "
                "'tictactoe_v3', got None"
            )
        self.game = env if isinstance(env, AECGame) else AECGame(env)
        agent = self.game.possible_agents[0]
        obs_space = self.game.observation_space(agent)
        if not isinstance(obs_space, gym.spaces.Dict) or "action_mask" not in obs_space.spaces:
            raise ValueError(
                f"env: expected observations with an 'action_mask' (a Dict space), got "
                f"{obs_space!r}"
            )
        game_obs_space = obs_space["observation"]
        game_action_space = self.game.action_space(agent)
        super().__init__(
            None,
            seed=seed,
            device=device,
            verbose=verbose,
            tensorboard_log=tensorboard_log,
            observation_space=game_obs_space,
            action_space=game_action_space,
        )
        del observation_space, action_space  # the game's are used
        defaults = GAME_DEFAULTS.get(self.game.name, {})
        self.tensor_rules = bool(tensor_rules)
        self.augment = bool(augment)
        self.rules: BoardGame | None = board_game(self.game.name) if self.tensor_rules else None
        self.num_actions = self.game.num_actions
        self.obs_shape = tuple(int(d) for d in game_obs_space.shape)
        self.network_kwargs = dict(
            network_kwargs if network_kwargs is not None
            else defaults.get("network_kwargs", {"kind": "resnet", "channels": 64, "blocks": 6})
        )
        self.network = PolicyValueNet(self.obs_shape, self.num_actions, **self.network_kwargs).to(
            self.device
        )
        self.num_simulations = _int_at_least(
            defaults.get("num_simulations", NUM_SIMULATIONS) if num_simulations is None
            else num_simulations, "num_simulations", 1)
        self.eval_simulations = _int_at_least(
            self.num_simulations if eval_simulations is None else eval_simulations,
            "eval_simulations", 1)
        self.num_parallel_games = _int_at_least(num_parallel_games, "num_parallel_games", 1)
        self.temperature_moves = _int_at_least(
            defaults.get("temperature_moves", TEMPERATURE_MOVES) if temperature_moves is None
            else temperature_moves, "temperature_moves", 0)
        self.dirichlet_alpha = (
            None if dirichlet_alpha is None
            else _float_in(dirichlet_alpha, "dirichlet_alpha", 1e-6)
        )
        self.dirichlet_fraction = _float_in(dirichlet_fraction, "dirichlet_fraction", 0.0, 1.0)
        self.pb_c_init = _float_in(pb_c_init, "pb_c_init", 0.0)
        self.pb_c_base = _float_in(pb_c_base, "pb_c_base", 1e-6)
        self.reuse_tree = bool(reuse_tree)
        self.batch_size = _int_at_least(batch_size, "batch_size", 1)
        self.learning_rate = _float_in(learning_rate, "learning_rate", 0.0)
        self.weight_decay = _float_in(weight_decay, "weight_decay", 0.0)
        self.train_freq = _int_at_least(train_freq, "train_freq", 1)
        self.gradient_steps = _int_at_least(gradient_steps, "gradient_steps", 0)
        self.learning_starts = _int_at_least(learning_starts, "learning_starts", 0)
        self.buffer = SelfPlayBuffer(
            _int_at_least(buffer_size, "buffer_size", 1), self.obs_shape, self.num_actions,
            device=self.device,
        )
        self.optimizer = torch.optim.Adam(
            self.network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        self.generator = make_generator(self.device, seed)
        self.rng = np.random.default_rng(seed)
        #: Gradient steps taken; self-play games finished.
        self.n_updates = 0
        self.games_played = 0
        self._legal_moves_seen = 0.0
        self._positions_seen = 0
        self._moves_since_train = 0
        self._selfplay: dict[str, Any] | None = None

    def get_env(self) -> _SelfPlayGames:  # type: ignore[override]
        """What SB3 callbacks read as ``training_env``: the games played at once."""
        return _SelfPlayGames(self.num_parallel_games)

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
        if self.dirichlet_alpha is not None:
            return self.dirichlet_alpha
        average = (self._legal_moves_seen / self._positions_seen if self._positions_seen
                   else self.num_actions)
        return dirichlet_alpha_for(average)

    def _search(self, root: Any, recurrent_fn: Any, *, tree: Tree | None,
                noise: bool, num_simulations: int, temperature: float,
                invalid: torch.Tensor | None = None) -> Any:
        return muzero_policy(
            root, recurrent_fn, num_simulations,
            invalid_actions=invalid,
            dirichlet_alpha=self._alpha(),
            dirichlet_fraction=self.dirichlet_fraction if noise else 0.0,
            pb_c_init=self.pb_c_init, pb_c_base=self.pb_c_base,
            temperature=temperature, generator=self.generator, tree=tree,
        )

    # ------------------------------------------------------------------ self-play
    def _choose(self, out: Any, move_number: torch.Tensor) -> torch.Tensor:
        """Sampled moves (temperature 1) early in a game, the most visited after: ``[B]``."""
        counts = out.search_tree.summary().visit_counts
        # Ties between most visited moves are broken at random, not by index.
        jitter = torch.rand(counts.shape, generator=self.generator, device=counts.device)
        greedy = (counts + 0.5 * jitter * (counts > 0)).argmax(-1)
        return torch.where(move_number < self.temperature_moves, out.action, greedy)

    def _start_selfplay(self) -> dict[str, Any]:
        n = self.num_parallel_games
        if self.rules is not None:
            horizon = self.rules.num_cells
            return {
                "state": self.rules.initial_state(n, self.device),
                "move": torch.zeros(n, dtype=torch.long, device=self.device),
                "obs": torch.zeros((n, horizon, *self.obs_shape), dtype=torch.int8,
                                   device=self.device),
                "policy": torch.zeros(n, horizon, self.num_actions, device=self.device),
                "player": torch.zeros(n, horizon, dtype=torch.long, device=self.device),
                "tree": None,
            }
        games = []
        for i in range(n):
            game = copy.deepcopy(self.game)
            game.reset(seed=None if self.seed is None else self.seed + i)
            games.append(game)
        model = SimulatorSearch(self.game, policy_value_fn=self._policy_value_obs,
                                seed=int(self.rng.integers(2**31)))
        return {"games": games, "history": [[] for _ in range(n)], "model": model}

    def _finish_games(self, first_player_outcomes: list[float], lengths: list[int]) -> None:
        for z, length in zip(first_player_outcomes, lengths, strict=True):
            self.ep_info_buffer.append({"r": float(z), "l": int(length)})
        self._episode_num += len(lengths)
        self.games_played += len(lengths)

    def _selfplay_step_rules(self, sp: dict[str, Any]) -> None:
        """One move in every game, on the tensor rules."""
        assert self.rules is not None
        rules, state, move = self.rules, sp["state"], sp["move"]
        model = self.search_model()
        root = model.root_from_state(state)
        legal = ~root.invalid_actions
        self._legal_moves_seen += float(legal.sum())
        self._positions_seen += legal.shape[0]
        out = self._search(root, model.recurrent_fn, tree=sp["tree"], noise=True,
                           num_simulations=self.num_simulations, temperature=1.0)
        action = self._choose(out, move)
        rows = torch.arange(state.board.shape[0], device=self.device)
        planes, _ = rules.observe(state)
        sp["obs"][rows, move] = planes
        sp["policy"][rows, move] = out.action_weights
        sp["player"][rows, move] = state.to_play
        next_state, reward, done = rules.step(state, action)
        if self.reuse_tree:
            sp["tree"] = reuse_subtree(out.search_tree, action, keep=~done)
        if bool(done.any()):
            ended = torch.nonzero(done).flatten()
            z = outcome_targets(sp["player"][ended], state.to_play[ended], reward[ended])
            length = move[ended] + 1
            valid = torch.arange(rules.num_cells, device=self.device)[None] < length[:, None]
            self.buffer.add(sp["obs"][ended][valid], sp["policy"][ended][valid], z[valid])
            first = torch.where(state.to_play[ended] == 0, reward[ended], -reward[ended])
            self._finish_games(first.tolist(), length.tolist())
            fresh = rules.initial_state(state.board.shape[0], self.device)
            next_state = GameState(*(torch.where(done.view(-1, *[1] * (a.dim() - 1)), b, a)
                                     for a, b in zip(next_state, fresh, strict=True)))
        sp["state"] = next_state
        sp["move"] = torch.where(done, 0, move + 1)

    def _selfplay_step_simulator(self, sp: dict[str, Any]) -> None:
        """One move in every game, searching the real games (no tensor rules)."""
        games: list[AECGame] = sp["games"]
        model: SimulatorSearch = sp["model"]
        root = model.root_from_snapshots([g.snapshot() for g in games])
        legal = ~root.invalid_actions
        self._legal_moves_seen += float(legal.sum())
        self._positions_seen += legal.shape[0]
        out = self._search(root, model.recurrent_fn, tree=None, noise=True,
                           num_simulations=self.num_simulations, temperature=1.0)
        move = torch.tensor([len(h) for h in sp["history"]], device=out.action.device)
        action = self._choose(out, move).tolist()
        outcomes, lengths = [], []
        for i, game in enumerate(games):
            obs = game.current_observation()["observation"]
            sp["history"][i].append((np.asarray(obs).astype(np.int8),
                                     out.action_weights[i].cpu(), game.to_play))
            mover = game.to_play
            reward, over = game.play(int(action[i]))
            if over:
                history = sp["history"][i]
                players = torch.tensor([h[2] for h in history])[None]
                z = outcome_targets(players, torch.tensor([mover]),
                                    torch.tensor([reward])).flatten()
                self.buffer.add(torch.as_tensor(np.stack([h[0] for h in history])),
                                torch.stack([h[1] for h in history]), z)
                outcomes.append(reward if mover == 0 else -reward)
                lengths.append(len(history))
                sp["history"][i] = []
                game.reset()
        if lengths:
            self._finish_games(outcomes, lengths)

    # ------------------------------------------------------------------ training
    def train(self, gradient_steps: int) -> dict[str, float]:
        """``gradient_steps`` steps on minibatches from the window; mean losses."""
        self.network.train()
        totals = {"loss": 0.0, "value_loss": 0.0, "policy_loss": 0.0}
        for _ in range(gradient_steps):
            obs, policy, outcome = self.buffer.sample(self.batch_size, generator=self.generator)
            if self.augment and self.rules is not None:
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

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 10,
        tb_log_name: str = "AlphaZero",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> AlphaZero:
        """Self-play and train for ``total_timesteps`` moves (all games' moves count).

        :param log_interval: self-play moves (batched) between log dumps (0: never).
        """
        _int_at_least(total_timesteps, "total_timesteps", 0)
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        if self._selfplay is None:
            self._selfplay = self._start_selfplay()
        callback.on_training_start(locals(), globals())
        iteration = 0
        while self.num_timesteps < total_timesteps:
            callback.on_rollout_start()
            if self.rules is not None:
                self._selfplay_step_rules(self._selfplay)
            else:
                self._selfplay_step_simulator(self._selfplay)
            self.num_timesteps += self.num_parallel_games
            iteration += 1
            callback.update_locals(locals())
            keep_going = callback.on_step()
            callback.on_rollout_end()
            if not keep_going:
                break
            self._moves_since_train += 1
            if (self._moves_since_train >= self.train_freq and self.gradient_steps > 0
                    and len(self.buffer) >= max(self.learning_starts, 1)):
                self._moves_since_train = 0
                self._record_metrics("train", self.train(self.gradient_steps))
                self.logger.record("train/n_updates", self.n_updates)
            if log_interval and iteration % log_interval == 0:
                self.logger.record("selfplay/games", self.games_played)
                self.logger.record("selfplay/dirichlet_alpha", self._alpha())
                self.logger.record("selfplay/buffer_size", len(self.buffer))
                self._dump_logs()
        callback.on_training_end()
        return self

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback,
        reset_num_timesteps: bool,
        tb_log_name: str,
        progress_bar: bool,
    ) -> tuple[int, BaseCallback]:
        """The base class's setup without a Gymnasium env to reset (self-play keeps its
        own games between calls)."""
        self._start_time = time.time_ns() / 1e9
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._episode_num = 0
            self.ep_info_buffer.clear()
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if not getattr(self, "_custom_logger", False):
            self._logger = sb3_utils.configure_logger(
                self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps
            )
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)  # type: ignore[arg-type]
        return total_timesteps, callback

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
        ``eval_simulations`` without root noise.

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
        temperature = 0.0 if deterministic else 1.0
        if self.rules is not None:
            model = self.search_model()
            game_state = self.rules.state_from_observation(planes, device=self.device)
            root = model.root_from_state(game_state)
            out = self._search(root, model.recurrent_fn, tree=None, noise=False,
                               num_simulations=self.eval_simulations,
                               temperature=temperature, invalid=invalid)
        else:
            if game is None or len(planes) != 1:
                raise ValueError(
                    f"game: {self.game.name} has no tensor rules, so a position cannot be "
                    "rebuilt from its observation; pass game=<AECGame at that position> with "
                    "one observation"
                )
            model = SimulatorSearch(game, policy_value_fn=self._policy_value_obs)
            out = self._search(model.root(), model.recurrent_fn, tree=None, noise=False,
                               num_simulations=self.eval_simulations,
                               temperature=temperature, invalid=invalid)
        actions = out.action.cpu().numpy().astype(np.int64)
        return (actions if batched else actions[0]), None

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return {
            "env": self.game.name,
            "network_kwargs": self.network_kwargs,
            "num_simulations": self.num_simulations,
            "eval_simulations": self.eval_simulations,
            "num_parallel_games": self.num_parallel_games,
            "temperature_moves": self.temperature_moves,
            "dirichlet_alpha": self.dirichlet_alpha,
            "dirichlet_fraction": self.dirichlet_fraction,
            "pb_c_init": self.pb_c_init,
            "pb_c_base": self.pb_c_base,
            "reuse_tree": self.reuse_tree,
            "tensor_rules": self.tensor_rules,
            "augment": self.augment,
            "buffer_size": self.buffer.capacity,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "train_freq": self.train_freq,
            "gradient_steps": self.gradient_steps,
            "learning_starts": self.learning_starts,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The network's weights and the window of self-play positions."""
        tensors = {f"network.{k}": v for k, v in self.network.state_dict().items()}
        tensors.update({f"buffer.{k}": v for k, v in self.buffer.positions().items()})
        tensors["stats"] = torch.tensor(
            [self.n_updates, self.games_played, self._legal_moves_seen, self._positions_seen],
            dtype=torch.float64,
        )
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        weights = {k[len("network."):]: v.to(self.device) for k, v in tensors.items()
                   if k.startswith("network.")}
        self.network.load_state_dict(weights)
        held = {k[len("buffer."):]: v for k, v in tensors.items() if k.startswith("buffer.")}
        if "obs" in held and held["obs"].shape[0]:
            self.buffer.add(held["obs"], held["policy"], held["outcome"])
        if "stats" in tensors:
            updates, games, legal, positions = tensors["stats"].tolist()
            self.n_updates, self.games_played = int(updates), int(games)
            self._legal_moves_seen, self._positions_seen = float(legal), int(positions)

    @classmethod
    def load(  # type: ignore[override]
        cls,
        path: str | os.PathLike,
        env: AECEnv | AECGame | str | None = None,
        device: str | torch.device = "auto",
    ) -> AlphaZero:
        """Rebuild an AlphaZero saved by :meth:`save` (no code runs from the file).

        :param env: the game to keep playing (default: a new one of the saved game).
        :raises CheckpointError: for a corrupt file, another algorithm's, or another game's.
        """
        metadata, tensors = load_checkpoint(path, kind=_CHECKPOINT_KIND)
        expected = f"{cls.__module__}:{cls.__qualname__}"
        if metadata.get("class") != expected:
            raise CheckpointError(
                f"{str(path)!r} holds a {metadata.get('class')!r} algorithm, not {expected}"
            )
        try:
            config = dict(metadata["config"])
            saved_game = config.pop("env")
            game = env if env is not None else saved_game
            algo = cls(game, device=device, **config)
            if algo.game.name != saved_game:
                raise ValueError(f"env: expected the saved game {saved_game!r}, got "
                                 f"{algo.game.name!r}")
            algo.set_tensors(tensors)
            algo.num_timesteps = int(metadata.get("num_timesteps", 0))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{str(path)!r}: algorithm checkpoint does not fit: {err}"
            ) from err
        return algo


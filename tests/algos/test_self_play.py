"""SelfPlayAlgorithm: the one self-play loop and its "how much per move" rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.algos.self_play import SelfPlayAlgorithm


@dataclass(kw_only=True)
class _CountingConfig(AlgoConfig):
    algo_name: ClassVar[str] = "counting"
    train_freq: int = setting(1, "moves per gradient_steps updates", low=1)
    gradient_steps: int = setting(1, "updates every train_freq moves", low=0)
    learning_starts: int = setting(0, "moves before the first update", low=0)


class _Games:
    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs


class _Counting(SelfPlayAlgorithm):
    """Moves nothing; counts what the loop asks of it."""

    Config = _CountingConfig

    def __init__(self, num_envs: int, **settings: Any) -> None:
        box = gym.spaces.Box(-1, 1, (1,))
        super().__init__((), settings, config=None, observation_space=box,
                         action_space=gym.spaces.Discrete(2))
        self.env = _Games(num_envs)
        self.starts: list[bool] = []
        self.updates_per_call: list[int] = []

    def _start_games(self, reset: bool) -> None:
        self.starts.append(reset)

    def _self_play_step(self) -> dict[str, Any]:
        return {"dones": np.zeros(self.n_envs, dtype=bool)}

    def train(self, gradient_steps: int) -> dict[str, Any]:
        self.updates_per_call.append(gradient_steps)
        self.n_updates += gradient_steps
        return {"loss": 1.0}

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.zeros(1, dtype=np.int64), None


def test_gradient_steps_every_train_freq_moves_after_the_warm_up():
    # 4 games, an update pair every 6 moves, from the step that reaches 8 moves (as SB3
    # trains from the step that reaches learning_starts): moves 5 to 48 count, 44 of them.
    algo = _Counting(4, train_freq=6, gradient_steps=2, learning_starts=8)
    algo.learn(48)
    assert algo.num_timesteps == algo.real_steps == 48
    assert algo.updates_per_call == [2] * 7  # 44 // 6
    assert algo.n_updates == 14 and algo._steps_since_train == 44 - 42
    algo.learn(8, reset_num_timesteps=False)  # the remainder carries over: 2 + 8 moves
    assert algo.n_updates == 16 and algo.num_timesteps == 56 and algo.starts == [True, False]
    algo.learn(4)  # a new count, not a new life
    assert algo.num_timesteps == 4 and algo.real_steps == 60


def test_several_phases_fall_due_in_one_move():
    algo = _Counting(8, train_freq=2, gradient_steps=3)
    algo.learn(16)
    assert algo.updates_per_call == [12, 12]


def test_callbacks_see_every_move_and_can_stop_it():
    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            return self.training_env.num_envs == 3 and self.num_timesteps < 9

    algo = _Counting(3)
    algo.learn(300, callback=Stop())
    assert algo.num_timesteps == 9 and algo.updates_per_call == [3, 3]
    with pytest.raises(ValueError, match="total_timesteps: expected an int >= 0, got -1"):
        algo.learn(-1)


def test_counters_are_part_of_the_run_state():
    algo = _Counting(4, train_freq=3)
    algo.learn(8)
    state = algo._run_state()
    other = _Counting(4, train_freq=3)
    other._set_run_state(state)
    assert (other.real_steps, other.n_updates, other._steps_since_train) == (8, 2, 2)

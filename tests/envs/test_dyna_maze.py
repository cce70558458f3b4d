"""The Dyna maze of Sutton & Barto (2018), Figure 8.2."""

from __future__ import annotations

import warnings
from collections import deque

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from mbwrap import DynaMazeEnv
from mbwrap.envs import DYNA_MAZE_LAYOUT

MAZE_ID = "mbwrap/DynaMaze-v0"
UP, DOWN, LEFT, RIGHT = range(4)
START, GOAL = 2 * 9 + 0, 0 * 9 + 8
WALLS = {7, 9 + 2, 9 + 7, 18 + 2, 18 + 7, 27 + 2, 36 + 5}


def replay(env: DynaMazeEnv, path: list[int]) -> tuple[int, list[tuple]]:
    """Reset, follow ``path``; return the last observation and every step's outcome."""
    obs, _ = env.reset()
    steps = []
    for action in path:
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, reward, terminated, truncated, info))
    return obs, steps


def explore(env: DynaMazeEnv) -> tuple[dict[int, list[int]], list[tuple]]:
    """Breadth-first search over the env's own step function, from its reset state.

    :return: a shortest action path to every reachable cell, and every transition
        ``(obs, action, next_obs, reward, terminated, truncated)`` tried.
    """
    start, _ = env.reset()
    paths = {int(start): []}
    transitions = []
    queue = deque([int(start)])
    while queue:
        cell = queue.popleft()
        if cell == GOAL:  # terminal: its episode is over
            continue
        for action in range(4):
            _, steps = replay(env, [*paths[cell], action])
            nxt, reward, terminated, truncated, _ = steps[-1]
            transitions.append((cell, action, int(nxt), reward, terminated, truncated))
            if int(nxt) not in paths:
                paths[int(nxt)] = [*paths[cell], action]
                queue.append(int(nxt))
    return paths, transitions


@pytest.fixture(scope="module")
def search():
    return explore(DynaMazeEnv())


def test_layout_is_the_books():
    assert DYNA_MAZE_LAYOUT[2][0] == "S" and DYNA_MAZE_LAYOUT[0][8] == "G"
    env = DynaMazeEnv()
    assert (env.rows, env.cols) == (6, 9)
    assert env.observation_space == gym.spaces.Discrete(54)
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.goal_state == GOAL
    assert env.reset(seed=0) == (START, {})


def test_shortest_path_from_start_to_goal_is_14_steps(search):
    paths, _ = search
    assert len(paths[GOAL]) == 14
    # Following it reaches the goal on step 14 and no earlier.
    obs, steps = replay(DynaMazeEnv(), paths[GOAL])
    assert obs == GOAL
    assert [s[1] for s in steps] == [0.0] * 13 + [1.0]
    assert [s[2] for s in steps] == [False] * 13 + [True]


def test_every_free_cell_is_reachable_and_no_wall_is(search):
    paths, transitions = search
    assert set(paths) == set(range(54)) - WALLS
    assert not {t[2] for t in transitions} & WALLS


def test_reward_and_termination_only_at_the_goal(search):
    _, transitions = search
    assert len(transitions) == 4 * (54 - len(WALLS) - 1)
    for _, _, nxt, reward, terminated, truncated in transitions:
        assert reward == (1.0 if nxt == GOAL else 0.0)
        assert terminated is (nxt == GOAL)
        assert truncated is False
        assert isinstance(reward, float)


def test_every_move_changes_the_cell_by_its_direction_or_not_at_all(search):
    _, transitions = search
    delta = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}
    for cell, action, nxt, *_ in transitions:
        (r, c), (dr, dc) = divmod(cell, 9), delta[action]
        target = (r + dr, c + dc)
        blocked = (
            not (0 <= target[0] < 6 and 0 <= target[1] < 9) or target[0] * 9 + target[1] in WALLS
        )
        assert nxt == (cell if blocked else target[0] * 9 + target[1])


def test_walls_and_boundaries_keep_the_agent_in_place():
    env = DynaMazeEnv()
    assert replay(env, [LEFT])[0] == START  # off the west edge
    assert replay(env, [RIGHT, RIGHT])[0] == START + 1  # into the wall at (2, 2)
    assert replay(env, [UP, UP, UP])[0] == 0  # off the north edge
    assert replay(env, [DOWN, DOWN, DOWN, DOWN])[0] == 5 * 9  # off the south edge
    assert (
        replay(env, [DOWN, DOWN, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT])[0] == 4 * 9 + 4
    )  # wall (4, 5)


def test_reset_returns_to_the_start():
    env = DynaMazeEnv()
    replay(env, [UP, RIGHT])
    assert env.reset()[0] == START


def test_bad_action_is_rejected():
    env = DynaMazeEnv()
    env.reset()
    for action in (4, -1, 1.5):
        with pytest.raises(ValueError, match="action"):
            env.step(action)


def test_made_without_a_time_limit():
    env = gym.make(MAZE_ID)
    assert env.spec.max_episode_steps is None
    wrapper = env
    while isinstance(wrapper, gym.Wrapper):
        assert not isinstance(wrapper, TimeLimit)
        wrapper = wrapper.env
    assert isinstance(wrapper, DynaMazeEnv)
    env.reset(seed=0)
    for _ in range(1000):  # no truncation however long the episode
        _, _, terminated, truncated, _ = env.step(LEFT)
        assert not terminated and not truncated


def test_render_ansi():
    env = gym.make(MAZE_ID, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text == "".join(row.replace("S", "A") + "\n" for row in DYNA_MAZE_LAYOUT)
    rows = text.splitlines()
    assert len(rows) == 6 and all(len(row) == 9 for row in rows)
    assert rows[2][0] == "A" and text.count("A") == 1 and text.count("#") == 7 and "S" not in text
    env.step(UP)
    assert env.render().splitlines()[1][0] == "A"
    assert DynaMazeEnv().render() is None


def test_bad_render_mode_is_rejected():
    with pytest.raises(ValueError, match="render_mode"):
        DynaMazeEnv(render_mode="human")


def test_checkers_pass():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(MAZE_ID).unwrapped)
        sb3_check_env(DynaMazeEnv())


@pytest.mark.parametrize(
    "layout",
    [
        ("S..", "..G", "."),  # ragged
        ("...", "..G"),  # no start
        ("S..", "..."),  # no goal
        ("S.S", "..G"),  # two starts
        ("S.G", "..G"),  # two goals
    ],
)
def test_bad_layout_is_rejected(layout):
    with pytest.raises(ValueError, match="layout"):
        DynaMazeEnv(layout=layout)


def test_custom_layout():
    env = DynaMazeEnv(layout=("S#G", "..."))
    assert env.observation_space == gym.spaces.Discrete(6)
    assert env.reset()[0] == 0 and env.goal_state == 2
    assert env.step(RIGHT)[0] == 0  # wall
    obs, steps = replay(env, [DOWN, RIGHT, RIGHT, UP])
    assert obs == 2 and steps[-1][1:4] == (1.0, True, False)

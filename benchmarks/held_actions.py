"""What SimPLe's simulated episodes can teach on each Atari game: the real game's returns
over windows as long as those episodes, for each action held throughout and for uniformly
random play, from the same states.

SimPLe's agent learns only inside the model, in episodes of 50 steps that start from real
frame stacks (Kaiser et al. 2019, Section 6). If no way of acting earns more than random
play over such a window, even a perfect model gives PPO little to learn; where holding one
action earns several times random play's reward, the model has something to show it. This
scan measures that on the real game, before any model is trained:

1. play ``--spacing`` x ``--starts`` steps uniformly at random (the preprocessing of
   :func:`~mbwrap.envs.make_atari_env`, 42x42 frames as in the small run) and save the
   emulator's state every ``--spacing`` steps;
2. from each saved state, play ``--steps`` steps holding each action, and ``--repeats``
   times with uniformly random actions, summing the sign of the rewards (the reward the
   model learns);
3. print random play's mean window return, the best and worst held actions', and the best
   held action's lead over random play from the same states with its standard error.

Usage::

    python benchmarks/held_actions.py --games Alien MsPacman Centipede Qbert
    python benchmarks/held_actions.py --games Centipede --all   # every action's mean
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from mbwrap.envs import make_atari_env


def random_play_states(env: Any, count: int, spacing: int, rng: np.random.Generator) -> list:
    """``count`` emulator states, one every ``spacing`` steps of uniformly random play
    (taken half-way into each stretch, so none is a reset)."""
    env.reset(seed=int(rng.integers(2**31)))
    ale, states, step = env.unwrapped.ale, [], 0
    while len(states) < count:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
        if step % spacing == spacing // 2:
            states.append(ale.cloneState())
        step += 1
    return states


def window_return(env: Any, state: Any, actions: Any, steps: int) -> float:
    """The summed reward signs of at most ``steps`` steps from the emulator ``state``, the
    action of step ``t`` being ``actions(t)``; the window ends early if the episode does."""
    env.unwrapped.ale.restoreState(state)
    total = 0.0
    for t in range(steps):
        _, reward, terminated, truncated, _ = env.step(actions(t))
        total += float(np.sign(reward))
        if terminated or truncated:
            break
    return total


def scan(
    game: str,
    starts: int = 20,
    steps: int = 50,
    repeats: int = 4,
    spacing: int = 150,
    screen_size: int = 42,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``{action name: [starts] window returns}`` for every action held and ``"random"``
    (each start's mean over ``repeats`` random windows)."""
    env = make_atari_env(game, screen_size=screen_size)
    rng = np.random.default_rng(seed)
    states = random_play_states(env, starts, spacing, rng)
    names = env.unwrapped.get_action_meanings()
    returns = {
        name: np.array([window_return(env, s, lambda t, a=a: a, steps) for s in states])
        for a, name in enumerate(names)
    }
    n = env.action_space.n
    returns["random"] = np.array(
        [
            np.mean(
                [
                    window_return(env, s, lambda t: int(rng.integers(n)), steps)
                    for _ in range(repeats)
                ]
            )
            for s in states
        ]
    )
    env.close()
    return returns


def summary(returns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Random play's mean, the best and worst held actions (name, mean), and the best held
    action's lead over random play: the mean and standard error of the paired differences."""
    held = {name: r for name, r in returns.items() if name != "random"}
    best = max(held, key=lambda name: held[name].mean())
    worst = min(held, key=lambda name: held[name].mean())
    lead = held[best] - returns["random"]
    return {
        "random": float(returns["random"].mean()),
        "best": (best, float(held[best].mean())),
        "worst": (worst, float(held[worst].mean())),
        "lead": float(lead.mean()),
        "lead_se": float(lead.std(ddof=1) / np.sqrt(len(lead))) if len(lead) > 1 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", nargs="+", default=["Alien", "MsPacman", "Centipede"])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50, help="SimPLe's rollout length")
    parser.add_argument("--repeats", type=int, default=4, help="random windows per start")
    parser.add_argument("--spacing", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--all", action="store_true", help="also print every action's mean window return"
    )
    args = parser.parse_args()
    print("| game | random play | best held action | lead over random (se) | worst held |")
    print("|---|---:|---|---:|---|")
    for game in args.games:
        env_id = game if "/" in game else f"ALE/{game}-v5"
        returns = scan(env_id, args.starts, args.steps, args.repeats, args.spacing, seed=args.seed)
        s = summary(returns)
        print(
            f"| {game} | {s['random']:.2f} | {s['best'][0]} {s['best'][1]:.2f} | "
            f"{s['lead']:+.2f} ({s['lead_se']:.2f}) | {s['worst'][0]} {s['worst'][1]:.2f} |"
        )
        if args.all:
            print("  " + ", ".join(f"{name} {r.mean():.2f}" for name, r in returns.items()))


if __name__ == "__main__":
    main()

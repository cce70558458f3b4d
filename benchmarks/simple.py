"""SimPLe on Atari, beside random play measured in the same run and the paper's scores.

Two configurations:

- ``small`` (the default; these CPUs): ``ATARI_SIMPLE_SMALL`` of
  ``mbwrap.algos.presets`` on 42x42 frames: 2,000 random steps, then ``--iterations``
  iterations of 2,000 real steps, each followed by a model fit and 32,000 simulated PPO
  steps (16 envs x 50-step rollouts, as in the paper).
- ``paper`` (a GPU): the paper's settings (``SimPLeConfig``'s defaults: 6,400 real steps
  per iteration, the model fitted 45K then 15K steps, 800K simulated steps per iteration)
  on 84x84 frames, for 100K real interactions: the Atari-100k run. One command per game::

      python benchmarks/simple.py --config paper --game ALE/Pong-v5 --seeds 0 1 2
      python benchmarks/simple.py --config paper --game ALE/Freeway-v5 --seeds 0 1 2
      python benchmarks/simple.py --config paper --game ALE/Breakout-v5 --seeds 0 1 2

After training, the agent (sampling its actions, as the paper evaluates) and uniformly
random play each play ``--episodes`` full episodes of the real game; both means are
printed with the paper's published score for the game.

Usage (CPU): MsPacman, where every held action out-earns random play over 50 steps,
with the expected reward as PPO's reward and fits twice the preset's (benchmarks/RESULTS.md,
"SimPLe on Atari"; about 17 minutes a seed on one core)::

    python benchmarks/simple.py --game ALE/MsPacman-v5 --seeds 0 1 2 --episodes 20 \\
        --threads 1 --set '{"model_kwargs": {"reward_estimate": "mean"},
        "first_fit_steps": 3000, "fit_steps": 1000}'

``--imagined-returns`` also prints, after training, what the model imagines: the summed
rewards of 50-step simulated episodes from real frame stacks with each action held and
with random actions, the reward taken as the head's mode and as its mean.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.algos.presets import ATARI_SIMPLE_SMALL
from mbwrap.algos.simple import SimPLe
from mbwrap.envs import make_atari_vec_env
from mbwrap.models.video import reward_of_logits

# Mean scores after 100K interactions (SimPLe) and of uniformly random play, as tabulated
# in the Atari-100k comparisons that followed (e.g. Srinivas et al. 2020, CURL, Table 2).
PUBLISHED = {
    "ALE/Pong-v5": {"simple": 12.8, "random": -20.7},
    "ALE/Freeway-v5": {"simple": 20.3, "random": 0.0},
    "ALE/Breakout-v5": {"simple": 16.4, "random": 1.7},
    "ALE/CrazyClimber-v5": {"simple": 62583.6, "random": 10780.5},
    "ALE/Assault-v5": {"simple": 527.2, "random": 222.4},
}
CONFIGS: dict[str, dict[str, Any]] = {
    "small": {"settings": ATARI_SIMPLE_SMALL, "screen_size": 42},
    "paper": {"settings": {}, "screen_size": 84},
}


class RandomPlay:
    """Uniformly random actions, with SB3's ``predict``."""

    def __init__(self, space: Any, seed: int) -> None:
        self.space = space
        self.space.seed(seed)

    def predict(self, obs: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        return np.array([self.space.sample() for _ in range(len(obs))]), None


@torch.no_grad()
def imagined_returns(algo: SimPLe, repeats: int = 8, steps: int = 50) -> dict[str, Any]:
    """``{actions: (mode return, mean return)}``: the imagined rewards of ``steps``-step
    simulated episodes from the dream's real start stacks, summed per episode and averaged
    over ``repeats`` x ``num_imagined_envs`` episodes, for each action held throughout and
    for uniformly random actions (``"random"``)."""
    model, dream = algo.model, algo.dream
    n, num_actions = dream.num_envs, int(algo.action_space.n)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    policies = {str(a): (lambda a=a: np.full(n, a)) for a in range(num_actions)}
    policies["random"] = lambda: rng.integers(0, num_actions, n)
    model.net.eval()
    returns = {}
    for name, policy in policies.items():
        totals = {"mode": [], "mean": []}
        for _ in range(repeats):
            obs, _ = dream.reset()
            frames = torch.as_tensor(obs).to(torch.uint8)
            summed = {"mode": torch.zeros(n), "mean": torch.zeros(n)}
            for _ in range(steps):
                action = model.action_index(torch.as_tensor(policy()))
                out = model.net(frames.float() / 255.0, action, generator=generator)
                for estimate in summed:
                    summed[estimate] += reward_of_logits(out.reward_logits, estimate)
                frame = out.pixel_logits.argmax(1).to(torch.uint8)
                frames = torch.cat([frames[:, 1:], frame.unsqueeze(1)], 1)
            for estimate, total in summed.items():
                totals[estimate].append(total.mean().item())
        returns[name] = tuple(float(np.mean(totals[e])) for e in ("mode", "mean"))
    return returns


def action_names(game: str) -> list[str]:
    """The game's action meanings (``"NOOP"``, ``"FIRE"``...), in action order."""
    env = make_atari_vec_env(game, 1, screen_size=42)
    names = env.env_method("get_action_meanings")[0]
    env.close()
    return names


def merged(settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with ``overrides`` over them, one level deep: a dict setting (such as
    ``model_kwargs``) takes the overriding dict's keys over its own, so ``--set
    '{"model_kwargs": {"reward_estimate": "mean"}}'`` keeps the config's other model
    keywords."""
    out = dict(settings)
    for key, value in overrides.items():
        base = out.get(key)
        both = isinstance(base, dict) and isinstance(value, dict)
        out[key] = {**base, **value} if both else value
    return out


def run(
    game: str,
    config: str,
    seed: int,
    iterations: int,
    episodes: int,
    overrides: dict[str, Any] | None = None,
    imagined: bool = False,
) -> dict[str, Any]:
    screen = CONFIGS[config]["screen_size"]
    settings = merged(CONFIGS[config]["settings"], overrides or {})
    env = make_atari_vec_env(game, 1, seed=seed, screen_size=screen)
    torch.manual_seed(seed)
    algo = SimPLe(env, seed=seed, **settings)
    steps = (
        100_000
        if config == "paper"
        else algo.config.learning_starts + iterations * algo.config.train_freq
    )
    start = time.perf_counter()
    algo.learn(steps, log_interval=None)  # the last fit's metrics stay in the logger
    seconds = time.perf_counter() - start
    fit = dict(algo.logger.name_to_value)
    dreamt = imagined_returns(algo) if imagined else None
    evaluation = make_atari_vec_env(game, 1, seed=10_000 + seed, screen_size=screen)
    agent, agent_std = evaluate_policy(
        algo, evaluation, n_eval_episodes=episodes, deterministic=False, warn=False
    )
    evaluation = make_atari_vec_env(game, 1, seed=10_000 + seed, screen_size=screen)
    random, random_std = evaluate_policy(
        RandomPlay(evaluation.action_space, seed),
        evaluation,
        n_eval_episodes=episodes,
        warn=False,
    )
    return {
        "agent": agent,
        "agent_std": agent_std,
        "random": random,
        "random_std": random_std,
        "steps": algo.real_steps,
        "imagined": algo.agent.num_timesteps,
        "pixel_accuracy": fit.get("model/pixel_accuracy"),
        "reward_accuracy": fit.get("model/reward_accuracy"),
        "seconds": seconds,
        "imagined_returns": dreamt,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="ALE/Pong-v5")
    parser.add_argument("--config", default="small", choices=sorted(CONFIGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, default=3, help="small config only")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--set",
        default="{}",
        help="JSON of SimPLe settings over the config, dicts merged one level deep, e.g. "
        "'{\"model_kwargs\": {\"reward_estimate\": \"mean\"}}'",
    )
    parser.add_argument(
        "--imagined-returns",
        action="store_true",
        help="print the model's imagined 50-step returns of each held action and of random play",
    )
    args = parser.parse_args()
    overrides = json.loads(args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    published = PUBLISHED.get(args.game)
    if published:
        print(
            f"{args.game}: the paper's SimPLe {published['simple']}, random {published['random']}"
        )
    for seed in args.seeds:
        result = run(
            args.game,
            args.config,
            seed,
            args.iterations,
            args.episodes,
            overrides,
            args.imagined_returns,
        )
        print(
            f"seed {seed} ({args.config}): {result['steps']} real steps, "
            f"{result['imagined']} simulated; SimPLe {result['agent']:.2f} "
            f"(std {result['agent_std']:.2f}) vs random play {result['random']:.2f} "
            f"(std {result['random_std']:.2f}) over {args.episodes} episodes; "
            "last fit: pixel accuracy "
            f"{result['pixel_accuracy']}, reward accuracy {result['reward_accuracy']} "
            f"({result['seconds']:.0f} s)"
        )
        names = action_names(args.game) if result["imagined_returns"] else []
        for actions, (mode, mean) in (result["imagined_returns"] or {}).items():
            label = names[int(actions)] if actions.isdigit() else actions
            print(
                f"  imagined return per 50 steps, actions {label}: "
                f"mode {mode:.3f}, mean {mean:.3f}"
            )


if __name__ == "__main__":
    main()

"""PPO trained only in an RSSM's latent imagination, acting on the real CartPole-v1.

Target: an SB3 PPO agent that never trains on a real transition reaches a mean return of
at least 195 on the real CartPole-v1 within 20,000 real steps, evaluated through
:class:`~mbwrap.LatentFilterWrapper` (the real env seen as the RSSM's posterior
features), for 3 seeds.

Per seed, a Dyna-style loop over real rounds:

1. collect real steps (uniformly random at first, then with the current agent acting
   on the latent features of the real observations, through
   ``LatentFilterPolicy``) into a :class:`~mbwrap.ReplayBuffer`;
2. fit the RSSM on sequences replayed from the buffer;
3. train PPO in ``mbwrap.sb3.as_vec_env(DreamVecEnv(rssm, ...))``: imagined episodes
   that start from posterior states of replayed real steps;
4. evaluate the agent on the real env through ``LatentFilterWrapper``
   (``evaluate_policy``, deterministic actions; evaluation steps are not counted as
   real steps, as for the peer).

The peer is SB3 PPO trained on the real env in the same process with the same real-step
budget (rl-zoo's CartPole-v1 settings), evaluated at the same real-step counts.

Prints a per-seed table of the real steps at which each learner first reached the
target and the returns at every evaluation, then a summary.

Usage::

    nice python benchmarks/latent_ppo.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

import mbwrap
from mbwrap import DreamVecEnv, LatentFilterWrapper, ReplayBuffer
from mbwrap.envs.latent_filter import LatentFilterPolicy

ENV_ID = "CartPole-v1"
TARGET = 195.0


@dataclass
class Config:
    real_steps: int = 20_000  # the real-step budget
    random_steps: int = 500  # uniformly random steps before the first fit
    round_steps: int = 500  # real steps collected by the agent per round
    confirm_rounds: int = 2  # rounds run after the target is first met, to see it hold
    # RSSM: DreamerV3's architecture at a CPU size.
    deter: int = 128
    hidden: int = 128
    layers: int = 1
    stoch: int = 16
    classes: int = 16
    model_lr: float = 1e-3
    batch_size: int = 16
    sequence_length: int = 32
    start_context: int = 8  # real steps filtered into each imagined start state
    first_fit_steps: int = 300  # gradient steps on the random data
    fit_steps: int = 100  # gradient steps per round after that
    # PPO in imagination.
    num_envs: int = 16
    horizon: int = 64  # imagined episode length before truncation (bootstrapped)
    imagined_steps: int = 8_192  # per round
    n_steps: int = 64
    ppo_batch_size: int = 256
    n_epochs: int = 10
    gamma: float = 0.99
    ppo_lr: float = 3e-4
    eval_episodes: int = 10
    seed: int = 0


@dataclass
class RunResult:
    seed: int
    steps_to_target: int | None  # real steps at the first evaluation >= TARGET
    curve: list[tuple[int, float]] = field(default_factory=list)  # (real steps, mean return)
    wall_s: float = 0.0


def _collect(
    env: gym.Env,
    buffer: ReplayBuffer,
    steps: int,
    agent: PPO | None,
    rssm: mbwrap.RSSM,
    seed: int,
) -> None:
    """``steps`` real transitions into ``buffer``, from a reset; the agent (or chance) acts
    on the latent features of the real observations (``LatentFilterPolicy``)."""
    policy = None if agent is None else LatentFilterPolicy(agent, rssm, seed=seed)
    mbwrap.collect(env, buffer, steps, policy=policy, seed=seed)
    buffer.end_episodes()


def _evaluate(agent: PPO, rssm: mbwrap.RSSM, episodes: int, seed: int) -> float:
    env = LatentFilterWrapper(gym.make(ENV_ID), rssm, seed=seed)
    env.reset(seed=seed)
    mean, _ = evaluate_policy(agent, env, n_eval_episodes=episodes, warn=False)
    return float(mean)


def run_latent_ppo(config: Config, log: bool = True) -> RunResult:
    """One seed of the loop; returns the real steps to the target and the curve."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    real = gym.make(ENV_ID)
    rssm = mbwrap.RSSM(
        real.observation_space,
        real.action_space,
        device="cpu",
        deter=config.deter,
        hidden=config.hidden,
        layers=config.layers,
        stoch=config.stoch,
        classes=config.classes,
        learning_rate=config.model_lr,
        batch_size=config.batch_size,
        sequence_length=config.sequence_length,
        start_context=config.start_context,
    )
    buffer = ReplayBuffer(real.observation_space, real.action_space, config.real_steps, "cpu")
    _collect(real, buffer, config.random_steps, None, rssm, int(rng.integers(2**31)))
    dream = DreamVecEnv(rssm, config.num_envs, start_states=buffer, horizon=config.horizon)
    dream.reset(seed=config.seed)
    agent = PPO(
        "MlpPolicy",
        mbwrap.sb3.as_vec_env(dream),
        n_steps=config.n_steps,
        batch_size=config.ppo_batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        learning_rate=config.ppo_lr,
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    result = RunResult(seed=config.seed, steps_to_target=None)
    fit_steps = config.first_fit_steps
    confirm = config.confirm_rounds
    while True:
        t0 = time.perf_counter()
        metrics = rssm.fit(buffer, steps=fit_steps)
        t1 = time.perf_counter()
        agent.learn(config.imagined_steps)
        t2 = time.perf_counter()
        score = _evaluate(agent, rssm, config.eval_episodes, config.seed + 1000 * len(buffer))
        t3 = time.perf_counter()
        result.curve.append((len(buffer), score))
        if log:
            print(
                f"  seed {config.seed} real {len(buffer):6d}  return {score:6.1f}  "
                f"model loss {metrics['loss']:.3f} (rew {metrics['reward_loss']:.3f} "
                f"cont {metrics['continue_loss']:.3f} kl {metrics['kl']:.2f})  "
                f"fit {t1 - t0:.0f}s ppo {t2 - t1:.0f}s eval {t3 - t2:.0f}s",
                flush=True,
            )
        if score >= TARGET and result.steps_to_target is None:
            result.steps_to_target = len(buffer)
        elif result.steps_to_target is not None:
            confirm -= 1
        if len(buffer) >= config.real_steps or (result.steps_to_target and confirm == 0):
            break
        steps = min(config.round_steps, config.real_steps - len(buffer))
        _collect(real, buffer, steps, agent, rssm, int(rng.integers(2**31)))
        fit_steps = config.fit_steps
    result.wall_s = time.perf_counter() - start
    return result


def run_peer(config: Config, checkpoints: list[int]) -> RunResult:
    """SB3 PPO on the real env (rl-zoo's CartPole-v1 settings), evaluated at ``checkpoints``."""
    start = time.perf_counter()
    venv = DummyVecEnv([lambda: gym.make(ENV_ID)] * 8)
    agent = PPO(
        "MlpPolicy",
        venv,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    result = RunResult(seed=config.seed, steps_to_target=None)
    for point in checkpoints:
        agent.learn(point - agent.num_timesteps, reset_num_timesteps=False)
        env = gym.make(ENV_ID)
        env.reset(seed=config.seed + 1000 * point)
        score, _ = evaluate_policy(agent, env, n_eval_episodes=config.eval_episodes, warn=False)
        result.curve.append((int(agent.num_timesteps), float(score)))
        if score >= TARGET and result.steps_to_target is None:
            result.steps_to_target = int(agent.num_timesteps)
    result.wall_s = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--real-steps", type=int, default=Config.real_steps)
    parser.add_argument("--json", type=str, default=None, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoints = list(range(1_000, args.real_steps + 1, 1_000))
    rows = []
    for seed in args.seeds:
        config = Config(seed=seed, real_steps=args.real_steps)
        print(f"seed {seed}: latent PPO", flush=True)
        latent = run_latent_ppo(config)
        print(f"seed {seed}: peer PPO on the real env", flush=True)
        peer = run_peer(config, checkpoints)
        rows.append((latent, peer))
        print(f"  peer curve: {[(s, round(r, 1)) for s, r in peer.curve]}", flush=True)

    def fmt(steps: int | None) -> str:
        return f"{steps:,}" if steps is not None else f"not within {args.real_steps:,}"

    def peer_at(peer: RunResult, steps: int) -> str:
        """The peer's return at its first evaluation at or after ``steps`` real steps."""
        at, score = next(((a, s) for a, s in peer.curve if a >= steps), peer.curve[-1])
        return f"{score:.1f} (at {at:,})"

    print(
        f"\nCartPole-v1, target: mean return >= {TARGET:.0f} over {Config.eval_episodes} episodes"
    )
    print(
        "| seed | latent PPO: real steps to target | latent PPO returns (real steps: return) "
        "| wall | peer PPO: real steps to target | peer return when the latent PPO met it "
        "| peer return at the budget | wall |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for latent, peer in rows:
        curve = ", ".join(f"{at:,}: {score:.0f}" for at, score in latent.curve)
        reached = latent.steps_to_target or args.real_steps
        print(
            f"| {latent.seed} | {fmt(latent.steps_to_target)} | {curve} | {latent.wall_s:.0f} s "
            f"| {fmt(peer.steps_to_target)} | {peer_at(peer, reached)} "
            f"| {peer.curve[-1][1]:.1f} | {peer.wall_s:.0f} s |"
        )
    met = sum(latent.steps_to_target is not None for latent, _ in rows)
    held = sum(
        latent.steps_to_target is not None and all(s >= TARGET for _, s in latent.curve[-3:])
        for latent, _ in rows
    )
    print(
        f"\ntarget met by latent PPO on {met} of {len(rows)} seeds; held for the "
        f"{Config.confirm_rounds} following rounds on {held}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"latent": asdict(a), "peer": asdict(b)} for a, b in rows], f, indent=1)


if __name__ == "__main__":
    main()

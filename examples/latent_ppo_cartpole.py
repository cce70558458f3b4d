"""An unmodified SB3 PPO agent trained only in an RSSM's latent imagination on CartPole.

The RSSM (DreamerV3's world model at a CPU size) is a Gymnasium env twice over:

- ``DreamVecEnv(rssm, ...)``: imagined episodes whose observations are the model's latent
  features, started from posterior states of replayed real steps; PPO trains here only;
- ``LatentFilterWrapper(real_env, rssm)``: the real env seen through the model's
  posterior, which emits the same features; the agent acts here unchanged.

Each round collects real steps with the current agent (``LatentFilterPolicy`` filters
the real observations for it, so the buffer keeps the real ones), refits the model and
trains the agent in imagination; then the agent is evaluated on the real env.

    python examples/latent_ppo_cartpole.py
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

import mbwrap
from mbwrap.envs.latent_filter import LatentFilterPolicy


@dataclass
class Config:
    env_id: str = "CartPole-v1"
    random_steps: int = 1_000  # uniformly random real steps before the first fit
    rounds: int = 3  # rounds of (collect, fit, train in imagination, evaluate)
    round_steps: int = 1_000  # real steps the agent collects per round
    # The RSSM, small enough for a CPU (DreamerV3's size S is 512 / 512 / 32 x 32).
    deter: int = 128
    hidden: int = 128
    stoch: int = 16
    classes: int = 16
    model_lr: float = 1e-3
    sequence_length: int = 32
    first_fit_steps: int = 300  # gradient steps on the random data
    fit_steps: int = 150  # gradient steps per later round
    # PPO, in imagination only.
    num_envs: int = 16
    horizon: int = 64  # imagined episode length; truncation is bootstrapped by PPO
    imagined_steps: int = 16_384  # per round
    eval_episodes: int = 5
    seed: int = 0


def main(config: Config | None = None) -> list[float]:
    config = config or Config()
    torch.manual_seed(config.seed)
    real = gym.make(config.env_id)
    total = config.random_steps + config.rounds * config.round_steps
    buffer = mbwrap.ReplayBuffer(real.observation_space, real.action_space, total, device="cpu")
    rssm = mbwrap.make_model(
        "rssm",
        real.observation_space,
        real.action_space,
        device="cpu",
        deter=config.deter,
        hidden=config.hidden,
        layers=1,
        stoch=config.stoch,
        classes=config.classes,
        learning_rate=config.model_lr,
        sequence_length=config.sequence_length,
        start_context=8,
    )
    # Keeps the real env's episode between rounds; the first steps act at random.
    collector = mbwrap.Collector(real, buffer, seed=config.seed)
    collector.collect(config.random_steps)

    dream = mbwrap.DreamVecEnv(rssm, config.num_envs, start_states=buffer, horizon=config.horizon)
    agent = PPO(
        "MlpPolicy",
        mbwrap.sb3.as_vec_env(dream),
        n_steps=64,
        batch_size=256,
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    evaluation = mbwrap.LatentFilterWrapper(gym.make(config.env_id), rssm, seed=config.seed)
    returns = []
    for round_ in range(config.rounds):
        if round_:
            acting = LatentFilterPolicy(agent, rssm, seed=config.seed + round_)
            collector.collect(config.round_steps, policy=acting)
        fit = rssm.fit(buffer, steps=config.first_fit_steps if round_ == 0 else config.fit_steps)
        agent.learn(config.imagined_steps)
        mean, _ = evaluate_policy(
            agent, evaluation, n_eval_episodes=config.eval_episodes, warn=False
        )
        returns.append(float(mean))
        print(
            f"round {round_ + 1}: {len(buffer):5d} real steps, model loss {fit['loss']:.3f}, "
            f"real return {mean:6.1f} (random play: about 22, the maximum: 500)",
            flush=True,
        )
    return returns


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

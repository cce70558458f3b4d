"""The loop MVE and STEVE share: an SB3 actor-critic acts in the real env and trains
through its own ``train()``, whose replay samples carry model-expanded targets."""

from __future__ import annotations

from typing import Any

from mbwrap.algos.agent_clock import AgentClock
from mbwrap.algos.base import Algorithm
from mbwrap.algos.expansion_sampler import ExpansionSampler
from mbwrap.algos.value_expansion_config import ValueExpansionConfig
from mbwrap.space_support import SpaceSupport


class ValueExpansion(AgentClock, Algorithm):
    """Base of :class:`~mbwrap.algos.mve.MVE` and :class:`~mbwrap.algos.steve.STEVE`.

    After ``learning_starts`` uniformly random real steps, each iteration takes
    ``train_freq`` real steps with the agent's policy (its own exploration noise, its clock
    following them), refits the model on all real data every ``model_train_freq`` real
    steps, and runs ``gradient_steps`` of the agent's ``train()`` per ``train_freq`` real
    steps. The agent's ``replay_buffer`` is an :class:`ExpansionSampler` (:meth:`_sampler`)
    over the real transitions: every batch is imagined afresh from the current model and
    target policy, and discarded after the update, as the papers do.

    Logs: the real episodes (``rollout/...``), the model's fit (``model/...``), the
    expansion (``expansion/...``: the model's mean reward, rollouts cut by non-finite
    predictions, and STEVE's weight on each horizon) and the agent's losses (``train/...``).
    """

    space_support = SpaceSupport(
        observations=("Box",),
        actions=("Box",),
        bounded_actions=True,
        action_note="an SB3 actor-critic (DDPG, TD3, SAC) acts",
    )
    positional_settings = ("agent", "model")
    saved_state = ("agent", "model", "sampler", "agent_updates")
    saved_buffers = ("buffer",)
    config: ValueExpansionConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        self.model = self._make_model()
        self.buffer = self._make_buffer()
        self.agent = self._make_agent(**self._agent_overrides())
        self._default_action_noise(config.action_noise)
        #: What the agent's ``train()`` samples from.
        self.sampler = self._sampler()
        self.agent.replay_buffer = self.sampler  # type: ignore[assignment]
        self.agent_updates = 0

    def _agent_overrides(self) -> dict[str, Any]:
        """Constructor keywords the algorithm imposes on a named agent."""
        return {}

    def _sampler(self) -> ExpansionSampler:
        raise NotImplementedError

    # ------------------------------------------------------------------ logs
    def _dump_logs(self) -> None:
        self._dump_per_episode("expansion", self.sampler.metrics())

"""SB3 agents by name: the whitelist model-based algorithms build their agents from.

A checkpoint records an agent as a name from this table plus JSON constructor keywords,
and :func:`build_agent` rebuilds it from the table, so loading never imports a class named
in a file. SB3's algorithms are always listed, sb3-contrib's when it is installed;
:func:`register_agent` adds others.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.agent_kwargs import decode_kwargs, encode_kwargs, is_json
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.spaces import check_same_space

_AGENTS: dict[str, type[BaseAlgorithm]] = {
    cls.__name__: cls for cls in (A2C, DDPG, DQN, PPO, SAC, TD3)
}
_CONTRIB_AGENTS = ("ARS", "CrossQ", "MaskablePPO", "QRDQN", "RecurrentPPO", "TQC", "TRPO")
_contrib_loaded = False

_ANY_ACTIONS = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
# The action spaces each listed agent takes: the supported_action_spaces its constructor
# passes to BaseAlgorithm (SB3 and sb3-contrib 2.9). Checked before an agent is built, so
# the error names the agent and the space instead of SB3's assertion.
_ACTION_SPACES: dict[str, tuple[type[spaces.Space], ...]] = {
    "A2C": _ANY_ACTIONS,
    "PPO": _ANY_ACTIONS,
    "TRPO": _ANY_ACTIONS,
    "RecurrentPPO": _ANY_ACTIONS,
    "MaskablePPO": (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "ARS": (spaces.Box, spaces.Discrete),
    "DQN": (spaces.Discrete,),
    "QRDQN": (spaces.Discrete,),
    "SAC": (spaces.Box,),
    "TD3": (spaces.Box,),
    "DDPG": (spaces.Box,),
    "TQC": (spaces.Box,),
    "CrossQ": (spaces.Box,),
}

# The smallest image side SB3's CnnPolicy (NatureCNN: 8x8 stride 4, 4x4 stride 2, 3x3
# stride 1) maps to at least one pixel.
_MIN_CNN_SIDE = 36

# Constructor keywords that describe where and how verbosely an agent runs, not what it
# is: the owning algorithm passes its own.
_RUNTIME_KEYWORDS = frozenset(
    {"self", "policy", "env", "device", "seed", "verbose", "tensorboard_log", "_init_setup_model"}
)

def _table(*, contrib: bool = True) -> dict[str, type[BaseAlgorithm]]:
    """The whitelist; sb3-contrib (slow to import) is added only when ``contrib``."""
    global _contrib_loaded
    if contrib and not _contrib_loaded:
        _contrib_loaded = True
        if importlib.util.find_spec("sb3_contrib") is not None:
            import sb3_contrib

            for name in _CONTRIB_AGENTS:
                cls = getattr(sb3_contrib, name, None)
                if cls is not None:
                    _AGENTS.setdefault(name, cls)
    return _AGENTS


def available_agents() -> list[str]:
    """Names :func:`agent_class` accepts."""
    return sorted(_table())


def register_agent(cls: type[BaseAlgorithm], name: str | None = None) -> None:
    """Allow ``cls`` (an SB3 ``BaseAlgorithm`` subclass) as an agent, under ``name``
    (default: the class name)."""
    if not (isinstance(cls, type) and issubclass(cls, BaseAlgorithm)):
        raise TypeError(f"cls: expected an SB3 BaseAlgorithm subclass, got {cls!r}")
    _table(contrib=False)[name or cls.__name__] = cls


def agent_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 algorithm class registered as ``name`` (``"PPO"``, ``"SAC"``...)."""
    table = _table(contrib=name not in _AGENTS)
    if name not in table:
        raise ValueError(
            f"agent: no SB3 algorithm named {name!r}; known: {', '.join(sorted(table))} "
            "(mbwrap.algos.register_agent adds others)"
        )
    return table[name]


def agent_name(cls: type[BaseAlgorithm]) -> str:
    """The name ``cls`` is registered under.

    :raises ValueError: when it is not registered (it could not be rebuilt on load).
    """
    table = _table(contrib=cls not in _AGENTS.values())
    for name, known in table.items():
        if known is cls:
            return name
    raise ValueError(
        f"agent: {cls.__module__}.{cls.__qualname__} is not a registered SB3 algorithm; call "
        "mbwrap.algos.register_agent(cls) so that checkpoints can name it"
    )


def check_agent(agent: Any) -> type[BaseAlgorithm] | BaseAlgorithm:
    """Turn ``agent`` (a name, an SB3 algorithm class or an instance) into a class or an
    instance, raising :class:`TypeError` naming ``agent`` for anything else."""
    if isinstance(agent, str):
        return agent_class(agent)
    if isinstance(agent, BaseAlgorithm):
        return agent
    if isinstance(agent, type) and issubclass(agent, BaseAlgorithm):
        return agent
    raise TypeError(
        "agent: expected an SB3 algorithm name ('PPO', 'SAC'...), an SB3 BaseAlgorithm "
        f"subclass or instance, got {agent!r}"
    )


def _kind_of_policy(observation_space: spaces.Space) -> str:
    """``"MultiInput"`` for Dict observations, ``"Cnn"`` for images NatureCNN can read,
    else ``"Mlp"``: the prefix of SB3's policy aliases for that space."""
    if isinstance(observation_space, spaces.Dict):
        return "MultiInput"
    # SB3 takes channels first or last (the smallest side); the other two are the image's.
    if is_image_space(observation_space) and sorted(observation_space.shape)[1] >= _MIN_CNN_SIDE:
        return "Cnn"
    return "Mlp"


def default_policy(cls: type[BaseAlgorithm], observation_space: spaces.Space) -> str:
    """The policy alias an agent of class ``cls`` needs for ``observation_space``:
    ``"MultiInputPolicy"`` for Dict observations, ``"CnnPolicy"`` for images, else
    ``"MlpPolicy"``, under the agent's own names (RecurrentPPO: ``"MlpLstmPolicy"``...);
    an agent without a CNN policy reads images through its MLP one.

    :raises UnsupportedSpaceError: naming ``agent`` when it has no policy for the space
        (a Dict for ARS or CrossQ; a Tuple or nested Dict for any SB3 agent).
    """
    nested = isinstance(observation_space, spaces.Dict) and any(
        isinstance(entry, (spaces.Dict, spaces.Tuple))
        for entry in observation_space.spaces.values()
    )
    if isinstance(observation_space, spaces.Tuple) or nested:
        raise UnsupportedSpaceError(
            f"agent: SB3 agents take Box, Discrete, MultiDiscrete, MultiBinary or flat Dict "
            f"observations, got {observation_space!r}"
        )
    aliases = sorted(cls.policy_aliases, key=len)
    kind = _kind_of_policy(observation_space)
    for prefix in (kind, "Mlp") if kind == "Cnn" else (kind,):
        matches = [alias for alias in aliases if alias.startswith(prefix)]
        if matches:
            return matches[0]
    raise UnsupportedSpaceError(
        f"agent: {cls.__name__} has no {kind} policy for observations of "
        f"{observation_space!r}; its policies: {', '.join(aliases)}"
    )


def supported_action_spaces(cls: type[BaseAlgorithm]) -> tuple[type[spaces.Space], ...] | None:
    """The action space types an agent class takes, or ``None`` when it is not a listed
    agent (SB3 then checks when it is built)."""
    table = _table(contrib=cls not in _AGENTS.values())
    for name, types in _ACTION_SPACES.items():
        if table.get(name) is cls:
            return types
    return None


def check_agent_action_space(cls: type[BaseAlgorithm], action_space: spaces.Space) -> None:
    """Raise :class:`~mbwrap.errors.UnsupportedSpaceError` naming ``agent`` when an agent
    of class ``cls`` cannot act in ``action_space``."""
    types = supported_action_spaces(cls)
    if types is not None and not isinstance(action_space, types):
        raise UnsupportedSpaceError(
            f"agent: {cls.__name__} takes {' or '.join(t.__name__ for t in types)} actions, "
            f"the env's action space is {action_space!r}"
        )


def agent_config(agent: BaseAlgorithm) -> dict[str, Any]:
    """Constructor keywords that rebuild ``agent``'s architecture and hyperparameters.

    Read from the instance's attributes named like its constructor's parameters, keeping
    those with a JSON form (schedules, noise objects and buffer classes fall back to
    their defaults); ``policy`` is the alias of its policy class.
    """
    cls = type(agent)
    config: dict[str, Any] = {}
    for key in inspect.signature(cls.__init__).parameters:
        if key in _RUNTIME_KEYWORDS or key == "policy_kwargs" or not hasattr(agent, key):
            continue
        value = getattr(agent, key)
        if is_json(value):
            config[key] = value
    aliases = [a for a, policy in cls.policy_aliases.items() if policy is agent.policy_class]
    if not aliases:
        raise ValueError(
            f"agent: its policy class {agent.policy_class.__qualname__} is not one of "
            f"{cls.__name__}'s aliases {sorted(cls.policy_aliases)}; it cannot be rebuilt"
        )
    config["policy"] = aliases[0]
    config["policy_kwargs"] = encode_kwargs(agent.policy_kwargs, name="agent.policy_kwargs")
    return config


def build_agent(
    cls: type[BaseAlgorithm],
    env: VecEnv,
    kwargs: dict[str, Any],
    *,
    seed: int | None,
    device: torch.device,
    verbose: int = 0,
) -> BaseAlgorithm:
    """``cls(policy, env, seed=, device=, verbose=, **kwargs)``; ``policy`` comes from
    ``kwargs``, else :func:`default_policy` picks the one the env's observations need.

    :raises UnsupportedSpaceError: naming ``agent`` when it cannot act in the env's action
        space (:func:`check_agent_action_space`) or, without a ``policy``, has none for
        its observations (:func:`default_policy`).
    :raises ValueError: naming ``agent_kwargs['policy']`` when the class has no such policy.
    :raises TypeError: naming ``agent_kwargs`` when the class rejects a keyword.
    """
    kwargs = dict(kwargs)
    check_agent_action_space(cls, env.action_space)
    policy = kwargs.pop("policy", None) or default_policy(cls, env.observation_space)
    if isinstance(policy, str) and policy not in cls.policy_aliases:
        raise ValueError(
            f"agent_kwargs['policy']: {cls.__name__} has no policy {policy!r}; its policies: "
            f"{', '.join(sorted(cls.policy_aliases))}"
        )
    try:
        return cls(policy, env, seed=seed, device=device, verbose=verbose, **kwargs)
    except TypeError as err:
        raise TypeError(f"agent_kwargs: {cls.__name__} rejected them: {err}") from err
    except AssertionError as err:
        # SB3 asserts the action space of agents not listed in _ACTION_SPACES.
        if "action space" not in str(err):
            raise
        raise UnsupportedSpaceError(f"agent: {cls.__name__} cannot act in the env: {err}") from err


def resolve_agent(
    agent: Any,
    agent_kwargs: dict[str, Any] | None,
    env: VecEnv,
    *,
    seed: int | None,
    device: torch.device,
    verbose: int = 0,
    extra_kwargs: dict[str, Any] | None = None,
) -> tuple[BaseAlgorithm, Any, dict[str, Any]]:
    """The agent an algorithm trains: ``agent`` itself when it is an instance (its spaces
    checked against ``env``'s), else built on ``env`` from a name or class with
    ``agent_kwargs`` (and ``extra_kwargs`` the algorithm imposes on top).

    :return: ``(agent, registered name, JSON keywords that rebuild it)``, the last two
        for checkpoints.
    :raises ValueError: naming ``agent_kwargs`` when given with an instance.
    :raises SpaceMismatchError: when an instance's spaces are not the env's.
    """
    agent = check_agent(agent)
    if isinstance(agent, BaseAlgorithm):
        if agent_kwargs:
            raise ValueError("agent_kwargs: only used when agent is a name or class")
        check_same_space(
            env.observation_space, agent.observation_space, name="agent.observation_space"
        )
        check_same_space(env.action_space, agent.action_space, name="agent.action_space")
        return agent, agent_name(type(agent)), agent_config(agent)
    kwargs = {**decode_kwargs(agent_kwargs or {}), **(extra_kwargs or {})}
    built = build_agent(agent, env, kwargs, seed=seed, device=device, verbose=verbose)
    try:
        name: Any = agent_name(agent)
    except ValueError:
        name = agent  # usable; saving it raises agent_name's error (see Algorithm.get_config)
    return built, name, encode_kwargs(dict(agent_kwargs or {}), name="agent_kwargs")

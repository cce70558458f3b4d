"""What a checkpoint holds, declared once per algorithm, and how each kind of part is
written to tensors plus JSON and read back exactly.

An algorithm lists the attributes that make up its run (``saved_state``: modules,
optimizers, SB3 agents, generators, schedules, counters; ``saved_buffers``: replay) and
:func:`capture` / :func:`restore` handle each by what it is:

- a world model: its state dict and the optimizer it keeps across fits;
- anything with ``state_dict()`` / ``load_state_dict()`` (torch modules, optimizers,
  mbwrap's buffers): its state dict, nested dicts and lists kept;
- an SB3 algorithm: :func:`agent_state` (policy, optimizers, entropy coefficient,
  counters, learning-rate progress, optionally its replay buffer);
- ``numpy.random.Generator`` and ``torch.Generator``: their exact states;
- ``None``, numbers, strings, lists and dicts of these: stored as JSON.

Nested values are split into a JSON tree and a flat ``{key: tensor}`` map
(:func:`split_tree` / :func:`join_tree`), so a checkpoint never pickles.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from mbwrap.checkpoint import check_count, check_index
from mbwrap.models import WorldModel

_TENSOR = "__tensor__"
_ARRAY = "__ndarray__"
_TUPLE = "__tuple__"


def split_tree(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The JSON form of ``value``; its tensors and arrays go to ``tensors`` under keys that
    start with ``prefix``, and the JSON keeps a reference to them.

    :raises TypeError: naming the key of a value with no JSON or tensor form.
    """
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach()
        return {_TENSOR: prefix}
    if isinstance(value, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(value))
        return {_ARRAY: prefix}
    if isinstance(value, dict):
        keys = list(value)
        if all(isinstance(k, str) for k in keys):
            return {k: split_tree(v, f"{prefix}.{k}", tensors) for k, v in value.items()}
        # Optimizer states are keyed by parameter index: keep the keys' types.
        return {
            "__items__": [
                [k if not isinstance(k, np.integer) else int(k),
                 split_tree(v, f"{prefix}.{k}", tensors)]
                for k, v in value.items()
            ]
        }
    if isinstance(value, tuple):
        return {_TUPLE: [split_tree(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [split_tree(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{prefix}: a {type(value).__name__} cannot be stored in a checkpoint")


def join_tree(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_tree`.

    :raises KeyError: when a referenced tensor is missing.
    """
    if isinstance(tree, dict):
        if _TENSOR in tree and len(tree) == 1:
            return tensors[tree[_TENSOR]]
        if _ARRAY in tree and len(tree) == 1:
            return tensors[tree[_ARRAY]].numpy()
        if _TUPLE in tree and len(tree) == 1:
            return tuple(join_tree(v, tensors) for v in tree[_TUPLE])
        if "__items__" in tree and len(tree) == 1:
            return {k: join_tree(v, tensors) for k, v in tree["__items__"]}
        return {k: join_tree(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tree(v, tensors) for v in tree]
    return tree


# ---------------------------------------------------------------------- random states
def global_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CUDA's too)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),  # noqa: NPY002 (the global one)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`global_rng_state`'s output."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])  # noqa: NPY002 (the global one)
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


def generator_state(rng: np.random.Generator | torch.Generator) -> Any:
    """A NumPy generator's bit-generator state (a dict) or a torch generator's (bytes)."""
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.state
    return rng.get_state()


def set_generator_state(rng: np.random.Generator | torch.Generator, state: Any) -> None:
    if isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state
    else:
        rng.set_state(state.to(torch.uint8))


def env_generators(env: Any) -> list[np.random.Generator] | None:
    """The NumPy generators of an SB3 ``VecEnv``'s copies, or ``None`` when it does not
    expose them (only in-process envs do: ``DummyVecEnv``)."""
    if env is None or not hasattr(env, "envs"):
        return None
    try:
        rngs = [getattr(e.unwrapped, "np_random", None) for e in env.envs]
    except AttributeError:
        return None
    if not all(isinstance(r, np.random.Generator) for r in rngs):
        return None
    return rngs


def env_rng_states(env: Any) -> list[dict[str, Any]] | None:
    """The states of :func:`env_generators` (``None`` where there are none)."""
    rngs = env_generators(env)
    return None if rngs is None else [rng.bit_generator.state for rng in rngs]


def set_env_rng_states(env: Any, states: list[dict[str, Any]] | None) -> None:
    """Restore :func:`env_rng_states`'s output; the next reset continues these streams
    instead of applying a seed given before. Nothing happens when the env exposes no
    generators or has another number of copies."""
    rngs = env_generators(env)
    if rngs is None or states is None or len(rngs) != len(states):
        return
    if hasattr(env, "_reset_seeds"):
        env._reset_seeds()
    for rng, state in zip(rngs, states, strict=True):
        rng.bit_generator.state = state


# ---------------------------------------------------------------------- SB3 agents
def agent_state(agent: BaseAlgorithm, *, include_buffer: bool = True) -> dict[str, Any]:
    """Everything an SB3 agent needs to continue training exactly: the state dicts SB3's own
    ``save`` keeps (policy and optimizers), its torch variables (SAC's ``log_ent_coef``),
    its counters and learning-rate progress, and, for off-policy agents when
    ``include_buffer``, its replay buffer's arrays."""
    state_dicts, variables = agent._get_torch_save_params()
    state: dict[str, Any] = {
        "state_dicts": {name: _attr(agent, name).state_dict() for name in state_dicts},
        "variables": {name: _attr(agent, name) for name in variables or []},
        "counters": {
            "num_timesteps": int(agent.num_timesteps),
            "n_updates": int(getattr(agent, "_n_updates", 0)),
            "episode_num": int(getattr(agent, "_episode_num", 0)),
            "n_calls": int(getattr(agent, "_n_calls", 0)),
            "current_progress_remaining": float(agent._current_progress_remaining),
        },
    }
    buffer = getattr(agent, "replay_buffer", None)
    if include_buffer and isinstance(agent, OffPolicyAlgorithm) and hasattr(buffer, "pos"):
        arrays = {
            name: value
            for name, value in vars(buffer).items()
            if isinstance(value, np.ndarray) and name != "_episode_storage"
        }
        state["replay_buffer"] = {
            "arrays": arrays,
            "pos": int(buffer.pos),
            "full": bool(buffer.full),
        }
    return state


def set_agent_state(agent: BaseAlgorithm, state: dict[str, Any]) -> None:
    """Restore :func:`agent_state`'s output into an agent built with the same settings.

    :raises CheckpointError: naming a counter that is negative or not an int, or a replay
        position outside the agent's buffer.
    """
    counters = {
        name: check_count(state["counters"][name], name=f"agent.counters.{name}")
        for name in ("num_timesteps", "n_updates", "episode_num", "n_calls")
    }
    replay = state.get("replay_buffer")
    buffer = getattr(agent, "replay_buffer", None)
    has_replay = replay is not None and buffer is not None and hasattr(buffer, "pos")
    if has_replay:
        pos = check_index(replay["pos"], name="agent.replay_buffer.pos", size=buffer.buffer_size)
    for name, value in state["state_dicts"].items():
        _attr(agent, name).load_state_dict(value)
    for name, value in state["variables"].items():
        with torch.no_grad():
            _attr(agent, name).copy_(value)
    agent.num_timesteps = counters["num_timesteps"]
    agent._n_updates = counters["n_updates"]
    agent._episode_num = counters["episode_num"]
    if hasattr(agent, "_n_calls"):
        agent._n_calls = counters["n_calls"]
    agent._current_progress_remaining = state["counters"]["current_progress_remaining"]
    if has_replay:
        for name, array in replay["arrays"].items():
            getattr(buffer, name)[...] = array
        buffer.pos, buffer.full = pos, bool(replay["full"])


def _attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------------- one part
def capture(value: Any, *, include_buffer: bool = True) -> dict[str, Any]:
    """``{"kind": ..., "state": ...}`` for one declared part of an algorithm."""
    if isinstance(value, BaseAlgorithm):
        return {"kind": "agent", "state": agent_state(value, include_buffer=include_buffer)}
    if isinstance(value, (np.random.Generator, torch.Generator)):
        return {"kind": "generator", "state": generator_state(value)}
    if isinstance(value, WorldModel):
        state = {"module": value.state_dict(), "optimizer": value.optimizer_state_dict()}
        return {"kind": "model", "state": state}
    if hasattr(value, "state_dict") and hasattr(value, "load_state_dict"):
        return {"kind": "stateful", "state": value.state_dict()}
    return {"kind": "value", "state": value}


def restore(owner: Any, name: str, part: dict[str, Any]) -> None:
    """Put ``part`` (from :func:`capture`) back into ``owner.name``.

    :raises CheckpointError: naming ``name`` when it is a counter (an int attribute of
        ``owner``) and the checkpoint holds a negative number or no int.
    """
    kind, state = part["kind"], part["state"]
    current = getattr(owner, name, None)
    if kind == "value":
        if isinstance(current, int) and not isinstance(current, bool):
            state = check_count(state, name=name)
        setattr(owner, name, state)
    elif current is None:
        raise ValueError(f"{name}: the checkpoint holds a {kind} but the algorithm has none")
    elif kind == "agent":
        set_agent_state(current, state)
    elif kind == "generator":
        set_generator_state(current, state)
    elif kind == "model":
        current.load_state_dict(state["module"])
        current.load_optimizer_state_dict(state["optimizer"])
    else:
        current.load_state_dict(state)

"""Checkpoints of an algorithm, declared once: its settings (JSON), the parts it lists
(:attr:`Checkpointed.saved_state`, :attr:`Checkpointed.saved_buffers`), its counters and
random states, written atomically as tensors plus JSON and loaded without executing code."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar

import gymnasium as gym
import torch

from mbwrap.algos import state as saved
from mbwrap.checkpoint import check_count, load_checkpoint, save_checkpoint
from mbwrap.errors import CheckpointError
from mbwrap.spaces import space_from_json, space_to_json

CHECKPOINT_KIND = "mbwrap.algo"


class Checkpointed:
    """``save``/``load`` for :class:`~mbwrap.algos.AlgorithmCore`: what a checkpoint holds
    is declared by :attr:`saved_state` and :attr:`saved_buffers` (see
    :mod:`mbwrap.algos.state` for each kind of part) plus :meth:`_run_state`."""

    #: Attributes a checkpoint holds: modules, optimizers, agents, generators, counters.
    saved_state: ClassVar[tuple[str, ...]] = ()
    #: Replay attributes a checkpoint holds unless ``save(include_buffer=False)``.
    saved_buffers: ClassVar[tuple[str, ...]] = ()
    #: Parts of :attr:`saved_state` that are how the algorithm acts between calls (the
    #: beliefs of a latent filter and its noise): a collection worker taking the
    #: learner's weights keeps its own.
    acting_state: ClassVar[tuple[str, ...]] = ()

    def _run_state(self) -> dict[str, Any]:
        """Counters and random states of the run (subclasses add theirs)."""
        return {
            "num_timesteps": self.num_timesteps,
            "episode_num": self._episode_num,
            # Return and length; Monitor's wall-clock time "t" is not part of the run.
            "ep_info_buffer": [
                {"r": float(episode["r"]), "l": int(episode["l"])}
                for episode in self.ep_info_buffer
            ],
            "ep_success_buffer": [bool(success) for success in self.ep_success_buffer],
            "rng": saved.global_rng_state(),
            "action_space_rng": self.action_space.np_random.bit_generator.state,
        }

    def _set_run_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_run_state`'s output.

        :raises CheckpointError: naming a counter that is negative or not an int.
        """
        self.num_timesteps = check_count(state["num_timesteps"], name="run.num_timesteps")
        self._episode_num = check_count(state["episode_num"], name="run.episode_num")
        self.ep_info_buffer.clear()
        self.ep_info_buffer.extend(state["ep_info_buffer"])
        self.ep_success_buffer.clear()
        # Absent from checkpoints written before success rates were kept.
        self.ep_success_buffer.extend(bool(s) for s in state.get("ep_success_buffer", []))
        saved.set_global_rng_state(state["rng"])
        self.action_space.np_random.bit_generator.state = state["action_space_rng"]

    def get_tensors(
        self, include_buffer: bool = True, include_generators: bool = True
    ) -> dict[str, torch.Tensor]:
        """Learned state for checkpoints: the declared :attr:`saved_state` (and
        :attr:`saved_buffers` when ``include_buffer``), with the run's counters and random
        states. Tensors go in the result; their JSON skeleton under ``"__tree__"`` as a
        byte tensor.

        :param include_generators: ``False`` leaves out the algorithm's own random
            generators: what a collector on another process needs to act, while it keeps
            drawing from its own streams.
        """
        names = self.saved_state + (self.saved_buffers if include_buffer else ())
        parts = {
            name: saved.capture(getattr(self, name), include_buffer=include_buffer)
            for name in names
        }
        if not include_generators:
            parts = {name: part for name, part in parts.items() if part["kind"] != "generator"}
        tensors: dict[str, torch.Tensor] = {}
        tree = saved.split_tree({"parts": parts, "run": self._run_state()}, "state", tensors)
        tensors["__tree__"] = torch.frombuffer(
            bytearray(json.dumps(tree).encode()), dtype=torch.uint8
        )
        return tensors

    def set_tensors(
        self, tensors: dict[str, torch.Tensor], keep_random_state: bool = False
    ) -> None:
        """Restore :meth:`get_tensors`'s output.

        :param keep_random_state: keep this process's global random states (Python,
            NumPy, torch), the action space's and the :attr:`acting_state` instead of
            taking the saved ones: a collector takes the learner's weights, not its
            random streams or beliefs.
        """
        tree = json.loads(bytes(tensors["__tree__"].tolist()).decode())
        state = saved.join_tree(tree, tensors)
        for name, part in state["parts"].items():
            if not (keep_random_state and name in self.acting_state):
                saved.restore(self, name, part)
        if keep_random_state:
            own = saved.global_rng_state(), self.action_space.np_random.bit_generator.state
            state["run"]["rng"], state["run"]["action_space_rng"] = own
        self._set_run_state(state["run"])
        self._after_restore()

    def _after_restore(self) -> None:
        """Called after :meth:`set_tensors`: e.g. to keep a freshly built imagination env
        from reseeding over the random state just restored."""

    def save(self, path: str | os.PathLike, include_buffer: bool = True) -> None:
        """Write settings (JSON) and state (tensors) atomically; never pickle.

        :param include_buffer: ``False`` leaves replay out: a small checkpoint for
            inference (or for continuing with an empty buffer).
        """
        cls = type(self)
        metadata = {
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "registry_name": cls.registry_name,
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "num_timesteps": self.num_timesteps,
            "include_buffer": include_buffer,
            "config": self.get_config(),
        }
        tensors = self.get_tensors(include_buffer=include_buffer)
        save_checkpoint(path, kind=CHECKPOINT_KIND, metadata=metadata, tensors=tensors)

    @classmethod
    def _rebuild(
        cls,
        env: Any,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: dict[str, Any],
    ) -> Any:
        """The algorithm a checkpoint describes, before its state is restored."""
        return cls(  # type: ignore[call-arg]
            env, observation_space=observation_space, action_space=action_space, **config
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        env: Any = None,
        device: str | torch.device = "auto",
    ) -> Any:
        """Rebuild an algorithm saved by :meth:`save`; ``learn(n, reset_num_timesteps=False)``
        then continues the run where it stopped.

        :param env: what to keep learning in (optional for prediction only).
        :raises CheckpointError: for a corrupt file, one of another algorithm, or state that
            disagrees with the algorithm it rebuilds (a counter that is negative or not an
            int, an index out of range, a capacity beyond the bound), naming the field.
        """
        metadata, tensors = load_checkpoint(path, kind=CHECKPOINT_KIND)
        expected = f"{cls.__module__}:{cls.__qualname__}"
        if metadata.get("class") != expected:
            raise CheckpointError(
                f"{str(path)!r} holds a {metadata.get('class')!r} algorithm, not {expected}"
            )
        try:
            config = dict(metadata["config"])
            in_config = "device" in {f.name for f in dataclasses.fields(cls.Config)}
            config["device"] = str(device) if in_config else device
            algo = cls._rebuild(
                env,
                space_from_json(metadata["observation_space"]),
                space_from_json(metadata["action_space"]),
                config,
            )
            algo.set_tensors(tensors)
            algo.num_timesteps = check_count(
                metadata.get("num_timesteps", 0), name="metadata.num_timesteps"
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{str(path)!r}: algorithm checkpoint does not fit: {err}"
            ) from err
        return algo

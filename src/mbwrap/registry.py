"""Plugin discovery through Python entry points, and the ``make_*`` factories.

Four entry-point groups, one per kind of component::

    [project.entry-points."mbwrap.models"]     # name -> WorldModel subclass or factory
    [project.entry-points."mbwrap.planners"]   # name -> SB3 policy class or factory
    [project.entry-points."mbwrap.algos"]      # name -> Algorithm subclass or factory
    [project.entry-points."mbwrap.fns"]        # Gymnasium env id -> object with batched
                                               # reward(obs, action, next_obs),
                                               # termination(obs, action, next_obs)
                                               # and/or action_mask(obs)

mbwrap registers its built-ins the same way, so they are listed, chosen and disabled
exactly like third-party ones. Discovery reads package metadata only; a plugin's code is
imported when it is first used.

When two distributions register the same name, qualify it as ``"dist:name"``. The
environment variable ``MBWRAP_DISABLE_PLUGINS`` hides plugins: a comma-separated list of
``name``, ``dist:name`` or ``dist:*`` items.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import gymnasium as gym

from mbwrap.errors import (
    AmbiguousPluginError,
    CheckpointError,
    PluginLoadError,
    PluginTypeError,
    PluginWarning,
    UnknownPluginError,
)

#: kind -> entry-point group.
GROUPS: dict[str, str] = {
    "model": "mbwrap.models",
    "planner": "mbwrap.planners",
    "algo": "mbwrap.algos",
    "fn": "mbwrap.fns",
}

#: Environment variable listing plugins to hide (``name``, ``dist:name`` or ``dist:*``).
DISABLE_ENV_VAR = "MBWRAP_DISABLE_PLUGINS"

# The base class each factory's result must be an instance of, imported only when a
# factory runs: the registry sits below the layers that define them.
_EXPECTED: dict[str, tuple[str, str]] = {
    "model": ("mbwrap.models", "WorldModel"),
    # Shooting planners subclass mbwrap.planners.Planner, tree search does not: the
    # contract every planner keeps is SB3's policy interface.
    "planner": ("stable_baselines3.common.policies", "BasePolicy"),
    "algo": ("mbwrap.algos", "AlgorithmCore"),
}


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, described from package metadata without importing it.

    :ivar kind: ``"model"``, ``"planner"``, ``"algo"`` or ``"fn"``.
    :ivar name: the entry-point name (for ``fn``, a Gymnasium env id).
    :ivar dist: the distribution that declares it.
    :ivar version: that distribution's version.
    :ivar target: ``"module:attribute"`` the entry point refers to.
    """

    kind: str
    name: str
    dist: str
    version: str
    target: str
    entry_point: EntryPoint = field(compare=False, repr=False)

    @property
    def qualified_name(self) -> str:
        """``"dist:name"``, unambiguous even when another distribution uses ``name``."""
        return f"{self.dist}:{self.name}"

    def load(self) -> Any:
        """Import and return the target.

        :raises PluginLoadError: naming the distribution, the target and the error.
        """
        try:
            return self.entry_point.load()
        except Exception as err:
            raise PluginLoadError(
                f"{self.kind} plugin {self.name!r} from distribution {self.dist!r} "
                f"({self.target}) failed to load: {type(err).__name__}: {err}"
            ) from err


def _check_kind(kind: str) -> str:
    if kind not in GROUPS:
        raise ValueError(f"kind: expected one of {sorted(GROUPS)}, got {kind!r}")
    return kind


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


@functools.cache
def _scan(kind: str) -> tuple[PluginInfo, ...]:
    found: dict[tuple[str, str], PluginInfo] = {}
    for ep in entry_points(group=GROUPS[kind]):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "unknown"
        key = (_normalise(dist), ep.name)
        # The same distribution can be visible twice on sys.path (e.g. an editable install
        # next to a build directory); it is one plugin.
        found.setdefault(key, PluginInfo(kind, ep.name, dist, version, ep.value, ep))
    return tuple(sorted(found.values(), key=lambda info: (info.name, info.dist)))


def refresh() -> None:
    """Forget cached discovery results (after installing a plugin in a running process)."""
    _scan.cache_clear()


def _disabled(info: PluginInfo) -> bool:
    items = {item.strip() for item in re.split(r"[,\s]+", os.environ.get(DISABLE_ENV_VAR, ""))}
    items.discard("")
    dist = _normalise(info.dist)
    for item in items:
        if ":" in item:
            item_dist, item_name = item.split(":", 1)
            if _normalise(item_dist) == dist and item_name in ("*", info.name):
                return True
        elif item == info.name:
            return True
    return False


def plugins(kind: str, *, dist: str | None = None) -> list[PluginInfo]:
    """Every enabled plugin of ``kind``, duplicates across distributions included.

    :param dist: only those of this distribution (e.g. ``"mbwrap"``: the built-ins).
    """
    found = [info for info in _scan(_check_kind(kind)) if not _disabled(info)]
    if dist is not None:
        found = [info for info in found if _normalise(info.dist) == _normalise(dist)]
    return found


def available(kind: str) -> dict[str, PluginInfo]:
    """Enabled plugins of ``kind`` by the name to ask for them with.

    A name registered by one distribution is keyed by the name; a name registered by
    several is keyed by each ``"dist:name"`` instead, the form that chooses between them.
    Nothing is imported.
    """
    infos = plugins(kind)
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.name] = counts.get(info.name, 0) + 1
    return {(info.name if counts[info.name] == 1 else info.qualified_name): info for info in infos}


def _matching(infos: Iterable[PluginInfo], name: str) -> list[PluginInfo]:
    """The plugins among ``infos`` that ``name`` (or ``"dist:name"``) asks for."""
    infos = list(infos)
    matches = [info for info in infos if info.name == name]
    if not matches and ":" in name:
        dist, bare = name.split(":", 1)
        matches = [i for i in infos if i.name == bare and _normalise(i.dist) == _normalise(dist)]
    return matches


def resolve(kind: str, name: str) -> PluginInfo:
    """Find the plugin ``name`` (or ``"dist:name"``) of ``kind``.

    :raises UnknownPluginError: listing the available names.
    :raises AmbiguousPluginError: naming the distributions and how to choose.
    """
    matches = _matching(plugins(kind), name)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        names = ", ".join(sorted(available(kind))) or "none"
        hint = ""
        if _matching(_scan(kind), name):
            hint = f" ({name!r} is disabled by ${DISABLE_ENV_VAR})"
        raise UnknownPluginError(
            f"no {kind} plugin named {name!r}{hint}; available {kind}s: {names}"
        )
    choices = " or ".join(repr(info.qualified_name) for info in matches)
    dists = ", ".join(f"{info.dist} {info.version}" for info in matches)
    raise AmbiguousPluginError(
        f"{kind} plugin {name!r} is registered by several distributions ({dists}); "
        f"ask for {choices}, or hide one with ${DISABLE_ENV_VAR}"
    )


def load(kind: str, name: str) -> Any:
    """Import and return the target of plugin ``name`` of ``kind``.

    :raises PluginLoadError: when its import fails.
    """
    return resolve(kind, name).load()


def load_all(kind: str) -> dict[str, Any]:
    """Import every enabled plugin of ``kind``; one that fails gives a :class:`PluginWarning`
    naming its distribution and error, and is left out."""
    loaded: dict[str, Any] = {}
    for key, info in available(kind).items():
        try:
            loaded[key] = info.load()
        except PluginLoadError as err:
            warnings.warn(str(err), PluginWarning, stacklevel=2)
    return loaded


def get_fn(env_id: str | None) -> Any | None:
    """The reward/termination functions registered for a Gymnasium env id, or ``None``.

    A registered entry that fails to import gives a :class:`PluginWarning` and ``None``,
    so imagination falls back to the model's own heads.
    """
    if env_id is None:
        return None
    matches = [info for info in plugins("fn") if info.name == env_id]
    if not matches:
        return None
    try:
        fns = resolve("fn", env_id).load()
    except PluginLoadError as err:
        warnings.warn(f"{err}; using the model's own heads instead", PluginWarning, stacklevel=2)
        return None
    _check_fn(fns, env_id)
    return fns


def _check_fn(fns: Any, name: str) -> None:
    reward = getattr(fns, "reward", None)
    termination = getattr(fns, "termination", None)
    action_mask = getattr(fns, "action_mask", None)
    if not (callable(reward) or callable(termination) or callable(action_mask)):
        raise PluginTypeError(
            f"fn plugin {name!r} resolved to {fns!r}, which has none of a callable "
            "'reward(obs, action, next_obs)', 'termination(obs, action, next_obs)' or "
            "'action_mask(obs)'"
        )


def _make(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    info = resolve(kind, name)
    factory = info.load()
    if not callable(factory):
        raise PluginTypeError(
            f"{kind} plugin {name!r} from {info.dist!r} ({info.target}) is not callable"
        )
    if kind == "algo":
        _check_env_spaces(factory, args[0])
    result = factory(*args, **kwargs)
    module, attr = _EXPECTED[kind]
    expected = getattr(importlib.import_module(module), attr)
    if not isinstance(result, expected):
        raise PluginTypeError(
            f"{kind} plugin {name!r} from {info.dist!r} ({info.target}) returned "
            f"{type(result).__module__}.{type(result).__qualname__}, which is not a "
            f"{module}.{attr}"
        )
    return result


def _check_env_spaces(factory: Any, env: Any) -> None:
    """Hold a real env's spaces against the algorithm's declared ones
    (``AlgorithmCore.check_spaces``) before the algorithm is built, so that no algorithm,
    one that wraps the env first included, meets an unsupported space inside SB3's
    wrappers."""
    check = getattr(factory, "check_spaces", None)
    observation_space = getattr(env, "observation_space", None)
    action_space = getattr(env, "action_space", None)
    # Games (PettingZoo) have per-agent space methods: their algorithm checks them itself.
    if callable(check) and isinstance(observation_space, gym.Space) and (
        isinstance(action_space, gym.Space)
    ):
        check(observation_space, action_space)


def make_model(name: str, observation_space: Any, action_space: Any, **kwargs: Any) -> Any:
    """Build the world model registered as ``name``.

    :param observation_space: the real env's observation space.
    :param action_space: the real env's action space.
    :param kwargs: passed to the model's constructor.
    :return: a :class:`mbwrap.models.WorldModel`.
    """
    return _make("model", name, observation_space, action_space, **kwargs)


def make_planner(name: str, model: Any, **kwargs: Any) -> Any:
    """Build the planner registered as ``name`` over ``model``.

    :return: an SB3 ``BasePolicy``: a :class:`mbwrap.planners.Planner` or a tree search.
    """
    return _make("planner", name, model, **kwargs)


def make_algo(name: str, env: Any, **kwargs: Any) -> Any:
    """Build the algorithm registered as ``name`` on the real env ``env``.

    :return: a :class:`mbwrap.algos.Algorithm` with the SB3-style surface.
    :raises UnsupportedSpaceError: naming ``env.observation_space`` or
        ``env.action_space`` when the algorithm's declared ``space_support`` does not
        take it, before anything wraps the env.
    """
    return _make("algo", name, env, **kwargs)


def checkpoint_class(
    cls: type, base: type, kind: str, metadata: dict[str, Any], source: str
) -> Any:
    """The class to rebuild a checkpoint of ``kind`` (``"model"``, ``"planner"``) with.

    ``cls.load`` on the base class finds the stored class through the registry (so that
    loading never imports a class named in a file); on a subclass, the stored class must
    be that subclass.

    :param metadata: the checkpoint's metadata, with ``"class"`` and ``"registry_name"``.
    :param source: names the file in error messages.
    :raises CheckpointError: when the stored class has no registry name (loaded through
        the base) or is another class.
    """
    stored = metadata.get("class")
    if cls is base:
        name = metadata.get("registry_name")
        if not name:
            raise CheckpointError(
                f"{source!r} holds {stored!r}, which has no registry name; load it with "
                "that class's own load()"
            )
        return load(kind, name)
    if stored != f"{cls.__module__}:{cls.__qualname__}":
        raise CheckpointError(
            f"{source!r} holds a {stored!r} {kind}, not a {cls.__module__}:{cls.__qualname__}"
        )
    return cls

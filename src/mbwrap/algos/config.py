"""Typed algorithm configurations: one dataclass per algorithm, each hyperparameter written
once, with its default, its meaning and where the default comes from.

A field is declared with :func:`setting`::

    @dataclass(kw_only=True)
    class MBPOConfig(AlgoConfig):
        real_ratio: float = setting(
            0.05, "share of real transitions in each agent minibatch",
            source="Janner et al. 2019, Appendix C", low=0.0, high=1.0,
        )

The same declaration validates the value (:meth:`AlgoConfig.validate`), is stored in
checkpoints (:meth:`AlgoConfig.to_json`), is set from the command line (``--set``) and
generates the table of settings in the documentation (:func:`settings_table`).
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

_MISSING = dataclasses.MISSING
C = TypeVar("C", bound="AlgoConfig")


def setting(
    default: Any,
    doc: str,
    *,
    source: str = "",
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[Any] | None = None,
    optional: bool = False,
    kind: str | None = None,
) -> Any:
    """A config field: ``default`` (copied per instance when it is a list or dict), what it
    means, the paper or code its default comes from, and the checks its value must pass.

    :param low: smallest allowed value (numbers) or length (sequences), inclusive.
    :param high: largest allowed value, inclusive.
    :param choices: the allowed values.
    :param optional: ``None`` is allowed besides values of the default's type.
    :param kind: the type family values must belong to (``"int"``, ``"float"``,
        ``"bool"``, ``"sequence"``, ``"dict"``) when the default does not say it (a
        default of ``None`` filled in later).
    """
    metadata = {
        "doc": doc,
        "source": source,
        "low": low,
        "high": high,
        "choices": tuple(choices) if choices is not None else None,
        "optional": optional or default is None,
        "kind": kind or _kind(default),
    }
    if isinstance(default, (list, dict)):
        value = default
        factory = (lambda: list(value)) if isinstance(value, list) else (lambda: dict(value))
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _kind(default: Any) -> str | None:
    """The type family a field's values must belong to, read from its default."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, numbers.Integral):
        return "int"
    if isinstance(default, numbers.Real):
        return "float"
    if isinstance(default, str):
        return None  # strings often also accept instances (a model, an agent)
    if isinstance(default, (list, tuple)):
        return "sequence"
    if isinstance(default, dict):
        return "dict"
    return None


def _check_value(name: str, value: Any, meta: dict[str, Any]) -> None:
    kind = meta.get("kind")
    if value is None:
        if meta.get("optional"):
            return
        raise ValueError(f"{name}: expected a value, got None")
    if kind == "bool" and not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {value!r}")
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name}: expected an int, got {value!r}")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if kind == "sequence" and (isinstance(value, str) or not isinstance(value, Sequence)):
        raise TypeError(f"{name}: expected a list, got {value!r}")
    if kind == "dict" and not isinstance(value, dict):
        raise TypeError(f"{name}: expected a dict, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    measure = len(value) if kind == "sequence" else value
    what = "a length" if kind == "sequence" else "a value"
    if low is not None and isinstance(measure, numbers.Real) and measure < low:
        raise ValueError(f"{name}: expected {what} >= {low}, got {value!r}")
    if high is not None and isinstance(measure, numbers.Real) and measure > high:
        raise ValueError(f"{name}: expected {what} <= {high}, got {value!r}")


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


@dataclass(kw_only=True)
class AlgoConfig:
    """Settings every algorithm has. Subclasses add theirs with :func:`setting`."""

    #: Registry name of the algorithm this config belongs to (for error messages).
    algo_name: ClassVar[str] = "algorithm"

    seed: int | None = setting(None, "seeds Python, NumPy, torch, the env and the action space")
    device: str = setting("auto", "where models and buffers live; 'auto' picks CUDA when present")
    verbose: int = setting(0, "0 silent, 1 training logs on stdout", low=0)
    tensorboard_log: str | None = setting(None, "directory for TensorBoard logs, or None")
    stats_window_size: int = setting(
        100, "episodes averaged in rollout/ep_rew_mean and rollout/ep_len_mean", low=1
    )
    # Scaling out on Ray (the ``ray`` extra); see :mod:`mbwrap.distributed`.
    num_workers: int = setting(
        0,
        "Ray actors that step copies of the real env with a CPU copy of the acting policy; "
        "0 steps the env in this process",
        low=0,
    )
    envs_per_worker: int | None = setting(
        None, "envs each worker steps side by side; None: as many as the real env has",
        low=1, kind="int",
    )
    sync_interval: int = setting(
        1, "collection rounds between two pushes of the weights to the workers", low=1
    )
    worker_restarts: int = setting(
        3, "times Ray restarts a worker that died before the run fails", low=0
    )
    worker_cpus: float = setting(1.0, "CPUs Ray reserves for each worker", low=0.0)
    worker_gpus: float = setting(0.0, "GPUs (fractions allowed) Ray reserves for each worker",
                                 low=0.0)
    ray_address: str | None = setting(
        None, "Ray cluster to join ('auto', or 'host:port' of `ray start --head`); None "
        "starts Ray on this machine unless it is already running",
    )

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ building
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls: type[C], **kwargs: Any) -> C:
        """The config with ``kwargs`` over the defaults.

        :raises TypeError: for a keyword that is not a setting, listing the valid ones and
            suggesting the nearest.
        """
        cls.check_keys(kwargs)
        return cls(**kwargs)

    @classmethod
    def check_keys(cls, kwargs: dict[str, Any]) -> None:
        """:raises TypeError: for the first key of ``kwargs`` that is not a setting."""
        valid = cls.field_names()
        for key in kwargs:
            if key in valid:
                continue
            near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise TypeError(
                f"{key}: not a setting of {cls.algo_name!r}.{hint} Valid settings: "
                f"{', '.join(sorted(valid))}"
            )

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied and validated (unknown keys are an error)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        type(self).check_keys(changes)
        return type(self)(**{**values, **changes})

    # ------------------------------------------------------------------ checking
    def validate(self) -> None:
        """Check every field against its declaration; subclasses add checks that relate
        fields (and call ``super().validate()``).

        :raises TypeError, ValueError: naming the setting, what was expected and what came.
        """
        for f in dataclasses.fields(self):
            _check_value(f.name, getattr(self, f.name), dict(f.metadata))

    # ------------------------------------------------------------------ storing
    def to_json(self) -> dict[str, Any]:
        """Every field as JSON values (tuples become lists)."""
        return {f.name: _json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}


def settings_table(config: type[AlgoConfig]) -> list[dict[str, Any]]:
    """One row per setting of ``config``: ``name``, ``default``, ``doc`` and ``source``,
    in declaration order (the documentation's table of settings)."""
    rows = []
    for f in dataclasses.fields(config):
        if f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append(
            {
                "name": f.name,
                "default": _json_value(default),
                "doc": f.metadata.get("doc", ""),
                "source": f.metadata.get("source", ""),
            }
        )
    return rows

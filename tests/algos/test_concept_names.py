"""One name per concept across algorithms, planners and models.

SB3's name wherever SB3 has the concept; one name for each model-based concept. The table
lists, for each concept, the names that mean the same thing and must not be used.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import mbwrap
from mbwrap.algos import AlgoConfig, settings_table

#: canonical name -> other names of the same concept.
CONCEPTS: dict[str, set[str]] = {
    "buffer_size": {"buffer_capacity", "capacity", "replay_size", "replay_capacity",
                    "memory_size", "replay_buffer_size"},
    "learning_starts": {"initial_random_steps", "initial_random_episodes", "seed_episodes",
                        "random_steps", "warmup_steps", "prefill_steps", "seed_steps"},
    "gamma": {"discount", "discount_factor"},
    "train_freq": {"train_every", "update_every", "updates_every"},
    "gradient_steps": {"updates_per_step", "n_train_repeat", "train_ratio", "num_updates"},
    "model_train_freq": {"refit_every", "model_refit_every", "refit_freq", "fit_every"},
    "imagination_horizon": {"imagined_horizon", "dream_horizon", "imag_horizon",
                            "imagine_horizon"},
    "num_simulations": {"simulations", "n_simulations", "num_sims", "eval_simulations"},
    "population": {"num_candidates", "popsize", "population_size", "pop_size", "n_candidates"},
    "batch_size": {"minibatch_size", "mini_batch_size"},
    "learning_rate": {"lr"},
    "model_kwargs": {"model_config", "model_params"},
    "agent_kwargs": {"agent_config", "agent_params"},
    "planner_kwargs": {"planner_config", "planner_params"},
    "num_imagined_envs": {"imagined_envs", "num_dream_envs", "dream_envs"},
    "fit_kwargs": {"model_fit_kwargs", "fit_config"},
    "max_grad_norm": {"grad_clip", "clip_grad_norm", "gradient_clip"},
    "ent_coef": {"entropy_coef", "entropy_coefficient", "entropy_scale"},
    "gae_lambda": {"lambda_", "td_lambda", "return_lambda"},
}
#: Planner settings an algorithm with a planner takes through ``planner_kwargs``, never on
#: its own (a planning horizon named twice would be two names for one thing).
PLANNER_ONLY = {"horizon", "planning_horizon", "population", "num_elites", "iterations",
                "particles"}

ALIASES = {alias: canonical for canonical, aliases in CONCEPTS.items() for alias in aliases}


def _algo_classes() -> dict[str, type]:
    return {name: mbwrap.registry.load("algo", name) for name in mbwrap.registry.available("algo")}


def _check(names: list[str], where: str) -> None:
    for name in names:
        bare = name.removeprefix("eval_")
        if bare in ALIASES:
            raise AssertionError(
                f"{where}: {name!r} means {ALIASES[bare]!r}; use that name"
            )


def test_the_table_gives_each_alias_one_meaning():
    seen: dict[str, str] = {}
    for canonical, aliases in CONCEPTS.items():
        assert canonical not in ALIASES, canonical
        for alias in aliases:
            assert seen.setdefault(alias, canonical) == canonical, alias


@pytest.mark.parametrize("name", sorted(mbwrap.registry.available("algo")))
def test_every_algorithm_has_a_typed_config_with_one_name_per_concept(name):
    cls = _algo_classes()[name]
    config = cls.Config
    assert issubclass(config, AlgoConfig) and config is not AlgoConfig, name
    fields = [f.name for f in dataclasses.fields(config)]
    _check(fields, f"{name} config")
    if "planner" in fields:
        assert not PLANNER_ONLY & set(fields), f"{name}: pass planner settings in planner_kwargs"
    # Every setting says what it means; the table of the documentation is built from it.
    for row in settings_table(config):
        assert row["doc"], f"{name}.{row['name']} has no description"


def test_an_unknown_setting_names_the_valid_ones_and_the_nearest():
    env = mbwrap.DynaMazeEnv()
    with pytest.raises(TypeError, match=r"bufer_size: not a setting of 'dyna'\. Did you mean "
                                        r"'buffer_size'\? Valid settings: .*learning_starts"):
        mbwrap.make_algo("dyna", env, bufer_size=10)


@pytest.mark.parametrize("kind", ["planner", "model"])
def test_planners_and_models_use_the_same_names(kind):
    for name in mbwrap.registry.available(kind):
        cls = mbwrap.registry.load(kind, name)
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        _check(params, f"{kind} {name!r}")

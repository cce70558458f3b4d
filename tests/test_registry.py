"""Tests of mbwrap.registry against fake installed distributions built in ``tmp_path``."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

import mbwrap
from mbwrap import registry
from mbwrap.algos import Algorithm, DynaQ
from mbwrap.envs.fns.dyna_maze import DYNA_MAZE_FNS
from mbwrap.errors import (
    AmbiguousPluginError,
    PluginLoadError,
    PluginTypeError,
    PluginWarning,
    UnknownPluginError,
)
from mbwrap.models import TabularModel, WorldModel
from mbwrap.planners import Planner

OBS, ACT = spaces.Discrete(4), spaces.Discrete(2)
PREFIX = "mbwrap_fake_"

GOOD_MODELS = f"""
from mbwrap.models import TabularModel


class {PREFIX.title().replace("_", "")}Model(TabularModel):
    pass


class AlphaModel(TabularModel):
    origin = "alpha"


class BetaModel(TabularModel):
    origin = "beta"


def not_a_model(observation_space, action_space, **kwargs):
    return {{"spaces": (observation_space, action_space)}}


NOT_CALLABLE = 42


def model_from_env(env, **kwargs):
    return TabularModel(env.observation_space, env.action_space, device="cpu")
"""

PLANNER = """
import torch
from mbwrap.planners import Planner


class ConstantPlanner(Planner):
    supports_discrete = True

    def __init__(self, model, action=0, **kwargs):
        super().__init__(model, horizon=1, **kwargs)
        self.action = action

    def optimize(self, state, init):
        plan = torch.zeros_like(init)
        plan[..., self.action] = 1.0
        return plan
"""

FNS = """
from mbwrap.envs.fns import EnvFns

ONE = EnvFns(reward=lambda obs, action, next_obs: next_obs * 0 + 1.0)
NEITHER = object()
"""


def make_dist(
    root: Path,
    name: str,
    version: str,
    entry_points: dict[str, dict[str, str]],
    modules: dict[str, str] | None = None,
) -> None:
    """Write an installed distribution ``name`` (metadata, entry points, modules) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines: list[str] = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{ep_name} = {target}" for ep_name, target in eps.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture(autouse=True)
def _forget_fake_modules():
    yield
    for module in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[module]


@pytest.fixture
def install(monkeypatch):
    """Put directories holding fake distributions on ``sys.path`` and rescan."""

    def _install(*roots: Path) -> None:
        for root in roots:
            monkeypatch.syspath_prepend(str(root))
        registry.refresh()

    return _install


@pytest.fixture
def fake_site(tmp_path, install):
    """Two fake plugin distributions: a good one and one whose module fails to import."""
    make_dist(
        tmp_path,
        "good-plugin",
        "1.2.3",
        {
            "mbwrap.models": {
                "good": f"{PREFIX}good:AlphaModel",
                "wrong-type": f"{PREFIX}good:not_a_model",
                "not-callable": f"{PREFIX}good:NOT_CALLABLE",
            },
            "mbwrap.planners": {"constant": f"{PREFIX}planner:ConstantPlanner"},
            "mbwrap.fns": {
                "fake/One-v0": f"{PREFIX}fns:ONE",
                "fake/Neither-v0": f"{PREFIX}fns:NEITHER",
            },
        },
        {f"{PREFIX}good": GOOD_MODELS, f"{PREFIX}planner": PLANNER, f"{PREFIX}fns": FNS},
    )
    make_dist(
        tmp_path,
        "broken_plugin",
        "0.0.1",
        {
            "mbwrap.models": {"broken": f"{PREFIX}broken:Model"},
            "mbwrap.fns": {"fake/Broken-v0": f"{PREFIX}broken:FNS"},
        },
        {f"{PREFIX}broken": 'raise ImportError("needs frobnicate>=2")\n'},
    )
    install(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------- built-ins


def test_builtins_are_listed_from_mbwrap_metadata():
    version = importlib.metadata.version("mbwrap")
    assert version == mbwrap.__version__
    expected = {
        "model": ("tabular", "mbwrap.models.tabular:TabularModel"),
        "algo": ("dyna-q", "mbwrap.algos.dyna_q:DynaQ"),
        "fn": ("mbwrap/DynaMaze-v0", "mbwrap.envs.fns.dyna_maze:DYNA_MAZE_FNS"),
    }
    for kind, (name, target) in expected.items():
        info = registry.available(kind)[name]
        assert (info.kind, info.name, info.dist, info.version, info.target) == (
            kind,
            name,
            "mbwrap",
            version,
            target,
        )
        assert info.qualified_name == f"mbwrap:{name}"


def test_builtin_targets_load_to_the_real_objects():
    assert registry.load("model", "tabular") is TabularModel
    assert registry.load("algo", "dyna-q") is DynaQ
    assert registry.load("fn", "mbwrap/DynaMaze-v0") is DYNA_MAZE_FNS
    assert registry.load("model", "mbwrap:tabular") is TabularModel


def test_unknown_kind_is_value_error():
    with pytest.raises(
        ValueError, match=r"^kind: expected one of \['algo', 'fn', 'model', 'planner'\]"
    ):
        registry.available("policy")


def test_available_imports_nothing(fake_site):
    module = f"{PREFIX}good"
    assert module not in sys.modules
    models = registry.available("model")
    assert {"tabular", "good", "broken", "wrong-type", "not-callable"} <= set(models)
    assert models["good"].dist == "good-plugin"
    assert models["good"].version == "1.2.3"
    assert models["good"].target == f"{PREFIX}good:AlphaModel"
    assert models["broken"].dist == "broken_plugin"
    registry.available("planner")
    registry.available("fn")
    assert module not in sys.modules
    assert f"{PREFIX}broken" not in sys.modules
    # Using the plugin is what imports it.
    registry.make_model("good", OBS, ACT, device="cpu")
    assert module in sys.modules


# ---------------------------------------------------------------------- broken plugins


def test_load_all_warns_for_broken_plugin_and_loads_the_rest(fake_site):
    with pytest.warns(PluginWarning) as record:
        loaded = registry.load_all("model")
    messages = [str(w.message) for w in record if issubclass(w.category, PluginWarning)]
    assert len(messages) == 1
    assert "'broken'" in messages[0]
    assert "'broken_plugin'" in messages[0]
    assert "ImportError: needs frobnicate>=2" in messages[0]
    assert loaded["tabular"] is TabularModel
    assert loaded["good"].origin == "alpha"
    assert loaded["not-callable"] == 42
    assert "broken" not in loaded
    # The registry still builds the good plugin afterwards.
    model = registry.make_model("good", OBS, ACT, device="cpu")
    assert isinstance(model, WorldModel)
    assert type(model).origin == "alpha"


def test_make_model_of_broken_plugin_names_the_distribution(fake_site):
    with pytest.raises(PluginLoadError) as info:
        registry.make_model("broken", OBS, ACT)
    message = str(info.value)
    assert "'broken_plugin'" in message
    assert f"{PREFIX}broken:Model" in message
    assert "needs frobnicate>=2" in message
    assert isinstance(info.value.__cause__, ImportError)
    # It is an ImportError too, for callers that catch the builtin.
    assert isinstance(info.value, ImportError)


def test_unknown_name_lists_available_names(fake_site):
    with pytest.raises(UnknownPluginError) as info:
        registry.make_model("nonesuch", OBS, ACT)
    message = str(info.value)
    assert "no model plugin named 'nonesuch'" in message
    listed = message.split("available models: ")[1].split(", ")
    # Other plugins may be installed in the test environment; ours must all be listed, sorted.
    assert {"broken", "good", "not-callable", "tabular", "wrong-type"} <= set(listed)
    assert listed == sorted(registry.available("model"))
    assert "disabled" not in message
    assert isinstance(info.value, LookupError)


def test_unknown_planner_when_none_available(monkeypatch):
    # Hide whatever planners the test environment has installed.
    names = ",".join(info.qualified_name for info in registry.plugins("planner"))
    monkeypatch.setenv("MBWRAP_DISABLE_PLUGINS", names)
    with pytest.raises(UnknownPluginError, match=r"available planners: none"):
        registry.resolve("planner", "no-such-planner")


# ---------------------------------------------------------------------- duplicates


@pytest.fixture
def duplicate_site(tmp_path, install):
    make_dist(
        tmp_path,
        "alpha-plug",
        "1.0",
        {"mbwrap.models": {"dup": f"{PREFIX}alpha:AlphaModel"}},
        {f"{PREFIX}alpha": GOOD_MODELS},
    )
    make_dist(
        tmp_path,
        "beta-plug",
        "2.0",
        {"mbwrap.models": {"dup": f"{PREFIX}beta:BetaModel"}},
        {f"{PREFIX}beta": GOOD_MODELS},
    )
    install(tmp_path)
    return tmp_path


def test_same_name_from_two_distributions_is_ambiguous(duplicate_site):
    with pytest.raises(AmbiguousPluginError) as info:
        registry.make_model("dup", OBS, ACT)
    message = str(info.value)
    assert "alpha-plug 1.0" in message
    assert "beta-plug 2.0" in message
    assert "'alpha-plug:dup' or 'beta-plug:dup'" in message
    assert "MBWRAP_DISABLE_PLUGINS" in message


def test_qualified_names_resolve_each_duplicate(duplicate_site):
    alpha = registry.make_model("alpha-plug:dup", OBS, ACT, device="cpu")
    beta = registry.make_model("beta-plug:dup", OBS, ACT, device="cpu")
    assert type(alpha).origin == "alpha"
    assert type(beta).origin == "beta"
    # The distribution part is matched as a normalised project name.
    assert type(registry.make_model("Alpha_Plug:dup", OBS, ACT, device="cpu")).origin == "alpha"


def test_available_keys_duplicates_by_qualified_name(duplicate_site):
    models = registry.available("model")
    assert "dup" not in models
    assert models["alpha-plug:dup"].dist == "alpha-plug"
    assert models["beta-plug:dup"].dist == "beta-plug"
    assert models["tabular"].dist == "mbwrap"
    assert [i.dist for i in registry.plugins("model") if i.name == "dup"] == [
        "alpha-plug",
        "beta-plug",
    ]


def test_disabling_one_duplicate_makes_the_bare_name_resolve(duplicate_site, monkeypatch):
    monkeypatch.setenv("MBWRAP_DISABLE_PLUGINS", "beta-plug:dup")
    assert list(k for k in registry.available("model") if "dup" in k) == ["dup"]
    assert type(registry.make_model("dup", OBS, ACT, device="cpu")).origin == "alpha"


def test_same_distribution_visible_twice_is_one_plugin(tmp_path, install):
    for folder in ("build", "site"):
        make_dist(
            tmp_path / folder,
            "twice-plug",
            "1.0",
            {"mbwrap.models": {"twice": f"{PREFIX}twice:AlphaModel"}},
            {f"{PREFIX}twice": GOOD_MODELS},
        )
    install(tmp_path / "build", tmp_path / "site")
    assert [i.dist for i in registry.plugins("model") if i.name == "twice"] == ["twice-plug"]
    assert type(registry.make_model("twice", OBS, ACT, device="cpu")).origin == "alpha"


# ---------------------------------------------------------------------- types


def test_factory_returning_wrong_type_is_plugin_type_error(fake_site):
    with pytest.raises(PluginTypeError) as info:
        registry.make_model("wrong-type", OBS, ACT)
    message = str(info.value)
    assert "'wrong-type'" in message
    assert "'good-plugin'" in message
    assert "builtins.dict" in message
    assert "mbwrap.models.WorldModel" in message


def test_non_callable_target_is_plugin_type_error(fake_site):
    with pytest.raises(
        PluginTypeError, match=r"'not-callable' from 'good-plugin'.*is not callable"
    ):
        registry.make_model("not-callable", OBS, ACT)


def test_model_as_algo_is_plugin_type_error(tmp_path, install):
    make_dist(
        tmp_path,
        "mixed-plug",
        "1.0",
        {"mbwrap.algos": {"tab-algo": f"{PREFIX}mixed:model_from_env"}},
        {f"{PREFIX}mixed": GOOD_MODELS},
    )
    install(tmp_path)
    env = gymnasium.make("mbwrap/DynaMaze-v0")
    with pytest.raises(
        PluginTypeError,
        match=r"mbwrap.models.tabular.TabularModel, which is not a mbwrap.algos.Algorithm",
    ):
        registry.make_algo("tab-algo", env)


# ---------------------------------------------------------------------- disabling


def test_disable_by_bare_name(fake_site, monkeypatch):
    before = set(registry.available("model"))
    monkeypatch.setenv("MBWRAP_DISABLE_PLUGINS", "good, tabular")
    models = registry.available("model")
    assert set(models) == before - {"good", "tabular"}
    assert "broken" in models
    with pytest.raises(UnknownPluginError) as info:
        registry.make_model("good", OBS, ACT)
    message = str(info.value)
    assert "'good' is disabled by $MBWRAP_DISABLE_PLUGINS" in message
    listed = message.split("available models: ")[1].split(", ")
    assert "good" not in listed
    assert "tabular" not in listed
    assert {"broken", "not-callable", "wrong-type"} <= set(listed)


def test_disable_by_qualified_name(fake_site, monkeypatch):
    before = set(registry.available("model"))
    monkeypatch.setenv("MBWRAP_DISABLE_PLUGINS", "good-plugin:wrong-type,mbwrap:tabular")
    models = registry.available("model")
    assert set(models) == before - {"wrong-type", "tabular"}
    assert {"broken", "good", "not-callable"} <= set(models)
    with pytest.raises(UnknownPluginError, match=r"'tabular' is disabled by"):
        registry.make_model("tabular", OBS, ACT)
    with pytest.raises(UnknownPluginError, match=r"'good-plugin:wrong-type' is disabled by"):
        registry.make_model("good-plugin:wrong-type", OBS, ACT)


def test_disable_whole_distribution(fake_site, monkeypatch):
    # The distribution is matched by its normalised name.
    monkeypatch.setenv("MBWRAP_DISABLE_PLUGINS", "Broken.Plugin:*")
    assert "broken" not in registry.available("model")
    assert "fake/Broken-v0" not in registry.available("fn")
    assert "good" in registry.available("model")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = registry.load_all("model")  # the broken plugin is hidden: no warning
    assert "good" in loaded
    assert registry.get_fn("fake/Broken-v0") is None
    with pytest.raises(UnknownPluginError, match=r"'broken' is disabled by"):
        registry.make_model("broken", OBS, ACT)


def test_disable_list_of_mixed_forms(fake_site, monkeypatch):
    before = {kind: set(registry.available(kind)) for kind in ("model", "algo", "planner")}
    monkeypatch.setenv("MBWRAP_DISABLE_PLUGINS", "good-plugin:* broken,  dyna-q")
    ours = {"good", "wrong-type", "not-callable", "broken"}
    assert set(registry.available("model")) == before["model"] - ours
    assert "tabular" in registry.available("model")
    assert set(registry.available("algo")) == before["algo"] - {"dyna-q"}
    assert "constant" not in registry.available("planner")
    assert set(registry.available("planner")) == before["planner"] - {"constant"}


# ---------------------------------------------------------------------- fns


def test_get_fn_for_unknown_or_missing_env_id_is_none():
    assert registry.get_fn(None) is None
    assert registry.get_fn("Acrobot-v1") is None


def test_get_fn_returns_the_dyna_maze_functions():
    fns = registry.get_fn("mbwrap/DynaMaze-v0")
    assert fns is DYNA_MAZE_FNS
    goal = mbwrap.DynaMazeEnv().goal_state
    next_obs = torch.tensor([goal, 0, goal - 1])
    obs = torch.zeros(3, dtype=torch.long)
    action = torch.zeros(3, dtype=torch.long)
    assert fns.reward(obs, action, next_obs).tolist() == [1.0, 0.0, 0.0]
    assert fns.termination(obs, action, next_obs).tolist() == [True, False, False]


def test_get_fn_of_a_plugin(fake_site):
    fns = registry.get_fn("fake/One-v0")
    assert fns.termination is None
    assert fns.reward(None, None, torch.zeros(2)).tolist() == [1.0, 1.0]


def test_get_fn_broken_entry_warns_and_returns_none(fake_site):
    with pytest.warns(PluginWarning) as record:
        assert registry.get_fn("fake/Broken-v0") is None
    message = str(record[0].message)
    assert "'broken_plugin'" in message
    assert "needs frobnicate>=2" in message
    assert "model's own heads" in message


def test_get_fn_without_reward_or_termination_is_plugin_type_error(fake_site):
    with pytest.raises(PluginTypeError, match=r"'fake/Neither-v0'"):
        registry.get_fn("fake/Neither-v0")


# ---------------------------------------------------------------------- planners and algos


def test_make_planner_with_plugin(fake_site):
    model = TabularModel(OBS, ACT, device="cpu")
    planner = registry.make_planner("constant", model, action=1)
    assert isinstance(planner, Planner)
    assert planner.model is model
    actions = planner.plan(torch.tensor([0, 1, 2]))
    assert actions.tolist() == [1, 1, 1]
    batch, state = planner.predict(np.array([0, 3]), deterministic=True)
    assert state is None
    assert batch.tolist() == [1, 1]
    assert mbwrap.make_planner is registry.make_planner


def test_make_planner_rejects_non_model(fake_site):
    with pytest.raises(TypeError, match=r"^model: expected an mbwrap.models.WorldModel"):
        registry.make_planner("constant", object())


def test_make_algo_dyna_q_on_the_maze():
    env = gymnasium.make("mbwrap/DynaMaze-v0")
    algo = registry.make_algo("dyna-q", env, planning_steps=3, seed=0, device="cpu")
    assert isinstance(algo, Algorithm)
    assert isinstance(algo, DynaQ)
    assert algo.config.planning_steps == 3
    assert algo.model.env_id == "mbwrap/DynaMaze-v0"
    assert algo.q_table.shape == (54, 4)


def test_top_level_factories_are_the_registry_ones():
    assert mbwrap.make_model is registry.make_model
    assert mbwrap.make_algo is registry.make_algo
    model = mbwrap.make_model("tabular", OBS, ACT, mode="most-likely", device="cpu")
    assert isinstance(model, TabularModel)
    assert model.mode == "most-likely"

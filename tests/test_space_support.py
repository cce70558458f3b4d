"""Tests of mbwrap.space_support (declared spaces, their checks) and mbwrap.space_table
(the README's table generated from the declarations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import mbwrap
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.space_support import (
    SpaceSupport,
    check_action_space,
    check_observation_space,
    check_support,
    space_kind,
)
from mbwrap.space_table import (
    TABLE_END,
    TABLE_START,
    main,
    replace_table,
    support_table,
    table_in,
)

README = Path(__file__).resolve().parents[1] / "README.md"
BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)
FEEDFORWARD = SpaceSupport(
    observations=("Box", "Dict", "Tuple"),
    leaves=("Box", "Discrete"),
    actions=("Box", "Discrete"),
    bounded_actions=True,
    action_note="bounded for the planner",
)


# ---------------------------------------------------------------------- kinds
@pytest.mark.parametrize(
    ("space", "kind"),
    [
        (BOX, "Box"),
        (spaces.Box(0, 255, (128,), np.uint8), "Box"),  # Atari RAM: features, not an image
        (spaces.Box(0, 255, (64, 64, 3), np.uint8), "image"),
        (spaces.Box(0, 255, (3, 210, 160), np.uint8), "image"),
        (spaces.Box(0.0, 1.0, (64, 64, 3), np.float32), "Box"),
        (spaces.Discrete(3, start=-1), "Discrete"),
        (spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
        (spaces.MultiBinary(4), "MultiBinary"),
        (spaces.Dict({"a": BOX}), "Dict"),
        (spaces.Tuple((BOX,)), "Tuple"),
        (spaces.Text(4), "Text"),
        (spaces.Sequence(BOX), "Sequence"),
    ],
)
def test_space_kind(space, kind):
    assert space_kind(space) == kind


# ---------------------------------------------------------------------- declarations
def test_descriptions_by_hand():
    assert FEEDFORWARD.describe_observations() == "Box; Dict or Tuple of Box, Discrete"
    assert FEEDFORWARD.describe_actions() == "bounded Box, Discrete"
    same = SpaceSupport(observations=("image", "Box", "Dict"), actions=("Discrete",))
    assert same.leaves == {"Box", "image"}  # default: the non-container kinds
    assert same.describe_observations() == "Box, image, and Dict of these"
    assert SpaceSupport(observations=None, actions=("Box",)).describe_observations() == (
        "as its model"
    )
    notes = SpaceSupport(
        observations=("Discrete",), actions=("Discrete",), observation_note="finite",
        action_note="finite",
    )
    assert notes.notes == "finite"
    assert FEEDFORWARD.notes == "bounded for the planner"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"observations": ("Box", "Text"), "actions": ("Box",)}, r"^observations: unknown.*Text"),
        ({"observations": ("Box",), "actions": ("Dict",)}, r"^actions: SB3 takes no Dict"),
        ({"observations": ("Box",), "actions": ("Box",), "leaves": ("Box",)}, r"^leaves: only"),
        ({"observations": ("Dict",), "actions": ("Box",), "leaves": ("Dict",)}, r"^leaves: list"),
        ({"observations": None, "actions": ("Box",), "leaves": ("Box",)}, r"^leaves: only"),
    ],
)
def test_a_malformed_declaration_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpaceSupport(**kwargs)


# ---------------------------------------------------------------------- checks
def test_supported_spaces_pass():
    nested = spaces.Dict({"x": BOX, "goal": spaces.Tuple((BOX, spaces.Discrete(2)))})
    check_support(FEEDFORWARD, nested, spaces.Discrete(3), owner="M")
    check_support(FEEDFORWARD, BOX, BOX, owner="M")
    planner = SpaceSupport(observations=None, actions=("Discrete",))
    check_support(planner, spaces.Text(3), spaces.Discrete(2), owner="P")  # as its model


def test_an_unsupported_observation_space_is_named_with_what_is_taken():
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^env\.observation_space: M takes these observation spaces: Box; Dict or Tuple "
        r"of Box, Discrete; got Text\(.*\) \(a space of kind Text\)$",
    ):
        check_support(FEEDFORWARD, spaces.Text(3), BOX, owner="M", prefix="env.")
    with pytest.raises(UnsupportedSpaceError, match=r"an image: a uint8 Box of rank 3"):
        check_observation_space(FEEDFORWARD, spaces.Box(0, 255, (8, 8, 3), np.uint8), owner="M")


def test_a_refused_entry_is_named_by_its_path():
    nested = spaces.Dict({"goal": spaces.Tuple((BOX, spaces.MultiBinary(2)))})
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^observation_space\['goal'\]\[1\]: M takes Tuple observations whose entries "
        r"are Box, Discrete; got MultiBinary\(2\)",
    ):
        check_observation_space(FEEDFORWARD, nested, owner="M")
    with pytest.raises(UnsupportedSpaceError, match=r"^observation_space: got an empty Dict"):
        check_observation_space(FEEDFORWARD, spaces.Dict({}), owner="M")


def test_action_kinds_and_bounds_are_checked():
    with pytest.raises(
        UnsupportedSpaceError,
        match=r"^action_space: M takes these action spaces: bounded Box, Discrete; got "
        r"MultiDiscrete.*\(bounded for the planner\)$",
    ):
        check_action_space(FEEDFORWARD, spaces.MultiDiscrete([2, 2]), owner="M")
    unbounded = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    with pytest.raises(UnsupportedSpaceError, match=r"^action_space: M needs a bounded Box"):
        check_action_space(FEEDFORWARD, unbounded, owner="M")
    check_action_space(SpaceSupport(observations=None, actions=("Box",)), unbounded, owner="M")
    with pytest.raises(UnsupportedSpaceError, match=r"got 3 \(an object of type int, not"):
        check_action_space(FEEDFORWARD, 3, owner="M")


# ---------------------------------------------------------------------- the table
def test_every_built_in_component_declares_its_spaces():
    for kind in ("model", "planner", "algo"):
        for info in mbwrap.registry.plugins(kind, dist="mbwrap"):
            assert isinstance(info.load().space_support, SpaceSupport), info.name
    assert {info.name for info in mbwrap.registry.plugins("algo", dist="mbwrap")} >= {
        "dyna", "mbpo", "muzero"
    }
    assert mbwrap.registry.plugins("algo", dist="no-such-distribution") == []


def test_the_readme_holds_the_generated_table():
    table = support_table()
    assert table.startswith("| component | observations | actions | notes |\n|---|---|---|---|\n")
    assert '| algorithm `"dyna-q"` | Discrete, MultiDiscrete | Discrete, MultiDiscrete |' in table
    assert '| algorithm `"mbpo"` | Box | bounded Box, Discrete |' in table
    assert table_in(README.read_text()) == table, (
        "README.md's table of spaces is stale; regenerate it with "
        "`python -m mbwrap.space_table --update README.md`"
    )


def test_the_table_is_replaced_between_the_markers(tmp_path):
    text = f"intro\n{TABLE_START}\nold\n{TABLE_END}\nrest\n"
    assert replace_table(text, "| new |\n") == f"intro\n{TABLE_START}\n| new |\n{TABLE_END}\nrest\n"
    assert table_in(replace_table(text, "| new |\n")) == "| new |\n"
    with pytest.raises(ValueError, match=r"^text: expected"):
        table_in("no markers")
    page = tmp_path / "page.md"
    page.write_text(text)
    assert main(["--update", str(page)]) == 0
    assert table_in(page.read_text()) == support_table()
    assert page.read_text().endswith(f"{TABLE_END}\nrest\n")

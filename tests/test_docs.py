"""The docs' extension (docs/_ext/mbwrap_docs.py): a page per registered algorithm, its
table of settings generated from the config, each name documented on one package page."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import mbwrap
from mbwrap.algos import DynaQ, settings_table
from mbwrap.envs import SB3VecEnv

# The extension runs inside Sphinx (tox -e docs); the test env may not have it.
pytest.importorskip("sphinx")

EXTENSION = Path(__file__).resolve().parents[1] / "docs" / "_ext" / "mbwrap_docs.py"


@pytest.fixture(scope="module")
def ext():
    spec = importlib.util.spec_from_file_location("mbwrap_docs", EXTENSION)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mbwrap_docs"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("mbwrap_docs", None)


def test_every_registered_algorithm_gets_a_page(ext):
    classes = ext.algorithm_classes()
    assert set(classes) == set(mbwrap.registry.available("algo"))
    index = ext.index_page(list(classes))
    assert all(f"   {name}\n" in index for name in classes)


def test_an_algorithm_page_documents_the_public_class_and_its_settings(ext):
    page = ext.algorithm_page("dyna-q", DynaQ)
    assert ".. autoclass:: mbwrap.algos.DynaQ\n" in page
    assert ".. mbwrap-settings:: dyna-q\n" in page
    assert "make_algo('dyna-q', env" in page


def test_the_settings_table_is_the_config_declaration(ext):
    table = ext.settings_node(DynaQ.Config)
    rows = [[cell.astext() for cell in row.children] for row in table.findall(ext.nodes.row)]
    assert rows[0] == ["setting", "default", "meaning", "source"]
    expected = settings_table(DynaQ.Config)
    assert [row[0] for row in rows[1:]] == [s["name"] for s in expected]
    gamma = next(row for row in rows if row[0] == "gamma")
    assert gamma == ["gamma", "0.95", "discount", "Sutton & Barto 2018, section 8.2, Figure 8.2"]


def test_a_reexported_name_is_documented_on_its_own_package_page(ext):
    ext._ALGORITHM_CLASSES.clear()
    ext._ALGORITHM_CLASSES.add(DynaQ)
    skip = ext.skip_member
    ext._current_module[0] = "mbwrap.sb3"
    assert skip(None, "module", "SB3VecEnv", SB3VecEnv, False, None) is True
    ext._current_module[0] = "mbwrap.envs"
    assert skip(None, "module", "SB3VecEnv", SB3VecEnv, False, None) is None
    ext._current_module[0] = "mbwrap.algos"
    assert skip(None, "module", "DynaQ", DynaQ, False, None) is True
    assert skip(None, "module", "DynaQConfig", DynaQ.Config, False, None) is True
    assert skip(None, "module", "settings_table", settings_table, False, None) is None

"""Sphinx configuration of mbwrap's API reference (``tox -e docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import mbwrap  # noqa: E402 (after the extension's path is set)

project = "mbwrap"
author = "mbwrap contributors"
copyright = "mbwrap contributors"
release = version = mbwrap.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "mbwrap_docs"]

# Docstrings are the documentation (``:param:`` fields, reStructuredText).
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
# Only mbwrap's own docstrings: methods inherited from Gymnasium, SB3 or torch keep theirs
# on those projects' pages (their formats differ and would not build here).
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_class_signature = "separated"
python_use_unqualified_type_names = True

exclude_patterns = ["_build"]
# Settings and docstrings quote code ('auto', "sample"): keep the quotes as typed.
smartquotes = False
html_theme = "alabaster"
html_static_path: list[str] = []

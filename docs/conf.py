"""Sphinx configuration of deepret's documentation.

Build (from the repository root, with ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference documents the *installed* deepret (autodoc imports it),
so build after installing the checkout. The guides and algorithm pages are
MyST Markdown; the API pages are reStructuredText with autosummary.
"""

from __future__ import annotations

import deepret

project = "deepret"
author = "the deepret developers"
copyright = "the deepret developers"
version = release = deepret.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",   # numpydoc-style docstrings
    "sphinx.ext.mathjax",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "figures/*.py"]
templates_path = ["_templates"]

# MyST: $...$ and $$...$$ math, ``{eval-rst}`` blocks, heading anchors for
# links such as [the stopping rule](cg.md#the-stopping-rule).
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# numpydoc-style sections, rendered by napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_custom_sections = [("Attributes (after fit)", "params_style")]

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_typehints = "none"   # the docstrings state the shapes and dtypes
autodoc_member_order = "bysource"
# NamedTuple fields are documented in the class docstring.
autodoc_class_signature = "mixed"

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"deepret {release}"
html_theme_options = {"description": "graph-based image retrieval kernels", "fixed_sidebar": True}

# The link check covers links inside this repository only: the machines that
# build the docs in CI have no network, and the in-repo targets are what the
# docs can break. (docs/check_links.py checks the relative links of README.md
# and the Markdown pages to files outside docs/.)
linkcheck_ignore = [r"https?://.*", r"mailto:.*"]

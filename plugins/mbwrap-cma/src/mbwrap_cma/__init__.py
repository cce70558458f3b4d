"""mbwrap-cma: an example mbwrap plugin, CMA-ES trajectory optimisation with ``cma``.

Installing this distribution registers :class:`CMAESPlanner` under the name ``"cma-es"``
(entry-point group ``mbwrap.planners``), so ``mbwrap.make_planner("cma-es", model, ...)``
builds it and ``mbwrap.Planner.load(path)`` rebuilds it.
"""

from mbwrap_cma.planner import CMAESPlanner, default_population, from_unit_box, to_unit_box

__version__ = "0.1.0"

__all__ = ["CMAESPlanner", "__version__", "default_population", "from_unit_box", "to_unit_box"]

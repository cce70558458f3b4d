"""The exceptions and warnings mbwrap raises, so callers can catch them precisely."""

from __future__ import annotations


class MbwrapError(Exception):
    """Base class of every mbwrap error."""


class UnsupportedSpaceError(MbwrapError, TypeError):
    """A Gymnasium space mbwrap cannot represent (e.g. ``Text``, ``Graph``)."""


class SpaceMismatchError(MbwrapError, ValueError):
    """Data, a buffer, a model or an env disagree on a space, shape or dtype."""


class PluginError(MbwrapError):
    """Base class of registry errors."""


class UnknownPluginError(PluginError, LookupError):
    """No plugin of that kind is registered under that name."""


class AmbiguousPluginError(PluginError, LookupError):
    """Two distributions register the same name; qualify it as ``"dist:name"``."""


class PluginLoadError(PluginError, ImportError):
    """A plugin's entry point failed to import."""


class PluginTypeError(PluginError, TypeError):
    """A plugin factory returned something that is not of the expected kind."""


class CheckpointError(MbwrapError, ValueError):
    """A file is not a readable mbwrap checkpoint of the expected kind and version."""


class ModelOutputError(MbwrapError, FloatingPointError):
    """A world model produced NaN or infinite values."""


class PluginWarning(UserWarning):
    """A registered plugin could not be loaded; the rest of the registry still works."""


class NonFiniteModelWarning(RuntimeWarning):
    """A model produced NaN or infinite values; the affected imagined episodes were cut."""

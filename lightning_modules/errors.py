"""Compatibility alias: the errors and argument checks live in :mod:`common.errors` (every room uses them)."""

from common.errors import ConfigError, check_choice, check_range

__all__ = ["ConfigError", "check_choice", "check_range"]

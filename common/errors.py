"""The one exception type for bad user input.

Everything a user can get wrong in a config (a sparsity of 1.2, an unknown backbone, a missing data
folder) raises :class:`ConfigError` *before* training starts. ``cli.py`` turns it into a single
``error: ...`` line and exit code 2, instead of a traceback. Bugs in the code keep their traceback
because they are not ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """Bad user input; the message names the parameter, the value and what is allowed."""


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def check_range(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise :class:`ConfigError` unless ``low (<|<=) value (<|<=) high``.

    The message spells the interval in mathematical notation, e.g. ``must be in [0, 1)``.
    """
    ok = True
    if low is not None:
        ok &= value >= low if low_inclusive else value > low
    if high is not None:
        ok &= value <= high if high_inclusive else value < high
    if ok:
        return
    left = "-inf" if low is None else f"{low:g}"
    right = "inf" if high is None else f"{high:g}"
    lb = "[" if (low is not None and low_inclusive) else "("
    rb = "]" if (high is not None and high_inclusive) else ")"
    raise ConfigError(f"{name}={value!r} is out of range; it must be in {lb}{left}, {right}{rb}")

"""The Trainer's numeric arguments, checked before anything is built.

Lightning accepts some values it cannot run (``check_val_every_n_epoch: 0`` ends in a
ZeroDivisionError after the run folder exists) or silently misuses (``gradient_clip_val: -1`` clips
with a negative coefficient: every gradient's sign flipped). :func:`check_trainer_values` rejects
every such value of the parsed ``trainer`` section with one :class:`~common.errors.ConfigError` line
naming the flag and what is allowed; ``training/lightning_cli.py`` calls it first, so nothing is written for bad input.
Values Lightning itself gives meaning to stay allowed (``max_steps: -1`` = no limit,
``num_sanity_val_steps: -1`` = the whole validation set, ``limit_val_batches: 0`` = no validation);
what Lightning itself rejects with a clear line before training (``devices``, ``num_nodes``,
``fast_dev_run``, ``gradient_clip_algorithm``, ``precision``) is left to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from common.errors import ConfigError


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bad(name: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"trainer.{name}={value!r} is not allowed; it must be {allowed}")


def _whole(name: str, value: Any, low: int, allowed: str) -> None:
    if value is not None and (not _is_int(value) or value < low):
        raise _bad(name, value, allowed)


def _fraction_or_count(name: str, value: Any, *, zero: bool, meaning: str) -> None:
    """An int = that many batches, a float = that fraction (Lightning's limit_*/overfit_batches)."""
    if value is None:
        return
    low = "0" if zero else "1"
    allowed = f"a whole number >= {low} ({meaning}) or a fraction in {'[0.0' if zero else '(0.0'}, 1.0]"
    if not _is_number(value):
        raise _bad(name, value, allowed)
    number = float(value)
    if _is_int(value):
        if number < (0 if zero else 1):
            raise _bad(name, value, allowed)
    elif not ((0.0 <= number if zero else 0.0 < number) and number <= 1.0):
        raise _bad(name, value, allowed)


_MAX_TIME = re.compile(r"^\d+:\d+:\d+:\d+$")


def _max_time_seconds(value: Any) -> float | None:
    """Seconds of Lightning's ``max_time`` (``DD:HH:MM:SS`` or a dict of timedelta keys); None if unknown."""
    if isinstance(value, str) and _MAX_TIME.match(value.strip()):
        days, hours, minutes, seconds = (int(v) for v in value.strip().split(":"))
        return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    if isinstance(value, Mapping):
        scale = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "milliseconds": 1e-3, "microseconds": 1e-6}
        if set(value) <= set(scale) and all(_is_number(v) for v in value.values()):
            return float(sum(scale[k] * v for k, v in value.items()))
    return None


def check_trainer_values(trainer: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first numeric Trainer value that cannot be run as meant.

    Raises:
        ConfigError: one line, e.g. ``trainer.check_val_every_n_epoch=0 is not allowed; it must be a
            whole number >= 1 (validate every that many epochs) or null (...)``.
    """
    get = trainer.get
    _whole("max_epochs", get("max_epochs"), 1, "a whole number >= 1")
    _whole("min_epochs", get("min_epochs"), 0, "a whole number >= 0, or null")
    max_steps = get("max_steps")
    if max_steps is not None and (not _is_int(max_steps) or (max_steps < 1 and max_steps != -1)):
        raise _bad("max_steps", max_steps, "a whole number >= 1, or -1 (no limit)")
    _whole("min_steps", get("min_steps"), 0, "a whole number >= 0, or null")
    max_time = get("max_time")
    if max_time is not None:
        seconds = _max_time_seconds(max_time)
        if seconds is None or seconds <= 0:
            raise _bad("max_time", max_time, "a positive duration: 'DD:HH:MM:SS' (e.g. '00:12:00:00') or {hours: 12}, or null")
    _fraction_or_count("limit_train_batches", get("limit_train_batches"), zero=True, meaning="batches per epoch")
    _fraction_or_count("limit_val_batches", get("limit_val_batches"), zero=True, meaning="batches; 0 = no validation")
    _fraction_or_count("limit_test_batches", get("limit_test_batches"), zero=True, meaning="batches")
    _fraction_or_count("limit_predict_batches", get("limit_predict_batches"), zero=True, meaning="batches")
    _fraction_or_count("overfit_batches", get("overfit_batches"), zero=True, meaning="batches; 0 = off")
    interval = get("val_check_interval")
    if _is_number(interval) or isinstance(interval, bool):
        _fraction_or_count("val_check_interval", interval, zero=False, meaning="validate every that many training batches")
    every = get("check_val_every_n_epoch")
    if every is not None and (not _is_int(every) or every < 1):
        raise _bad("check_val_every_n_epoch", every,
                   "a whole number >= 1 (validate every that many epochs), or null (validate by val_check_interval "
                   "only); use --trainer.limit_val_batches 0 for no validation")  # fmt: skip
    sanity = get("num_sanity_val_steps")
    if sanity is not None and (not _is_int(sanity) or sanity < -1):
        raise _bad("num_sanity_val_steps", sanity, "a whole number >= 0, or -1 (the whole validation set)")
    _whole("log_every_n_steps", get("log_every_n_steps"), 1, "a whole number >= 1 (log every that many optimiser steps)")
    _whole("accumulate_grad_batches", get("accumulate_grad_batches"), 1, "a whole number >= 1")
    clip = get("gradient_clip_val")
    if clip is not None and (not _is_number(clip) or clip < 0):
        raise _bad("gradient_clip_val", clip, "a number >= 0 (0 = no clipping), or null")
    _whole("reload_dataloaders_every_n_epochs", get("reload_dataloaders_every_n_epochs"), 0, "a whole number >= 0 (0 = never)")
    min_epochs, max_epochs = get("min_epochs"), get("max_epochs")
    if _is_int(min_epochs) and _is_int(max_epochs) and min_epochs > max_epochs:
        raise _bad("min_epochs", min_epochs, f"at most trainer.max_epochs={max_epochs} (the run trains max_epochs epochs)")
    min_steps = get("min_steps")
    if _is_int(min_steps) and _is_int(max_steps) and max_steps != -1 and min_steps > max_steps:
        raise _bad("min_steps", min_steps, f"at most trainer.max_steps={max_steps}")


__all__ = ["check_trainer_values"]

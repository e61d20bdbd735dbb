"""``compose:`` in a config file: the files it is built on, applied before it as more ``--config``.

An experiment config says only what makes it that experiment; what it shares with the others of its
method (trainer, model, dataset) lives in ``configs/base/`` and its first key names those files::

    compose: [../base/sup.yaml]          # paths relative to this file
    run:
      group: sup_gmp
    pruning: ...

``python cli.py fit --config X`` then parses as ``--config <X's bases, in order> --config X``: each
base is applied first and X's keys merge over them, exactly as several ``--config`` flags merge
(a partial block such as ``trainer: {max_epochs: 30}`` changes that one value; a ``model`` with the
same ``class_path`` merges its ``init_args``). A base may compose others (depth first). An entry
``{data: ../data/cifar10.yaml}`` puts a fragment of ``configs/data/`` (``class_path`` + ``init_args``,
what ``--data`` takes) under that key, inlined, so the run's config records no fragment path.

jsonargparse has no include key that merges (its ``config:`` key in a file replaces whole top-level
blocks after it), hence this small expansion of the command line before LightningCLI parses it;
``training/lightning_cli.py`` removes the inserted files from the parsed ``config`` list again, so the resolved config,
``config.yaml`` in the run folder, the W&B config and the ``--run.resume auto`` hash are exactly
those of the same config written out in full. A missing, cyclic or malformed ``compose`` is a
one-line :class:`ConfigError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError

COMPOSE_KEY = "compose"
_FRAGMENT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand_config_args(args: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """``args`` with every ``--config FILE`` whose file has a ``compose`` key preceded by its bases.

    Returns:
        The new arguments, and one entry per inserted ``--config``: the base's real path, or ``None``
        for an inlined fragment (jsonargparse records a config given as text as ``None``).

    Raises:
        ConfigError: ``--compose`` on the command line, or a missing, cyclic or malformed ``compose``.
    """
    out: list[str] = []
    inserted: list[str | None] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == f"--{COMPOSE_KEY}" or arg.startswith(f"--{COMPOSE_KEY}="):
            raise ConfigError(
                f"--{COMPOSE_KEY} is not an option; `{COMPOSE_KEY}:` is a key of a config file given with --config"
            )
        if arg == "--config" and i + 1 < len(args):
            value, width = args[i + 1], 2
        elif arg.startswith("--config="):
            value, width = arg.split("=", 1)[1], 1
        else:
            out.append(arg)
            i += 1
            continue
        if os.path.isfile(value):
            for kind, item in _bases(Path(value), ()):
                out += ["--config", item]
                inserted.append(os.path.realpath(item) if kind == "file" else None)
        elif _text_composes(value):
            raise ConfigError(f"--config {value!r}: `{COMPOSE_KEY}:` works in a config file, not in a config given as text")
        out += args[i : i + width]
        i += width
    return out, inserted


def _text_composes(value: str) -> bool:
    try:
        data = yaml.safe_load(value)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and COMPOSE_KEY in data


def _compose_list(path: Path) -> list[Any]:
    """The ``compose`` entries of ``path`` (empty when it has none or is no YAML mapping: the parser
    reports what is wrong with such a file itself)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    if not isinstance(data, dict) or COMPOSE_KEY not in data:
        return []
    entries = data[COMPOSE_KEY]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{path}: {COMPOSE_KEY}={entries!r} is not allowed; give a non-empty list of config files "
            "(relative to this file) and {key: fragment} entries"
        )
    return entries


def _resolve(path: Path, entry: Any) -> Path:
    if not isinstance(entry, str) or not entry:
        raise ConfigError(f"{path}: {COMPOSE_KEY} entry {entry!r} is not allowed; give a file path (relative to this file)")
    target = Path(os.path.normpath(path.parent / entry))
    if not target.is_file():
        raise ConfigError(f"{path}: {COMPOSE_KEY} entry {entry!r} does not exist ({target} is not a file)")
    return target


def _bases(path: Path, chain: tuple[str, ...]) -> list[tuple[str, str]]:
    """``("file", path)`` / ``("text", yaml)`` items to apply before ``path``, depth first."""
    real = os.path.realpath(path)
    if real in chain:
        names = [*chain[chain.index(real) :], real]
        raise ConfigError(f"{COMPOSE_KEY} cycle: {' -> '.join(names)}; a config cannot include itself")
    items: list[tuple[str, str]] = []
    for entry in _compose_list(path):
        if isinstance(entry, dict):
            if len(entry) != 1 or not _FRAGMENT_KEY.fullmatch(str(next(iter(entry)))):
                raise ConfigError(
                    f"{path}: {COMPOSE_KEY} entry {entry!r} is not allowed; a fragment entry is one key and "
                    "its file, e.g. {data: ../data/cifar10.yaml}"
                )
            key, file = next(iter(entry.items()))
            fragment = _resolve(path, file)
            if _compose_list(fragment):
                raise ConfigError(f"{fragment}: a fragment ({key}: ...) cannot have its own {COMPOSE_KEY}")
            text = fragment.read_text()
            items.append(("text", f"{key}:\n" + "".join(f"  {line}" for line in text.splitlines(keepends=True))))
        else:
            base = _resolve(path, entry)
            items += _bases(base, (*chain, real))
            items.append(("file", str(base)))
    return items


def drop_inserted(configs: list[Any], inserted: Sequence[str | None]) -> list[Any]:
    """The parsed ``config`` list without the entries :func:`expand_config_args` inserted (the list
    the user's own ``--config`` flags give)."""
    left = list(inserted)
    kept = []
    for entry in configs:
        key = os.path.realpath(entry.absolute) if hasattr(entry, "absolute") else None if entry is None else entry
        if key in left:
            left.remove(key)
        else:
            kept.append(entry)
    return kept

"""Package ``__init__``\\ s that import their modules only when a name is asked for (PEP 562).

A package such as :mod:`callbacks.pruning` exports Lightning callbacks *and* pure maths. Importing
its maths (``sparsity.masks``) runs the package ``__init__`` first; an ``__init__`` that
imported every export would pull Lightning into scripts and tests that need only the maths. With
:func:`lazy_exports` the ``__init__`` names where each export lives, and the module is imported on
first access: ``from callbacks.pruning import GradualMagnitudePruning``, ``getattr`` (jsonargparse
``class_path: callbacks.pruning.GradualMagnitudePruning``) and ``from package import *`` work as
with eager imports.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose export may share its name with the submodule defining it
    (``callbacks.metrics.q_score`` defines ``q_score``).

    Importing a submodule makes the import system set it as an attribute of its package — after
    which the package's ``__getattr__`` is never asked for that name again, and
    ``from callbacks.metrics import q_score`` would give the module, not the function. With eager
    imports the ``__init__``'s own ``from .q_score import q_score`` rebinds the name to the
    function; here the package does the same when the submodule is attached.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        exports: Mapping[str, str] = self.__dict__.get("_lazy_exports", {})
        if isinstance(value, types.ModuleType) and exports.get(name) == value.__name__ and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps an exported name to the module
    that defines it. A resolved name is stored on the package, so later look-ups are plain
    attribute reads; an export named like its own submodule stays the export (:class:`_LazyPackage`)."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    module.__dict__["_lazy_exports"] = dict(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


__all__ = ["lazy_exports"]

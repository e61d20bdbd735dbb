"""The pure modules import no Lightning.

The sparsity maths (``sparsity/``), the losses and backbones, the analysis statistics and the shared ``common``
package are used by scripts, benchmarks and tests that train nothing; they must import without
Lightning. Each case runs a fresh interpreter with an import hook that refuses ``lightning``,
``pytorch_lightning`` and ``lightning_fabric``, then imports one module. The control case proves the
hook bites: a Lightning callback cannot be imported under it.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

BLOCKER = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('lightning', 'pytorch_lightning', 'lightning_fabric'):\n"
    "            raise ImportError('blocked: ' + name)\n"
    "sys.meta_path.insert(0, Block())\n"
)

PURE_MODULES = [
    *sorted(f"sparsity.{info.name}" for info in pkgutil.iter_modules([str(REPO / "sparsity")])),
    "lightning_modules.losses",
    "lightning_modules.backbones",
    "analysis.stats",
    "analysis.intervals",
    "analysis.selections",
    "analysis.pies",
    "analysis.estimators",
    "analysis.simulation",
    "callbacks.metrics.prediction_depth",
    "callbacks.metrics.probe_extraction",
    "training.naming",
    *sorted(f"common.{info.name}" for info in pkgutil.iter_modules([str(REPO / "common")])),
]


def _import_without_lightning(module: str) -> subprocess.CompletedProcess[str]:
    code = BLOCKER + f"import importlib\nimportlib.import_module({module!r})\nprint('ok')\n"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_without_lightning(module: str) -> None:
    done = _import_without_lightning(module)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_blocker_refuses_lightning() -> None:
    """Control: a Lightning callback fails under the hook, so the cases above prove something."""
    done = _import_without_lightning("callbacks.pruning.gmp")
    assert done.returncode != 0
    assert "blocked: lightning" in done.stderr


@pytest.mark.parametrize("package", ["callbacks.metrics", "callbacks.pruning", "lightning_modules"])
def test_lazy_exports_are_the_objects_even_after_their_submodules_are_imported(package: str) -> None:
    """``callbacks.metrics.q_score`` (a module) defines ``q_score`` (a function): once the module is
    imported, ``from callbacks.metrics import q_score`` must still be the function, as with eager imports."""
    code = (
        "import importlib, pkgutil\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for info in pkgutil.iter_modules(pkg.__path__):\n"
        "    importlib.import_module(pkg.__name__ + '.' + info.name)\n"
        "bad = [n for n in pkg.__all__ if getattr(pkg, n) is not getattr(importlib.import_module(pkg._lazy_exports[n]), n)]\n"
        "print('bad:', bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "bad: []", done.stdout + done.stderr[-2000:]

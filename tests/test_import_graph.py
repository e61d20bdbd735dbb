"""The house's import graph: every room imports only rooms below it, and no module imports itself
back through others (no circle), counting imports made inside functions too.

Rooms, bottom to top (CONTRIBUTING.md's table): ``common`` < ``sparsity`` < ``datamodules`` and
``lightning_modules`` (side by side: neither imports the other) < ``callbacks`` < ``analysis`` <
``training`` < ``population`` < ``cli.py``. Scripts, benchmarks and tests sit on top and may import
anything. The graph is read from the source with :mod:`ast`, so a lazy ``import`` inside a function
is an arrow like any other; the control cases build a small tree with the two faults this test was
written against (a module importing ``callbacks`` from below, ``cli`` and the runner importing each
other) and check that both are reported.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: room -> level; a room may import rooms of a lower level only (same level: not each other)
LEVEL = {"common": 0, "sparsity": 1, "datamodules": 2, "lightning_modules": 2, "callbacks": 3, "analysis": 4, "training": 5,
         "population": 6, "cli": 7}  # fmt: skip


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every first-party module named by an import anywhere in ``tree`` (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in LEVEL}


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the first-party modules it imports (only names that are modules of the tree)."""
    sources = [root / "cli.py"] if (root / "cli.py").is_file() else []
    for room in LEVEL:
        if (root / room).is_dir():
            sources += sorted((root / room).rglob("*.py"))
    modules = {_module_name(root, path): path for path in sources}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        named = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        graph[name] = {m for m in named if m in modules and m != name}
    return graph


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Arrows from a room to one at its own level or above it."""
    bad = []
    for module, targets in graph.items():
        room = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != room and LEVEL[other] >= LEVEL[room]:
                bad.append(f"{module} -> {target} ({room} is level {LEVEL[room]}, {other} level {LEVEL[other]})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_room_imports_a_room_above_it() -> None:
    graph = import_graph(REPO)
    assert {module.split('.')[0] for module in graph} == set(LEVEL)  # every room was read
    assert upward(graph) == []


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph(REPO)) == []


def test_the_checks_find_an_upward_arrow_and_a_circle(tmp_path: Path) -> None:
    """Control: the tree as it stood before the sparsity/ and training/ rooms (sdclr importing the
    pruning callbacks' masks; cli lazily importing the runner, the runner lazily importing cli)."""
    files = {
        "cli.py": "def main():\n    from population.runner import main as run\n    run()\n",
        "population/__init__.py": "",
        "population/runner.py": "def plan_jobs():\n    import cli\n    return cli.run_dir_for\n",
        "callbacks/__init__.py": "",
        "callbacks/pruning/__init__.py": "",
        "callbacks/pruning/masks.py": "from common.errors import ConfigError\n",
        "lightning_modules/__init__.py": "",
        "lightning_modules/sdclr.py": "from callbacks.pruning.masks import magnitude_masks\n",
        "common/__init__.py": "",
        "common/errors.py": "class ConfigError(ValueError): ...\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert upward(graph) == [
        "lightning_modules.sdclr -> callbacks.pruning.masks (lightning_modules is level 2, callbacks level 3)",
        "population.runner -> cli (population is level 6, cli level 7)",
    ]
    assert cycles(graph) == [["cli", "population.runner"]]

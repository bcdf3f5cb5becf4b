"""Imports point down: the package layers, a stage never importing a later stage, the pipeline or the CLI, and no
import cycle between modules. Type-only imports (under ``if TYPE_CHECKING:``) do not count."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "laion_spark"
#: Lowest first: a module may import its own package and the ones before it. The stages come in pipeline order
#: (a later stage reads what an earlier one wrote, and may import its declaration); ``sample`` (the test-data
#: generator) comes after every stage, so that no stage imports it.
LAYERS = (
    ("errors", "_lazy", "paths", "stage", "config_file"),
    ("engine",),
    ("lake",),
    ("ingest",),
    ("aesthetic",),
    ("clip",),
    ("subsets",),
    ("kv",),
    ("umap",),
    ("report",),
    ("sample",),
    ("pipeline",),
    ("cli", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The ``laion_spark`` modules a file imports, type-only imports left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("laion_spark"))
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if target.startswith("laion_spark"):
                submodules = {f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")}
                found.update(submodules or {target})
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_package_has_a_layer() -> None:
    packages = {layer(m) for m in graph()} - {"__init__"}
    assert packages <= set(RANK), packages - set(RANK)


def test_no_module_imports_a_later_layer() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if layer(module) != "__init__" and layer(target) != "__init__" and RANK[layer(target)] > RANK[layer(module)]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle_between_modules() -> None:
    edges = graph()
    modules = {m for m in edges}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if target not in modules or target == module or target in module.split(".")[:1]:
                continue
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [module, target])
            elif target not in state:
                walk(target, [*trail, target])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            walk(module, [module])
    assert not cycles, cycles


def test_a_job_module_reads_no_file_and_starts_no_engine_when_imported() -> None:
    """The session type is light (``engine/session.py``): jobs annotate with it without importing the factory,
    which reads ``jars.properties`` and imports pyspark's session builder."""
    code = (
        "import sys, laion_spark.lake.tables, laion_spark.ingest.job, laion_spark.kv.build; "
        "print(sorted(m for m in sys.modules if m.startswith('laion_spark.engine')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert "laion_spark.engine.factory" not in proc.stdout and "laion_spark.engine.jars" not in proc.stdout

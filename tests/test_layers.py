"""The layers point down, read from the source with `ast` (docs/architecture.md).

    smatch  <-  ocpi  <-  flexibility  <-  settlement  <-  localrun

A module may import its own layer and the layers to its left, never one to its right; no two modules
import each other, directly or round a longer loop; a product module is imported at the top of a
module, never inside a function or class, where it would hide a loop. The one place Django needs an
import in a function is `AppConfig.ready()` in an app's `apps.py` (models are not loaded before it):
allowed there. Imports under `if TYPE_CHECKING:` never run: not counted. Migrations are frozen
history: not read. The simulator, written from the OCPI spec, imports no product module at all.

Every failure lists every violation, one per line: `file:line  importer -> imported  (rule)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("smatch", "ocpi", "flexibility", "settlement", "localrun")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # the product module it names (a submodule when the name is one, else the package)
    path: Path
    line: int
    nested: bool  # inside a function or class body
    in_ready: bool  # inside AppConfig.ready() of an apps.py

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}  {self.importer} -> {self.imported}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_files(root: Path, packages: tuple[str, ...]) -> Iterator[Path]:
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.relative_to(root).parts:
                yield path


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, scope: tuple[str, ...]) -> Iterator[tuple[ast.AST, tuple[str, ...]]]:
    """Every import node with the names of the functions and classes around it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _walk(ast.Module(body=[other], type_ignores=[]), scope)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, scope
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from _walk(child, (*scope, child.name))
        else:
            yield from _walk(child, scope)


def read_imports(root: Path, packages: tuple[str, ...], targets: tuple[str, ...] | None = None) -> list[Import]:
    """The imports of product modules, in `packages`, of modules in `targets` (default: the same packages)."""
    targets = packages if targets is None else targets
    known = {module_name(p, root) for p in product_files(root, targets)}
    found = []
    for path in product_files(root, packages):
        importer = module_name(path, root)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, scope in _walk(tree, ()):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                if node.level:  # relative: from the importer's package, one level up per extra dot
                    base = importer.split(".") if is_package else importer.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                # `from a import b` names module a.b when there is one, else something defined in a.
                names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                         for alias in node.names]
            in_ready = path.name == "apps.py" and scope[-1:] == ("ready",)
            for name in dict.fromkeys(names):
                target = _known_module(name, known)
                if target and target != importer:
                    found.append(Import(importer, target, path, node.lineno, bool(scope), in_ready))
    return found


def _known_module(name: str, known: set[str]) -> str | None:
    """`name` or its nearest enclosing module among `known` (`import a.b.c` of a function c: a.b)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def upward_imports(imports: list[Import]) -> list[Import]:
    return [i for i in imports if layer_of(i.imported) > layer_of(i.importer)]


def nested_imports(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.nested and not i.in_ready]


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan), each sorted; AppConfig.ready() left out."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if not i.in_ready:
            graph.setdefault(i.importer, set()).add(i.imported)
            graph.setdefault(i.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the number of modules (a few hundred)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def _cycle_lines(groups: list[list[str]], imports: list[Import], root: Path) -> list[str]:
    lines = []
    for group in groups:
        members = set(group)
        lines.append(f"cycle of {len(group)} modules: {', '.join(group)}")
        lines += [f"    {i.where(root)}" + ("  (in a function)" if i.nested else "")
                  for i in imports if i.importer in members and i.imported in members and not i.in_ready]
    return lines


def _report(title: str, lines: list[str], count: int | None = None) -> str:
    return f"{title} ({len(lines) if count is None else count}):\n" + "\n".join(lines)


# --- the product -----------------------------------------------------------------------------------

IMPORTS = read_imports(ROOT, LAYERS)


def test_no_layer_imports_a_layer_above_it() -> None:
    found = upward_imports(IMPORTS)
    assert not found, _report("upward imports (layers: " + " <- ".join(LAYERS) + ")",
                              [i.where(ROOT) for i in found])


def test_no_product_module_is_imported_inside_a_function() -> None:
    found = nested_imports(IMPORTS)
    assert not found, _report("imports inside a function or class (move them to the top)",
                              [i.where(ROOT) for i in found])


def test_no_import_cycle() -> None:
    groups = import_cycles(IMPORTS)
    assert not groups, _report("import cycles", _cycle_lines(groups, IMPORTS, ROOT), len(groups))


def test_the_simulator_imports_no_product_module() -> None:
    found = read_imports(ROOT, ("simulator",), targets=("simulator", *LAYERS))
    found = [i for i in found if i.imported.split(".")[0] in LAYERS]
    assert not found, _report("simulator imports of product code", [i.where(ROOT) for i in found])


def test_every_product_package_is_read() -> None:
    assert {i.importer.split(".")[0] for i in IMPORTS} == set(LAYERS)


# --- the checker itself, on a made-up tree --------------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_an_upward_import_a_hidden_cycle_and_a_nested_import(tmp_path) -> None:
    _tree(tmp_path, {
        "smatch/__init__.py": "",
        "smatch/clock.py": "from ocpi.models import Party\n",  # upward
        "ocpi/__init__.py": "",
        "ocpi/models.py": "from smatch import clock\n",
        "ocpi/apps.py": "class C:\n    def ready(self):\n        from .models import Party\n",  # allowed
        "ocpi/services/__init__.py": "from .sending import send\n",
        "ocpi/services/sending.py": "from ..tasks import queue\n",
        "ocpi/tasks.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ocpi import models\n"
                         "def queue():\n    from ocpi.services import send\n",  # hides tasks <-> services
        "ocpi/migrations/0001.py": "from flexibility import models\n",  # not read
    })
    imports = read_imports(tmp_path, ("smatch", "ocpi"))
    assert [(i.importer, i.imported) for i in upward_imports(imports)] == [("smatch.clock", "ocpi.models")]
    assert [(i.importer, i.imported, i.line) for i in nested_imports(imports)] == [
        ("ocpi.tasks", "ocpi.services", 5)]
    assert import_cycles(imports) == [["ocpi.models", "smatch.clock"],
                                      ["ocpi.services", "ocpi.services.sending", "ocpi.tasks"]]

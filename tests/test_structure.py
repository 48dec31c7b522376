"""The code's shape, checked: no import cycles, no imports hidden in functions to dodge one, the versioning side
uses only the labeling side's public core, one module per concern of a readable size, and the exit-code table the
README prints is the one the code uses. Pure static checks (ast), no server."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"datalabel": ROOT / "data-labeling" / "datalabel", "dataversion": ROOT / "data-versioning" / "dataversion"}
# Command modules import the library inside each command so `--help` and every command start fast: that is a
# start-up choice, not a cycle dodge, and is allowed there only.
LAZY_ALLOWED = re.compile(r"^(datalabel\.cli|datalabel\.commands(\..*)?|dataversion\.cli)$")
MAX_LINES = 400
PUBLIC_CORE = "datalabel.api"


def modules() -> dict[str, Path]:
    found = {}
    for name, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(name: str, path: Path) -> list[tuple[str, bool, int]]:
    """(imported internal module, at module level?, line) for every import statement of a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` / try blocks at module level count as module level
        if isinstance(node, (ast.If, ast.Try)):
            top.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name:
                out.append((target, id(node) in top, node.lineno))
    return out


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_checker_sees_a_cycle_and_a_hidden_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    # relative imports resolve as Python resolves them, and a function-level import is told apart
    found = dict((t, top) for t, top, _ in imports("datalabel.export.conversion", MODULES["datalabel.export.conversion"]))
    assert found["datalabel.export.naming"] is True and found["datalabel.formats"] is True


def test_no_import_cycles_anywhere():
    graph = {name: {target for target, _, _ in edges} for name, edges in GRAPH.items()}
    assert cycles(graph) == []


def test_library_modules_import_their_own_package_at_the_top_only():
    hidden = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
              for name, edges in GRAPH.items() if not LAZY_ALLOWED.match(name)
              for target, top, line in edges if not top]
    assert hidden == []


def test_the_versioning_side_uses_only_the_public_core():
    used = {target for name, edges in GRAPH.items() if name.startswith("dataversion")
            for target, _, _ in edges if target.startswith("datalabel")}
    assert used == {PUBLIC_CORE}
    api = importlib.import_module(PUBLIC_CORE)
    assert all(hasattr(api, name) for name in api.__all__)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_is_readable_in_one_sitting(name):
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by concern (at most {MAX_LINES})"


def test_the_readme_prints_the_exit_codes_the_code_uses():
    from datalabel.errors import EXIT_CODES, ConfigError, LabError, NotFound, ServerError

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in readme
    assert (LabError.exit_code, ConfigError.exit_code, ServerError.exit_code, NotFound.exit_code) == (1, 2, 3, 4)


def test_the_readme_module_table_names_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, path in MODULES.items():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        rel = path.relative_to(PACKAGES[name.split(".")[0]])
        assert f"`{rel.as_posix()}`" in readme or f"`{rel.parent.as_posix()}/`" in readme, f"{rel} is not in the README"


# --- private parts of dependencies: in their adapter only ------------------------------------------------------

ADAPTERS = re.compile(r"^datalabel\.adapters(\..*)?$")


def own_names() -> tuple[set[str], set[str]]:
    """Private names our own code defines: (functions, classes and module/class-level names; attributes set on
    `self`/`cls`)."""
    defined, on_self = set(), set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                on_self.add(node.attr)
    return defined, on_self


def private_uses(source: str, defined: set[str], on_self: set[str]) -> list[tuple[int, str]]:
    """(line, what) for each private attribute or module of another package that `source` uses: `x._name`
    (`self._name` too, unless our own code sets it), `getattr(x, "_name")`, `__wrapped__`, and imports of a
    module whose dotted path has a part starting with one underscore. Our own private names are fine."""
    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__") or name == "__wrapped__"

    def mine(target: ast.expr, name: str) -> bool:
        return name in defined or (isinstance(target, ast.Name) and target.id in ("self", "cls") and name in on_self)

    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and private(node.attr):
            if not mine(node.value, node.attr):
                out.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr") \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and private(node.args[1].value) and not mine(node.args[0], node.args[1].value):
            out.append((node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"))
        else:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.split(".")[0] not in PACKAGES and any(private(part) for part in name.split(".")):
                    out.append((node.lineno, f"import {name}"))
    return out


def test_the_private_part_checker_sees_attributes_getattr_and_modules_and_spares_our_own():
    defined, on_self = {"_mine"}, {"_cache"}
    source = ("import lib._internal\nfrom lib._ext.pager import Pager\nfrom datalabel._x import y\n"
              "client._client_wrapper\ngetattr(fn, '__wrapped__')\nself._http\nmod._mine\nself._cache\n"
              "getattr(self, '_cache')\ngetattr(other, '_cache')\n")
    assert private_uses(source, defined, on_self) == [
        (1, "import lib._internal"), (2, "import lib._ext.pager"), (2, "import lib._ext.pager.Pager"),
        (4, "._client_wrapper"), (5, "getattr(..., '__wrapped__')"), (6, "._http"), (10, "getattr(..., '_cache')")]


def test_only_the_adapters_use_private_parts_of_dependencies():
    defined, on_self = own_names()
    found = [f"{MODULES[name].relative_to(ROOT)}:{line} uses {what}" for name in sorted(MODULES)
             if not ADAPTERS.match(name)
             for line, what in private_uses(MODULES[name].read_text(encoding="utf-8"), defined, on_self)]
    assert found == []


ADAPTER_MODULES = sorted(name for name in MODULES if ADAPTERS.match(name) and name != "datalabel.adapters")


def locked_versions() -> dict[str, str]:
    locked = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            locked[name.lower().replace("_", "-")] = version
    return locked


@pytest.mark.parametrize("name", ADAPTER_MODULES)
def test_each_adapter_names_at_its_top_the_locked_versions_it_was_written_against(name):
    adapter = importlib.import_module(name)
    locked = locked_versions()
    doc = adapter.__doc__ or ""
    assert adapter.PINNED
    for distribution, version in adapter.PINNED.items():
        assert locked.get(distribution) == version, f"{name} pins {distribution} {version}, the lock has {locked.get(distribution)}"
        assert f"{distribution} {version}" in " ".join(doc.split()), f"{name} does not say it was written against {distribution} {version}"


@pytest.mark.parametrize("name", ADAPTER_MODULES)
def test_an_adapter_refuses_another_installed_version(name, monkeypatch):
    from datalabel import adapters
    from datalabel.errors import ConfigError

    adapter = importlib.import_module(name)
    distribution, version = next(iter(adapter.PINNED.items()))
    monkeypatch.setattr(adapters, "_verified", set())
    monkeypatch.setattr(adapters, "installed_version", lambda d: "0.0.1" if d == distribution else adapter.PINNED[d])
    with pytest.raises(ConfigError) as refused:
        adapters.require(adapter.PINNED)
    message = str(refused.value)
    assert "\n" not in message and f"{distribution} 0.0.1 is installed" in message and f"{distribution}=={version}" in message
    monkeypatch.setattr(adapters, "installed_version", lambda d: adapter.PINNED[d])
    adapters.require(adapter.PINNED)  # the versions it was written against pass

"""The package's imports run one way: no cycles between its files (function-local imports
included), and the library never imports the repository's script folders or the tests."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT_FOLDERS = ("conversion", "configs", "benchmarks", "tests")


def python_files(folder):
    for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def imported_modules(path, modules=()):
    """Every module named by an import statement anywhere in the file (top level or local).
    `from a import b` names `a.b` when that is one of `modules`, else `a`."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                names.add(sub if sub in modules else node.module)
    return names


def library_graph():
    files = {module_name(p): p for p in python_files("vita_jax")}
    graph = {}
    for name, path in files.items():
        graph[name] = {dep for dep in imported_modules(path, files) if dep in files and dep != name}
    return graph


def find_cycle(graph):
    """One cycle as a list of modules, or None (iterative depth-first search)."""
    state = {}
    for start in graph:
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, deps = stack[-1]
            dep = next(deps, None)
            if dep is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            elif dep not in state:
                state[dep] = "open"
                stack.append((dep, iter(sorted(graph[dep]))))
                path.append(dep)
    return None


def test_find_cycle_detects_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_library_files_form_a_dag():
    cycle = find_cycle(library_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("folder", ["vita_jax"])
def test_library_never_imports_script_folders(folder):
    upward = []
    for path in python_files(folder):
        for dep in imported_modules(path):
            if dep.split(".")[0] in SCRIPT_FOLDERS:
                upward.append(f"{os.path.relpath(path, ROOT)} imports {dep}")
    assert not upward, "\n".join(upward)


def test_no_test_file_imports_another_test_file():
    test_modules = {module_name(p) for p in python_files("tests")}
    offenders = [f"{os.path.relpath(p, ROOT)} imports {dep}"
                 for p in python_files("tests") for dep in imported_modules(p, test_modules)
                 if dep.split(".")[-1].startswith("test_") and dep.startswith("tests")]
    assert not offenders, "\n".join(offenders)


def test_no_file_edits_sys_path():
    """Benchmarks and tests import the package as installed (`pip install -e .`), not by path hacks."""
    offenders = [os.path.relpath(p, ROOT) for folder in ("vita_jax", "benchmarks", "tests", "conversion", "configs")
                 for p in python_files(folder) if "sys.path." in open(p).read() and not p.endswith("test_imports.py")]
    assert not offenders, offenders

"""Every stage's code deps, derived from the imports: the ``src/`` block of each dvc.yaml stage is generated here.

A stage's command is ``alertclip <stage> ...``, which runs ``alertclip.stages.<stage>``. The modules that can execute
are that module's import closure (lazy, function-level imports included, ``if TYPE_CHECKING:`` blocks not), read with
``ast`` only: nothing analysed is imported. The closure's files are the stage's code deps, so an edit reruns exactly
the stages it can affect. ``make deps`` (``python -m alertclip.deps``) rewrites dvc.yaml's ``src/`` lines from it;
``python -m alertclip.deps --check`` (and tests/test_layering.py) fails while the file is not current.

The rewrite is textual, so dvc.yaml's comments and layout survive: within each stage's ``deps:`` list, the lines
naming ``src/<package>/...`` are replaced by the generated ones, where the first of them stood.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "alertclip"
SRC_ROOT = Path(__file__).resolve().parents[1]  # the directory holding the package (src/)
# The dispatcher every stage's command goes through (``alertclip <stage>`` -> cli.main -> stages.entry_point). Declaring
# it as a dep of every stage would rerun the whole pipeline on any CLI edit, so it is not part of any stage's closure.
DISPATCHER = ("cli", "__main__")
# A submodule importing a sibling (``from .rules import x`` in ``curation/curate.py``) also names its own package, whose
# ``__init__`` is then an edge (see tests/test_layering.py: it keeps every package ``__init__`` above its submodules).
OWN_PACKAGE_INIT_IS_AN_EDGE = True
# Non-Python data read by a module: module -> the directory its stages must declare.
DATA_DEPS = {"factory": "model_configs"}


@dataclass(frozen=True)
class Edge:
    src: str  # importing module, dotted ("alertclip.curation.curate"; a package is its __init__)
    dst: str  # module executed by the import
    file: Path
    line: int
    how: str  # "top-level" or "lazy" (inside a function), plus ", parent of <module>" for a parent package's __init__

    def where(self, root: Path) -> str:
        return f"{rel(self.file, root)}:{self.line} ({self.how})"


@dataclass
class Graph:
    package: str
    src_root: Path
    files: dict[str, Path]  # module -> file
    edges: dict[str, list[Edge]]  # module -> its outgoing edges, in source order

    def __repr__(self) -> str:  # pytest prints the fixture in a failure: keep it to one short line
        return f"Graph({self.package!r}: {len(self.files)} modules, {sum(map(len, self.edges.values()))} imports)"

    def succ(self, module: str) -> set[str]:
        return {e.dst for e in self.edges.get(module, ())}

    def is_package(self, module: str) -> bool:
        return self.files[module].name == "__init__.py"


def rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def module_files(src_root: Path, package: str) -> dict[str, Path]:
    files = {}
    for path in sorted((src_root / package).rglob("*.py")):
        parts = path.relative_to(src_root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(tree: ast.Module):
    """(node, lazy) for every import statement that can run: top level, in functions and classes, under try/if.

    The body of ``if TYPE_CHECKING:`` is skipped: it never runs (only type checkers read it), so it cannot close a
    cycle or make a stage depend on a file. Its ``else:`` branch does run and is kept.
    """
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, lazy = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, lazy
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in reversed(children))


def _existing(module: str, files: dict[str, Path]) -> str | None:
    """``module`` if it is a file of the package, else its nearest enclosing package that is (an attribute import)."""
    while module and module not in files:
        module = module.rpartition(".")[0]
    return module or None


def ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def build_graph(src_root: Path = SRC_ROOT, package: str = PACKAGE) -> Graph:
    """Every in-package import of every module under ``src_root/package``, resolved to the modules it executes.

    * ``import p.a.b`` and ``from p.a import b`` / ``from .a import b``: ``p.a.b`` when that is a module, else the
      module or package ``p.a`` (``b`` is then an attribute of it); relative imports are resolved against the
      importing module's package (``from . import rules`` inside ``p.curation`` -> ``p.curation.rules``).
    * Importing ``p.x.y`` also executes ``p/__init__.py`` and ``p/x/__init__.py``: those parent packages become edges
      too ("parent of p.x.y"), including the importer's own package (see OWN_PACKAGE_INIT_IS_AN_EDGE).
    * Imports inside functions (lazy) count, they run when the function is called; ``if TYPE_CHECKING:`` blocks do not.
    """
    files = module_files(src_root, package)
    edges: dict[str, list[Edge]] = {}
    for module, path in files.items():
        own_pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
        skip = set() if OWN_PACKAGE_INIT_IS_AN_EDGE else set(ancestors(module))
        out: list[Edge] = []
        seen: set[tuple[str, int]] = set()

        def add(dst: str | None, node: ast.stmt, how: str) -> None:
            if dst is None or dst == module or (dst, node.lineno) in seen:
                return
            seen.add((dst, node.lineno))
            out.append(Edge(module, dst, path, node.lineno, how))

        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, lazy in imports(tree):
            how = "lazy" if lazy else "top-level"
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_existing(a.name, files) for a in node.names if a.name.split(".")[0] == package]
            else:
                if node.level:
                    base_parts = own_pkg.split(".")
                    if node.level > 1:
                        base_parts = base_parts[: -(node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != package:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if alias.name != "*" and sub in files else _existing(base, files))
            for dst in targets:
                if dst is None:
                    continue
                for parent in ancestors(dst):
                    if parent not in skip:
                        own = " (own package)" if parent in ancestors(module) else ""
                        add(parent, node, f"{how}, parent of {dst}{own}")
                add(dst, node, how)
        edges[module] = out
    return Graph(package, src_root, files, edges)


def entry_module(cmd: str, package: str = PACKAGE) -> str:
    """The module a stage's command runs, as ``cli`` maps it: ``alertclip <stage> ...`` (or ``python -m alertclip
    <stage>``) -> ``stages.entry_point(<stage>)`` -> ``alertclip.stages.<stage>.run``."""
    argv = shlex.split(cmd.split("&&")[0])
    if argv[:2] == ["python", "-m"]:
        argv = argv[2:]
    if not (argv and argv[0] == package and len(argv) > 1):
        raise ValueError(f"not an `{package} <stage>` command: {cmd!r}")
    return f"{package}.stages.{argv[1]}"


def closure(graph: Graph, root: str) -> set[str]:
    """Every in-package module executed by importing ``root``: its parent packages, and all it imports, transitively
    (lazy imports included: they run when the stage calls the function)."""
    todo = [root, *ancestors(root)]
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen or m not in graph.files:
            continue
        seen.add(m)
        todo.extend(graph.succ(m))
    return seen


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return all(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in body)


def exempt(graph: Graph, module: str) -> bool:
    """Modules a stage need not declare: the top-level ``__init__`` (a docstring and the version), package
    ``__init__`` files that are only a docstring, and the shared dispatcher (see DISPATCHER)."""
    if module == graph.package or module in {f"{graph.package}.{d}" for d in DISPATCHER}:
        return True
    return graph.is_package(module) and _docstring_only(graph.files[module])


def stage_files(graph: Graph, cmd: str, repo_root: Path) -> tuple[set[str], set[str]]:
    """(repo-relative files of the command's closure that need a dep, data directories the closure reads)."""
    mods = closure(graph, entry_module(cmd, graph.package))
    files = {rel(graph.files[m], repo_root) for m in mods if not exempt(graph, m)}
    pkg_dir = rel(graph.src_root / graph.package, repo_root)
    data = {f"{pkg_dir}/{d}" for m, d in DATA_DEPS.items() if f"{graph.package}.{m}" in mods}
    return files, data


def code_deps(graph: Graph, cmd: str, repo_root: Path) -> list[str]:
    """The dvc.yaml ``src/`` deps of a stage running ``cmd``: its entry module first, then the rest sorted.

    A subpackage is named as its directory when the stage executes every module in it that needs a dep (one line
    instead of many, and a new module there reruns the stage as it should); otherwise each file is named.
    """
    files, data = stage_files(graph, cmd, repo_root)
    pkg_dir = rel(graph.src_root / graph.package, repo_root)
    needed = {rel(graph.files[m], repo_root) for m in graph.files if not exempt(graph, m)}
    entry = rel(graph.files[entry_module(cmd, graph.package)], repo_root)
    deps = set(data)
    for file in files - {entry}:  # the entry module is always named: it says which stage this is
        # the outermost subpackage (below the package itself) all of whose needed files the stage executes
        parts = file.split("/")
        name = file
        for depth in range(len(pkg_dir.split("/")) + 1, len(parts)):
            directory = "/".join(parts[:depth])
            if all(f in files for f in needed if f.startswith(directory + "/")):
                name = directory
                break
        deps.add(name)
    return [entry, *sorted(deps)]


# ---------------------------------------------------------------------------------------------------------------------
# dvc.yaml, rewritten in place
# ---------------------------------------------------------------------------------------------------------------------

_STAGE = re.compile(r"^  (?P<name>[A-Za-z_][\w-]*):")
_CMD = re.compile(r"^\s+cmd:\s*(?P<cmd>.+?)\s*$")
_KEY = re.compile(r"^(?P<indent>\s+)(?P<key>[a-z_]+):")
_ITEM = re.compile(r"^(?P<indent>\s+)- (?P<value>\S+)")


def rewrite(text: str, graph: Graph, repo_root: Path) -> str:
    """dvc.yaml's text with every stage's ``src/<package>`` deps regenerated from ``graph`` (other lines kept)."""
    pkg_dir = rel(graph.src_root / graph.package, repo_root)
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _STAGE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not _STAGE.match(lines[end]) and not re.match(r"^\S", lines[end]):
            end += 1
        out.extend(_rewrite_stage(m["name"], lines[i:end], graph, repo_root, pkg_dir))
        i = end
    return "".join(out)


def _rewrite_stage(name: str, block: list[str], graph: Graph, repo_root: Path, pkg_dir: str) -> list[str]:
    cmds = [m["cmd"] for line in block if (m := _CMD.match(line))]
    if len(cmds) != 1:
        raise ValueError(f"dvc.yaml: stage {name}: expected one `cmd:` line, found {len(cmds)}")
    deps = code_deps(graph, cmds[0], repo_root)
    out: list[str] = []
    in_deps, written = False, False
    deps_indent_len, item_indent = 0, ""
    for line in block:
        key = _KEY.match(line)
        if key and not line.lstrip().startswith("-"):
            if in_deps and len(key["indent"]) <= deps_indent_len and not written:
                out.extend(f"{item_indent}- {d}\n" for d in deps)
                written = True
            in_deps = key["key"] == "deps"
            if in_deps:
                deps_indent_len = len(key["indent"])
                item_indent = key["indent"] + "  "
        item = _ITEM.match(line)
        if in_deps and item and item["value"].startswith(pkg_dir + "/"):
            item_indent = item["indent"]
            if not written:
                out.extend(f"{item_indent}- {d}\n" for d in deps)
                written = True
            continue
        out.append(line)
    if not written:
        raise ValueError(f"dvc.yaml: stage {name}: no `deps:` list to write its code deps into")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alertclip.deps", description=__doc__.split("\n\n")[0])
    parser.add_argument("dvc_yaml", nargs="?", default="dvc.yaml", type=Path)
    parser.add_argument("--check", action="store_true", help="fail (exit 1) if the file is not current; write nothing")
    args = parser.parse_args(argv)
    repo_root = args.dvc_yaml.resolve().parent
    text = args.dvc_yaml.read_text(encoding="utf-8")
    new = rewrite(text, build_graph(), repo_root)
    if new == text:
        return 0
    if args.check:
        print(f"{args.dvc_yaml}: stage code deps are not current: run `make deps`", file=sys.stderr)
        return 1
    args.dvc_yaml.write_text(new, encoding="utf-8")
    print(f"{args.dvc_yaml}: stage code deps rewritten from the imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())

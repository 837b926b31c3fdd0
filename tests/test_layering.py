"""Layering guards for the pipeline's central promise: exact, explained reruns.

1. No import cycles inside ``alertclip`` (lazy, function-level imports included), and ``alertclip.params`` is the
   bottom layer (imports nothing from the package).
2. ``dvc.yaml``'s code deps are generated (``make deps``, :mod:`alertclip.deps`) and the file is current; and, on
   the stages DVC resolves, every in-package module a stage's entry point can execute is covered by one of its deps
   (an edit reruns the stage) and no ``src/...`` dep is one the stage never imports (an edit does not rerun stages
   it cannot affect).
3. The guards bite: they run on throwaway packages with a known cycle / a known missing dep / a stale dvc.yaml.

The import graph (:func:`alertclip.deps.build_graph`) is read with ``ast`` only: nothing analysed here is imported
(``alertclip.dag.load_stages``, which asks DVC to resolve dvc.yaml, is the one exception).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from types import SimpleNamespace

import pytest

from alertclip.deps import (
    OWN_PACKAGE_INIT_IS_AN_EDGE,
    PACKAGE,
    Graph,
    build_graph,
    closure,
    code_deps,
    entry_module,
    rel,
    rewrite,
    stage_files,
)

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


# ---------------------------------------------------------------------------------------------------------------------
# Cycles
# ---------------------------------------------------------------------------------------------------------------------

def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one module, or of one module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.succ(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.succ(v):
                comps.append(sorted(comp))

    for v in sorted(graph.files):
        if v not in index:
            visit(v)
    return sorted(comps)


def _shortest_cycle(graph: Graph, start: str, within: set[str]) -> list[str]:
    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph.succ(v) & within):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def find_cycles(graph: Graph) -> list[str]:
    """One message per cycle: ``a -> b -> c -> a`` and, under it, the file:line of each import in the chain.

    Each strongly connected component is covered by shortest cycles through its members until every member is on one.
    """
    messages = []
    for comp in strongly_connected(graph):
        members, covered = set(comp), set()
        for start in comp:
            if start in covered:
                continue
            chain = _shortest_cycle(graph, start, members)
            covered.update(chain)
            lines = [" -> ".join(chain)]
            for a, b in zip(chain, chain[1:]):
                hops = [e for e in graph.edges[a] if e.dst == b]
                more = f" (+{len(hops) - 1} more)" if len(hops) > 1 else ""
                lines.append(f"    {a} -> {b}: {hops[0].where(graph.src_root.parent)}{more}")
            messages.append("\n".join(lines))
    return messages


# ---------------------------------------------------------------------------------------------------------------------
# Stage closures and dvc.yaml code deps
# ---------------------------------------------------------------------------------------------------------------------

def _norm(dep: str) -> str:
    return Path(dep).as_posix().rstrip("/").removeprefix("./")


def _covered(file: str, deps: set[str]) -> bool:
    return any(file == d or file.startswith(d + "/") for d in deps)


def missing_deps(stages, graph: Graph, repo_root: Path) -> dict[str, list[str]]:
    """Stage name -> the files (and data directories) its closure needs that none of its deps covers, sorted."""
    out = {}
    for stage in stages:
        deps = {_norm(d) for d in stage.deps}
        files, data = stage_files(graph, stage.cmd, repo_root)
        missing = sorted({f for f in files if not _covered(f, deps)} | {d for d in data if not _covered(d, deps)})
        if missing:
            out[stage.name] = missing
    return out


def over_declared_deps(stages, graph: Graph, repo_root: Path) -> dict[str, list[str]]:
    """Stage name -> its deps inside the package's source tree that its closure never uses (no imported file and no
    data directory it reads lies at or under them), sorted."""
    pkg_dir = rel(graph.src_root / graph.package, repo_root)
    out = {}
    for stage in stages:
        files, data = stage_files(graph, stage.cmd, repo_root)
        used = files | data
        unused = sorted(d for d in {_norm(d) for d in stage.deps}
                        if (d == pkg_dir or d.startswith(pkg_dir + "/")) and not any(_covered(u, {d}) for u in used))
        if unused:
            out[stage.name] = unused
    return out


def _report(per_stage: dict[str, list[str]]) -> str:
    """A count, then one line per stage; the variants of a foreach stage that need the same fix share a line (they
    are one entry of dvc.yaml)."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for name, files in per_stage.items():
        groups.setdefault((name.split("@")[0], tuple(files)), []).append(name)
    lines = []
    for (base, files), names in sorted(groups.items()):
        label = names[0] if len(names) == 1 else f"{base}@{{{','.join(sorted(n.split('@', 1)[1] for n in names))}}}"
        lines.append(f"{label} ({len(files)}): {' '.join(files)}")
    edits = sum(len(files) for _, files in groups)
    return f"{sum(map(len, per_stage.values()))} (stage, path) pairs, {edits} dvc.yaml list entries:\n" + "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# The guards on the real package and dvc.yaml
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(SRC)


@pytest.fixture(scope="module")
def stages():
    from alertclip.dag import load_stages

    return load_stages(REPO)


def test_no_import_cycles(graph):
    cycles = find_cycles(graph)
    assert not cycles, f"{len(cycles)} import cycle(s) in {PACKAGE}:\n" + "\n".join(cycles)


def test_params_is_the_bottom_layer(graph):
    edges = graph.edges[f"{PACKAGE}.params"]
    assert not edges, f"{PACKAGE}.params must import nothing from the package:\n" + "\n".join(
        f"    -> {e.dst}: {e.where(REPO)}" for e in edges)


# The layers, bottom first (README "Layout" shows the same): a module may import its own layer (no cycles) and the
# layers below, never one above. Top-level subpackages and modules of alertclip, by name.
LAYERS = (
    ("params", "paths", "io", "threads", "profiles"),  # settings, profiles of them, where files live, atomic writes
    ("data", "synth", "curation", "hardneg"),  # reading, making and cleaning the data
    ("factory", "model", "losses", "prompts", "retrieval", "interpolation"),  # the model; what trains / scores / mixes it
    ("train", "backbone"),  # the training loop; pre-training the synthetic backbone
    ("tune", "heldout"),  # the tuning runs (params runs: the curriculum and its ablations)
    ("sweep",),  # the Optuna study over runs.full
    ("eval",),  # every evaluation
    ("report",),  # the report over all evaluations
    ("publish",),  # a backbone in open_clip's hub layout, with the report's numbers in its card
    ("stages", "cli", "__main__", "dag", "deps", "stage_table"),  # entry points; the generators of dvc.yaml's code
    # deps and of the docs' stage tables
)


def layer_of(module: str, package: str = PACKAGE) -> int:
    parts = module.split(".")
    if parts == [package]:
        return -1  # the package's own __init__ (a docstring and the version)
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module}: in no layer of LAYERS (add it where it belongs)")


def upward_imports(graph: Graph) -> list[str]:
    return [f"{e.src} (layer {layer_of(e.src)}) imports {e.dst} (layer {layer_of(e.dst)}): {e.where(REPO)}"
            for m in sorted(graph.files) for e in graph.edges[m] if layer_of(e.dst) > layer_of(m)]


def test_imports_run_one_way(graph):
    upward = upward_imports(graph)
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_report_edits_never_rerun_training_and_feature_edits_rerun_every_evaluation(graph, stages):
    for s in stages:
        mods = closure(graph, entry_module(s.cmd))
        if s.name.split("@")[0] in ("backbone", "tune", "sweep"):
            assert not any(m.startswith(f"{PACKAGE}.report") or m.startswith(f"{PACKAGE}.eval.") for m in mods), s.name
        if s.name.split("@")[0] in ("features", "eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab"):
            assert f"{PACKAGE}.eval.features" in mods and "src/alertclip/eval/features.py" in s.deps, s.name


def test_every_stage_has_an_entry_module(graph, stages):
    bad = {s.name: entry_module(s.cmd) for s in stages if entry_module(s.cmd) not in graph.files}
    assert not bad, f"stage commands whose module does not exist: {bad}"
    assert stages, "dvc.yaml resolved to no stages"


def test_dvc_yaml_code_deps_are_generated_and_current(graph):
    text = (REPO / "dvc.yaml").read_text(encoding="utf-8")
    assert rewrite(text, graph, REPO) == text, (
        "dvc.yaml's src/ deps differ from the stages' imports: run `make deps` (python -m alertclip.deps)")


def test_stage_code_deps_cover_their_imports(graph, stages):
    missing = missing_deps(stages, graph, REPO)
    assert not missing, ("code a stage executes that none of its dvc.yaml deps covers (an edit to it would not rerun "
                         "the stage); add to the stage's deps: " + _report(missing))


def test_stage_code_deps_are_not_over_declared(graph, stages):
    extra = over_declared_deps(stages, graph, REPO)
    assert not extra, ("src deps the stage never imports (an edit to them reruns a stage it cannot affect); remove "
                       "from the stage's deps: " + _report(extra))


def private_imports(roots: list[Path], package: str = PACKAGE) -> list[str]:
    """``file:line: from <module> import _name`` for every underscore name imported from the package (relative
    imports included): a name another module needs is public, or the two modules are one."""
    import ast

    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == package):
                    found += [f"{rel(path, REPO)}:{node.lineno}: from {'.' * node.level}{node.module or ''} import "
                              f"{a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_underscore_name_is_imported_across_modules():
    found = private_imports([SRC, REPO / "tests", REPO / "benchmarks"])
    assert not found, "underscore names imported from another module (make them public):\n" + "\n".join(found)


# ---------------------------------------------------------------------------------------------------------------------
# The guards bite
# ---------------------------------------------------------------------------------------------------------------------

def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_cycle_finder_sees_a_lazy_import_cycle(tmp_path):
    _write(tmp_path / "src", {
        "toy/__init__.py": '"""Docstring only."""\n',
        "toy/base.py": "def f():\n    from .top import g\n    return g\n",  # the cycle closes inside a function
        "toy/top.py": "from typing import TYPE_CHECKING\n\nfrom .lib.m import h\n\n"
                      "if TYPE_CHECKING:\n    from .other import x\ng = 1\n",
        "toy/lib/__init__.py": '"""Docstring only."""\n',
        "toy/lib/m.py": "from ..base import f\nh = 1\n",
        "toy/other.py": "import toy.top\n",  # reached only from the TYPE_CHECKING block: not on a cycle
    })
    g = build_graph(tmp_path / "src", "toy")
    assert strongly_connected(g) == [["toy.base", "toy.lib.m", "toy.top"]]
    assert "toy.other" not in g.succ("toy.top") and "toy.lib" in g.succ("toy.top")
    [cycle] = find_cycles(g)
    assert cycle.splitlines()[0] == "toy.base -> toy.top -> toy.lib.m -> toy.base", cycle
    assert "toy.base -> toy.top: src/toy/base.py:2 (lazy)" in cycle
    assert "toy.top -> toy.lib.m: src/toy/top.py:3 (top-level)" in cycle


def test_cycle_finder_sees_an_init_reexport_cycle(tmp_path):
    _write(tmp_path / "src", {
        "toy/__init__.py": "",
        "toy/pkg/__init__.py": "from .a import x\n",
        "toy/pkg/a.py": "from .b import y\nx = y\n",  # executing toy.pkg.b names toy.pkg, whose __init__ imports a
        "toy/pkg/b.py": "y = 1\n",
    })
    cycles = find_cycles(build_graph(tmp_path / "src", "toy"))
    if OWN_PACKAGE_INIT_IS_AN_EDGE:
        assert [c.splitlines()[0] for c in cycles] == ["toy.pkg -> toy.pkg.a -> toy.pkg"], cycles
        assert "toy.pkg.a -> toy.pkg: src/toy/pkg/a.py:1 (top-level, parent of toy.pkg.b (own package))" in cycles[0]
    else:
        assert cycles == []


def test_drift_checker_names_a_missing_and_an_extra_dep(tmp_path):
    _write(tmp_path / "src", {
        "toy/__init__.py": '"""Docstring only."""\n',
        "toy/cli.py": "from . import stages\n",
        "toy/stages/__init__.py": "NAMES = ('one',)\n",
        "toy/stages/one.py": "from ..lib import util\n\ndef run():\n    from ..factory import make\n",
        "toy/lib/__init__.py": '"""Docstring only."""\nfrom __future__ import annotations\n',
        "toy/lib/util.py": "",
        "toy/lib/unused.py": "",
        "toy/factory.py": "",
        "toy/model_configs/tiny.json": "{}",
    })
    g = build_graph(tmp_path / "src", "toy")
    stage = SimpleNamespace(name="one@a", cmd="toy one --variant a",
                            deps=("data/in", "src/toy/stages/one.py", "src/toy/lib/", "src/toy/lib/unused.py"))
    assert missing_deps([stage], g, tmp_path) == {
        "one@a": ["src/toy/factory.py", "src/toy/model_configs", "src/toy/stages/__init__.py"]}
    assert over_declared_deps([stage], g, tmp_path) == {"one@a": ["src/toy/lib/unused.py"]}
    fixed = SimpleNamespace(name="one@a", cmd=stage.cmd, deps=("src/toy/stages", "src/toy/lib/util.py",
                                                               "src/toy/factory.py", "src/toy/model_configs"))
    assert missing_deps([fixed], g, tmp_path) == {} and over_declared_deps([fixed], g, tmp_path) == {}


def test_layer_check_sees_an_upward_import(tmp_path):
    _write(tmp_path, {"alertclip/__init__.py": "", "alertclip/params.py": "from .report import x\n",
                      "alertclip/report.py": "x = 1\n"})
    found = upward_imports(build_graph(tmp_path))
    assert len(found) == 1 and "alertclip.params (layer 0) imports alertclip.report (layer 7)" in found[0]


def test_deps_generator_rewrites_only_the_src_lines_of_a_stale_stage(tmp_path):
    _write(tmp_path / "src", {
        "toy/__init__.py": '"""Docstring only."""\n',
        "toy/stages/__init__.py": '"""Docstring only."""\n',
        "toy/stages/one.py": "from ..lib import util\n\ndef run():\n    from ..factory import make\n",
        "toy/lib/__init__.py": '"""Docstring only."""\n',
        "toy/lib/util.py": "",
        "toy/lib/more.py": "",
        "toy/factory.py": "",
        "toy/model_configs/tiny.json": "{}",
    })
    g = build_graph(tmp_path / "src", "toy")
    assert code_deps(g, "toy one --variant ${key}", tmp_path) == [
        "src/toy/stages/one.py", "src/toy/factory.py", "src/toy/lib/util.py", "src/toy/model_configs"]
    stale = ("stages:\n  one:   # a comment kept\n    foreach: ${things}\n    do:\n"
             "      cmd: toy one --variant ${key}\n      deps:\n        - data/in  # kept\n"
             "        - src/toy/lib\n        - src/toy/gone.py\n      outs:\n        - data/out/${key}\n")
    new = rewrite(stale, g, tmp_path)
    assert new == stale.replace("        - src/toy/lib\n        - src/toy/gone.py\n", "".join(
        f"        - {d}\n" for d in code_deps(g, "toy one", tmp_path))), new
    assert rewrite(new, g, tmp_path) == new  # generated once, current after
    (tmp_path / "src/toy/stages/one.py").write_text("from ..lib import util, more\n")
    assert "        - src/toy/lib\n" in rewrite(new, build_graph(tmp_path / "src", "toy"), tmp_path)  # all of lib


def test_private_import_check_sees_one(tmp_path):
    _write(tmp_path, {"alertclip/a.py": "_x = 1\ny = 2\n", "alertclip/b.py": "from .a import _x, y\n",
                      "alertclip/c.py": "from __future__ import annotations\nfrom alertclip.a import y\n"})
    assert [f.split(": ", 1)[1] for f in private_imports([tmp_path])] == ["from .a import _x"]

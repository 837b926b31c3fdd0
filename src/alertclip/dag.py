"""One DAG, two engines: Snakemake rules derived from DVC's own resolved stages.

``dvc.yaml`` is the only declaration of stages. :func:`load_stages` asks DVC to resolve it (templating, foreach and
matrix included) and returns plain records that ``workflow/rules/stages.smk`` turns into one rule each. DVC alone
decides staleness (:func:`stale_stages`): the stages ``dvc status`` names plus everything downstream of them. The
workflow hands Snakemake the stale stages its targets need (:func:`rules_to_force`) as the ``--forcerun`` set, so an
edited param or module always reruns, in a dry run too, with no file written; it wraps the inputs of every other stage
in ``ancient()`` and switches off Snakemake's metadata rerun triggers, so a ``dvc checkout`` or a touch (fresh mtimes)
never reruns what DVC holds current. After a run, the stages whose jobs finished in it are recorded in ``dvc.lock``
(:func:`stages_to_record`, :func:`record_in_dvc_lock`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import yaml


@dataclass(frozen=True)
class StageSpec:
    name: str  # DVC stage name in the root dvc.yaml: "frames", "features@base"
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]  # every output: outs, metrics and plots
    params: tuple[str, ...] = ()
    dir_outs: frozenset[str] = field(default_factory=frozenset)

    @property
    def rule_name(self) -> str:
        """Snakemake rule names are identifiers: ``features@base`` -> ``features__base``."""
        return re.sub(r"\W", "_", self.name.replace("@", "__"))


@dataclass(frozen=True)
class Hints:
    threads: int | str = 1  # an int, or "all" for every core Snakemake was given
    mem_mb: int = 1000
    gpu: int = 0
    runtime: int = 60  # minutes of wall clock a cluster may give the job (SLURM --time, via Snakemake's `runtime`)


# Commands that join torchrun's process group (alertclip.train.distributed, used by alertclip.tune.run): only these
# may be given more than one GPU; any other stage would run its whole job once per process.
DATA_PARALLEL = frozenset({"tune"})


def launch_command(stage: StageSpec, gpus: int) -> str:
    """The command a job runs: the stage's own ``cmd``, under ``torchrun`` with one process per GPU when ``gpus`` > 1.

    ``--standalone`` picks a free rendezvous port on the job's node, so two such jobs on one node do not collide. On a
    machine without CUDA the processes train with gloo (same result as one process, see tests/test_ddp.py)."""
    if gpus <= 1:
        return stage.cmd
    base = stage.name.split("@")[0]
    if base not in DATA_PARALLEL or not stage.cmd.startswith("alertclip "):
        raise ValueError(f"stage {stage.name}: gpu={gpus}, but only {sorted(DATA_PARALLEL)} train data-parallel; "
                         "give it gpu: 1 (workflow/resources.yaml or --set-resources)")
    return f"torchrun --standalone --nproc_per_node {gpus} -m alertclip {stage.cmd.removeprefix('alertclip ')}"


def _repo(root: str | Path):
    from dvc.repo import Repo

    return Repo(str(root))


def _is_dir_out(path: str, root: Path, declared_dir: bool) -> bool:
    full = root / path
    if full.exists():
        return full.is_dir()
    return declared_dir or not Path(path).suffix


def load_stages(root: str | Path = ".") -> list[StageSpec]:
    """DVC-resolved pipeline stages of ``root``, in a topological order (dependencies first)."""
    root = Path(root)
    with _repo(root) as repo:
        graph = repo.index.graph
        order = list(reversed(list(nx.topological_sort(graph))))  # edges point stage -> its dependency
        specs = []
        for stage in order:
            if not hasattr(stage, "cmd") or not stage.cmd:
                continue  # a .dvc data file, not a pipeline stage
            params = tuple(sorted(f"{Path(d.def_path).name}:{','.join(sorted(d.params))}"
                                  for d in stage.deps if d.__class__.__name__ == "ParamsDependency"))
            deps = tuple(d.def_path for d in stage.deps if d.__class__.__name__ != "ParamsDependency")
            outs = tuple(o.def_path for o in stage.outs)
            dir_outs = frozenset(o.def_path for o in stage.outs if _is_dir_out(o.def_path, root, False))
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
            specs.append(StageSpec(stage.name, cmd, deps, outs, params, dir_outs))
    return expand_parent_deps(specs)


def expand_parent_deps(specs: list[StageSpec]) -> list[StageSpec]:
    """Replace a dep that is a parent directory of other stages' outputs by those outputs, and a dep inside another
    stage's output directory by that directory.

    DVC links such a dep to every stage with an output under it (``dvc.repo.graph.build_graph``); Snakemake matches
    inputs to outputs only by exact path. This is what lets the report depend on ``results/eval_mss`` and so pick up
    every ``eval_mss@<backbone>`` variant, including ones added in params.yaml alone.
    """
    all_outs = sorted({o for s in specs for o in s.outs})
    dir_outs = sorted({o for s in specs for o in s.dir_outs})
    out = []
    for spec in specs:
        deps: list[str] = []
        for dep in spec.deps:
            under = [o for o in all_outs if o.startswith(dep.rstrip("/") + "/")] if dep not in all_outs else []
            # a file inside another stage's output directory (eval.datasets.<key>.ground_truth under
            # data/synth/published): DVC links the two stages; Snakemake needs the directory itself
            above = [o for o in dir_outs if dep.startswith(o.rstrip("/") + "/")] if not under and dep not in all_outs else []
            deps.extend(under or above[:1] or [dep])
        out.append(StageSpec(spec.name, spec.cmd, tuple(dict.fromkeys(deps)), spec.outs, spec.params, spec.dir_outs))
    return out


def stale_stages(root: str | Path = ".") -> set[str]:
    """Stages ``dvc status`` names as changed, plus every stage downstream of them (what ``dvc repro`` may run)."""
    with _repo(root) as repo:
        changed = set(repo.status().keys())
        graph = repo.index.graph
        by_address = {s.addressing: s for s in graph.nodes}  # status keys are addresses relative to the cwd
        stale = set()
        for address in changed:
            stage = by_address.get(address)
            if stage is None:
                continue
            stale.add(stage.name)
            stale.update(s.name for s in nx.ancestors(graph, stage))  # ancestors = dependents here
    return stale


def load_hints(path: str | Path) -> dict[str, Hints]:
    """The small execution-hints table: stage name (base name before ``@``) -> threads / memory / gpu."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    unknown = {k: set(v) - set(Hints.__dataclass_fields__) for k, v in raw.items() if set(v) - set(Hints.__dataclass_fields__)}
    if unknown:
        raise ValueError(f"{path}: unknown hint keys {unknown}")
    return {name: Hints(**values) for name, values in raw.items()}


def hints_for(stage: StageSpec, table: dict[str, Hints]) -> Hints:
    return table.get(stage.name, table.get(stage.name.split("@")[0], table.get("default", Hints())))


def _overlaps(a: str, b: str) -> bool:
    """Whether two repo paths are the same or one lies inside the other (how DVC links a dep to an out)."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _repo_path(target: str) -> str:
    return os.path.normpath(os.path.relpath(target) if os.path.isabs(target) else target)


def needed_stages(stages: list[StageSpec], targets: Iterable[str] = (), aggregate: str = "all") -> set[str]:
    """Stages a Snakemake run of ``targets`` (rule names or output paths) builds: the targets' stages and everything
    upstream of them. No targets, or the ``aggregate`` rule (``rule all``), means every stage."""
    targets = list(targets)
    if not targets or aggregate in targets:
        return {s.name for s in stages}
    by_rule = {s.rule_name: s.name for s in stages}
    wanted = set()
    for target in targets:
        if target in by_rule:
            wanted.add(by_rule[target])
        else:  # an output path, or a file inside an output directory
            path = _repo_path(target)
            wanted |= {s.name for s in stages if any(path == o or path.startswith(o.rstrip("/") + "/") for o in s.outs)}
    producers = {s.name: {p.name for p in stages if p is not s and any(_overlaps(d, o) for d in s.deps for o in p.outs)}
                 for s in stages}
    todo = list(wanted)
    while todo:
        for producer in producers[todo.pop()] - wanted:
            wanted.add(producer)
            todo.append(producer)
    return wanted


def rules_to_force(stages: list[StageSpec], stale: set[str], targets: Iterable[str] = (), aggregate: str = "all") -> set[str]:
    """Rule names for Snakemake's ``forcerun`` set: the DVC-stale stages among those the targets need.

    Only the needed ones: Snakemake also makes every forced rule a target of the run, so forcing a stale stage that the
    requested targets do not need would build it anyway."""
    needed = needed_stages(stages, targets, aggregate)
    return {s.rule_name for s in stages if s.name in stale and s.name in needed}


def stages_to_record(stages: list[StageSpec], finished_rules: Iterable[str], root: str | Path = ".") -> list[str]:
    """Stages to ``dvc commit`` after a Snakemake run: those whose job finished in this run and whose outputs all exist.

    ``finished_rules`` comes from Snakemake's in-memory record of the run (not from marker files), so nothing an earlier,
    killed run left on disk can get a stage committed that this run did not complete."""
    root, finished = Path(root), set(finished_rules)
    return [s.name for s in stages if s.rule_name in finished and all((root / o).exists() for o in s.outs)]


def record_in_dvc_lock(names: list[str], root: str | Path = ".") -> None:
    """``dvc commit`` the given stages, so ``dvc.lock`` matches what is on disk and ``dvc status`` is clean."""
    if names:
        subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *names], cwd=root, check=True)

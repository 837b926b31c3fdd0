# Snakemake glue for the DVC-declared pipeline; the logic itself is plain Python in src/alertclip/dag.py.

from snakemake.settings.types import RerunTrigger

from alertclip import dag

STAGES = dag.load_stages(".")
HINTS = dag.load_hints(workflow.source_path("../resources.yaml"))
ALL_OUTPUTS = [o for s in STAGES for o in s.outs]

# `snakemake --report report.html` collects the figures of the `report` stage (results/report/figures/*.png).
REPORT_FIGURES = {("report", "results/report"): "figures/{name}.png"}


# DVC alone judges staleness, and nothing is written to pass its verdict on (no stamp files): the stale stages (dvc
# status plus everything downstream) that this run's targets need become Snakemake's --forcerun set, as if given as
# `snakemake -R <rules>`. Every other stage's inputs are ancient(), so fresh mtimes from `dvc checkout` or a touch never
# rerun it, and Snakemake's metadata rerun triggers (params, input set, code, software env: its own records of earlier
# runs, which DVC does not share) are off, overriding --rerun-triggers. So a dry run (-n, --summary, --list-changes)
# lists exactly what `dvc status` implies and writes nothing; a real run runs exactly that.
STALE = set()  # filled by _judged_by_dvc, before the DAG is built


def stage_input(stage):
    """Input function, evaluated while the DAG is built (STALE known by then): a stale stage's deps as they are, any
    other stage's deps ancient(). Not ancient for stale ones: Snakemake 9 decides a job downstream of one that must
    run only through the inputs linking them, and skips it, forced or not, when those are all ancient."""

    def deps(wildcards):
        return [d if stage.name in STALE else ancient(d) for d in stage.deps]

    return deps


def stage_command(stage):
    """Params function: the stage's command, under torchrun when the job has more than one GPU (dag.launch_command).

    ``resources.gpu`` is what the job holds, not what it asked for: Snakemake caps each job's request at the global
    ``--resources gpu=N`` (the default profile's 1), so ``--set-resources tune__stage1:gpu=2`` alone still runs one process;
    it takes ``--resources gpu=2`` as well. Never more processes than GPUs granted."""

    def cmd(wildcards, resources):  # Snakemake passes the job's resources to a params function that names them
        return dag.launch_command(stage, int(resources.gpu))

    return cmd


def stage_output(stage, path):
    out = directory(path) if path in stage.dir_outs else path
    pattern = REPORT_FIGURES.get((stage.name, path))
    if pattern:
        return report(out, patterns=[pattern], caption="../report/figure.rst", category="Alert-CLIP evaluation")
    return out


# When: Snakemake 9 (read and tested on 9.27.1) parses this file before it attaches the run's DAG settings --
# DAGApi.__post_init__ includes the Snakefile (WorkflowApi._workflow) and only then sets workflow.dag_settings, and the
# executor that tells a dry run apart is set later still, in Workflow.execute. So at parse time there is neither a
# forcerun set to extend nor a way to know whether this is a dry run. The verdict is added in Workflow._prepare_dag,
# which builds the DAG from DAGSettings (forcerun, rerun_triggers, targets) for every command that needs one: a run,
# -n, --summary, --list-changes, --report. -l and --lint build no DAG and so never ask DVC.
def _judged_by_dvc(prepare_dag):
    def prepare(*args, **kwargs):
        settings = workflow.dag_settings
        settings.rerun_triggers = frozenset({RerunTrigger.MTIME})
        # A job spawned by the main process (--target-jobs) is forced by Snakemake itself; DVC was asked already.
        if workflow.is_main_process and not settings.target_jobs:
            STALE.clear()
            STALE.update(dag.stale_stages("."))
            settings.forcerun = frozenset(settings.forcerun) | dag.rules_to_force(STAGES, STALE, settings.targets)
        return prepare_dag(*args, **kwargs)

    return prepare


workflow._prepare_dag = _judged_by_dvc(workflow._prepare_dag)


# After a run, `dvc commit` the stages whose jobs finished in THIS run, so dvc.lock matches what is on disk. Which jobs
# finished comes from Snakemake's in-memory record of this run (DAG.finished, part of its scheduler-plugin interface),
# not from marker files on disk: a killed run leaves nothing behind that a later run could commit blindly (a stage the
# killed run completed stays stale in DVC and reruns), and a stage is committed only if all its outputs exist.
# onsuccess and onerror run in real runs only, never in a dry run; --touch only touches outputs, so it records nothing.
def record_in_dvc_lock():
    if workflow.touch:
        return
    finished = {job.rule.name for job in workflow.dag.finished_jobs}
    dag.record_in_dvc_lock(dag.stages_to_record(STAGES, finished))


onsuccess:
    record_in_dvc_lock()


onerror:
    # Keep what finished: stages that succeeded before the failure are recorded too.
    record_in_dvc_lock()

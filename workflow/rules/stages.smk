# One rule per stage of dvc.yaml, as DVC resolves it (foreach/matrix variants included): its deps, outs and cmd.


for _stage in STAGES:
    _hints = dag.hints_for(_stage, HINTS)

    rule:
        name:
            _stage.rule_name
        input:
            stage_input(_stage),
        output:
            [stage_output(_stage, o) for o in _stage.outs],
        log:
            f"logs/snakemake/{_stage.rule_name}.log",
        params:
            # Passed as params, not interpolated into `shell:` directly: loop variables bind late. A function of the
            # job's resources, so `--set-resources <rule>:gpu=N` launches N torchrun processes too.
            cmd=stage_command(_stage),
        threads: workflow.cores if _hints.threads == "all" else int(_hints.threads)
        resources:
            mem_mb=_hints.mem_mb,
            gpu=_hints.gpu,
            runtime=_hints.runtime,
        conda:
            "../envs/alertclip.yaml"
        shell:
            "({params.cmd}) > {log} 2>&1"

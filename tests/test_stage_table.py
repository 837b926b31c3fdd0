"""The README's stage table and docs/stages.md list each stage's outputs as dvc.yaml declares them
(:mod:`alertclip.stage_table`, ``make deps``)."""

from __future__ import annotations

import pytest
import yaml

from alertclip.stage_table import DOCUMENTS, main, outputs_cell, placeholders, rewrite

DVC = {"stages": {
    "tune": {"foreach": "${runs}", "do": {"cmd": "alertclip tune --variant ${key}",
                                           "outs": ["data/models/${key}"],
                                           "metrics": ["results/tune/${key}/metrics.json"],
                                           "plots": [{"results/tune/${key}/curve.csv": {"x": "step", "y": "loss"}}]}},
    "features": {"matrix": {}, "do": {"outs": ["data/features/${item.backbone}/${item.dataset}"]}},
    "hardneg": {"cmd": "alertclip hardneg", "outs": ["data/curated/hardneg.parquet",
                                                      "data/curated/standard_negatives.parquet"]},
}}
README = """intro
| stage | what it does | main outputs |
| --- | --- | --- |
| `tune@<run>` | one run per row | `stale` |
| `features@<backbone>-<dataset>` | embeddings | `data/features/` |
| `hardneg` | negatives | `x` |
"""


def test_the_repository_documents_are_current(repo):
    assert main(["--root", str(repo), "--check"]) == 0, "run `make deps`"


def test_every_document_lists_every_stage(repo):
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))
    for name in DOCUMENTS:
        rewrite((repo / name).read_text(encoding="utf-8"), dvc_yaml, name)  # raises on a missing or unknown stage


def test_a_row_gets_the_declared_outputs_with_its_placeholders():
    out = rewrite(README, DVC)
    assert "| `tune@<run>` | one run per row | `data/models/<run>/`, `results/tune/<run>/{metrics.json,curve.csv}` |" in out
    assert "| `features@<backbone>-<dataset>` | embeddings | `data/features/<backbone>/<dataset>/` |" in out
    assert "| `hardneg` | negatives | `data/curated/{hardneg,standard_negatives}.parquet` |" in out
    assert rewrite(out, DVC) == out  # current once rewritten


def test_an_edited_output_in_dvc_yaml_changes_the_row():
    edited = {"stages": {**DVC["stages"], "hardneg": {"outs": ["data/curated/negatives.parquet"]}}}
    assert "| `hardneg` | negatives | `data/curated/negatives.parquet` |" in rewrite(README, edited)


def test_the_outputs_line_under_a_stage_heading_is_generated():
    docs = "## `tune@<run>`\n\nprose\n\nOutputs: stale.\n\n## `hardneg`\n\nOutputs: x.\n\n## `features@<b>-<d>`\nOutputs: y.\n"
    out = rewrite(docs, DVC, "docs/stages.md")
    assert "Outputs: `data/models/<run>/`, `results/tune/<run>/{metrics.json,curve.csv}`." in out
    assert "Outputs: `data/curated/{hardneg,standard_negatives}.parquet`." in out
    assert "prose" in out


def test_a_row_for_no_stage_and_a_stage_without_a_row_fail():
    with pytest.raises(ValueError, match="`stage2@<variant>` names no stage of dvc.yaml"):
        rewrite(README + "| `stage2@<variant>` | gone | `x` |\n", DVC)
    with pytest.raises(ValueError, match="no outputs listed for dvc.yaml stage.*report"):
        rewrite(README, {"stages": {**DVC["stages"], "report": {"outs": ["results/report.md"]}}})


def test_placeholders_and_grouping():
    assert placeholders("synthesize@vagta_synth", "data/synth/${key}") == "data/synth/vagta_synth"
    assert placeholders("checkpoint@<backbone>", "data/checkpoints/${key}.json") == "data/checkpoints/<backbone>.json"
    assert outputs_cell(["results/report.md", "results/report"]) == "`results/report.md`, `results/report/`"
    assert outputs_cell(["r/a.json", "r/b.csv"]) == "`r/{a.json,b.csv}`"


def test_check_fails_on_a_stale_document_and_names_the_command(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC), encoding="utf-8")
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    (tmp_path / "docs" / "stages.md").write_text(rewrite(README, DVC), encoding="utf-8")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "README.md: the stage outputs listed differ from dvc.yaml: run `make deps`" in err
    assert "docs/stages.md" not in err  # that one is current
    assert main(["--root", str(tmp_path)]) == 0 and main(["--root", str(tmp_path), "--check"]) == 0

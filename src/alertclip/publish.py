"""A backbone in open_clip's Hugging Face hub layout, with a model card carrying the report's numbers for it.

``data/hub/<backbone>/`` (dvc.yaml stage ``publish@<backbone>``, one per key of params ``eval.backbones``) holds

* ``open_clip_config.json``: ``{"model_cfg": <the architecture's open_clip model config>, "preprocess_cfg": {mean,
  std, interpolation, resize_mode}}`` (the image size is the model config's),
* ``open_clip_model.safetensors``: the CLIP towers' state_dict, the weights ``checkpoint@<backbone>`` recorded,
* ``README.md``: the model card, rendered by open_clip's own ``generate_readme`` (front matter: tags,
  ``library_name: open_clip``, pipeline tag, license).

The first two are written by open_clip's ``save_for_hf(..., safe_serialization=True)``, the function
``open_clip.push_to_hf_hub`` calls into a temporary directory before uploading that directory whole, with the
README from ``generate_readme`` beside them. So this directory is what ``push_to_hf_hub(model, tokenizer, model_cfg,
"<org>/alertclip-<backbone>", model_card=..., safe_serialization=True)`` uploads, and
``open_clip.create_model_and_transforms("local-dir:data/hub/<backbone>")`` (``hf-hub:<org>/alertclip-<backbone>``
once uploaded) loads it in a process that never imports alertclip: the model config travels in the JSON, so
alertclip's own configs (``alertclip-tiny``) need no registering there.

The tokenizer: open_clip's ``SimpleTokenizer`` ships inside open_clip, and ``get_tokenizer("local-dir:...")`` builds it
whenever the config's ``text_cfg`` names no ``hf_tokenizer_name``, so there is no tokenizer file to write
(:class:`BundledTokenizer`). ``push_to_hf_hub`` would swap it for ``HFTokenizer("openai/clip-vit-large-patch14")`` and
upload that tokenizer's files too (the same BPE); open_clip never reads them for this config, and offline they cannot
be fetched. An architecture whose config names an HF tokenizer gets that tokenizer's files, as open_clip loads them.

The numbers come from the report's own outputs, never recomputed: ``results/report/index.json`` (its tables, titles
and CSV files, in the report's order) and ``results/report/tables/<name>.csv`` (the cells of ``results/report.md``,
copied verbatim into the card): this backbone's row of every per-backbone table (Table 4, ``ablation``, is the
headline), the paired gaps it takes part in, and the training summary of the stage that made it.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .eval.checkpoints import backbone_dir, checkpoint_path, verified_checkpoint
from .factory import CONFIG_FILE, RECORD_FILE
from .io import replace_dir
from .params import BACKBONE_INIT, Params, run_settings
from .paths import BACKBONE_DIR, HUB_DIR, INTERPOLATED_DIR, MODELS_DIR, RESULTS

# alertclip.report.inputs.INDEX_JSON (tests check they agree): not imported, which would make the report's readers
# (and the evaluation modules under them) code deps of every publish@ stage
REPORT_INDEX = RESULTS / "report" / "index.json"
HEADLINE_TABLE = "ablation"  # the report's Table 4: the main metric of every evaluation, one row per backbone
TEMPORAL_FILE = "temporal.pt"  # alertclip.tune.checkpoints.TEMPORAL_FILE: the temporal module beside the towers
README = "README.md"
TAGS = ("clip", "open_clip", "alertclip", "video-anomaly-detection")
PIPELINE_TAG = "zero-shot-image-classification"  # open_clip's default for CLIP models
LICENSE = "mit"  # open_clip's default; the card's front matter, as generate_readme writes it
MINUS = " − "  # the report's paired comparisons: "<backbone> − <against>"


class UnknownArchitecture(ValueError):
    """The architecture has no open_clip model config (built in or alertclip's): the hub layout cannot describe it."""


class BundledTokenizer:
    """What ``save_for_hf`` calls on a tokenizer, for open_clip's own ``SimpleTokenizer``: its vocabulary ships inside
    open_clip (``bpe_simple_vocab_16e6.txt.gz``) and a config naming no ``hf_tokenizer_name`` loads it, so there are
    no files to save."""

    def save_pretrained(self, dest: str | os.PathLike) -> None:
        return None


def hub_dir(key: str) -> Path:
    """``data/hub/<backbone>``, written by ``publish@<backbone>``."""
    return HUB_DIR / key


def model_name(key: str) -> str:
    """The card's model name and the repository name an upload would use: ``alertclip-<backbone>``."""
    return f"alertclip-{key}"


def model_config(arch: str, key: str | None = None) -> dict:
    """open_clip's model config of ``arch`` (a copy), after registering alertclip's configs; an architecture open_clip
    does not know raises :class:`UnknownArchitecture` naming it (and the backbone key)."""
    import open_clip

    from .factory import register_configs

    ours = register_configs()
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        who = f"backbone {key!r} ({checkpoint_path(key).as_posix()})" if key is not None else "the model"
        raise UnknownArchitecture(f"{who}: architecture {arch!r} has no open_clip model config, neither built into "
                                  f"open_clip nor among alertclip's ({', '.join(ours)}); open_clip's hub layout needs "
                                  "one (open_clip_config.json's model_cfg) to rebuild the model")
    return cfg


def hub_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer ``save_for_hf`` is given: one that saves its files (an HF tokenizer), else :class:`BundledTokenizer`."""
    return tokenizer if callable(getattr(tokenizer, "save_pretrained", None)) else BundledTokenizer()


def write_hub_dir(model: Any, tokenizer: Any, model_cfg: dict, out_dir: str | os.PathLike, card: dict, name: str) -> Path:
    """Write ``out_dir`` in open_clip's hub layout (see the module docstring), whole or not at all (a staging
    directory renamed into place): ``save_for_hf`` for the config and the weights, ``generate_readme(card, name)``
    for ``README.md``. ``model``: an open_clip CLIP model (its ``.visual.preprocess_cfg`` is the preprocessing)."""
    from open_clip.push_to_hf_hub import generate_readme, save_for_hf

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{secrets.token_hex(4)}")
    try:
        save_for_hf(model, tokenizer=hub_tokenizer(tokenizer), model_config=copy.deepcopy(model_cfg),
                    save_directory=staging, safe_serialization=True)
        # generate_readme pops "tags" and "pipeline_tag" off the dict it is given: hand it a copy
        (staging / README).write_text(generate_readme(copy.deepcopy(card), name), encoding="utf-8")
        replace_dir(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


# ---------------------------------------------------------------------------------------------------------------------
# The report's numbers
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    """This backbone's rows of one report table, cells as the report wrote them (its ``source`` column left out)."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def markdown(self, key: str) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        out = [f"### {self.title}", ""]
        if len(self.rows) == 1 and self.columns[0] == "Backbone":  # one backbone's row: a metric per line
            out += [f"| Metric | `{key}` |", "|---|---|"]
            out += [f"| {esc(c)} | {esc(v)} |" for c, v in zip(self.columns[1:], self.rows[0][1:])]
        else:
            out += ["| " + " | ".join(esc(c) for c in self.columns) + " |", "|" + "---|" * len(self.columns)]
            out += ["| " + " | ".join(esc(v) for v in row) + " |" for row in self.rows]
        return "\n".join(out) + "\n"


def _read_table(root: Path, rel: str) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    path = root / rel
    if not path.is_file():
        raise FileNotFoundError(f"{rel}: missing (listed in {REPORT_INDEX.as_posix()}); rerun dvc.yaml stage `report`")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{rel}: empty; rerun dvc.yaml stage `report`")
    header = rows[0]
    keep = [i for i, c in enumerate(header) if c != "source"]  # the report's provenance column: paths of this repo
    return tuple(header[i] for i in keep), [tuple(r[i] for i in keep) for r in rows[1:]]


def _involves(comparison: str, key: str) -> bool:
    return key in comparison.split(MINUS)


def report_sections(key: str, training_row: str | None = None, root: str | os.PathLike = ".") -> list[Section]:
    """This backbone's numbers in the report under ``root``: the headline table (``ablation``) first, then in the
    report's order every other table with a ``Backbone`` column (its row), the paired gaps naming it, and the
    ``training`` row ``training_row`` (``backbone``, ``tune@<run>``; None: none).

    Raises ``FileNotFoundError`` when the report or a table it lists is missing and ``ValueError`` when the headline
    table has no row for ``key`` (a report older than ``eval.backbones.<key>``), each naming the file.
    """
    root = Path(root)
    index_path = root / REPORT_INDEX
    if not index_path.is_file():
        raise FileNotFoundError(f"{REPORT_INDEX.as_posix()}: missing; run dvc.yaml stage `report` first (publish@{key} "
                                "carries the report's numbers)")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    sections = []
    for t in index.get("tables", []):
        columns, rows = _read_table(root, t["csv"])
        first = columns[0] if columns else ""
        if first == "Backbone":
            mine = [r for r in rows if r and r[0] == key]
        elif first == "Comparison":
            mine = [r for r in rows if r and _involves(r[0], key)]
        elif first == "Model" and training_row is not None:
            mine = [r for r in rows if r and r[0] == training_row]
        else:
            mine = []
        if t["name"] == HEADLINE_TABLE and len(mine) != 1:
            raise ValueError(f"{t['csv']}: {len(mine)} rows for backbone {key!r}, expected one; the report predates "
                             f"eval.backbones.{key}: rerun dvc.yaml stage `report`")
        if mine:
            sections.append(Section(t["name"], t["title"], columns, tuple(mine)))
    if not any(s.name == HEADLINE_TABLE for s in sections):
        raise ValueError(f"{REPORT_INDEX.as_posix()}: lists no `{HEADLINE_TABLE}` table; rerun dvc.yaml stage `report`")
    sections.sort(key=lambda s: s.name != HEADLINE_TABLE)  # stable: the rest keep the report's order
    return sections


def report_datasets(root: str | os.PathLike = ".") -> list[str]:
    """The names of the datasets the report shows (at least one evaluation ran on them), from its index."""
    index = json.loads((Path(root) / REPORT_INDEX).read_text(encoding="utf-8"))
    return [d["name"] for d in index.get("datasets", []) if d.get("evaluations")]


# ---------------------------------------------------------------------------------------------------------------------
# Where the weights came from
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Provenance:
    stage: str | None  # the dvc.yaml stage that wrote the weights; None: none of this pipeline's
    training_row: str | None  # its row in the report's training table
    tuned_from: str
    params: dict[str, dict]  # "params section (as applied)" -> its values
    untuned: bool = False


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _known_as(p: Params, model_dir: str | os.PathLike) -> str:
    """`` (eval.backbones key `stage1`)`` when a backbone key names ``model_dir``, else nothing."""
    keys = [k for k, d in p.eval.backbones.items() if Path(d) == Path(model_dir)]
    return f" (backbone `{keys[0]}`)" if keys else ""


def _base_weights(arch: str, source: dict) -> str:
    kind = source.get("kind")
    if kind == "random_init":
        return f"the random initialisation of `{arch}` (seed {source.get('seed')}): untrained"
    if kind == "open_clip":
        return f"open_clip's published weights `{arch}` / `{source.get('tag')}`"
    if kind == "pretrained_synthetic":
        return f"`{arch}` pre-trained from random init on the VAGTA-synth captions ({source.get('steps')} steps)"
    return f"`{arch}` weights of unrecorded origin"


def provenance(p: Params, key: str, arch: str) -> Provenance:
    """Which stage wrote backbone ``key``'s weights, what from, and the params that made them (as the stage applied
    them: a run's settings, ``tune`` with the run's row applied)."""
    d = Path(backbone_dir(p, key))
    if d == BACKBONE_DIR:
        source = _read_json(d / RECORD_FILE).get("source") or {}
        return Provenance("backbone", "backbone", "nothing: the untuned starting point of the Alert-CLIP curriculum, "
                          f"{_base_weights(arch, source)}", {"backbone": p.backbone.model_dump()}, untuned=True)
    if d.parent == MODELS_DIR and d.name in p.runs:  # as alertclip.tune.run: tune@<run> -> data/models/<run>
        name, run = d.name, p.runs[d.name]
        start = BACKBONE_DIR if run.init == BACKBONE_INIT else MODELS_DIR / run.init
        what = "the base backbone" if run.init == BACKBONE_INIT else f"the weights of run `{run.init}`"
        text = (f"{what} `{start.as_posix()}`{_known_as(p, start)} by the Alert-CLIP tuning run `{name}` (losses: "
                f"{', '.join(run.losses)}; {run.negatives} negatives)")
        cfg = run_settings(p.tune, run, p.backbone.arch)
        return Provenance(f"tune@{name}", f"tune@{name}", text, {f"tune with runs.{name} applied": cfg.model_dump(),
                                                                 f"runs.{name}": run.model_dump()})
    if d.parent == INTERPOLATED_DIR and d.name in p.interpolate:
        n, c = d.name, p.interpolate[d.name]
        return Provenance(f"interpolate@{n}", None, f"WiSE-FT, (1 - alpha) * base + alpha * tuned in weight space with "
                          f"alpha = {c.alpha}: base `{c.base}`{_known_as(p, c.base)}, tuned `{c.tuned}`"
                          f"{_known_as(p, c.tuned)}", {f"interpolate.{n}": c.model_dump()})
    return Provenance(None, None, f"weights in `{d.as_posix()}`, which no stage of this pipeline writes", {})


# ---------------------------------------------------------------------------------------------------------------------
# The model card and the stage
# ---------------------------------------------------------------------------------------------------------------------

def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def model_card(p: Params, key: str, arch: str, model_cfg: dict, sections: list[Section], prov: Provenance,
               checkpoint_sha256: str, datasets: list[str]) -> dict:
    """The card as open_clip's ``generate_readme`` (and ``push_to_hf_hub(model_card=...)``) takes it: ``tags``,
    ``pipeline_tag``, ``license``, ``description``, ``details`` (a dict; dict values become sub-lists), ``usage`` and
    ``comparison`` (markdown)."""
    d = backbone_dir(p, key).as_posix()
    name = model_name(key)
    headline = next(s for s in sections if s.name == HEADLINE_TABLE)
    on = ", ".join(datasets) or "the report's datasets"
    role = ("the untuned starting point of the Alert-CLIP curriculum" if prov.untuned
            else "a backbone tuned for video anomaly detection by the Alert-CLIP pipeline")
    ref = " It is the report's reference: the retention changes are measured against it." if key == p.eval.reference else ""
    description = (f"Alert-CLIP backbone `{key}`, {role}: the CLIP image and text towers (open_clip architecture "
                   f"`{arch}`).{ref} The numbers below are the experiment report's for this backbone (`results/report.md` "
                   f"of the run that made these weights), on {on}.")
    vision = model_cfg.get("vision_cfg", {})
    details: dict[str, Any] = {
        "Architecture": f"`{arch}` (embed_dim {model_cfg.get('embed_dim')}, image size {vision.get('image_size')}; the "
                        "open_clip model config is open_clip_config.json's model_cfg)",
        "Backbone": f"`{key}` of params eval.backbones (`{d}`)",
        "Made by": f"dvc.yaml stage `{prov.stage}`" if prov.stage else "no stage of this pipeline",
        "Tuned from": prov.tuned_from,
        "Data source": f"params data.source `{p.data.source}`",
        "Weights": f"open_clip_model.safetensors: the CLIP towers of `{d}/open_clip_model.pt` (sha256 "
                   f"{checkpoint_sha256[:16]}, recorded by checkpoint@{key})"
                   + ("; the Alert-CLIP temporal module beside them is not part of an open_clip model and is not "
                      "published" if (Path(d) / TEMPORAL_FILE).is_file() else ""),
        f"Headline (the report's `{HEADLINE_TABLE}` table)": dict(zip(headline.columns[1:], headline.rows[0][1:])),
    }
    for section, values in prov.params.items():
        details[f"Params: {section}"] = {k: _value(v) for k, v in values.items()}
    usage = ("```python\nimport open_clip\n\n"
             f"model, _, preprocess = open_clip.create_model_and_transforms(\"hf-hub:<org>/{name}\")  "
             f"# or \"local-dir:data/hub/{key}\"\n"
             f"tokenizer = open_clip.get_tokenizer(\"hf-hub:<org>/{name}\")\n```")  # generate_readme adds the newline
    comparison = ("Cells exactly as the report shows them: AUC, AP, mAP, R@k and shares in %, MSS with 4 decimals, "
                  "`mean ± std` over seeds, `value [low, high]` a 95% bootstrap CI over the test videos, Δ in "
                  "percentage points; a paired gap counts only when its CI excludes 0.\n\n"
                  + "\n".join(s.markdown(key) for s in sections).rstrip("\n"))
    return {"tags": list(TAGS), "pipeline_tag": PIPELINE_TAG, "license": LICENSE, "description": description,
            "details": details, "usage": usage, "comparison": comparison}


def _check_saved_config(model_dir: Path, cfg: dict, arch: str, key: str) -> None:
    """The model directory's ``config.json`` (written with the weights) must be the config published: an edited
    model config would rebuild a different model around these weights."""
    saved = _read_json(model_dir / CONFIG_FILE)
    if saved and saved != cfg:
        diff = sorted(k for k in set(saved) | set(cfg) if saved.get(k) != cfg.get(k))
        raise ValueError(f"backbone {key!r}: {model_dir / CONFIG_FILE} differs from open_clip's config of {arch!r} in "
                         f"{diff}: the model config changed after the weights were written; rerun the stage that wrote "
                         f"{model_dir}")


def _load(arch: str, ckpt: Path, key: str):
    """The open_clip model of ``ckpt`` and its tokenizer, checked to hold exactly the checkpoint's tensors."""
    import torch

    from . import factory

    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    if saved.get("arch") not in (None, arch):
        raise ValueError(f"backbone {key!r}: {ckpt} was saved from architecture {saved['arch']!r}, but "
                         f"{checkpoint_path(key).as_posix()} records {arch!r}; rerun checkpoint@{key}")
    model, _, _, tokenizer = factory.create(arch, pretrained=ckpt)
    model.eval()
    state, want = model.state_dict(), saved["state_dict"]
    bad = sorted(set(state) ^ set(want)) or [k for k in want if not torch.equal(state[k], want[k])]
    if bad:
        raise ValueError(f"backbone {key!r}: open_clip's model of {arch!r} does not hold {ckpt}'s tensors exactly "
                         f"({len(bad)} differ, e.g. {bad[0]!r}); publishing it would change the weights")
    return model, tokenizer


@dataclass
class Publication:
    """Everything the hub directory of one backbone is written from (and what ``push_to_hf_hub`` would take)."""

    key: str
    name: str  # model_name(key): the card's title and the repository name of an upload
    arch: str
    model: Any  # the open_clip CLIP model, weights exactly the checkpoint's
    tokenizer: Any
    model_cfg: dict
    card: dict  # generate_readme's / push_to_hf_hub's model_card


def prepare(p: Params, key: str) -> Publication:
    """Read and check everything ``publish@<key>`` writes from: the checkpoint record, the weights it names (unchanged
    since, loaded exactly), the architecture's open_clip config, the report's numbers. Paths are relative to the
    working directory, the repository root."""
    record_path = checkpoint_path(key)
    if not record_path.is_file():
        raise FileNotFoundError(f"{record_path.as_posix()}: missing; run dvc.yaml stage `checkpoint@{key}`")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    arch = record["arch"]
    cfg = model_config(arch, key)  # an unknown architecture fails first, before anything is loaded
    prov = provenance(p, key, arch)
    sections = report_sections(key, prov.training_row)
    ckpt = verified_checkpoint(p, key)  # the weights the record names, unchanged since checkpoint@<key>
    _check_saved_config(backbone_dir(p, key), cfg, arch, key)
    model, tokenizer = _load(arch, ckpt, key)
    card = model_card(p, key, arch, cfg, sections, prov, record["checkpoint_sha256"], report_datasets())
    return Publication(key, model_name(key), arch, model, tokenizer, cfg, card)


def publish_backbone(p: Params, key: str) -> Path:
    """``publish@<key>``: write ``data/hub/<key>/`` (see :func:`prepare`, :func:`write_hub_dir`); returns it."""
    pub = prepare(p, key)
    return write_hub_dir(pub.model, pub.tokenizer, pub.model_cfg, hub_dir(key), pub.card, pub.name)

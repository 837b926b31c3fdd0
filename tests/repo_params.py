"""Tests take their settings from the repository's params.yaml, never from values written in the code.

``repo_params("curate", phash_distance=30)`` is ``params.yaml``'s ``curate`` group with one key overridden, validated
(a typo'd key fails); ``repo_params()`` is the whole file. The ``params_of`` fixture (conftest.py) is this function.
``repo_run("full", epochs=1)`` is one tuning run's settings (``tune`` with ``runs.full`` applied, then the
overrides); the ``run_of`` fixture is that function.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from alertclip.params import Params, RunSettings, load_params, run_settings

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"


@lru_cache(maxsize=1)
def _loaded() -> Params:
    return load_params(PARAMS_YAML)


def repo_params(key: str = "", **overrides) -> BaseModel:
    """The model at dotted ``key`` of params.yaml (``""``: all of it), with ``overrides`` (keys of that model) applied
    and the result validated as that model's type."""
    node = _loaded()
    for part in filter(None, key.split(".")):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    if not isinstance(node, BaseModel):
        raise TypeError(f"params.yaml: {key!r} is not a settings group (got {type(node).__name__})")
    if not overrides:
        return node
    return type(node).model_validate({**node.model_dump(), **overrides})


def repo_run(name: str = "stage1", **overrides) -> RunSettings:
    """The settings tune@<name> trains with (params.yaml's ``tune`` with ``runs.<name>`` applied), with ``overrides``
    (keys of :class:`~alertclip.params.RunSettings`) applied and validated."""
    p = _loaded()
    cfg = run_settings(p.tune, p.runs[name], p.backbone.arch)
    return RunSettings.model_validate({**cfg.model_dump(), **overrides}) if overrides else cfg

"""Profiles: the real settings of the paper as overlays of params.yaml (``profiles/<name>.yaml``).

A profile changes many keys at once (the source, the world's absence, the backbone, the evaluation datasets), and
DVC reads one params.yaml, so switching is a rewrite of that file: ``alertclip profile ucf_vagta``. Mappings merge
key by key; a dotted key listed in the overlay's ``replace:`` is replaced whole (``eval.datasets``: the synthetic
dataset must go, not be merged into). The result is validated before params.yaml is touched, and written atomically
through ruamel's round trip so its comments stay.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import yaml
from ruamel.yaml import YAML

from .params import DEFAULT_PARAMS, ParamsError, parse_params

PROFILES_DIR = Path("profiles")


class ProfileError(ValueError):
    """A profile file is missing, malformed, or would make params.yaml invalid."""


def profile_path(name: str, profiles_dir: str | Path = PROFILES_DIR) -> Path:
    path = Path(profiles_dir) / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in Path(profiles_dir).glob("*.yaml"))
        raise ProfileError(f"{path}: no such profile (known: {', '.join(known) or 'none'})")
    return path


def _round_trip() -> YAML:
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # never fold a long line (URLs)
    rt.indent(mapping=2, sequence=4, offset=2)  # params.yaml's own style
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return rt


def read_overlay(path: str | Path) -> tuple[dict, list[str]]:
    """The overlay's settings and its ``replace`` list (dotted keys), as ruamel nodes: values keep the profile's
    flow style and comments when they land in params.yaml."""
    path = Path(path)
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))  # PyYAML's error messages name line and column
        raw = _round_trip().load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ProfileError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping of params groups at top level")
    replace = raw.pop("replace", [])
    if not isinstance(replace, list) or not all(isinstance(k, str) for k in replace):
        raise ProfileError(f"{path}: replace: expected a list of dotted keys")
    replace = [str(k) for k in replace]
    for key in replace:
        if _lookup(raw, key.split(".")) is _MISSING:
            raise ProfileError(f"{path}: replace: {key!r} is not set by this profile")
    return raw, replace


_MISSING = object()


def _lookup(tree: dict, parts: list[str]):
    for part in parts:
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def merge(base: dict, overlay: dict, replace: list[str], prefix: str = "") -> list[str]:
    """Merge ``overlay`` into ``base`` in place; returns the dotted keys whose value changed."""
    changed = []
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict) and dotted not in replace:
            changed += merge(base[key], value, replace, dotted + ".")
        elif base.get(key, _MISSING) != value:
            base[key] = value
            changed.append(dotted)
    return changed


def apply_profile(name: str, params_path: str | Path = DEFAULT_PARAMS, profiles_dir: str | Path = PROFILES_DIR,
                  write: bool = True) -> list[str]:
    """Rewrite ``params_path`` with profile ``name`` merged in; returns the changed dotted keys. Nothing is written
    when the merged settings do not validate (the error names the profile and the key)."""
    path = profile_path(name, profiles_dir)
    overlay, replace = read_overlay(path)
    params_path = Path(params_path)
    rt = _round_trip()
    try:
        doc = rt.load(params_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{params_path}: not found (run from the repository root)") from None
    changed = merge(doc, overlay, replace)
    buf = io.StringIO()
    rt.dump(doc, buf)
    text = buf.getvalue()
    try:
        parse_params(yaml.safe_load(text), origin=f"{params_path} with {path}")
    except ParamsError as err:
        raise ProfileError(str(err)) from None
    if write and changed:
        tmp = params_path.with_name(params_path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, params_path)
    return changed

"""Artifacts leave the machine through DVC: push the smoke world's outputs to a local-directory remote, clone the
repository afresh, ``dvc pull``, and both engines agree there is nothing to do.

A local directory is a real DVC remote (the same code path as a mounted shared filesystem; s3/ssh differ only in
transport). The round trip is what a second machine does: its clone has code, params and ``dvc.lock`` from git and
every output (metrics and plots too: none is ``cache: false``, results/ is not in git) from the remote.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import copy_pipeline
from test_dag import assert_clean, recorded_outs, sh

GIT = ("git", "-c", "user.email=t@t", "-c", "user.name=t")


@pytest.fixture(scope="module")
def pushed(smoke_pipeline, tmp_path_factory):
    """A copy of the session's smoke run with a default remote (committed, as the README says) and everything pushed."""
    base = tmp_path_factory.mktemp("remote")
    src = copy_pipeline(smoke_pipeline, base / "src")
    remote = base / "store"
    sh(src, "dvc", "remote", "add", "-d", "store", str(remote))
    sh(src, *GIT, "add", "-A")
    sh(src, *GIT, "commit", "-qm", "run of the smoke world, its dvc.lock and the remote")
    sh(src, "dvc", "push", "--quiet")
    return src, remote, base


@pytest.mark.slow
def test_push_then_fresh_clone_pull_is_clean_for_both_engines(pushed):
    """Cost: ~20 s with the push (the module's fixture, on a copy of the session's smoke run)."""
    src, remote, base = pushed
    assert any(p.is_file() for p in (remote / "files" / "md5").rglob("*"))
    fresh = base / "fresh"
    subprocess.run(["git", "clone", "-q", str(src), str(fresh)], check=True)
    assert not (fresh / "data" / "models").exists() and not (fresh / "results" / "report.md").exists()
    sh(fresh, "dvc", "pull", "--quiet")
    assert recorded_outs(fresh) == recorded_outs(src)
    for path in recorded_outs(fresh):  # every recorded output came back, metrics and plots included
        assert (fresh / path).exists(), path
    assert (fresh / "results" / "report.md").read_bytes() == (src / "results" / "report.md").read_bytes()
    assert_clean(fresh)  # dvc status clean and snakemake -n has nothing to do, on fresh mtimes


@pytest.mark.slow
def test_pull_from_a_missing_remote_names_it(pushed):
    src, _, base = pushed
    proc = sh(src, "dvc", "pull", "-r", "nosuch", check=False)
    assert proc.returncode != 0
    assert "nosuch" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_pull_with_the_remote_directory_gone_fails_and_keeps_the_workspace(pushed, tmp_path):
    src, remote, base = pushed
    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(src), str(fresh)], check=True)
    moved = base / "store.away"
    shutil.move(remote, moved)
    try:
        proc = sh(fresh, "dvc", "pull", check=False)
    finally:
        shutil.move(moved, remote)
    # DVC names the missing objects, not the remote, when a configured remote's directory is gone (an unmounted share)
    assert proc.returncode != 0
    assert "do not exist neither locally nor on remote" in proc.stderr + proc.stdout, proc.stderr[-2000:]
    sh(fresh, "dvc", "pull", "--quiet")  # the remote is back: the same clone pulls, nothing to start over
    assert_clean(fresh)

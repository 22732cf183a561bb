# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-test sanity, ansible-lint and the galaxy build, as gates of the test suite."""
from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import yaml

from .conftest import ROOT, env_with_venv, tool


def _run(argv, cwd, timeout=1800, env=None):
    return subprocess.run(argv, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or env_with_venv())


def test_ansible_test_sanity(collection_tree: Path):
    proc = _run([tool("ansible-test"), "sanity", "--python", "3.13", "--requirements", "--color", "no"],
                cwd=collection_tree, timeout=2400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    assert "Running sanity test" in out


def _claimed_minimum() -> str:
    """X.Y of meta/runtime.yml's requires_ansible '>=X.Y.Z'."""
    claim = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))["requires_ansible"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)(?:\.\d+)?", claim.strip())
    assert match, f"meta/runtime.yml requires_ansible {claim!r} is not of the form '>=X.Y.Z'"
    return match.group(1)


def test_oldest_claimed_ansible_core_is_pinned_for_sanity():
    minimum = _claimed_minimum()
    req = ROOT / "tests" / f"requirements-sanity-{minimum}.txt"
    assert req.is_file(), f"meta/runtime.yml claims ansible-core >= {minimum}; {req.name} must pin it"
    pins = [line.split("#")[0].strip() for line in req.read_text(encoding="utf-8").splitlines()]
    core = [p for p in pins if p.startswith("ansible-core")]
    assert len(core) == 1 and re.fullmatch(rf"ansible-core=={re.escape(minimum)}\.\d+", core[0]), core


def test_ansible_test_sanity_oldest_claimed_core():
    """tests/bin/sanity-oldest: ansible-test sanity of the oldest ansible-core meta/runtime.yml claims."""
    proc = _run([str(ROOT / "tests" / "bin" / "sanity-oldest")], cwd=ROOT, timeout=2400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    assert f"[sanity-oldest] ansible-core {_claimed_minimum()}." in out, out[-4000:]
    assert "Running sanity test \"validate-modules\"" in out and "Running sanity test \"pylint\"" in out


def test_sanity_ignores_are_explained():
    for ignore in sorted((ROOT / "tests" / "sanity").glob("ignore-*.txt")):
        for n, line in enumerate(ignore.read_text().splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                assert "#" in line, f"{ignore.name}:{n} has no comment saying why: {line}"


def test_ansible_lint_production():
    targets = [p for p in ("roles", "playbooks") if any((ROOT / p).rglob("*.yml"))]
    assert targets, "no roles or playbooks to lint"
    proc = _run([tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor", *targets], cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-12000:]


def test_galaxy_build_install_and_doc(tmp_path: Path, collection_tree: Path):
    proc = _run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(collection_tree)],
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarballs = list(tmp_path.glob("virtiofs-libvirt-*.tar.gz"))
    assert [t.name for t in tarballs] == ["virtiofs-libvirt-0.1.0.tar.gz"]
    with tarfile.open(tarballs[0]) as tf:
        names = set(tf.getnames())
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    assert not any(n.startswith((".ci", "collections")) or "__pycache__" in n or n.endswith(".whl") for n in names)
    inst = tmp_path / "installed"
    env = env_with_venv()
    env["ANSIBLE_COLLECTIONS_PATH"] = str(inst)  # only the installed tarball, not the dev checkout
    proc = _run([tool("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p", str(inst),
                 str(tarballs[0])], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (inst / "ansible_collections/virtiofs/libvirt/MANIFEST.json").is_file(), proc.stdout
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert modules, "no modules"
    for mod in modules:
        proc = subprocess.run([tool("ansible-doc"), "--json", f"virtiofs.libvirt.{mod}"], check=False, capture_output=True,
                              text=True, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)[f"virtiofs.libvirt.{mod}"]
        assert doc["doc"]["short_description"], mod
        assert doc["examples"].strip(), mod
        assert "attributes" in doc["doc"], f"{mod} has no attributes block"
    filters = sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.py") if p.stem != "__init__")
    assert filters, "no filters"
    for name in filters:
        proc = subprocess.run([tool("ansible-doc"), "--json", "-t", "filter", f"virtiofs.libvirt.{name}"], check=False,
                              capture_output=True, text=True, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)[f"virtiofs.libvirt.{name}"]
        assert doc["doc"]["short_description"] and doc["examples"].strip() and doc["return"], name

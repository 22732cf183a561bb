# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import (
    UntrustedPathError,
    check,
    problem,
    walk,
)

NOBODY = 65534
TRUSTED = (0, os.geteuid())
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def tree(tmp_path):
    """tmp_path/opt/bin/virtiofsd (0755), directories 0755, all owned by the test's user."""
    os.chmod(tmp_path, 0o755)
    bindir = tmp_path / "opt" / "bin"
    bindir.mkdir(parents=True)
    os.chmod(tmp_path / "opt", 0o755)
    os.chmod(bindir, 0o755)
    binary = bindir / "virtiofsd"
    binary.write_text("#!/bin/sh\n")
    os.chmod(binary, 0o755)
    return tmp_path


def test_safe_tree_passes(tree):
    path = str(tree / "opt" / "bin" / "virtiofsd")
    assert problem(path, trusted_uids=TRUSTED) is None
    check(path, trusted_uids=TRUSTED)
    # a file still to be written: its directory and the parents are checked
    assert problem(str(tree / "opt" / "bin" / "new.sh"), trusted_uids=TRUSTED) is None
    assert problem(str(tree / "missing" / "deeper"), trusted_uids=TRUSTED) is None


def test_walk_yields_root_and_every_component(tree):
    path = str(tree / "opt" / "bin" / "virtiofsd")
    names = [c for c, _st in walk(path)]
    assert names[0] == "/"
    assert names[-3:] == [str(tree / "opt"), str(tree / "opt" / "bin"), path]
    assert names == ["/"] + list(_prefixes(path))


def _prefixes(path):
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


@pytest.mark.parametrize("mode,who", [(0o775, "group"), (0o757, "others"), (0o777, "group and others")])
def test_writable_file_is_refused(tree, mode, who):
    binary = tree / "opt" / "bin" / "virtiofsd"
    os.chmod(binary, mode)
    err = problem(str(binary), "binary", trusted_uids=TRUSTED)
    assert isinstance(err, UntrustedPathError)
    assert err.weak == str(binary)
    assert err.reasons == [f"writable by {who}"]
    assert err.fix == f"chmod go-w {binary}"
    msg = str(err)
    assert msg.startswith(f"binary {binary} can be changed by users other than root: {binary} is writable by {who}")
    assert f"mode {mode:04o}" in msg
    assert msg.endswith(f"Fix: chmod go-w {binary}")
    with pytest.raises(UntrustedPathError):
        check(str(binary), "binary", trusted_uids=TRUSTED)


def test_writable_parent_is_refused_and_named(tree):
    os.chmod(tree / "opt", 0o777)
    path = str(tree / "opt" / "bin" / "virtiofsd")
    err = problem(path, "wrapper path", trusted_uids=TRUSTED)
    assert err is not None
    assert err.weak == str(tree / "opt")
    assert f"because of {tree / 'opt'}" in str(err)
    assert err.fix == f"chmod go-w {tree / 'opt'}"
    # the same for a file that is not there yet
    assert problem(str(tree / "opt" / "bin" / "new.sh"), trusted_uids=TRUSTED).weak == str(tree / "opt")


def test_sticky_root_owned_directory_is_accepted(tree):
    os.chmod(tree / "opt", 0o1777)
    assert problem(str(tree / "opt" / "bin" / "virtiofsd"), trusted_uids=TRUSTED) is None


def test_sticky_directory_does_not_excuse_a_writable_file(tree):
    os.chmod(tree / "opt" / "bin", 0o1777)
    binary = tree / "opt" / "bin" / "virtiofsd"
    os.chmod(binary, 0o1777)  # the sticky bit means nothing for a file
    assert problem(str(binary), trusted_uids=TRUSTED).weak == str(binary)


@needs_root
def test_parent_owned_by_another_user_is_refused(tree):
    os.chown(tree / "opt", NOBODY, NOBODY)
    err = problem(str(tree / "opt" / "bin" / "virtiofsd"))
    assert err is not None
    assert err.weak == str(tree / "opt")
    assert err.uid == NOBODY
    assert err.reasons == [f"owned by uid {NOBODY}, not root"]
    assert err.fix == f"chown root:root {tree / 'opt'}"
    assert f"(uid {NOBODY}, mode 0755)" in str(err)


@needs_root
def test_sticky_directory_owned_by_another_user_is_refused(tree):
    os.chown(tree / "opt", NOBODY, NOBODY)
    os.chmod(tree / "opt", 0o1777)
    err = problem(str(tree / "opt" / "bin" / "virtiofsd"))
    assert err.weak == str(tree / "opt")
    assert err.reasons == [f"owned by uid {NOBODY}, not root", "writable by group and others"]
    assert err.fix == f"chown root:root {tree / 'opt'} && chmod go-w {tree / 'opt'}"


@needs_root
def test_file_owned_by_another_user_is_refused(tree):
    binary = tree / "opt" / "bin" / "virtiofsd"
    os.chown(binary, NOBODY, 0)
    assert problem(str(binary)).weak == str(binary)


def test_symlink_target_is_checked(tree):
    weak = tree / "weak"
    weak.mkdir()
    os.chmod(weak, 0o777)
    real = weak / "virtiofsd"
    real.write_text("#!/bin/sh\n")
    os.chmod(real, 0o755)
    link = tree / "opt" / "bin" / "link"
    link.symlink_to(real)
    err = problem(str(link), trusted_uids=TRUSTED)
    assert err is not None and err.weak == str(weak)


def test_directory_of_an_intermediate_link_is_checked(tree):
    # link1 (safe dir) -> weak/link2 -> opt/bin/virtiofsd (safe): weak holds a link and is refused
    weak = tree / "weak"
    weak.mkdir()
    os.chmod(weak, 0o777)
    (weak / "link2").symlink_to(tree / "opt" / "bin" / "virtiofsd")
    link1 = tree / "opt" / "link1"
    link1.symlink_to(weak / "link2")
    assert os.path.realpath(link1) == str(tree / "opt" / "bin" / "virtiofsd")
    err = problem(str(link1), trusted_uids=TRUSTED)
    assert err is not None and err.weak == str(weak)


def test_relative_link_and_dotdot(tree):
    (tree / "opt" / "rel").symlink_to("bin/../bin/virtiofsd")
    names = [c for c, _st in walk(str(tree / "opt" / "rel"))]
    assert names[-1] == str(tree / "opt" / "bin" / "virtiofsd")
    assert problem(str(tree / "opt" / "rel"), trusted_uids=TRUSTED) is None


def test_symlink_loop_raises(tree):
    (tree / "a").symlink_to(tree / "b")
    (tree / "b").symlink_to(tree / "a")
    with pytest.raises(OSError, match="too many levels"):
        problem(str(tree / "a"), trusted_uids=TRUSTED)


def test_relative_path_is_refused():
    with pytest.raises(ValueError, match="absolute"):
        problem("opt/virtiofsd", "binary")

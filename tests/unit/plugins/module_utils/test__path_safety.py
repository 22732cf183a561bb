# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os
import shutil
import subprocess
import sys

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


# ------------------------------------------------------------------------------ share sources

from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import (  # noqa: E402
    links,
    root_source_error,
    source_findings,
)

WHAT = "share 'data': source"


@pytest.mark.parametrize("path", ["/", "//", "///", "/./", "/."])
def test_the_host_root_is_refused_as_written(path):
    msg = root_source_error(path, WHAT)
    assert msg == (
        f"share 'data': source {path!r} is the root of the host file system: the guest would get the whole host "
        "file system, read and written by virtiofsd as root; share a dedicated directory instead (for example "
        "/srv/shares/NAME)"
    )
    assert source_findings(path, WHAT) == (msg, [])


@pytest.mark.parametrize("path", ["/srv", "/srv/x/", "srv", "", None])
def test_other_paths_are_not_the_root(path):
    assert root_source_error(path, WHAT) is None


@pytest.fixture
def share_tree(tmp_path):
    """tmp_path/srv/data (directories 0755, root's when the tests run as root)."""
    os.chmod(tmp_path, 0o755)
    data = tmp_path / "srv" / "data"
    data.mkdir(parents=True)
    os.chmod(tmp_path / "srv", 0o755)
    return tmp_path


def test_a_safe_source_has_no_findings(share_tree):
    if os.geteuid() != 0:
        pytest.skip("the tree must be root's")
    assert source_findings(str(share_tree / "srv" / "data"), WHAT) == (None, [])
    assert source_findings(str(share_tree / "srv" / "new" / "deeper"), WHAT) == (None, [])  # to be created


def test_a_link_to_the_root_is_refused(share_tree):
    link = share_tree / "srv" / "all"
    link.symlink_to("/")
    refusal, warnings = source_findings(str(link), WHAT)
    assert refusal == (
        f"share 'data': source {str(link)!r} is the root of the host file system (it resolves to '/' through "
        "symbolic links): the guest would get the whole host file system, read and written by virtiofsd as "
        "root; share a dedicated directory instead (for example /srv/shares/NAME)"
    )
    assert warnings == []


@needs_root
def test_a_safe_link_is_a_warning_naming_the_resolved_directory(share_tree):
    link = share_tree / "srv" / "current"
    link.symlink_to("data")
    real = str(share_tree / "srv" / "data")
    assert [(c, t) for c, _st, t in links(str(link))] == [(str(link), "data")]
    refusal, warnings = source_findings(str(link), WHAT)
    assert refusal is None
    assert warnings == [
        f"share 'data': source {str(link)!r} goes through the symbolic link {link} -> data: libvirt hands the path "
        f"as written to virtiofsd, which resolves it when the domain starts, so the guest gets {real!r} now and a "
        f"changed link changes what the guest sees at its next start; write {real!r} as the source to share that "
        "directory whatever the link says later"
    ]


@needs_root
def test_a_source_below_a_safe_symlinked_directory_is_a_warning(share_tree):
    (share_tree / "srv" / "data" / "sub").mkdir()
    (share_tree / "lnk").symlink_to(share_tree / "srv")
    path = str(share_tree / "lnk" / "data" / "sub")
    refusal, warnings = source_findings(path, WHAT)
    assert refusal is None and len(warnings) == 1
    assert f"goes through the symbolic link {share_tree / 'lnk'} -> {share_tree / 'srv'}:" in warnings[0]
    assert f"write {str(share_tree / 'srv' / 'data' / 'sub')!r} as the source" in warnings[0]


@needs_root
@pytest.mark.parametrize("where", ["source", "parent"])
def test_a_link_another_user_owns_is_refused(share_tree, where):
    if where == "source":
        link = share_tree / "srv" / "current"
        link.symlink_to("data")
        path = str(link)
    else:
        link = share_tree / "lnk"
        link.symlink_to(share_tree / "srv")
        path = str(link / "data")
    os.lchown(link, NOBODY, NOBODY)
    refusal, warnings = source_findings(path, WHAT)
    real = str(share_tree / "srv" / "data")
    assert refusal.startswith(f"share 'data': source {path!r} goes through the symbolic link {link} -> ")
    assert f"which is owned by uid {NOBODY}, not root: whoever can change it chooses the directory the guest gets" in refusal
    assert refusal.endswith(
        f"write the resolved path {real!r} as the source, or make the link root's in a directory only root can change"
    )
    assert warnings == []


@needs_root
@pytest.mark.parametrize("mode,refused", [(0o777, True), (0o775, True), (0o1777, False)])
def test_a_link_in_a_directory_others_can_write_is_refused_unless_sticky(share_tree, mode, refused):
    os.chmod(share_tree / "srv", mode)
    link = share_tree / "srv" / "current"
    link.symlink_to("data")
    refusal, warnings = source_findings(str(link), WHAT)
    if refused:
        who = "group and others" if mode & 0o002 else "group"
        assert f"in a directory writable by {who} without the sticky bit (mode {mode:04o})" in refusal
        assert warnings == []
    else:
        # root's link in root's sticky directory: nobody else may replace it; only the link warning
        assert refusal is None
        assert len(warnings) == 1 and "goes through the symbolic link" in warnings[0]


@needs_root
@pytest.mark.parametrize("change,reason,fix", [
    (lambda d: os.chown(d, NOBODY, NOBODY), f"owned by uid {NOBODY}, not root", "chown root:root {d}"),
    (lambda d: os.chmod(d, 0o777), "writable by group and others", "chmod go-w {d}"),
    (lambda d: os.chmod(d, 0o775), "writable by group", "chmod go-w {d}"),
])
def test_a_parent_another_user_can_change_is_a_warning(share_tree, change, reason, fix):
    srv = share_tree / "srv"
    change(srv)
    path = str(srv / "data")
    refusal, warnings = source_findings(path, WHAT)
    assert refusal is None and len(warnings) == 1
    msg = warnings[0]
    assert msg.startswith(f"share 'data': source {path!r} can be replaced by a user other than root before the "
                          f"domain starts: {srv} is {reason} (uid ")
    assert "could rename the source away and put another directory or a symbolic link" in msg
    assert f"Fix: {fix.format(d=srv)}; or share a directory whose parents only root can change" in msg
    # the same for a source still to be created there
    refusal, warnings = source_findings(str(srv / "new"), WHAT)
    assert refusal is None and len(warnings) == 1 and f"{srv} is {reason}" in warnings[0]


@needs_root
def test_the_sources_own_owner_and_mode_are_not_checked(share_tree):
    data = share_tree / "srv" / "data"
    os.chown(data, NOBODY, NOBODY)
    os.chmod(data, 0o777)
    assert source_findings(str(data), WHAT) == (None, [])


@needs_root
def test_a_source_another_user_owns_in_a_sticky_directory_is_a_warning(share_tree):
    os.chmod(share_tree / "srv", 0o1777)
    data = share_tree / "srv" / "data"
    os.chown(data, NOBODY, NOBODY)
    refusal, warnings = source_findings(str(data), WHAT)
    assert refusal is None and len(warnings) == 1
    assert (f"{data} is owned by uid {NOBODY} in the sticky directory {share_tree / 'srv'} others can write "
            "(its owner may rename it there)") in warnings[0]
    os.chown(data, 0, 0)
    assert source_findings(str(data), WHAT) == (None, [])


def test_a_source_path_that_cannot_be_walked_is_a_refusal(share_tree):
    loop = share_tree / "srv" / "loop"
    loop.symlink_to("loop")
    refusal, warnings = source_findings(str(loop / "sub"), WHAT)
    assert refusal == (f"share 'data': source {str(loop / 'sub')!r} cannot be checked: too many levels of symbolic "
                       "links; fix the symbolic links on the way")
    assert warnings == []


USER = 1000


@needs_root
@pytest.mark.parametrize("mode", [0o755, 0o1777, 0o700])
@pytest.mark.parametrize("where", ["source", "parent"])
def test_a_root_link_in_a_directory_another_user_owns_is_refused(share_tree, mode, where):
    # that user may replace any entry of their own directory, sticky or not, so they choose what the guest gets
    home = share_tree / "home"
    home.mkdir()
    os.chown(home, USER, USER)
    os.chmod(home, mode)
    link = home / "share"
    if where == "source":
        link.symlink_to(share_tree / "srv" / "data")
        path = str(link)
    else:
        link.symlink_to(share_tree / "srv")
        path = str(link / "data")
    os.lchown(link, 0, 0)
    refusal, warnings = source_findings(path, WHAT)
    assert refusal is not None, warnings
    assert refusal.startswith(f"share 'data': source {path!r} goes through the symbolic link {link} -> ")
    assert (f"in the directory {home} owned by uid {USER}, not root, who may replace the link "
            f"(mode {mode:04o}): whoever can change it chooses the directory the guest gets") in refusal
    assert warnings == []


@needs_root
def test_a_root_link_below_a_directory_another_user_owns_is_refused(share_tree):
    # /home/alice (alice's) /sub (root's, 0755) /share -> ...: alice may rename sub and put her own link there
    home = share_tree / "home"
    (home / "sub").mkdir(parents=True)
    os.chown(home, USER, USER)
    os.chmod(home, 0o755)
    link = home / "sub" / "share"
    link.symlink_to(share_tree / "srv" / "data")
    refusal, warnings = source_findings(str(link), WHAT)
    assert refusal is not None and warnings == []
    assert (f"below {home} is owned by uid {USER}, not root (uid {USER}, mode 0755), who may rename the "
            "directories on the way and put another link in place: whoever can change it chooses") in refusal
    os.chown(home, 0, 0)
    refusal, warnings = source_findings(str(link), WHAT)
    assert refusal is None and len(warnings) == 1 and "goes through the symbolic link" in warnings[0]


def test_a_bind_mount_of_the_root_is_refused_in_a_mount_namespace(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1)")
    target = tmp_path / "hostroot"
    target.mkdir()
    script = (
        "import sys; sys.path[:0] = %r\n"
        "from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import source_findings\n"
        "print(repr(source_findings(%r, 'src')))\n" % (sys.path, str(target))
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount --bind / "$1" && exec "$2" -c "$3"', "sh", str(target), sys.executable, script],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"cannot bind-mount here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    refusal, warnings = eval(proc.stdout)  # noqa: S307 - the repr of a tuple of str printed above
    assert refusal == (
        f"src {str(target)!r} is the root of the host file system (it is the same directory as '/', for example a "
        "bind mount of /): the guest would get the whole host file system, read and written by virtiofsd as root; "
        "share a dedicated directory instead (for example /srv/shares/NAME)")
    assert warnings == []


def test_a_directory_that_stats_like_the_root_is_refused(share_tree, monkeypatch):
    data = str(share_tree / "srv" / "data")
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat("/" if p == data else p, *a, **k))
    refusal, warnings = source_findings(data, WHAT)
    assert "is the root of the host file system (it is the same directory as '/', for example a bind mount" in refusal
    assert warnings == []


@pytest.mark.parametrize("path", ["/proc/self/cwd", "/proc/thread-self/root", "/proc/1/cwd", "/proc/self/fd/3",
                                  "/proc", "//proc/self/cwd", "/proc/../proc/self/root/srv"])
def test_a_source_under_proc_is_refused(path):
    refusal, warnings = source_findings(path, WHAT)
    assert refusal == (
        f"share 'data': source {path!r} is below /proc: procfs is not a directory tree to share, and /proc/self, "
        "/proc/thread-self and /proc/PID name the process that resolves them (virtiofsd resolves the source when "
        "the domain starts, so /proc/self/cwd would be virtiofsd's own directory, not this task's); write the real "
        "directory as the source (readlink -f PATH shows where a /proc link points now)")
    assert warnings == []


def test_a_link_into_proc_is_refused(share_tree):
    link = share_tree / "srv" / "here"
    link.symlink_to("/proc/self/cwd")
    refusal, warnings = source_findings(str(link), WHAT)
    assert refusal.startswith(f"share 'data': source {str(link)!r} is below /proc (through symbolic links it leads "
                              "to /proc/")
    assert "/proc/self/cwd would be virtiofsd's own directory" in refusal
    assert warnings == []

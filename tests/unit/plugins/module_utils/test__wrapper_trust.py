# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virtiofsd_wrapper and what is at ``path``: a wrapper others can change (refused, replaced with
force), symbolic links (dangling, to a FIFO, socket or directory, to a wrapper with state=absent),
failing unlinks and reads, and the ``realpath`` return. Run against a fake daemon that answers like
the Rust virtiofsd 1.13.2 (the fixtures) and a real /bin/sh."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _wrapper
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import (
    MARKER,
    WRAPPER_MODE,
    WrapperError,
    apply,
    apply_absent,
    apply_present,
    render_script,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper is written root-owned")


def real_run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def stat_of(path):
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def present(result, path, binary, check_mode=False, backup=None, warnings=None, force=False, move=None):
    apply_present(result, str(path), binary, {}, [], real_run, check_mode, True, backup, move,
                  (warnings if warnings is not None else []).append, force)


def absent(result, path, check_mode=False, backup=None, warnings=None, force=False):
    apply({"changed": False} if result is None else result, "absent", str(path), None, {}, [], real_run, check_mode,
          True, backup, None, (warnings if warnings is not None else []).append, force)


def in_thread(call, timeout=30):
    """``call()``'s WrapperError message; fails the test when it blocks (a FIFO opened for reading)."""
    errors: list = []

    def attempt():
        try:
            call()
        except WrapperError as exc:
            errors.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "the module blocked"
    return errors


# ---------------------------------------------------------------- a wrapper someone other than root can change


@needs_root
@pytest.mark.parametrize("uid, gid, mode, reasons, fix, header, after", [
    (1000, 0, 0o755, "owned by uid 1000, not root", "chown root:root {p}", "owner 1000", "owner 0"),
    (0, 0, 0o775, "writable by group", "chmod go-w {p}", "mode 0775", "mode 0755"),
    (0, 0, 0o757, "writable by others", "chmod go-w {p}", "mode 0757", "mode 0755"),
    (1000, 1000, 0o775, "owned by uid 1000, not root and writable by group", "chown root:root {p} && chmod go-w {p}",
     "mode 0775, owner 1000, group 1000", "mode 0755, owner 0, group 0"),
], ids=["owner-1000", "mode-0775", "mode-0757", "owner-and-mode"])
def test_a_wrapper_others_can_change_is_refused_then_replaced_with_force(tmp_path, daemon, uid, gid, mode, reasons, fix,
                                                                         header, after):
    """Its content cannot be trusted: refused (check mode too), with the fix, even though this module
    wrote it; force: true replaces it by a new root-owned file (a new inode, the old owner's attributes
    not copied on the way), the diff names the owner/mode change, a warning says why."""
    path = tmp_path / "wrapper.sh"
    present({"changed": False}, path, daemon)
    script = path.read_bytes()
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    before = stat_of(path)
    expected = (
        f"{path} can be changed by users other than root: it is {reasons} (uid {uid}, mode {mode:04o}); libvirt runs "
        "it as root, so its content cannot be trusted and it is not repaired in place. "
        f"Fix: {fix.format(p=path)} once you have checked its content, or set force: true to replace it by a new "
        "root-owned wrapper (with backup: true to keep a copy)")
    for check_mode in (True, False):
        result = {"changed": False}
        with pytest.raises(WrapperError) as exc:
            present(result, path, daemon, check_mode=check_mode)
        assert str(exc.value) == expected
        assert result == {"changed": False} and stat_of(path) == before and path.read_bytes() == script

    warning = (f"{path} can be changed by users other than root ({reasons}); with force: true it is replaced by a new "
               "root-owned wrapper (mode 0755), not repaired in place")
    warnings: list = []
    checked = {"changed": False}
    present(checked, path, daemon, check_mode=True, warnings=warnings, force=True)
    assert checked["changed"] is True and checked["content_changed"] is True and warnings == [warning]
    assert checked["diff"] == {"before_header": f"{path} ({header})", "after_header": f"{path} ({after})",
                               "before": script.decode(), "after": script.decode()}
    assert stat_of(path) == before

    moves: list = []

    def move(src, dest, fresh=False):
        moves.append((os.stat(src).st_uid, fresh))
        os.replace(src, dest)

    warnings = []
    result = {"changed": False}
    present(result, path, daemon, warnings=warnings, force=True, move=move)
    assert result["changed"] is True and result["content_changed"] is True and warnings == [warning]
    assert moves == [(0, True)]  # the move is told not to copy the old file's owner/mode
    st = os.stat(path)
    assert st.st_ino != before[0] and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)
    assert path.read_bytes() == script

    again = {"changed": False}
    present(again, path, daemon)
    assert again["changed"] is False


@needs_root
@pytest.mark.parametrize("mode", [0o700, 0o750, 0o555, 0o4755])
def test_a_mode_only_difference_that_gives_others_nothing_is_repaired_in_place(tmp_path, daemon, mode):
    """Root-owned and not writable by group or others: nobody else could have changed it, so the mode
    is repaired in place (same inode), content_changed false, no force needed."""
    path = tmp_path / "wrapper.sh"
    present({"changed": False}, path, daemon)
    os.chmod(path, mode)
    inode = os.stat(path).st_ino
    warnings: list = []
    result = {"changed": False}
    present(result, path, daemon, warnings=warnings)
    assert result["changed"] is True and result["content_changed"] is False and warnings == []
    assert result["diff"] == {"before": {"path": str(path), "mode": f"0{mode:03o}"},
                              "after": {"path": str(path), "mode": "0755"}}
    st = os.stat(path)
    assert st.st_ino == inode and st.st_mode & 0o7777 == WRAPPER_MODE


@needs_root
def test_a_directory_others_can_write_is_refused_even_with_force(tmp_path, daemon):
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o777)
    path = directory / "wrapper.sh"
    with pytest.raises(WrapperError) as exc:
        present({"changed": False}, path, daemon, force=True)
    assert str(exc.value) == (
        f"wrapper path {path} can be changed by users other than root because of {directory}: {directory} is "
        f"writable by group and others (uid 0, mode 0777); libvirt runs it as root, so it is refused. "
        f"Fix: chmod go-w {directory}")
    assert os.listdir(directory) == []


@needs_root
def test_a_symlink_to_a_wrapper_others_can_change_is_replaced_without_force(tmp_path, daemon):
    """The link is replaced, its target is neither kept nor run again: whoever owns the target does
    not matter (the old code refused the link because of its target's owner)."""
    target = tmp_path / "old.sh"
    target.write_text(render_script(daemon, []))
    os.chown(target, 1000, 1000)
    path = tmp_path / "wrapper.sh"
    path.symlink_to(target)
    target_before = stat_of(target)
    result = {"changed": False}
    present(result, path, daemon, warnings=[])
    assert result["changed"] is True and not path.is_symlink()
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)
    assert stat_of(target) == target_before


# ---------------------------------------------------------------- symbolic links at path


@needs_root
def test_a_dangling_symlink_is_refused_without_force_and_replaced_with_it(tmp_path, daemon):
    path = tmp_path / "wrapper.sh"
    path.symlink_to("/nonexistent/wrapper.sh")
    expected = (f"{path} is a symlink to /nonexistent/wrapper.sh, which does not exist: this module cannot tell whether "
                f"it wrote the link, so it is not replaced. Fix: remove the link yourself (rm {path}), or set force: "
                "true to replace the link by the wrapper (nothing is written at /nonexistent/wrapper.sh)")
    for check_mode in (True, False):
        result = {"changed": False}
        with pytest.raises(WrapperError) as exc:
            present(result, path, daemon, check_mode=check_mode)
        assert str(exc.value) == expected and result == {"changed": False}
        assert os.readlink(path) == "/nonexistent/wrapper.sh"

    warnings: list = []
    result = {"changed": False}
    present(result, path, daemon, warnings=warnings, force=True)
    assert warnings == [f"{path} is a symlink to /nonexistent/wrapper.sh; it is replaced by a regular file, "
                        "/nonexistent/wrapper.sh is left unchanged"]
    assert result["diff"]["before_header"] == f"{path} (symlink -> /nonexistent/wrapper.sh)"
    assert result["diff"]["before"] == ""
    assert not path.is_symlink() and MARKER in path.read_text()
    assert not os.path.lexists("/nonexistent/wrapper.sh")


def test_absent_refuses_a_dangling_symlink_also_with_force(tmp_path):
    path = tmp_path / "wrapper.sh"
    path.symlink_to("gone.sh")
    for force in (False, True):
        with pytest.raises(WrapperError) as exc:
            absent({"changed": False}, path, force=force)
        assert str(exc.value) == (
            f"{path} is a symlink to {tmp_path}/gone.sh, which does not exist: this module cannot tell whether it "
            "wrote the link, so it is not removed (force: true does not change that). "
            f"Fix: remove the link yourself (rm {path}) if it is yours to delete")
        assert os.readlink(path) == "gone.sh"


def test_a_symlink_loop_is_named_not_a_traceback(tmp_path, daemon):
    path = tmp_path / "wrapper.sh"
    path.symlink_to("wrapper.sh")
    with pytest.raises(WrapperError) as exc:
        present({"changed": False}, path, daemon, check_mode=True)
    assert str(exc.value).startswith(
        f"{path} is a symlink to {path}, which cannot be followed (Too many levels of symbolic links): this module "
        "cannot tell whether it wrote the link, so it is not replaced.")
    with pytest.raises(WrapperError) as exc:
        absent(None, path)
    assert "which cannot be followed (Too many levels of symbolic links)" in str(exc.value)
    assert os.readlink(path) == "wrapper.sh"


def _socket(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


@needs_root
@pytest.mark.parametrize("kind", ["FIFO", "socket"])
def test_a_symlink_to_a_fifo_or_socket_says_so(tmp_path, daemon, kind):
    special = tmp_path / "special"
    sock = None
    if kind == "FIFO":
        os.mkfifo(special)
    else:
        sock = _socket(special)
    try:
        path = tmp_path / "wrapper.sh"
        path.symlink_to(special)
        errors = in_thread(lambda: present({"changed": False}, path, daemon, force=True))
        assert errors == [f"{path} is a symlink to a {kind} ({special}), not a wrapper; remove it yourself or choose "
                          "another path for the wrapper"]
        errors = in_thread(lambda: absent(None, path))
        assert errors == [f"{path} is a symlink to a {kind} ({special}), not a wrapper: refusing to remove it; "
                          "remove it yourself if it really is yours to delete"]
        errors = in_thread(lambda: absent(None, special))  # the old absent opened a FIFO and blocked
        assert errors == [f"{special} is a {kind}, not a wrapper: refusing to remove it; remove it yourself if it "
                          "really is yours to delete"]
        assert path.is_symlink() and os.path.lexists(special)
    finally:
        if sock is not None:
            sock.close()


def test_a_symlink_to_a_directory_says_so(tmp_path, daemon):
    directory = tmp_path / "dir"
    directory.mkdir()
    path = tmp_path / "wrapper.sh"
    path.symlink_to(directory)
    with pytest.raises(WrapperError) as exc:
        present({"changed": False}, path, daemon, force=True)
    assert str(exc.value) == (f"path {path} is a symlink to a directory ({directory}); give the file name of the "
                              "wrapper")
    with pytest.raises(WrapperError) as exc:
        absent(None, path)
    assert str(exc.value) == f"path {path} is a symlink to a directory ({directory}), not a wrapper"
    assert path.is_symlink() and directory.is_dir()


def test_absent_on_a_symlink_to_a_wrapper_removes_the_link_only(tmp_path):
    """The diff shows the link, not the target's script; a warning names the target left in place; no
    backup is made (the target's bytes are not removed); the target keeps inode, bytes and mode."""
    target = tmp_path / "real.sh"
    script = render_script("/usr/libexec/virtiofsd", [])
    target.write_text(script)
    os.chmod(target, 0o755)
    target_before = stat_of(target)
    path = tmp_path / "wrapper.sh"
    path.symlink_to("real.sh")
    warning = f"{path} is a symlink to {target}; the link is removed, {target} is left in place"
    backups: list = []

    warnings: list = []
    checked = {"changed": False}
    absent(checked, path, check_mode=True, warnings=warnings, backup=backups.append)
    assert checked["changed"] is True and warnings == [warning]
    assert checked["diff"] == {"before_header": f"{path} (symlink -> real.sh)", "after_header": str(path),
                               "before": "", "after": ""}
    assert path.is_symlink()

    warnings = []
    result = {"changed": False}
    absent(result, path, warnings=warnings, backup=lambda p: backups.append(p) or p + ".bak")
    assert result["changed"] is True and warnings == [warning] and result["diff"] == checked["diff"]
    assert "backup_file" not in result and backups == []
    assert not os.path.lexists(path)
    assert stat_of(target) == target_before and target.read_text() == script


def test_absent_on_a_symlink_to_a_foreign_file_names_the_link(tmp_path):
    target = tmp_path / "mine.sh"
    target.write_text("#!/bin/sh\necho mine\n")
    path = tmp_path / "wrapper.sh"
    path.symlink_to(target)
    with pytest.raises(WrapperError) as exc:
        absent(None, path)
    assert str(exc.value) == (f"{path} (a symlink to {target}) is not a wrapper written by this module (no '{MARKER}' "
                              "header): refusing to remove it; remove it yourself if it really is yours to delete")
    assert path.is_symlink() and target.read_text() == "#!/bin/sh\necho mine\n"


# ---------------------------------------------------------------- OS errors are the module's errors


@pytest.mark.parametrize("code", [errno.EACCES, errno.EBUSY, errno.EROFS, errno.EPERM])
@pytest.mark.parametrize("with_backup", [False, True])
def test_an_unlink_that_fails_is_the_modules_error_and_names_what_is_left(tmp_path, monkeypatch, code,
                                                                          with_backup):
    path = tmp_path / "wrapper.sh"
    script = render_script("/usr/libexec/virtiofsd", [])
    path.write_text(script)
    real_unlink = os.unlink

    def unlink(p, *args, **kwargs):
        if str(p) == str(path):
            raise OSError(code, os.strerror(code))
        return real_unlink(p, *args, **kwargs)

    monkeypatch.setattr(_wrapper.os, "unlink", unlink)
    result = {"changed": False}
    backup = (lambda p: p + ".bak") if with_backup else None
    with pytest.raises(WrapperError) as exc:
        absent(result, path, backup=backup)
    kept = f" (the backup {path}.bak was made)" if with_backup else ""
    assert str(exc.value) == (
        f"cannot remove {path} (unlink): {os.strerror(code)}; {path} is left in place{kept} and libvirt can still run "
        "it. Fix: let root remove files in its directory (the directory and the file not immutable: lsattr, "
        "chattr -i; the file system not read-only, not a read-only bind mount), then run again")
    assert result["changed"] is with_backup
    assert path.read_text() == script


def test_a_read_that_fails_is_the_modules_error(tmp_path, monkeypatch, daemon):
    path = tmp_path / "wrapper.sh"
    path.write_text(render_script(daemon, []))
    real_read = _wrapper.read_bytes

    def read_bytes(p, size=-1, best_effort=False):
        if str(p) == str(path) and size == -1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(p, size, best_effort)

    monkeypatch.setattr(_wrapper, "read_bytes", read_bytes)
    expected = (f"cannot read {path}: Input/output error; {path} was not changed. Fix: let root read it (not on an NFS "
                "export with root_squash, no I/O error on the disk), then run again")
    for call in (lambda: absent(None, path), lambda: present({"changed": False}, path, daemon, check_mode=True)):
        with pytest.raises(WrapperError) as exc:
            call()
        assert str(exc.value) == expected
    assert path.exists()


def test_an_lstat_that_fails_is_the_modules_error(tmp_path, monkeypatch, daemon):
    path = tmp_path / "wrapper.sh"
    path.write_text(render_script(daemon, []))
    real_lstat = os.lstat

    def lstat(p, *args, **kwargs):
        if str(p) == str(path):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real_lstat(p, *args, **kwargs)

    monkeypatch.setattr(_wrapper.os, "lstat", lstat)
    for call in (lambda: absent(None, path), lambda: present({"changed": False}, path, daemon, check_mode=True)):
        with pytest.raises(WrapperError) as exc:
            call()
        assert str(exc.value) == (
            f"cannot look at {path} (lstat): Permission denied; {path} was not changed. Fix: let root read the "
            "directory of path (not an NFS export with root_squash, not a stale mount), then run again")


def test_a_path_check_that_cannot_walk_the_path_is_the_modules_error(tmp_path, monkeypatch, daemon):
    def loop(path, what):
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(tmp_path / "a"))

    monkeypatch.setattr(_wrapper, "directory_problem", loop)
    path = tmp_path / "a" / "w.sh"
    (tmp_path / "a").mkdir()
    with pytest.raises(WrapperError) as exc:
        present({"changed": False}, path, daemon, check_mode=True)
    assert str(exc.value) == (
        f"cannot check who can change {tmp_path}/a (the way to path or binary): Too many levels of symbolic links; "
        f"{path} was not changed. Fix: make the directories and links on the way resolvable, then run again")


# ---------------------------------------------------------------- realpath


def test_realpath_is_the_resolved_path_of_the_written_wrapper(tmp_path, daemon):
    real = tmp_path / "real"
    real.mkdir()
    via = tmp_path / "via"
    via.symlink_to("real")
    resolved = os.path.realpath(tmp_path)
    result = {"changed": False}
    present(result, via / "w.sh", daemon, check_mode=True)
    assert result["realpath"] == f"{resolved}/real/w.sh"
    # a link at path is replaced by the wrapper: the link's own place counts, not its target
    (real / "other.sh").write_text(render_script(daemon, []))
    (real / "link.sh").symlink_to("other.sh")
    result = {"changed": False}
    present(result, via / "link.sh", daemon, check_mode=True, warnings=[])
    assert result["realpath"] == f"{resolved}/real/link.sh"
    if os.geteuid() == 0:
        result = {"changed": False}
        present(result, via / "w.sh", daemon)
        assert result["realpath"] == os.path.realpath(via / "w.sh") == f"{resolved}/real/w.sh"
    absent_result: dict = {"changed": False}
    apply_absent(absent_result, str(via / "none.sh"), False, False, None)
    assert "realpath" not in absent_result


def test_only_the_modules_header_makes_a_file_managed():
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import HEADER_LINE, MARKER, is_managed_wrapper
    assert is_managed_wrapper(f"#!/bin/sh\n{HEADER_LINE}\nexec /x \"$@\"\n")
    assert is_managed_wrapper(f"#!/bin/sh\n{HEADER_LINE}\n".encode())
    # the marker in another comment, or on another line, is a foreign script
    assert not is_managed_wrapper(f"#!/bin/sh\necho hi\n# {MARKER}\n")
    assert not is_managed_wrapper(f"#!/bin/sh\n# see {HEADER_LINE}\n")
    assert not is_managed_wrapper(f"{HEADER_LINE}\n#!/bin/sh\n")

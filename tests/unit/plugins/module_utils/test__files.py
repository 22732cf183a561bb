# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import errno

import pytest

import os

import multiprocessing

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _files
from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import LockTimeout, path_lock
from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import (
    WriteError,
    install_temporary,
    is_leftover,
    read_bytes,
    remove_leftovers,
    write_atomic,
    write_temporary,
)


def test_read_bytes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"#!/bin/sh\nexec x\n")
    assert read_bytes(str(path)) == b"#!/bin/sh\nexec x\n"
    assert read_bytes(str(path), 4) == b"#!/b"
    assert read_bytes(str(tmp_path / "missing")) is None
    with pytest.raises(IsADirectoryError):
        read_bytes(str(tmp_path))
    assert read_bytes(str(tmp_path), best_effort=True) is None


def test_write_atomic_replaces_and_sets_mode(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    write_atomic(str(path), "new\n", mode=0o640)
    assert path.read_text() == "new\n"
    assert os.stat(path).st_mode & 0o7777 == 0o640
    write_atomic(str(path), b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_write_atomic_uses_the_given_move(tmp_path):
    moves = []

    def move(src, dest):
        moves.append((os.path.basename(src), dest))
        assert is_leftover(os.path.basename(src))
        assert open(src).read() == "data"  # complete before the move
        os.replace(src, dest)

    write_atomic(str(tmp_path / "g"), "data", move=move)
    assert moves and moves[0][1] == str(tmp_path / "g")
    assert (tmp_path / "g").read_text() == "data"


def test_write_atomic_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")

    def move(src, dest):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        write_atomic(str(path), "new", move=move)
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_is_leftover():
    assert is_leftover(".virtiofs-libvirt-abc123.tmp")
    assert not is_leftover("virtiofs-libvirt-abc.tmp")
    assert not is_leftover(".virtiofs-libvirt-abc.xml")


def test_write_error_names_the_file_and_says_it_is_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "dom.xml"
    path.write_text("old")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(WriteError) as err:
        write_atomic(str(path), "new")
    assert err.value.errno == errno.ENOSPC
    msg = str(err.value)
    assert f"cannot write {path}: the disk is full" in msg
    assert f"{path} was not changed" in msg
    assert "was not changed (the old file stays as it was)" in msg
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["dom.xml"]


@pytest.mark.parametrize("exc, cause", [
    (OSError(errno.ENOSPC, "No space left on device"), "the disk is full (No space left on device)"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk is full (Disk quota exceeded)"),
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    (OSError("no errno at all"), "no errno at all"),
])
def test_write_error_says_the_cause_once(exc, cause, tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("old")
    err = WriteError(str(path), exc)
    assert str(err) == (
        f"cannot write {path}: {cause}; {path} was not changed (the old file stays as it was), "
        "free space or fix the cause and run again")
    assert err.reason == cause and err.errno == exc.errno and err.path == str(path)
    assert str(err).count(exc.strerror or str(exc)) == 1


def test_write_temporary_then_install(tmp_path):
    """The two halves of write_atomic: the temporary file is complete, has its mode, is named as a
    leftover (so a killed run's is cleaned), and leaves the destination alone until it is installed."""
    path = tmp_path / "w.sh"
    path.write_text("old")
    st = os.stat(path)
    tmp = write_temporary(str(path), "new", mode=0o750)
    assert os.path.dirname(tmp) == str(tmp_path) and is_leftover(os.path.basename(tmp))
    assert open(tmp).read() == "new" and os.stat(tmp).st_mode & 0o7777 == 0o750
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns, after.st_ctime_ns) == (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    assert path.read_text() == "old"
    install_temporary(tmp, str(path), mode=0o750)
    assert path.read_text() == "new" and os.stat(path).st_mode & 0o7777 == 0o750
    assert sorted(os.listdir(tmp_path)) == ["w.sh"]


def test_install_temporary_failure_is_a_write_error_and_removes_the_temporary(tmp_path):
    path = tmp_path / "w.sh"
    path.write_text("old")
    tmp = write_temporary(str(path), "new")

    def move(src, dest):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    with pytest.raises(WriteError) as err:
        install_temporary(tmp, str(path), move=move)
    assert str(err.value) == (
        f"cannot write {path}: Invalid cross-device link; {path} was not changed (the old file stays as it was), "
        "free space or fix the cause and run again")
    assert path.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["w.sh"]


def test_remove_leftovers_removes_only_this_files_temporaries(tmp_path):
    path = tmp_path / "w.sh"
    mine = tmp_path / ".virtiofs-libvirt-w.sh-abc.tmp"
    other = tmp_path / ".virtiofs-libvirt-x.sh-abc.tmp"
    for f in (path, mine, other):
        f.write_text("x")
    assert remove_leftovers(str(path)) == [str(mine)]
    assert sorted(os.listdir(tmp_path)) == [".virtiofs-libvirt-x.sh-abc.tmp", "w.sh"]
    assert is_leftover(other.name)


def _hold(path, started, release):
    with path_lock(path, timeout=5):
        started.set()
        release.wait(10)


def test_path_lock_excludes_another_process_and_times_out(tmp_path):
    target = str(tmp_path / "f.xml")
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(target, started, release))
    proc.start()
    try:
        assert started.wait(10)
        with pytest.raises(LockTimeout) as err:
            with path_lock(target, timeout=0.2):
                pass
        assert f"for {os.path.realpath(target)} for more than 0 s" in str(err.value)
    finally:
        release.set()
        proc.join(10)
    with path_lock(target, timeout=1) as lock:
        assert lock.endswith(".lock") and "/path-" in lock


def test_a_chmod_that_fails_after_the_move_is_an_attributes_error_naming_what_is_in_place(tmp_path, monkeypatch):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import AttributesError

    path = tmp_path / "w.xml"
    path.write_text("old")
    os.chmod(path, 0o644)
    real_chmod = os.chmod
    calls = []

    def chmod(p, mode, *a, **kw):
        calls.append(str(p))
        if str(p) == str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_chmod(p, mode, *a, **kw)

    monkeypatch.setattr(os, "chmod", chmod)
    with pytest.raises(AttributesError) as err:
        write_atomic(str(path), "new", mode=0o600)
    assert err.value.changed is True and err.value.errno == errno.EROFS
    assert str(err.value).startswith(
        f"cannot chmod 0600 {path}: Read-only file system; {path} already holds the new content (it was moved "
        "into place), with mode 0600, owner ")  # the temporary file's mode, set before the move
    assert str(err.value).endswith("Fix: let root change the mode and owner of files there (the file not immutable: "
                                   "lsattr, chattr -i; the file system not read-only and not an NFS export with "
                                   "root_squash), then run again")
    assert path.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["w.xml"] and calls[-1] == str(path)

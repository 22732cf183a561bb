# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virtiofsd_wrapper: results the controller accepts (no surrogates), safe backups, bounded daemon runs,
long file names."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import time
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _files, _wrapper
from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import (
    BackupError,
    WriteError,
    backup_file,
    remove_leftovers,
    write_temporary,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import (
    CommandTimeout,
    WrapperError,
    check_paths,
    render_script,
    run_with_timeout,
)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper is written root-owned")


def strict_json(res):
    """What the controller does with the module's result: strict UTF-8 (surrogates refused)."""
    return json.dumps(res, ensure_ascii=False).encode("utf-8")


def placeholder(content: bytes) -> str:
    return f"<binary file, {len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()}>"


@pytest.fixture
def alarm():
    """Old code ran the daemon without a time limit: end a hanging test instead of hanging the suite."""
    def on_alarm(signum, frame):
        raise AssertionError("the module hung (no time limit on the daemon's run)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------ F1: no surrogates in the result

@root_only
def test_force_over_an_elf_binary_with_diff_is_valid_utf8_in_check_mode_and_for_real(run_module, tmp_path, daemon):
    path = tmp_path / "mysh"
    shutil.copyfile(Path("/bin/sh").resolve(), path)
    content = path.read_bytes()
    args = {"path": str(path), "binary": daemon, "force": True, "_ansible_diff": True}
    res = run_module("virtiofsd_wrapper", dict(args, _ansible_check_mode=True))
    strict_json(res)
    assert res["changed"] is True and res["diff"]["before"] == placeholder(content)
    assert path.read_bytes() == content
    res = run_module("virtiofsd_wrapper", dict(args, backup=True))
    strict_json(res)
    assert res["changed"] is True and "failed" not in res, res
    assert res["diff"]["before"] == placeholder(content)
    assert res["diff"]["after"] == path.read_text()
    assert Path(res["backup_file"]).read_bytes() == content


@root_only
def test_force_over_a_latin1_script_with_diff_is_valid_utf8(run_module, tmp_path, daemon):
    path = tmp_path / "w.sh"
    content = b"#!/bin/sh\n# caf\xe9\nexec /usr/libexec/virtiofsd \"$@\"\n"
    path.write_bytes(content)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "binary": daemon, "force": True, "_ansible_diff": True})
    strict_json(res)
    assert res["changed"] is True and res["diff"]["before"] == placeholder(content)


def test_absent_on_a_managed_wrapper_with_a_non_utf8_byte_is_valid_utf8(run_module, tmp_path):
    path = tmp_path / "w.sh"
    content = render_script("/usr/libexec/virtiofsd", []).encode() + b"# \xff\n"
    path.write_bytes(content)
    args = {"path": str(path), "state": "absent", "_ansible_diff": True}
    res = run_module("virtiofsd_wrapper", dict(args, _ansible_check_mode=True))
    strict_json(res)
    assert res["changed"] is True and res["diff"]["before"] == placeholder(content) and path.exists()
    res = run_module("virtiofsd_wrapper", args)
    strict_json(res)
    assert res["changed"] is True and "failed" not in res and not path.exists()


def test_daemon_output_that_is_not_utf8_is_replaced():
    rc, out, err = run_with_timeout(["sh", "-c", "printf 'a\\377b'; printf '\\376' >&2; exit 3"])
    assert (rc, out, err) == (3, "a\ufffdb", "\ufffd")


# ------------------------------------------------------------------ F2/F3: backups

def _old_backup_names(path: Path):
    """Every name Ansible's backup_local would pick in the next seconds (PATH.PID.DATE~)."""
    now = time.time()
    return {f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S~', time.localtime(now + d))}"
            for d in range(-2, 8)}


def test_backup_in_a_sticky_directory_never_follows_a_planted_symlink(run_module, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "shadow"
    victim.write_bytes(b"root:secret\n")
    path = shared / "w.sh"
    content = render_script("/usr/libexec/virtiofsd", []).encode()
    path.write_bytes(content)
    path.chmod(0o755)
    planted = _old_backup_names(path)
    for name in planted:
        os.symlink(victim, name)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent", "backup": True})
    assert res["changed"] is True and "failed" not in res, res
    assert victim.read_bytes() == b"root:secret\n"
    assert res["backup_file"] not in planted
    st = os.lstat(res["backup_file"])
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    assert Path(res["backup_file"]).read_bytes() == content
    assert all(os.path.islink(name) for name in planted)


def test_backup_never_opens_an_existing_name(tmp_path, monkeypatch):
    """O_EXCL|O_NOFOLLOW: a symlink (or file) already at the chosen name is an error, never followed."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep\n")
    path = tmp_path / "w.sh"
    path.write_bytes(b"old wrapper\n")
    name = f"{path}.1.2025-01-01@00:00:00.00000000~"
    os.symlink(victim, name)
    monkeypatch.setattr(_files, "backup_name", lambda p: name)
    with pytest.raises(BackupError) as exc:
        backup_file(str(path))
    assert exc.value.errno == errno.EEXIST
    assert str(exc.value).startswith(f"cannot back up {path} (create {name}): File exists [EEXIST]; {path} was "
                                     "not changed and no backup file is left")
    assert "(create " in str(exc.value) and "File exists [EEXIST]" in str(exc.value)
    assert victim.read_bytes() == b"keep\n" and os.readlink(name) == str(victim)


def test_backup_name_has_a_random_part(tmp_path):
    path = str(tmp_path / "w.sh")
    names = {_files.backup_name(path) for attempt in range(5)}
    assert len(names) == 5
    for name in names:
        assert name.startswith(f"{path}.{os.getpid()}.") and name.endswith("~")


def test_a_backup_that_fails_is_the_modules_error_and_leaves_no_backup(run_module, tmp_path, monkeypatch):
    path = tmp_path / "w.sh"
    content = render_script("/usr/libexec/virtiofsd", []).encode()
    path.write_bytes(content)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_files.os, "fsync", full)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "state": "absent", "backup": True})
    assert res["failed"] is True and res["changed"] is False and "backup_file" not in res
    assert res["msg"].startswith(f"cannot back up {path} (fsync {path}.")
    assert ("No space left on device [ENOSPC]; " f"{path} was not changed and no backup file is left. Fix: free space "
            "in its directory or make it writable by root") in res["msg"]
    assert path.read_bytes() == content and os.listdir(tmp_path) == ["w.sh"]


def test_a_backup_name_too_long_says_so(tmp_path, monkeypatch):
    path = tmp_path / "w.sh"
    path.write_bytes(b"x")
    monkeypatch.setattr(_files, "backup_name", lambda p: str(tmp_path / ("b" * 300)))
    with pytest.raises(BackupError) as exc:
        backup_file(str(path))
    assert "the backup's name is too long for the file system" in str(exc.value)
    assert "free space" not in str(exc.value) and os.listdir(tmp_path) == ["w.sh"]


# ------------------------------------------------------------------ F5: a time limit on every run

@root_only
def test_a_binary_that_hangs_is_killed_and_named(run_module, tmp_path, monkeypatch, alarm):
    binary = tmp_path / "virtiofsd"
    binary.write_text("#!/bin/sh\nsleep 60\n")
    binary.chmod(0o755)
    monkeypatch.setattr(_wrapper, "COMMAND_TIMEOUT", 1)
    started = time.monotonic()
    res = run_module("virtiofsd_wrapper", {"path": str(tmp_path / "w.sh"), "binary": str(binary)})
    assert time.monotonic() - started < 10
    assert res["failed"] is True and res["changed"] is False
    assert f"{binary} --version did not finish within 1 s and was killed" in res["msg"]
    assert "runs the wrapper path again (a loop)" in res["msg"]
    assert not (tmp_path / "w.sh").exists()


def test_run_with_timeout_kills_the_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(CommandTimeout) as exc:
        run_with_timeout(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert "did not finish within 0.5 s and was killed" in str(exc.value)
    pid = int(pidfile.read_text())
    for attempt in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the child of the killed command still runs")


@root_only
def test_a_self_test_that_hangs_names_the_loop(tmp_path, daemon):
    path = str(tmp_path / "w.sh")

    def run(argv):
        if os.path.basename(argv[0]).startswith(_files.TMP_PREFIX):
            raise CommandTimeout(f"{argv[0]} --version did not finish within 30 s and was killed")
        return run_with_timeout(argv)

    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        _wrapper.apply_present(result, path, daemon, {}, [], run, False, False, None, None, [].append)
    assert f"(self-test of the new wrapper: if {daemon} runs {path} itself, the two exec each other forever)" in str(
        exc.value)
    assert result["changed"] is False and os.listdir(tmp_path) == ["virtiofsd"]


# ------------------------------------------------------------------ F6: long file names

def test_a_long_file_name_gets_a_temporary_name_that_fits(tmp_path):
    path = str(tmp_path / ("n" * 250))
    tmp = write_temporary(path, b"new")
    assert len(os.path.basename(tmp).encode()) <= 255 and open(tmp, "rb").read() == b"new"
    assert remove_leftovers(path) == [tmp] and os.listdir(tmp_path) == []


@root_only
def test_a_wrapper_with_a_255_byte_name_is_written(run_module, tmp_path, daemon):
    path = tmp_path / ("w" * 255)
    res = run_module("virtiofsd_wrapper", {"path": str(path), "binary": daemon})
    assert res["changed"] is True and "failed" not in res, res
    assert path.read_text().startswith("#!/bin/sh\n") and sorted(os.listdir(tmp_path)) == sorted(["virtiofsd", path.name])


def test_a_name_too_long_never_says_free_space(tmp_path):
    path = str(tmp_path / ("x" * 300))
    err = WriteError(path, OSError(errno.ENAMETOOLONG, "File name too long"))
    assert str(err) == (f"cannot write {path}: File name too long; {path} was not changed (no file was created there), "
                        "the file name is too long for the file system: choose a shorter path and run again")


# ------------------------------------------------------------------ F7: a trailing slash

def test_a_trailing_slash_after_a_file_says_it_is_a_file(tmp_path, daemon):
    (tmp_path / "a.sh").write_text("x")
    path = f"{tmp_path}/a.sh/"
    with pytest.raises(WrapperError) as exc:
        check_paths(path, daemon)
    assert str(exc.value) == (f"path {path} ends in '/' but {tmp_path}/a.sh is a file, not a directory; give the "
                              f"file name of the wrapper without the trailing '/' ({tmp_path}/a.sh)")


def test_a_file_on_the_way_to_path_says_it_is_not_a_directory(tmp_path, daemon):
    (tmp_path / "a.sh").write_text("x")
    path = f"{tmp_path}/a.sh/w.sh"
    with pytest.raises(WrapperError) as exc:
        check_paths(path, daemon)
    assert str(exc.value) == (f"the directory of path, {tmp_path}/a.sh, "
                              "is not a directory; give a path inside a directory")

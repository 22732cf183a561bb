# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd_wrapper module's work (apply_present / apply_absent), run against a fake
daemon that answers like the Rust virtiofsd 1.13.2 (the fixtures) and a real /bin/sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import path_lock
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import (
    MARKER,
    STATES,
    WRAPPER_MODE,
    WrapperError,
    apply,
    apply_absent,
    apply_present,
    check_absolute,
    run_reporting_os_errors,
)

FIXTURES = Path(__file__).parent / "fixtures"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper is written root-owned")


def real_run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def daemon(tmp_path):
    path = tmp_path / "virtiofsd"
    path.write_text(
        "#!/usr/bin/python3\nimport sys\n"
        f"d = {str(FIXTURES)!r} + '/virtiofsd-rust-1.13.2-'\n"
        "a = sys.argv[1:]\n"
        "name = 'version' if '--version' in a else 'help' if '--help' in a else 'capabilities.json'\n"
        "name = name if name.endswith('.json') else name + '.txt'\n"
        "sys.stdout.write(open(d + name).read())\n"
    )
    path.chmod(0o755)
    return str(path)


def present(result, path, binary, run=real_run, check_mode=False, backup=None, warnings=None):
    apply_present(result, path, binary, {}, [], run, check_mode, True, backup, None,
                  (warnings if warnings is not None else []).append)


def test_check_absolute():
    check_absolute("/opt/w.sh")
    with pytest.raises(WrapperError, match="absolute path, got 'w.sh'"):
        check_absolute("w.sh")


@needs_root
def test_present_writes_then_is_idempotent_and_fixes_the_mode(tmp_path, daemon):
    path = str(tmp_path / "wrapper.sh")
    result = {"changed": False}
    present(result, path, daemon)
    assert result["changed"] is True and result["daemon_version"] == "1.13.2"
    assert result["diff"]["before"] == "" and MARKER in result["diff"]["after"]
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    again = {"changed": False}
    present(again, path, daemon)
    assert again["changed"] is False and "diff" not in again
    os.chmod(path, 0o700)
    attrs = {"changed": False}
    present(attrs, path, daemon)
    assert attrs["changed"] is True and "diff" not in attrs
    assert os.stat(path).st_mode & 0o7777 == WRAPPER_MODE


@needs_root
def test_failed_self_test_restores_the_previous_file_with_its_mode(tmp_path, daemon):
    path = str(tmp_path / "wrapper.sh")
    Path(path).write_text("#!/bin/sh\necho mine\n")
    os.chmod(path, 0o640)
    warnings: list = []

    def run(argv):
        return (1, "", "boom") if argv[0] == path else real_run(argv)

    result = {"changed": False}
    with pytest.raises(WrapperError, match="self-test.*boom; the previous file was restored"):
        present(result, path, daemon, run=run, warnings=warnings)
    assert result["changed"] is False
    assert Path(path).read_text() == "#!/bin/sh\necho mine\n"
    assert os.stat(path).st_mode & 0o7777 == 0o640
    assert any("not written by this module" in w for w in warnings)

    new = str(tmp_path / "new.sh")
    with pytest.raises(WrapperError, match="the new file was removed"):
        present({"changed": False}, new, daemon, run=lambda argv: (1, "", "x") if argv[0] == new else real_run(argv))
    assert not os.path.lexists(new)


@needs_root
def test_restore_after_a_failed_self_test_is_a_guarded_write(tmp_path, daemon, monkeypatch):
    """Disk full while writing the previous file back: WriteError's cause, and the text says the
    new (failing) wrapper is what the path holds now, whole; nothing else is left behind."""
    import errno

    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _wrapper

    path = str(tmp_path / "wrapper.sh")
    Path(path).write_text("#!/bin/sh\necho mine\n")
    writes: list = []
    real_write = _wrapper.write_atomic
    real_fsync = os.fsync

    def write_atomic(target, data, **kw):
        writes.append(data)
        if len(writes) != 2:
            return real_write(target, data, **kw)

        def full(fd):  # the restore: the real guarded write, on a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)
        try:
            return real_write(target, data, **kw)
        finally:
            monkeypatch.setattr(os, "fsync", real_fsync)

    monkeypatch.setattr(_wrapper, "write_atomic", write_atomic)
    result = {"changed": False, "backup_file": str(tmp_path / "wrapper.sh.bak")}
    with pytest.raises(WrapperError) as exc:
        present(result, path, daemon, run=lambda argv: (1, "", "boom") if argv[0] == path else real_run(argv))
    assert str(exc.value).endswith(
        f"boom; restoring the previous file failed too (the disk is full): {path} still holds the new wrapper, "
        f"which failed its self-test, so libvirt would start it (a copy of the previous file is {tmp_path}/wrapper.sh.bak); "
        "free space or fix the cause and run the task again"
    ), str(exc.value)
    assert writes[1] == b"#!/bin/sh\necho mine\n"  # the restore was attempted with the previous bytes
    assert result["changed"] is True  # the file is not what it was
    assert Path(path).read_bytes() == writes[0] and MARKER in Path(path).read_text()
    assert sorted(os.listdir(tmp_path)) == sorted(["wrapper.sh", "virtiofsd"])  # no temporary file


def test_check_mode_writes_nothing(tmp_path, daemon):
    path = str(tmp_path / "wrapper.sh")
    result = {"changed": False}
    present(result, path, daemon, check_mode=True)
    assert result["changed"] is True and not os.path.lexists(path)


def test_absent_refuses_foreign_files_and_removes_its_own(tmp_path):
    foreign = tmp_path / "foreign.sh"
    foreign.write_text("#!/bin/sh\n")
    with pytest.raises(WrapperError, match="not a wrapper written by this module"):
        apply_absent({"changed": False}, str(foreign), False, False, None)
    assert foreign.exists()
    with pytest.raises(WrapperError, match="is a directory, not a wrapper"):
        apply_absent({"changed": False}, str(tmp_path), False, False, None)
    missing = {"changed": False}
    apply_absent(missing, str(tmp_path / "none.sh"), False, False, None)
    assert missing == {"changed": False}

    own = tmp_path / "own.sh"
    own.write_text(f"#!/bin/sh\n# {MARKER}\n")
    backups = []
    checked = {"changed": False}
    apply_absent(checked, str(own), True, True, backups.append)
    assert checked["changed"] is True and own.exists() and backups == []
    result = {"changed": False}
    apply_absent(result, str(own), False, False, lambda p: backups.append(p) or p + ".bak")
    assert result == {"changed": True, "backup_file": str(own) + ".bak"} and not own.exists() and backups == [str(own)]


def test_writing_without_root_is_refused_and_nothing_is_written(tmp_path, daemon, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    path = tmp_path / "wrapper.sh"
    with pytest.raises(WrapperError) as err:
        present({"changed": False}, str(path), daemon)
    assert "writing a root-owned wrapper needs root; run the task with become: true" in str(err.value)
    assert not path.exists()


def run_apply(result, state, path, binary=None, check_mode=False, run=real_run, warnings=None):
    apply(result, state, path, binary, {}, [], run, check_mode, True, None, None,
          (warnings if warnings is not None else []).append)


def test_apply_dispatches_on_the_state(tmp_path, daemon):
    assert STATES == ("present", "absent")
    path = str(tmp_path / "wrapper.sh")
    result = {"changed": False}
    run_apply(result, "present", path, daemon, check_mode=True)
    assert result["changed"] is True and result["binary"] == daemon and not os.path.lexists(path)
    assert result["argv"] == []

    own = tmp_path / "own.sh"
    own.write_text(f"#!/bin/sh\n# {MARKER}\n")
    result = {"changed": False}
    run_apply(result, "absent", str(own))
    assert result["changed"] is True and "binary" not in result and not own.exists()


def test_apply_refuses_bad_input_before_taking_the_lock(tmp_path):
    with pytest.raises(WrapperError) as exc:
        run_apply({"changed": False}, "gone", str(tmp_path / "w.sh"))
    assert str(exc.value) == "state must be one of present, absent, got 'gone'"
    with pytest.raises(WrapperError) as exc:
        run_apply({"changed": False}, "absent", "w.sh")
    assert str(exc.value) == "path must be an absolute path, got 'w.sh'"
    with pytest.raises(WrapperError) as exc:
        run_apply({"changed": False}, "present", str(tmp_path / "w.sh"))
    assert str(exc.value) == "binary is required with state=present"


def test_apply_reports_a_held_lock_as_nothing_changed(tmp_path, monkeypatch):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _wrapper

    path = str(tmp_path / "w.sh")
    monkeypatch.setattr(_wrapper, "path_lock", lambda p: path_lock(p, timeout=0))
    result = {"changed": False}
    with path_lock(path) as lock:
        with pytest.raises(WrapperError) as exc:
            run_apply(result, "absent", path)
    assert str(exc.value) == f"another run holds the lock {lock} for {path} for more than 0 s; {path} was not changed"
    assert result == {"changed": False}


def test_run_reporting_os_errors_turns_an_os_error_into_a_failed_run():
    def refuses(argv):
        raise PermissionError(13, "Permission denied")

    assert run_reporting_os_errors(refuses)(["/mnt/noexec/w.sh", "--version"]) == (
        126, "", "cannot execute /mnt/noexec/w.sh: [Errno 13] Permission denied")
    assert run_reporting_os_errors(lambda argv: (0, "out", "err"))(["/bin/true"]) == (0, "out", "err")

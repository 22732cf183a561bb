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

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import TMP_PREFIX, TMP_SUFFIX
from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import path_lock
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import (
    HEADER_LINE,
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

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper is written root-owned")


def real_run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def present(result, path, binary, run=real_run, check_mode=False, backup=None, warnings=None, force=False):
    apply_present(result, path, binary, {}, [], run, check_mode, True, backup, None,
                  (warnings if warnings is not None else []).append, force)


def test_check_absolute():
    check_absolute("/opt/w.sh")
    with pytest.raises(WrapperError, match="absolute path, got 'w.sh'"):
        check_absolute("w.sh")


def stat_of(path):
    """What a rewrite, even a byte- and mode-identical one, would change (``_restart`` reads mtime/ctime)."""
    st = os.stat(path)
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def temporaries(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(TMP_PREFIX))


def fails_on_temporaries_of(path, stderr="boom"):
    """A run whose self-test of the new wrapper (a temporary file next to ``path``) fails."""
    prefix = f"{TMP_PREFIX}{os.path.basename(path)}-"

    def run(argv):
        if os.path.basename(argv[0]).startswith(prefix):
            return 1, "", stderr
        return real_run(argv)

    return run


@needs_root
def test_present_writes_then_is_idempotent_and_fixes_the_mode(tmp_path, daemon):
    path = str(tmp_path / "wrapper.sh")
    result = {"changed": False}
    present(result, path, daemon)
    assert result["changed"] is True and result["daemon_version"] == "1.13.2"
    assert result["content_changed"] is True
    assert result["diff"]["before"] == "" and MARKER in result["diff"]["after"]
    assert result["diff"]["before_header"] == result["diff"]["after_header"] == path
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    again = {"changed": False}
    present(again, path, daemon)
    assert again["changed"] is False and "diff" not in again and again["content_changed"] is False


@needs_root
def test_mode_only_drift_has_a_diff_that_names_it(tmp_path, daemon):
    """Right bytes, wrong mode (or owner): changed, and the diff says what changes, as ansible.builtin.file does."""
    path = str(tmp_path / "wrapper.sh")
    present({"changed": False}, path, daemon)
    script = Path(path).read_bytes()

    os.chmod(path, 0o700)
    checked = {"changed": False}
    present(checked, path, daemon, check_mode=True)
    assert checked["changed"] is True and checked["content_changed"] is False  # no daemon cares about a mode repair
    assert checked["diff"] == {"before": {"path": path, "mode": "0700"}, "after": {"path": path, "mode": "0755"}}
    assert os.stat(path).st_mode & 0o7777 == 0o700  # check mode changed nothing
    attrs = {"changed": False}
    present(attrs, path, daemon)
    assert attrs["changed"] is True and attrs["content_changed"] is False
    assert attrs["diff"] == {"before": {"path": path, "mode": "0700"}, "after": {"path": path, "mode": "0755"}}
    assert os.stat(path).st_mode & 0o7777 == WRAPPER_MODE and Path(path).read_bytes() == script

    os.chown(path, 0, 1001)  # another owner is refused (test__wrapper_trust.py); another group is repaired
    group = {"changed": False}
    present(group, path, daemon)
    assert group["changed"] is True
    assert group["diff"] == {"before": {"path": path, "group": 1001}, "after": {"path": path, "group": 0}}
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)

    # bytes and mode both wrong: the text diff, and the headers name the mode change
    Path(path).write_text("#!/bin/sh\necho mine\n")
    os.chmod(path, 0o700)
    both = {"changed": False}
    present(both, path, daemon, warnings=[], force=True)
    assert both["diff"]["before_header"] == f"{path} (mode 0700)"
    assert both["diff"]["after_header"] == f"{path} (mode 0755)"
    assert both["diff"]["before"] == "#!/bin/sh\necho mine\n" and both["diff"]["after"] == script.decode()


@needs_root
@pytest.mark.parametrize("same_script", [False, True], ids=["other-script", "same-script"])
def test_a_symlink_at_path_is_replaced_by_a_regular_file_and_its_target_is_left_alone(tmp_path, daemon, same_script):
    """The diff shows the link (not its target's bytes) as before, a warning names the target in check
    mode and in the real run, and only the link is replaced: the target keeps its bytes, mode and inode."""
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import render_script

    (tmp_path / "old").mkdir()
    target = tmp_path / "old" / "wrapper-v1.sh"
    target.write_text(render_script(daemon, []) if same_script else "#!/bin/sh\necho v1\n")
    os.chmod(target, 0o755)
    target_before = (stat_of(target), target.read_bytes())
    path = tmp_path / "wrapper.sh"
    path.symlink_to("old/wrapper-v1.sh")
    expected_warning = (f"{path} is a symlink to {target}; it is replaced by a regular file, "
                        f"{target} is left unchanged")

    warnings: list = []
    checked = {"changed": False}
    force = not same_script  # a link to a file this module did not write is refused without force
    present(checked, str(path), daemon, check_mode=True, warnings=warnings, force=force)
    assert checked["changed"] is True and warnings == [expected_warning]
    assert checked["diff"] == {
        "before_header": f"{path} (symlink -> old/wrapper-v1.sh)", "after_header": str(path),
        "before": "", "after": render_script(daemon, [])}
    assert os.readlink(path) == "old/wrapper-v1.sh"  # check mode changed nothing

    warnings = []
    backups: list = []
    result = {"changed": False}
    present(result, str(path), daemon, warnings=warnings, backup=lambda p: backups.append(p) or p + ".bak", force=force)
    assert result["changed"] is True and warnings == [expected_warning]
    assert result["content_changed"] is checked["content_changed"] is True
    assert result["diff"] == checked["diff"]
    assert not path.is_symlink() and path.read_text() == render_script(daemon, [])
    st = os.lstat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)
    assert (stat_of(target), target.read_bytes()) == target_before  # not written, not chmod-ed
    assert backups == [] and "backup_file" not in result  # nothing of the link's target is lost

    again: dict = {"changed": False}
    warnings = []
    present(again, str(path), daemon, warnings=warnings)
    assert again["changed"] is False and warnings == []


@needs_root
def test_a_failed_self_test_leaves_a_symlink_at_path_alone(tmp_path, daemon):
    target = tmp_path / "wrapper-v1.sh"
    target.write_text("#!/bin/sh\necho v1\n")
    path = tmp_path / "wrapper.sh"
    path.symlink_to(target)
    with pytest.raises(WrapperError) as exc:
        present({"changed": False}, str(path), daemon, run=fails_on_temporaries_of(str(path)), warnings=[], force=True)
    assert f"; {path} was not changed: the new wrapper was tested as a temporary file" in str(exc.value)
    assert os.readlink(path) == str(target) and target.read_text() == "#!/bin/sh\necho v1\n"


@needs_root
def test_a_mode_repair_is_recorded_so_that_it_is_not_a_change_of_what_daemons_run(tmp_path, daemon):
    """_restart reads the wrapper's change time as the one before the repair; new bytes or a removal drop
    the record (the file's own times count again)."""
    import time

    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _restart

    path = str(tmp_path / "wrapper.sh")
    present({"changed": False}, path, daemon)
    record = _restart._record_path(path)
    os.chmod(path, 0o700)
    drifted = os.stat(path)
    time.sleep(0.02)
    result = {"changed": False}
    present(result, path, daemon)
    assert result["changed"] is True and os.stat(path).st_ctime_ns > drifted.st_ctime_ns
    assert os.path.isfile(record)
    assert _restart.changed_at(path) == max(drifted.st_mtime_ns, drifted.st_ctime_ns) / 1e9
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]  # the record is not next to the wrapper

    checked = {"changed": False}  # check mode records nothing and drops nothing
    os.chmod(path, 0o700)
    os.unlink(record)
    present(checked, path, daemon, check_mode=True)
    assert checked["changed"] is True and not os.path.lexists(record)
    present({"changed": False}, path, daemon)
    assert os.path.isfile(record)

    apply_present({"changed": False}, path, daemon, {"log_level": "debug"}, [], real_run, False, False, None, None,
                  [].append)
    assert not os.path.lexists(record) and _restart.changed_at(path) == os.stat(path).st_ctime

    os.chmod(path, 0o700)
    present({"changed": False}, path, daemon)  # the debug wrapper's bytes differ from the plain one: rewritten
    os.chmod(path, 0o700)
    present({"changed": False}, path, daemon)
    assert os.path.isfile(record)
    apply_absent({"changed": False}, path, False, False, None)
    assert not os.path.lexists(path) and not os.path.lexists(record)


@needs_root
def test_failed_self_test_leaves_the_previous_file_untouched(tmp_path, daemon):
    """The new wrapper is tested as a temporary file: the old one keeps its inode, bytes, mode and
    timestamps (no false "restart pending"), nothing is left behind, no backup is made."""
    path = str(tmp_path / "wrapper.sh")
    Path(path).write_text("#!/bin/sh\necho mine\n")
    os.chmod(path, 0o640)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # an old mtime: any rewrite would move it
    before = stat_of(path)
    warnings: list = []
    backups: list = []

    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        present(result, path, daemon, run=fails_on_temporaries_of(path), warnings=warnings,
                backup=lambda p: backups.append(p) or p + ".bak", force=True)
    msg = str(exc.value)
    assert msg.startswith(f"self-test: {tmp_path}/{TMP_PREFIX}wrapper.sh-"), msg
    assert msg.endswith(
        " --version failed with rc 1: boom; "
        f"{path} was not changed: the new wrapper was tested as a temporary file next to it, "
        "which is removed, and was not put in place"), msg
    assert result["changed"] is False and "backup_file" not in result and backups == []
    assert result["content_changed"] is False
    assert stat_of(path) == before
    assert Path(path).read_text() == "#!/bin/sh\necho mine\n"
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]
    assert warnings == []  # backup was asked for: no "use backup" warning

    new = str(tmp_path / "new.sh")
    with pytest.raises(WrapperError) as exc:
        present({"changed": False}, new, daemon, run=fails_on_temporaries_of(new, "x"))
    assert str(exc.value).endswith(
        f" --version failed with rc 1: x; no wrapper was written at {new}: the new wrapper was tested as a "
        "temporary file next to it, which is removed, and was not put in place"), str(exc.value)
    assert not os.path.lexists(new)
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]


@needs_root
def test_a_passing_self_test_runs_the_new_wrapper_as_libvirt_would_then_replaces_the_file(tmp_path, daemon):
    """The file under test sits next to the wrapper, root-owned 0755, passes the path checks, holds
    the new script; after the test it is moved over the old file (a new inode) and is gone."""
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import check as check_root_only
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import render_script

    path = str(tmp_path / "wrapper.sh")
    Path(path).write_text("#!/bin/sh\necho mine\n")
    old_inode = os.stat(path).st_ino
    tested: list = []

    def run(argv):
        if argv[0] != daemon:
            st = os.stat(argv[0])
            assert os.path.dirname(argv[0]) == str(tmp_path)
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)
            assert os.access(argv[0], os.X_OK)
            check_root_only(argv[0], "wrapper path")
            assert Path(argv[0]).read_text() == render_script(daemon, [])
            assert Path(path).read_text() == "#!/bin/sh\necho mine\n"  # not replaced before the test passed
            tested.append(argv)
        return real_run(argv)

    backups: list = []
    result = {"changed": False}
    present(result, path, daemon, run=run, backup=lambda p: backups.append(Path(p).read_text()) or p + ".bak",
            force=True)
    assert [a[1:] for a in tested] == [["--version"], ["--print-capabilities"],
                                       ["--print-capabilities", "--print-capabilities"]]
    assert len({a[0] for a in tested}) == 1 and not os.path.lexists(tested[0][0])
    assert result["changed"] is True and result["backup_file"] == path + ".bak"
    assert backups == ["#!/bin/sh\necho mine\n"]
    assert Path(path).read_text() == render_script(daemon, [])
    st = os.stat(path)
    assert st.st_ino != old_inode and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (WRAPPER_MODE, 0, 0)
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]


@needs_root
def test_a_write_that_fails_leaves_the_previous_file_untouched(tmp_path, daemon, monkeypatch):
    """Disk full while writing the temporary file, or the final move refused: one message, the old
    file as it was, no temporary file, changed false."""
    import errno

    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _files

    path = str(tmp_path / "wrapper.sh")
    Path(path).write_text("#!/bin/sh\necho mine\n")
    before = stat_of(path)
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_files.os, "fsync", full)
    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        present(result, path, daemon, warnings=[], force=True)
    assert str(exc.value) == (
        f"cannot write {path}: the disk is full (No space left on device); {path} was not changed "
        "(the old file stays as it was), free space or fix the cause and run again")
    assert result["changed"] is False and stat_of(path) == before
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]
    monkeypatch.setattr(_files.os, "fsync", real_fsync)

    def refused(src, dest):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        apply_present(result, path, daemon, {}, [], real_run, False, False, None, refused, [].append, force=True)
    assert str(exc.value) == (
        f"cannot write {path}: Device or resource busy; {path} was not changed "
        "(the old file stays as it was), free space or fix the cause and run again")
    assert result["changed"] is False and stat_of(path) == before
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]


FIX = ("Fix: let root change the mode and owner of files there (the file not immutable: lsattr, chattr -i; the file "
       "system not read-only and not an NFS export with root_squash), then run again")


def refuse(monkeypatch, name, when):
    """Make ``os.NAME`` (chmod or chown) fail with EPERM for the paths ``when`` accepts."""
    import errno

    real = getattr(os, name)

    def fake(path, *args, **kwargs):
        if when(str(path)):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, fake)


@needs_root
def test_a_chmod_of_the_temporary_file_that_fails_is_the_modules_error_and_changes_nothing(
        tmp_path, daemon, monkeypatch):
    path = str(tmp_path / "wrapper.sh")
    Path(path).write_text("#!/bin/sh\necho mine\n")
    before = stat_of(path)
    refuse(monkeypatch, "chmod", lambda p: os.path.basename(p).startswith(TMP_PREFIX))
    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        present(result, path, daemon, warnings=[], force=True)
    msg = str(exc.value)
    assert msg.startswith(f"cannot chmod 0755 the temporary file {tmp_path}/{TMP_PREFIX}wrapper.sh-"), msg
    assert msg.endswith(
        f"{TMP_SUFFIX} (the new {path}): Operation not permitted; {path} was not changed (the old file stays as it "
        f"was; the temporary file is removed). {FIX}"), msg
    assert result["changed"] is False and stat_of(path) == before
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]


@needs_root
def test_a_chown_that_fails_after_the_move_is_the_modules_error_and_names_what_is_in_place(
        tmp_path, daemon, monkeypatch):
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import render_script

    path = str(tmp_path / "wrapper.sh")
    Path(path).write_text("#!/bin/sh\necho mine\n")
    refuse(monkeypatch, "chown", lambda p: p == path)
    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        present(result, path, daemon, warnings=[], force=True)
    assert str(exc.value) == (
        f"cannot chown 0:0 {path}: Operation not permitted; {path} already holds the new content (it was moved "
        f"into place), with mode 0755, owner 0, group 0. {FIX}")
    assert result["changed"] is True and result["content_changed"] is True  # the new wrapper is in place
    assert Path(path).read_text() == render_script(daemon, [])
    assert sorted(os.listdir(tmp_path)) == ["virtiofsd", "wrapper.sh"]


@needs_root
@pytest.mark.parametrize("failing, changed, now", [("chmod", False, "0700"), ("chown", True, "0755")])
def test_a_mode_repair_that_fails_is_the_modules_error_and_names_the_mode_left(
        tmp_path, daemon, monkeypatch, failing, changed, now):
    path = str(tmp_path / "wrapper.sh")
    present({"changed": False}, path, daemon)
    script = Path(path).read_bytes()
    os.chmod(path, 0o700)
    refuse(monkeypatch, failing, lambda p: p == path)
    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        present(result, path, daemon)
    operation = "chmod 0755" if failing == "chmod" else "chown 0:0"
    assert str(exc.value) == (
        f"cannot {operation} {path}: Operation not permitted; the content of {path} was not changed; it now has "
        f"mode {now}, owner 0, group 0. {FIX}")
    assert result["changed"] is changed
    assert Path(path).read_bytes() == script and os.stat(path).st_mode & 0o7777 == int(now, 8)


@needs_root
def test_leftovers_of_a_killed_run_are_removed_even_when_nothing_changes(tmp_path, daemon):
    """A run killed during its self-test leaves its temporary file; the next run (not in check mode)
    removes it under the lock, also when the wrapper itself needs no change."""
    path = str(tmp_path / "wrapper.sh")
    present({"changed": False}, path, daemon)
    leftover = tmp_path / f"{TMP_PREFIX}wrapper.sh-killed{TMP_SUFFIX}"
    other = tmp_path / f"{TMP_PREFIX}other.sh-killed{TMP_SUFFIX}"
    leftover.write_text("#!/bin/sh\n")
    other.write_text("#!/bin/sh\n")
    checked = {"changed": False}
    present(checked, path, daemon, check_mode=True)
    assert checked["changed"] is False and leftover.exists()  # check mode touches nothing
    result = {"changed": False}
    present(result, path, daemon)
    assert result["changed"] is False
    assert temporaries(tmp_path) == [other.name]  # another file's temporaries are not this run's to remove


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
    own.write_text(f"#!/bin/sh\n{HEADER_LINE}\n")
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
    own.write_text(f"#!/bin/sh\n{HEADER_LINE}\n")
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


def test_without_a_usable_lock_directory_nothing_is_changed(tmp_path, daemon, monkeypatch):
    """No lock, no run: the module does not go on unlocked (two runs could drop each other's wrapper)."""
    import tempfile

    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _lock

    for name in ("run-lock", "tmp"):
        (tmp_path / name).write_text("")
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(tmp_path / "run-lock"),))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = tmp_path / "w.sh"
    path.write_text("#!/bin/sh\necho mine\n")
    before = stat_of(path)
    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        run_apply(result, "present", str(path), daemon)
    msg = str(exc.value)
    assert msg.startswith(f"cannot take the lock for {path}: no lock directory is usable ({tmp_path}/run-lock/"), msg
    assert msg.endswith(f"or point TMPDIR at a writable directory; {path} was not changed"), msg
    assert result == {"changed": False} and stat_of(path) == before
    assert sorted(os.listdir(tmp_path)) == ["run-lock", "tmp", "virtiofsd", "w.sh"]


def test_run_reporting_os_errors_turns_an_os_error_into_a_failed_run():
    def refuses(argv):
        raise PermissionError(13, "Permission denied")

    assert run_reporting_os_errors(refuses)(["/mnt/noexec/w.sh", "--version"]) == (
        126, "", "cannot execute /mnt/noexec/w.sh: [Errno 13] Permission denied")
    assert run_reporting_os_errors(lambda argv: (0, "out", "err"))(["/bin/true"]) == (0, "out", "err")

# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virtiofsd_wrapper state=present and a file at ``path`` that the module did not write: refused
(check mode too) unless ``force``; run against a fake daemon that answers like the Rust virtiofsd
1.13.2 (the fixtures) and a real /bin/sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import TMP_PREFIX
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import (
    MARKER,
    WrapperError,
    apply,
    apply_present,
    check_replaceable,
    describe_file,
    render_script,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the wrapper is written root-owned")

HAND_WRITTEN = "#!/bin/sh\nexec /usr/libexec/virtiofsd \"$@\" --cache=auto\n"


def real_run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def stat_of(path):
    st = os.stat(path)
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def refusal(path, what):
    return (f"{path} exists and was not written by this module ({what} without the '{MARKER}' header): "
            "refusing to replace it. Choose another path for the wrapper, or set force: true to replace it "
            "(with backup: true to keep a copy)")


def test_describe_file():
    assert describe_file(Path("/bin/sh").resolve().read_bytes()[:4096]) == "an ELF binary"
    assert describe_file(b"\x7fELF\x02\x01") == "an ELF binary"
    assert describe_file(HAND_WRITTEN.encode()) == "a #!/bin/sh script"
    assert describe_file(b"#! /usr/bin/env python3\nprint(1)\n") == "a #!/usr/bin/env python3 script"
    assert describe_file(b"#!\n") == "a script"
    assert describe_file(b"#!/bin/sh\x1b[31m\n") == "a #!/bin/sh[31m script"  # no control characters in messages
    assert describe_file(b"") == "an empty file"
    assert describe_file(b"cache=auto\n") == "a text file"
    assert describe_file(b"\x00\x01\x02") == "a binary file"


def test_check_replaceable_decides_by_the_marker(tmp_path):
    missing = tmp_path / "none.sh"
    check_replaceable(str(missing), False)  # nothing there: nothing to refuse
    own = tmp_path / "own.sh"
    own.write_text(render_script("/usr/libexec/virtiofsd", ["--cache=never"]))
    check_replaceable(str(own), False)
    marker_not_in_a_script = tmp_path / "notes.txt"
    marker_not_in_a_script.write_text(f"# {MARKER}\n")  # what state=absent refuses too: no #! line
    with pytest.raises(WrapperError) as exc:
        check_replaceable(str(marker_not_in_a_script), False)
    assert str(exc.value) == refusal(marker_not_in_a_script, "a text file")
    check_replaceable(str(marker_not_in_a_script), True)
    link = tmp_path / "link.sh"
    link.symlink_to(shutil.which("sh") or "/bin/sh")  # a symlink is judged by the file it points to
    with pytest.raises(WrapperError) as exc:
        check_replaceable(str(link), False)
    assert str(exc.value) == refusal(link, "an ELF binary")


@needs_root
@pytest.mark.parametrize("kind", ["elf", "script", "empty"])
@pytest.mark.parametrize("check_mode", [True, False])
def test_present_refuses_a_file_it_did_not_write(tmp_path, daemon, kind, check_mode):
    """A copy of /bin/sh, a hand-written wrapper, an empty file: refused before anything is written,
    in check mode too; the file keeps its inode, bytes, mode and timestamps; no backup, no temporary file."""
    path = tmp_path / "mysh"
    if kind == "elf":
        shutil.copyfile(Path("/bin/sh").resolve(), path)
    else:
        path.write_text(HAND_WRITTEN if kind == "script" else "")
    os.chmod(path, 0o750)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    content, before = path.read_bytes(), stat_of(path)
    warnings: list = []
    backups: list = []
    ran: list = []

    def run(argv):
        ran.append(argv)
        return real_run(argv)

    result = {"changed": False}
    with pytest.raises(WrapperError) as exc:
        apply_present(result, str(path), daemon, {"cache": "never"}, [], run, check_mode, True,
                      lambda p: backups.append(p) or p + ".bak", None, warnings.append)
    what = {"elf": "an ELF binary", "script": "a #!/bin/sh script", "empty": "an empty file"}[kind]
    assert str(exc.value) == refusal(path, what)
    assert "or set force: true to replace it" in str(exc.value)
    assert result == {"changed": False}  # no diff, no argv: nothing was planned
    assert ran == [] and backups == [] and warnings == []  # refused before the daemon is even asked
    assert path.read_bytes() == content and stat_of(path) == before
    assert sorted(os.listdir(tmp_path)) == ["mysh", "virtiofsd"]


@needs_root
def test_apply_passes_force_and_refuses_without_it(tmp_path, daemon):
    path = tmp_path / "w.sh"
    path.write_text(HAND_WRITTEN)
    before = stat_of(path)
    with pytest.raises(WrapperError) as exc:
        apply({"changed": False}, "present", str(path), daemon, {}, [], real_run, True, True, None, None, [].append)
    assert str(exc.value) == refusal(path, "a #!/bin/sh script")
    assert stat_of(path) == before
    result = {"changed": False}
    apply(result, "present", str(path), daemon, {}, [], real_run, False, False, None, None, [].append, force=True)
    assert result["changed"] is True and path.read_text() == render_script(daemon, [])


@needs_root
def test_force_replaces_it_check_mode_reports_and_backup_keeps_a_copy(tmp_path, daemon):
    path = tmp_path / "mysh"
    shutil.copyfile(Path("/bin/sh").resolve(), path)
    os.chmod(path, 0o755)
    content, before = path.read_bytes(), stat_of(path)

    checked = {"changed": False}
    apply_present(checked, str(path), daemon, {}, [], real_run, True, False, None, None, [].append, force=True)
    assert checked["changed"] is True and stat_of(path) == before and path.read_bytes() == content

    warnings: list = []
    backups: list = []

    def backup(p):
        backups.append(Path(p).read_bytes())
        shutil.copy2(p, p + ".bak")
        return p + ".bak"

    result = {"changed": False}
    apply_present(result, str(path), daemon, {}, [], real_run, False, False, backup, None, warnings.append, force=True)
    assert result["changed"] is True and result["backup_file"] == f"{path}.bak"
    assert backups == [content] and Path(f"{path}.bak").read_bytes() == content
    assert warnings == []  # backup: true, so no "use backup" warning
    assert path.read_text() == render_script(daemon, [])
    st = os.stat(path)
    assert st.st_ino != before[0] and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o755, 0, 0)

    # from now on the file is the module's own: no force needed to change it
    again = {"changed": False}
    apply_present(again, str(path), daemon, {"cache": "never"}, [], real_run, False, False, None, None, [].append)
    assert again["changed"] is True and "--cache=never" in path.read_text()

    # force without backup: replaced, with the warning that no copy was kept
    other = tmp_path / "hand.sh"
    other.write_text(HAND_WRITTEN)
    warned: list = []
    res = {"changed": False}
    apply_present(res, str(other), daemon, {}, [], real_run, False, False, None, None, warned.append, force=True)
    assert res["changed"] is True and other.read_text() == render_script(daemon, [])
    assert warned == [f"{other} was not written by this module and is replaced; use backup: true to keep a copy"]


@needs_root
def test_a_fifo_is_refused_even_with_force_and_nothing_blocks(tmp_path, daemon):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    errors: list = []

    def attempt():
        try:
            apply_present({"changed": False}, str(path), daemon, {}, [], real_run, False, False, None, None,
                          [].append, force=True)
        except WrapperError as exc:
            errors.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # the old code blocked in open(); let the thread go
        with open(path, "wb"):
            pass
        worker.join(5)
        pytest.fail("reading the FIFO at path blocked")
    assert errors == [f"{path} is a FIFO, not a wrapper; remove it yourself or choose another path for the wrapper"]
    assert Path(path).is_fifo() and sorted(os.listdir(tmp_path)) == ["fifo", "virtiofsd"]


def test_absent_ignores_force_and_never_removes_a_file_it_did_not_write(tmp_path):
    path = tmp_path / "foreign"
    path.write_text(HAND_WRITTEN)
    with pytest.raises(WrapperError) as exc:
        apply({"changed": False}, "absent", str(path), None, {}, [], real_run, False, False, None, None, [].append,
              force=True)
    assert "is not a wrapper written by this module" in str(exc.value)
    assert path.read_text() == HAND_WRITTEN
    assert not [n for n in os.listdir(tmp_path) if n.startswith(TMP_PREFIX)]

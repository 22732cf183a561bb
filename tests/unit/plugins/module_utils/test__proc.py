# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd of a running share, found from libvirt's pid file or in a fake /proc."""

from __future__ import annotations

import os

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _proc as P


def _process(proc, pid, argv, ppid=1, comm="virtiofsd"):
    d = proc / str(pid)
    d.mkdir()
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (d / "stat").write_bytes(f"{pid} ({comm}) S {ppid} 0 0".encode())
    os.symlink("/usr/libexec/virtiofsd", d / "exe")


def _session(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    state, log = P.runtime_dirs("qemu:///session")
    os.makedirs(state)
    os.makedirs(log)
    return state, log


def test_runtime_dirs_system_and_session(monkeypatch, tmp_path):
    assert P.runtime_dirs("qemu:///system") == ("/run/libvirt/qemu", "/var/log/libvirt/qemu")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/r")
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    assert P.runtime_dirs("qemu:///session") == ("/r/libvirt/qemu/run", "/c/libvirt/qemu/log")


def test_process_from_pid_file_with_children_and_log(monkeypatch, tmp_path):
    state, log = _session(monkeypatch, tmp_path)
    proc = tmp_path / "proc"
    proc.mkdir()
    _process(proc, 300, ["/usr/libexec/virtiofsd", "--fd=3", "--shared-dir", "/srv/a"])
    _process(proc, 301, ["/usr/libexec/virtiofsd", "--fd=3"], ppid=300, comm="virtio fs (x)")
    _process(proc, 302, ["sleep", "1"], ppid=1)
    name = "a-domain-name-longer-than-twenty"
    with open(os.path.join(state, f"7-{name[:P.SHORT_NAME_MAX]}-fs0-fs.pid"), "w") as f:
        f.write("300\n")
    open(os.path.join(log, f"{name}-fs0-virtiofsd.log"), "w").close()
    info = P.virtiofsd_process(name, 7, "fs0", "/srv/a", uri="qemu:///session", proc=str(proc))
    assert info["running"] is True
    assert info["pid"] == 300
    assert info["pid_file"].endswith(f"7-{name[:20]}-fs0-fs.pid")
    assert info["children"] == [301]
    assert info["exe"] == "/usr/libexec/virtiofsd"
    assert info["log_exists"] is True


def test_process_found_by_source_without_pid_file(monkeypatch, tmp_path):
    _session(monkeypatch, tmp_path)
    proc = tmp_path / "proc"
    proc.mkdir()
    _process(proc, 40, ["/usr/libexec/virtiofsd", "--shared-dir=/srv/other"])  # not libvirt's (no --fd)
    _process(proc, 41, ["/usr/libexec/virtiofsd", "--fd=3", "-o", "source=/srv/b\\,c,cache=auto"])
    info = P.virtiofsd_process("vm", 1, "fs0", "/srv/b,c", uri="qemu:///session", proc=str(proc))
    assert (info["running"], info["pid"], info["pid_file"]) == (True, 41, None)
    assert info["log_exists"] is False
    missing = P.virtiofsd_process("vm", 1, None, "/srv/none", uri="qemu:///session", proc=str(proc))
    assert missing["running"] is False and missing["log_path"] is None and "log_exists" not in missing

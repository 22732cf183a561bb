# SPDX-License-Identifier: GPL-3.0-or-later
"""A pending restart is reported in every run until the domain is stopped and started (issue 12).

A running TCG domain with one share whose ``<binary path>`` is a wrapper written by
``virtiofs.libvirt.virtiofsd_wrapper`` around the lab's Rust virtiofsd (an own copy):

* with nothing changed, ``share`` and ``share_info`` report no restart;
* the wrapper is written again with another option: the next ``share`` run (which changes
  nothing in the definition and is not told about the wrapper) and a second run after it both
  report ``restart_required`` with a reason naming the wrapper, and so does ``share_info``;
* after a full stop and start of the domain both report no restart; the wrapper's mode drifted
  (0750) before that start, and the module's repair of it (same bytes, a new ctime) is not
  reported as a restart either;
* a rewrite of the wrapper whose self-test fails leaves it untouched (inode, mtime, ctime), so
  both still report no restart;
* the daemon binary is replaced by a copy (new inode): both report it, naming the binary,
  until the next stop and start;
* other bytes written into the wrapper with its old mtime restored (``cp -p``): reported.

Skips (with the reason) when the lab is not up. Domain ``it-restart-pending``, SSH port 2270;
everything is removed afterwards.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import libvirt
import pytest

BASE = Path("/opt/it-restart-pending")
BINARY = BASE / "virtiofsd"
WRAPPER = BASE / "virtiofsd.sh"
SRC = Path("/srv/it-restart-pending")
DOMAIN = "it-restart-pending"
PORT = 2270
TAG = "pending"


@pytest.fixture(scope="module")
def rust_binary(copy_rust_binary):
    """Own copy of the lab's Rust virtiofsd: this test replaces it."""
    return copy_rust_binary(BINARY)


PLAY = f"""
- name: Share
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domain: {DOMAIN}
        shares: [{{tag: {TAG}, source: {SRC}, binary_path: {WRAPPER}}}]
    - name: Info
      virtiofs.libvirt.share_info:
        domain: {DOMAIN}
"""


def run_share(run_playbook):
    res = run_playbook(PLAY)
    assert res.rc == 0, res.stdout[-6000:] + res.stderr[-2000:]
    return res.result("Share"), res.result("Info")["domains"][0]


def stop_and_start(uri: str) -> None:
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(DOMAIN)
        dom.destroy()
        dom.create()
    finally:
        conn.close()


def test_pending_restart_is_reported_until_stop_and_start(run_playbook, write_wrapper, lab, labctl, rust_binary):
    SRC.mkdir(parents=True, exist_ok=True)
    BASE.mkdir(parents=True, exist_ok=True)
    result = write_wrapper(WRAPPER, rust_binary, {"log_level": "info"})
    assert result["argv"] == ["--log-level=info"]
    try:
        labctl.clone_guest(DOMAIN, PORT, shared_memory=True, wait=False,
                           filesystems=[{"tag": TAG, "source": str(SRC), "binary": str(WRAPPER)}])
        result, info = run_share(run_playbook)
        assert result["changed"] is False, result["actions"]
        assert result["restart_required"] is False and result["restart_reasons"] == []
        assert info["active"] is True
        assert info["restart_required"] is False and info["restart_reasons"] == []
        pid = info["shares"][0]["virtiofsd"]["pid"]
        assert pid > 0 and info["shares"][0]["virtiofsd"]["exe"] == rust_binary

        # 1. the wrapper changes (another option): reported now and in every later run
        result = write_wrapper(WRAPPER, rust_binary, {"log_level": "debug"})
        assert result["changed"] is True and result["argv"] == ["--log-level=debug"]
        for _run in (1, 2):
            result, info = run_share(run_playbook)
            assert result["changed"] is False, result["actions"]
            assert result["restart_required"] is True
            assert result["restart_reasons"] == [
                f"share '{TAG}': {WRAPPER} changed after its virtiofsd (pid {pid}) started: the daemon keeps the "
                "old program and options until the domain is shut down and started"]
            assert info["restart_required"] is True
            assert info["restart_reasons"] == result["restart_reasons"]

        # 2. stop and start: the new daemon is younger than the wrapper (whose mode drifted before the start)
        WRAPPER.chmod(0o750)
        stop_and_start(lab["uri"])
        result, info = run_share(run_playbook)
        assert result["restart_required"] is False and result["restart_reasons"] == []
        assert info["restart_required"] is False and info["restart_reasons"] == []
        new_pid = info["shares"][0]["virtiofsd"]["pid"]
        assert new_pid > 0 and new_pid != pid

        # 2a. the module repairs the mode (same bytes; ctime moves): recorded, so no restart is reported for it
        wrapper_bytes = WRAPPER.read_bytes()
        ctime_before_repair = WRAPPER.stat().st_ctime_ns
        result = write_wrapper(WRAPPER, rust_binary, {"log_level": "debug"})
        assert result["changed"] is True and result["argv"] == ["--log-level=debug"]
        st = WRAPPER.stat()
        assert st.st_mode & 0o7777 == 0o755 and st.st_ctime_ns > ctime_before_repair
        assert WRAPPER.read_bytes() == wrapper_bytes
        result, info = run_share(run_playbook)
        assert result["restart_required"] is False and result["restart_reasons"] == []
        assert info["restart_required"] is False and info["restart_reasons"] == []
        assert info["shares"][0]["virtiofsd"]["pid"] == new_pid

        # 2b. a rewrite whose self-test fails leaves the wrapper untouched (inode, timestamps): no restart
        flaky = BASE / "flaky"
        flaky.write_text(
            "#!/bin/sh\n"  # the bare capability probe fails once a wrapper with --log-level=warn exists (the new one)
            f"if [ \"$#\" -eq 1 ] && [ \"$1\" = --print-capabilities ] && grep -qs -- --log-level=warn {WRAPPER} "
            f"{BASE}/.virtiofs-libvirt-virtiofsd.sh-*.tmp; then echo 'not json'; exit 0; fi\n"
            f"exec {rust_binary} \"$@\"\n")
        flaky.chmod(0o755)
        st = WRAPPER.stat()
        before = (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        wrapper_bytes = WRAPPER.read_bytes()
        result = write_wrapper(WRAPPER, str(flaky), {"log_level": "warn"}, check_rc=False)
        assert result.get("failed") is True and result["changed"] is False, result
        assert "did not print JSON" in result["msg"], result["msg"]
        message = result["msg"]
        st = WRAPPER.stat()
        assert (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == before, message
        assert WRAPPER.read_bytes() == wrapper_bytes
        assert sorted(p.name for p in BASE.iterdir() if p.name.startswith(".virtiofs-libvirt-")) == []
        result, info = run_share(run_playbook)
        assert result["restart_required"] is False and result["restart_reasons"] == []
        assert info["restart_required"] is False and info["restart_reasons"] == []
        assert info["shares"][0]["virtiofsd"]["pid"] == new_pid
        assert f"{WRAPPER} was not changed: the new wrapper was tested as a temporary file" in message, message

        # 3. the daemon binary is replaced by a copy of itself (a new inode at the same path)
        tmp = BINARY.with_name("virtiofsd.new")
        shutil.copy2(BINARY, tmp)
        tmp.replace(BINARY)
        for _run in (1, 2):
            result, info = run_share(run_playbook)
            assert result["restart_required"] is True
            assert result["restart_reasons"] == [
                f"share '{TAG}': its running virtiofsd (pid {new_pid}) runs {rust_binary}, which was deleted or "
                "replaced since it started: the domain keeps the old program until it is shut down and started"]
            assert info["restart_reasons"] == result["restart_reasons"]

        stop_and_start(lab["uri"])
        result, info = run_share(run_playbook)
        assert result["restart_required"] is False and result["restart_reasons"] == []
        assert info["restart_required"] is False and info["restart_reasons"] == []
        last_pid = info["shares"][0]["virtiofsd"]["pid"]

        # 4. other bytes put in place with the old mtime (cp -p): ctime tells, reported until stop and start
        st = WRAPPER.stat()
        WRAPPER.write_bytes(WRAPPER.read_bytes().replace(b"--log-level=debug", b"--log-level=error"))
        os.utime(WRAPPER, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert WRAPPER.stat().st_mtime_ns == st.st_mtime_ns
        result, info = run_share(run_playbook)
        assert result["restart_required"] is True
        assert result["restart_reasons"] == [
            f"share '{TAG}': {WRAPPER} changed after its virtiofsd (pid {last_pid}) started: the daemon keeps the "
            "old program and options until the domain is shut down and started"]
        assert info["restart_reasons"] == result["restart_reasons"]
    finally:
        labctl.destroy_guest(DOMAIN)
        shutil.rmtree(SRC, ignore_errors=True)

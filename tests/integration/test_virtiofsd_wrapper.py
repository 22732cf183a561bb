# SPDX-License-Identifier: GPL-3.0-or-later
"""virtiofs.libvirt.virtiofsd_wrapper on the real lab.

* the Ansible target ``targets/virtiofsd_wrapper`` (check mode, idempotence, refusals that
  leave the wrapper byte-identical, self-test restore, removal);
* a real TCG domain whose ``<binary path>`` is the wrapper: the running daemon is the Rust
  binary itself (exec), its ``/proc/<pid>/cmdline`` carries libvirt's arguments followed by the
  configured options, and the guest mounts the share and sees files both ways;
* libvirt 11's ``--fd=N --shared-dir DIR ...`` calling style (Debian 13), run directly against
  the wrapper with a real listening socket passed as an inherited fd.

Skips (with the reason) when the lab is not up.
"""
from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import libvirt
import pytest
from lxml import etree

BASE = Path("/opt/it-wrapper")
BINARY = BASE / "virtiofsd"
DOMAIN = "it-wrapper-dom"
SSH_PORT = 2240
TAG = "itwrap"
SHARE = Path("/srv/it-wrapper-share")
OPTIONS = {
    "log_level": "debug",
    "thread_pool_size": 2,
    "xattrmap": ":map:user.a b:user.virtiofs.:",  # a space: must survive sh quoting and libvirt
    "inode_file_handles": "never",
    "announce_submounts": True,
}
EXPECTED_ARGV = [
    "--announce-submounts",
    "--inode-file-handles=never",
    "--log-level=debug",
    "--thread-pool-size=2",
    "--xattrmap=:map:user.a b:user.virtiofs.:",
]


@pytest.fixture(scope="module")
def rust_binary(copy_rust_binary):
    """Own copy of the lab's Rust virtiofsd (tests must not touch the lab's)."""
    return copy_rust_binary(BINARY)


def test_target(run_target, lab):
    res = run_target("virtiofsd_wrapper")
    # the refusal loop really ran every case and each one failed
    refused = res.result("Each refusal")
    assert refused["failed"] is True  # the JSON callback drops per-item "failed"; check each message
    assert len(refused["results"]) >= 22
    for item in refused["results"]:
        assert item["item"]["msg"] in item["msg"], item["item"]["name"]
        assert item["changed"] is False and "argv" not in item
    # a symlink at path: the warning names the target that is left unchanged, in check mode and in the real run
    target = "/opt/it-wrapper/target/old-wrapper.sh"
    warning = (f"/opt/it-wrapper/target/wrappers/linked.sh is a symlink to {target}; it is replaced by a regular "
               f"file, {target} is left unchanged")
    for name in ("Wrapper at a symlink (check mode)", "Wrapper at a symlink"):
        assert any(warning in str(w) for w in res.result(name).get("warnings", [])), res.result(name)
    # state=absent on a symlink to a wrapper: the warning names the target left in place
    link, owned = "/opt/it-wrapper/target/wrappers/owned-link.sh", "/opt/it-wrapper/target/wrappers/owned.sh"
    removed = res.result("Remove the wrapper through the symlink")
    assert f"{link} is a symlink to {owned}; the link is removed, {owned} is left in place" in removed.get(
        "warnings", []), removed
    forced = res.result("Rewrite it with force")
    assert any("can be changed by users other than root" in w for w in forced.get("warnings", [])), forced


def _daemon_pids(domain: str) -> list[int]:
    pids = []
    for pidfile in glob.glob(f"/run/libvirt/qemu/*{domain}*-fs.pid"):
        try:
            pids.append(int(Path(pidfile).read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_domain_runs_the_wrapper(write_wrapper, lab, labctl, rust_binary):
    wrapper = str(BASE / "dom" / "virtiofsd.sh")
    Path(wrapper).parent.mkdir(parents=True, exist_ok=True)
    result = write_wrapper(wrapper, rust_binary, OPTIONS)
    assert result["argv"] == EXPECTED_ARGV

    SHARE.mkdir(parents=True, exist_ok=True)
    marker = uuid.uuid4().hex
    (SHARE / "from-host.txt").write_text(marker + "\n")
    guest_file = SHARE / "from-guest.txt"
    if guest_file.exists():
        guest_file.unlink()
    try:
        labctl.clone_guest(DOMAIN, SSH_PORT, shared_memory=True,
                           filesystems=[{"tag": TAG, "source": str(SHARE), "binary": wrapper}])
        conn = libvirt.open(lab["uri"])
        try:
            xml = etree.fromstring(conn.lookupByName(DOMAIN).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            assert xml.find("devices/filesystem/binary").get("path") == wrapper
        finally:
            conn.close()

        pids = _daemon_pids(DOMAIN)
        assert pids, "libvirt wrote no virtiofsd pid file for the domain"
        pid = pids[0]
        argv = _cmdline(pid)
        # exec: the process libvirt tracks is the Rust daemon itself, not /bin/sh
        assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(rust_binary)
        assert argv[0] == rust_binary
        # libvirt's own arguments first, then the configured options, in order
        assert argv[-len(EXPECTED_ARGV):] == EXPECTED_ARGV
        libvirt_args = argv[1:-len(EXPECTED_ARGV)]
        assert any(a.startswith("--fd=") for a in libvirt_args), argv
        assert (f"source={SHARE}" in " ".join(libvirt_args)) or ("--shared-dir" in libvirt_args), argv

        out = labctl.guest_ssh(
            SSH_PORT,
            f"mkdir -p /mnt/{TAG} && mount -t virtiofs {TAG} /mnt/{TAG} && cat /mnt/{TAG}/from-host.txt && "
            f"echo guest-{marker} > /mnt/{TAG}/from-guest.txt && sync && findmnt -n -o FSTYPE /mnt/{TAG}",
        ).stdout.split()
        assert out == [marker, "virtiofs"]
        assert guest_file.read_text().strip() == f"guest-{marker}"
        # the daemon log shows the debug level the wrapper forced (libvirt passes none)
        logs = glob.glob(f"/var/log/libvirt/qemu/{DOMAIN}-*-virtiofsd.log")
        assert logs and "DEBUG" in Path(logs[0]).read_text()
    finally:
        labctl.destroy_guest(DOMAIN)
    for _attempt in range(50):
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            break
        time.sleep(0.2)
    assert not any(Path(f"/proc/{p}").exists() for p in pids), "daemon survived domain destroy"


def test_libvirt11_separate_options_style(write_wrapper, lab, rust_binary, tmp_path):
    """Debian 13 / libvirt 11 call: probe, then --fd=N --shared-dir DIR --cache ... (docs/reference.md C.3)."""
    wrapper = str(BASE / "sep" / "virtiofsd.sh")
    Path(wrapper).parent.mkdir(parents=True, exist_ok=True)
    result = write_wrapper(wrapper, rust_binary, {"cache": "never", "log_level": "error"})
    ours = result["argv"]
    assert ours == ["--cache=never", "--log-level=error"]

    probe = subprocess.run([wrapper, "--print-capabilities"], capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode == 0 and '"separate-options"' in probe.stdout

    share = tmp_path / "share dir"
    share.mkdir()
    sock_path = str(tmp_path / "fs.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    fd = listener.fileno()
    libvirt_args = [f"--fd={fd}", "--shared-dir", str(share), "--cache", "always", "--sandbox", "chroot", "--xattr",
                    "--thread-pool-size=1", "--log-level", "debug"]
    proc = subprocess.Popen([wrapper] + libvirt_args, pass_fds=[fd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        assert proc.poll() is None, proc.communicate()[1]
        argv = _cmdline(proc.pid)
        assert os.path.realpath(f"/proc/{proc.pid}/exe") == os.path.realpath(rust_binary)
        assert argv == [rust_binary] + libvirt_args + ours
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(sock_path)
        time.sleep(1)
        assert proc.poll() is None  # accepted the vhost-user connection and serves it
        client.close()
        # the front-end went away: the daemon shuts down cleanly (rc 0), not with a start error (rc 1/2)
        err = proc.communicate(timeout=30)[1]
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=30)
        listener.close()
    # libvirt's "--log-level debug" came first, the wrapper's --log-level=error last: the last one
    # wins, so none of the INFO lines ("Waiting for vhost-user socket connection...") appear
    assert " INFO " not in err and " DEBUG " not in err, err

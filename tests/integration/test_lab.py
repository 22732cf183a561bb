# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab itself: a TCG domain defined on qemu:///system boots and answers SSH; Ansible
reaches both the hypervisor and the guest; the virtiofsd sources are served on loopback."""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.request
import zipfile
import io

import libvirt
import pytest
from lxml import etree

SMOKE = "it-lab-smoke"
PORT = 2229


def test_tcg_guest_defines_boots_and_answers_ssh(lab, labctl):
    try:
        info = labctl.clone_guest(SMOKE, PORT)
        conn = libvirt.open(lab["uri"])
        try:
            dom = conn.lookupByName(SMOKE)
            assert dom.isActive() == 1
            xml = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            assert xml.get("type") == "qemu"  # TCG, not KVM
        finally:
            conn.close()
        out = labctl.guest_ssh(info["ssh_port"], "cat /etc/debian_version; python3 -c 'print(6*7)'; "
                                                 "modinfo -F name virtiofs").stdout.split()
        assert out[0].startswith("12.")
        assert out[1] == "42"
        assert out[2] == "virtiofs"  # the guest kernel can mount virtio-fs
    finally:
        labctl.destroy_guest(SMOKE)
    conn = libvirt.open(lab["uri"])
    try:
        assert SMOKE not in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


def test_ansible_reaches_hypervisor_and_guest(run_playbook):
    res = run_playbook("""
- name: Facts from both lab hosts
  hosts: all
  gather_facts: false
  tasks:
    - name: Kernel
      ansible.builtin.command: uname -r
      changed_when: false
""")
    assert res.rc == 0, res.stderr + res.stdout[-2000:]
    assert set(res.tasks("Kernel")[0]) == {"hypervisor", "guest", "hypervisor2", "guest2"}
    assert res.result("Kernel", "guest")["stdout"].endswith("-amd64")
    # guest2 runs Debian 13's kernel (6.12), guest Debian 12's (6.1)
    assert res.result("Kernel", "guest")["stdout"].startswith("6.1.")
    assert res.result("Kernel", "guest2")["stdout"].startswith("6.12.")


def test_artifact_server_serves_release_zip_with_upstream_layout(lab):
    data = urllib.request.urlopen(lab["artifact_url"], timeout=30).read()
    assert lab["artifact_url"].startswith("http://127.0.0.1:")
    assert hashlib.sha256(data).hexdigest() == lab["artifact_sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "target/x86_64-unknown-linux-musl/release/virtiofsd" in zf.namelist()
    with open(lab["artifact_access_log"]) as f:
        assert lab["artifact_file"] in f.read()


def test_second_hypervisor_runs_its_own_libvirt_in_its_own_namespaces(lab, lab2, labctl):
    hv2 = labctl.hv2
    tree = lab2["tree"]
    # another Debian release, another libvirt: 11.x in the tree, 9.0 on this machine
    conn = libvirt.open(lab2["uri"])
    try:
        version = conn.getLibVersion()
        assert version >= 10_000_000, version
        assert "vfs-lab2" in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()
    conn = libvirt.open(lab["uri"])
    try:
        assert conn.getLibVersion() < 10_000_000
        assert "vfs-lab2" not in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()
    # libvirtd there: own mount + PID namespace, root = the tree (pivot_root, not chroot)
    init = lab2["init_pid"]
    procs = dict((comm, pid) for pid, comm in hv2.ns_processes(init))
    assert {"tini", "libvirtd", "virtlogd", "sshd"} <= set(procs), procs
    for pid in (init, procs["libvirtd"]):
        hv2.check_isolation(pid, tree, "test", labctl.LabError)
    root = os.stat(f"/proc/{procs['libvirtd']}/root/")
    assert (root.st_dev, root.st_ino) != (os.stat("/").st_dev, os.stat("/").st_ino)
    # the host's /dev/ptmx is untouched
    hv2.check_host_ptmx("test", labctl.LabError)


def test_isolation_check_refuses_a_plain_chroot(lab2, labctl):
    proc = subprocess.Popen(["chroot", lab2["tree"], "sleep", "30"])
    try:
        time.sleep(0.5)
        with pytest.raises(labctl.LabError) as refused:
            labctl.hv2.check_isolation(proc.pid, lab2["tree"], "test", labctl.LabError)
        msg = str(refused.value)
        assert "refusing to start the second hypervisor's daemons" in msg
        assert "shares the host's mnt namespace" in msg
        assert "never run under a plain chroot" in msg
    finally:
        proc.kill()
        proc.wait()
